use uuid::Uuid;

use super::*;

fn ring(id: &str, byte: u8) -> Keyring {
    Keyring::new(master(id, byte))
}

fn master(id: &str, byte: u8) -> MasterKey {
    MasterKey::new(id, &[byte; 32]).expect("a valid key id")
}

#[test]
fn a_secret_opens_for_its_own_connection_and_workspace_only() {
    let keyring = ring("k1", 1);
    let (workspace, connection) = (Uuid::new_v4(), Uuid::new_v4());
    let (data_key, _) = keyring.new_data_key(workspace).expect("a data key");
    let sealed = data_key
        .seal(b"xoxb-secret", workspace, connection)
        .expect("sealed");

    assert_eq!(
        data_key
            .open(&sealed, workspace, connection)
            .expect("opens")
            .as_slice(),
        b"xoxb-secret"
    );
    // Copied to another connection's row, or another workspace's.
    assert_eq!(
        data_key.open(&sealed, workspace, Uuid::new_v4()),
        Err(VaultError::Open)
    );
    assert_eq!(
        data_key.open(&sealed, Uuid::new_v4(), connection),
        Err(VaultError::Open)
    );
}

#[test]
fn every_seal_has_a_fresh_nonce_and_names_its_data_key() {
    let keyring = ring("k1", 1);
    let (workspace, connection) = (Uuid::new_v4(), Uuid::new_v4());
    let (data_key, _) = keyring.new_data_key(workspace).expect("a data key");

    let first = data_key
        .seal(b"same", workspace, connection)
        .expect("sealed");
    let second = data_key
        .seal(b"same", workspace, connection)
        .expect("sealed");

    assert_ne!(first, second);
    assert_eq!(sealed_by(&first), Ok(data_key.id()));
    assert!(
        !first.windows(4).any(|window| window == b"same"),
        "no plaintext in the ciphertext"
    );
}

#[test]
fn a_damaged_or_foreign_ciphertext_does_not_open() {
    let keyring = ring("k1", 1);
    let (workspace, connection) = (Uuid::new_v4(), Uuid::new_v4());
    let (data_key, _) = keyring.new_data_key(workspace).expect("a data key");
    let (other_key, _) = keyring.new_data_key(workspace).expect("a data key");
    let sealed = data_key
        .seal(b"secret", workspace, connection)
        .expect("sealed");

    let mut flipped = sealed.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_eq!(
        data_key.open(&flipped, workspace, connection),
        Err(VaultError::Open)
    );
    assert_eq!(
        data_key.open(&sealed[..20], workspace, connection),
        Err(VaultError::Open)
    );
    assert_eq!(
        other_key.open(&sealed, workspace, connection),
        Err(VaultError::WrongDataKey {
            expected: other_key.id(),
            found: data_key.id()
        })
    );
}

#[test]
fn a_wrapped_data_key_opens_only_for_its_workspace_and_under_its_master_key() {
    let keyring = ring("k1", 1);
    let workspace = Uuid::new_v4();
    let (data_key, wrapped) = keyring.new_data_key(workspace).expect("a data key");

    assert_eq!(wrapped.master_key_id, "k1");
    assert_eq!(wrapped.data_key_id, data_key.id());
    let unwrapped = keyring.unwrap(&wrapped, workspace).expect("unwraps");
    assert_eq!(unwrapped.id(), data_key.id());
    assert_eq!(
        keyring.unwrap(&wrapped, Uuid::new_v4()).map(|key| key.id()),
        Err(VaultError::Open),
        "moved to another workspace"
    );
    assert_eq!(
        ring("k1", 2)
            .unwrap(&wrapped, workspace)
            .map(|key| key.id()),
        Err(VaultError::Open),
        "another key that claims the same id"
    );
    assert_eq!(
        ring("k2", 1)
            .unwrap(&wrapped, workspace)
            .map(|key| key.id()),
        Err(VaultError::UnknownMasterKey("k1".into()))
    );
}

#[test]
fn a_rotation_rewraps_data_keys_and_then_the_old_master_key_can_be_retired() {
    let (workspace, connection) = (Uuid::new_v4(), Uuid::new_v4());
    let before = ring("k1", 1);
    let (data_key, wrapped) = before.new_data_key(workspace).expect("a data key");
    let sealed = data_key
        .seal(b"refresh-token", workspace, connection)
        .expect("sealed");

    // During the rotation both keys are known; data keys move to the new one.
    let rotating = Keyring::new(master("k2", 2)).with_previous(master("k1", 1));
    assert!(!rotating.is_current(&wrapped));
    let rewrapped = rotating.rewrap(&wrapped, workspace).expect("rewrapped");
    assert!(rotating.is_current(&rewrapped));
    assert_eq!(rewrapped.data_key_id, wrapped.data_key_id);

    // Afterwards k1 is gone, and the secret sealed before the rotation still opens.
    let after = ring("k2", 2);
    let data_key = after
        .unwrap(&rewrapped, workspace)
        .expect("unwraps under k2");
    assert_eq!(
        data_key
            .open(&sealed, workspace, connection)
            .expect("opens")
            .as_slice(),
        b"refresh-token"
    );
    assert_eq!(
        after.unwrap(&wrapped, workspace).map(|key| key.id()),
        Err(VaultError::UnknownMasterKey("k1".into())),
        "what was not re-wrapped needs the retired key"
    );
}

#[test]
fn keys_never_print() {
    let keyring = ring("k1", 7);
    let (data_key, _) = keyring.new_data_key(Uuid::new_v4()).expect("a data key");
    let printed = format!("{keyring:?} {data_key:?}");
    assert!(printed.contains("redacted"), "{printed}");
    assert!(!printed.contains("7, 7"), "{printed}");
}

#[test]
fn master_key_ids_are_short_and_plain() {
    assert!(MasterKey::new("2026-11-rotation_2", &[0; 32]).is_ok());
    for bad in ["", "has space", "slash/", &"x".repeat(65)] {
        assert_eq!(
            MasterKey::new(bad, &[0; 32]).map(|key| key.id().to_owned()),
            Err(VaultError::InvalidKeyId),
            "{bad:?}"
        );
    }
}

#[test]
fn derived_ids_are_stable_and_distinct() {
    let first = MasterKey::derived(&[1; 32]);
    assert_eq!(first.id(), MasterKey::derived(&[1; 32]).id());
    assert_ne!(first.id(), MasterKey::derived(&[2; 32]).id());
    assert!(first.id().starts_with("mk-") && first.id().len() == 19);
}

#[test]
fn server_secrets_open_by_id_or_by_trying_each_key() {
    let old = Keyring::new(MasterKey::derived(&[1; 32]));
    let (old_id, sealed) = old.seal_secret(b"jwt-secret", b"kid-1").expect("sealed");
    let rotated =
        Keyring::new(MasterKey::derived(&[2; 32])).with_previous(MasterKey::derived(&[1; 32]));

    assert_eq!(
        rotated.open_secret(Some(&old_id), &sealed, b"kid-1"),
        Ok(b"jwt-secret".to_vec())
    );
    assert_eq!(
        rotated.open_secret(None, &sealed, b"kid-1"),
        Ok(b"jwt-secret".to_vec())
    );
    assert_eq!(
        rotated.open_secret(None, &sealed, b"kid-2"),
        Err(VaultError::Open)
    );
    let retired = Keyring::new(MasterKey::derived(&[2; 32]));
    assert_eq!(
        retired.open_secret(Some(&old_id), &sealed, b"kid-1"),
        Err(VaultError::UnknownMasterKey(old_id.clone()))
    );
}
