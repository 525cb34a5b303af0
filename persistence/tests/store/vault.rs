//! The credential vault over real storage: what it seals opens for its own connection
//! only, data keys are created once per workspace however many processes race, and a
//! master key rotation leaves everything openable without the old key.

use std::sync::Arc;

use aos_domain::access::WorkspaceScope;
use aos_domain::connection::{ConnectionChange, ConnectionName, Credentials, NewConnection};
use aos_domain::ids::{ConnectionId, WorkspaceId};
use aos_domain::ports::{ConnectionSecrets, ConnectionStore, DataKeyStore};
use aos_vault::service::{CredentialVault, MasterKeys};
use aos_vault::{Keyring, MasterKey};
use serde_json::json;

use crate::support::{Ctx, on_every_backend};

on_every_backend!(
    a_sealed_secret_opens_only_in_its_own_row,
    racing_vaults_share_one_data_key_per_workspace,
    after_a_rotation_the_old_master_key_can_be_forgotten,
);

fn vault(t: &Ctx, keyring: Keyring) -> CredentialVault {
    CredentialVault::new(
        Arc::new(MasterKeys::fixed(keyring)),
        Arc::new(t.store.clone()),
    )
}

fn bearer(token: &str) -> Credentials {
    Credentials::parse(&json!({"kind": "bearer", "token": token})).expect("valid credentials")
}

fn token_of(credentials: &Credentials) -> String {
    match credentials {
        Credentials::Bearer { token } => token.clone(),
        other => panic!("expected bearer credentials, got {other:?}"),
    }
}

/// Creates a connection whose credentials `vault` sealed; returns its id.
async fn connection(
    t: &Ctx,
    vault: &CredentialVault,
    scope: &WorkspaceScope,
    name: &str,
    token: &str,
) -> ConnectionId {
    let id = ConnectionId::generate();
    let sealed = vault
        .seal(scope.workspace_id(), id, &bearer(token))
        .await
        .expect("seal");
    t.store
        .create_connection(
            scope,
            NewConnection {
                id,
                name: ConnectionName::parse(name).expect("valid name"),
                connector: "http".into(),
                auth_kind: bearer(token).auth_kind(),
                settings: json!({}),
                sealed_credentials: sealed,
            },
        )
        .await
        .expect("create a connection");
    id
}

async fn opened_token(
    vault: &CredentialVault,
    workspace_id: WorkspaceId,
    id: ConnectionId,
) -> Result<String, String> {
    vault
        .open_connection(workspace_id, id)
        .await
        .map(|(_, credentials)| token_of(&credentials))
}

async fn a_sealed_secret_opens_only_in_its_own_row(t: Ctx) {
    let vault = vault(&t, Keyring::new(MasterKey::derived(&[1; 32])));
    let ada = t.user("ada").await;
    let (acme, acme_scope) = t.workspace(&ada, "Acme").await;
    let (rival, rival_scope) = t.workspace(&ada, "Rival").await;
    let first = connection(&t, &vault, &acme_scope, "first", "token-one").await;
    let second = connection(&t, &vault, &acme_scope, "second", "token-two").await;
    let foreign = connection(&t, &vault, &rival_scope, "foreign", "token-three").await;
    assert_eq!(
        opened_token(&vault, acme.id, first).await.as_deref(),
        Ok("token-one")
    );
    assert_eq!(
        opened_token(&vault, rival.id, foreign).await.as_deref(),
        Ok("token-three")
    );

    // Copy the first connection's ciphertext into the second's row: it must not open there.
    let first_sealed = t
        .store
        .sealed_connection(&acme_scope, first)
        .await
        .expect("read")
        .expect("exists")
        .sealed_credentials;
    let copy = |sealed: Vec<u8>| ConnectionChange {
        credentials: Some((bearer("x").auth_kind(), sealed)),
        ..ConnectionChange::default()
    };
    t.store
        .update_connection(&acme_scope, second, copy(first_sealed.clone()))
        .await
        .expect("overwrite the second row");
    let moved = opened_token(&vault, acme.id, second).await;
    assert!(
        moved
            .as_ref()
            .is_err_and(|error| error.contains("cannot be decrypted")),
        "{moved:?}"
    );
    // Nor in another workspace's row.
    t.store
        .update_connection(&rival_scope, foreign, copy(first_sealed))
        .await
        .expect("overwrite the foreign row");
    let stolen = opened_token(&vault, rival.id, foreign).await;
    assert!(stolen.is_err(), "{stolen:?}");
    // And the original still opens, in its own row and nowhere else.
    assert_eq!(
        opened_token(&vault, acme.id, first).await.as_deref(),
        Ok("token-one")
    );
    let wrong_workspace = opened_token(&vault, rival.id, first).await;
    assert!(
        wrong_workspace
            .as_ref()
            .is_err_and(|error| error.contains("not found")),
        "{wrong_workspace:?}"
    );
}

async fn racing_vaults_share_one_data_key_per_workspace(t: Ctx) {
    let ada = t.user("ada").await;
    let (acme, scope) = t.workspace(&ada, "Acme").await;
    // Separate vaults, as separate processes would have: no shared cache.
    let vaults: Vec<CredentialVault> = (0..6)
        .map(|_| vault(&t, Keyring::new(MasterKey::derived(&[1; 32]))))
        .collect();
    let sealed = futures::future::join_all(vaults.iter().enumerate().map(|(index, vault)| {
        let scope = scope.clone();
        let t = t.clone();
        async move {
            connection(
                &t,
                vault,
                &scope,
                &format!("c{index}"),
                &format!("token-{index}"),
            )
            .await
        }
    }))
    .await;
    let stored = t
        .store
        .data_key(acme.id)
        .await
        .expect("read the data key")
        .expect("one exists");
    let reader = vault(&t, Keyring::new(MasterKey::derived(&[1; 32])));
    for (index, id) in sealed.into_iter().enumerate() {
        let token = format!("token-{index}");
        assert_eq!(opened_token(&reader, acme.id, id).await, Ok(token));
    }
    assert_eq!(
        t.store
            .data_key(acme.id)
            .await
            .expect("read")
            .map(|key| key.id),
        Some(stored.id),
        "one data key for the workspace"
    );
}

async fn after_a_rotation_the_old_master_key_can_be_forgotten(t: Ctx) {
    let old = || MasterKey::derived(&[1; 32]);
    let new = || MasterKey::derived(&[2; 32]);
    let before = vault(&t, Keyring::new(old()));
    let ada = t.user("ada").await;
    let mut connections = Vec::new();
    for name in ["Acme", "Globex", "Initech"] {
        let (workspace, scope) = t.workspace(&ada, name).await;
        let id = connection(&t, &before, &scope, "api", &format!("token-{name}")).await;
        connections.push((workspace.id, id, format!("token-{name}")));
    }

    let rotating = vault(&t, Keyring::new(new()).with_previous(old()));
    let done = rotating.rewrap_all(2).await.expect("rotate");
    assert_eq!(done.data_keys, 3);
    assert_eq!(rotating.rewrap_all(2).await.expect("again").data_keys, 0);
    let usage = t.store.master_key_usage().await.expect("usage");
    assert!(
        usage
            .iter()
            .all(|(id, count)| id.as_deref() != Some(old().id()) || *count == 0),
        "{usage:?}"
    );

    let retired = vault(&t, Keyring::new(new()));
    for (workspace_id, id, token) in &connections {
        assert_eq!(
            opened_token(&retired, *workspace_id, *id).await.as_ref(),
            Ok(token)
        );
    }
    // The old key alone opens nothing any more.
    let stale = vault(&t, Keyring::new(old()));
    let (workspace_id, id, _) = &connections[0];
    assert!(opened_token(&stale, *workspace_id, *id).await.is_err());
}
