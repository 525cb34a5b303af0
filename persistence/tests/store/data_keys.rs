//! The vault's storage: one data key per workspace, and master-key rotation of data keys
//! and signing keys.
//!
//! Invariants protected: of processes racing to create a workspace's data key, all end up
//! with the same one; a rewrap or reseal applies only to a key still under the master key
//! the rotation read, so a stale rotation changes nothing and says so.

use aos_domain::DomainError;
use aos_domain::connection::StoredDataKey;
use aos_domain::ids::WorkspaceId;
use aos_domain::ports::{DataKeyStore, SessionStore, StoredSigningKey, WorkspaceStore};
use chrono::{SubsecRound, Utc};

use crate::support::{Ctx, on_every_backend};

on_every_backend!(
    concurrent_inserts_of_a_workspaces_data_key_agree_on_one,
    a_rotation_rewraps_each_data_key_once,
    master_key_usage_counts_data_keys_and_signing_keys,
    resealing_a_signing_key_is_conditional,
    a_workspaces_data_key_goes_with_it,
);

fn key(master_key_id: &str, tag: u8) -> StoredDataKey {
    StoredDataKey {
        id: uuid::Uuid::now_v7(),
        master_key_id: master_key_id.to_owned(),
        // Every byte value: the column must keep binary data exactly.
        wrapped: (0..=255).chain([tag, 0]).collect(),
    }
}

fn rewrapped(previous: &StoredDataKey, master_key_id: &str) -> StoredDataKey {
    StoredDataKey {
        id: previous.id,
        master_key_id: master_key_id.to_owned(),
        wrapped: vec![7; 60],
    }
}

/// A fresh workspace's id; its owner does not matter here.
async fn workspace(t: &Ctx, name: &str) -> WorkspaceId {
    let owner = t.user("owner").await;
    t.workspace(&owner, name).await.0.id
}

async fn insert(t: &Ctx, workspace_id: WorkspaceId, key: StoredDataKey) -> StoredDataKey {
    t.store
        .insert_data_key(workspace_id, key)
        .await
        .expect("insert a data key")
}

async fn concurrent_inserts_of_a_workspaces_data_key_agree_on_one(t: Ctx) {
    let workspace_id = workspace(&t, "Acme").await;
    assert_eq!(t.store.data_key(workspace_id).await.expect("read"), None);
    let candidates: Vec<StoredDataKey> = (0..8).map(|n| key("mk-1", n)).collect();

    let inserts = candidates.iter().cloned().map(|candidate| {
        let store = t.store.clone();
        tokio::spawn(async move { store.insert_data_key(workspace_id, candidate).await })
    });
    let stored: Vec<StoredDataKey> = futures::future::join_all(inserts)
        .await
        .into_iter()
        .map(|joined| joined.expect("task").expect("insert"))
        .collect();

    let winner = stored[0].clone();
    assert!(stored.iter().all(|key| *key == winner), "{stored:?}");
    assert!(candidates.contains(&winner));
    assert_eq!(
        t.store.data_key(workspace_id).await.expect("read"),
        Some(winner.clone())
    );
    // A later insert keeps the stored key, too.
    assert_eq!(insert(&t, workspace_id, key("mk-2", 99)).await, winner);

    let nowhere = t
        .store
        .insert_data_key(WorkspaceId::generate(), key("mk-1", 0))
        .await;
    assert!(
        matches!(nowhere, Err(DomainError::NotFound("workspace"))),
        "{nowhere:?}"
    );
}

async fn a_rotation_rewraps_each_data_key_once(t: Ctx) {
    let mut old = Vec::new();
    for name in ["one", "two", "three"] {
        let workspace_id = workspace(&t, name).await;
        old.push((workspace_id, insert(&t, workspace_id, key("mk-1", 1)).await));
    }
    let current = workspace(&t, "current").await;
    insert(&t, current, key("mk-2", 2)).await;
    old.sort_by_key(|(workspace_id, _)| workspace_id.as_uuid());

    assert_eq!(
        t.store.data_keys_not_under("mk-2", 10).await.expect("find"),
        old,
        "ordered by workspace"
    );
    assert_eq!(
        t.store.data_keys_not_under("mk-2", 2).await.expect("find"),
        old[..2]
    );

    let (first_workspace, first) = old[0].clone();
    let next = rewrapped(&first, "mk-2");
    assert!(
        t.store
            .rewrap_data_key(first_workspace, &first, &next)
            .await
            .expect("rewrap")
    );
    assert_eq!(
        t.store.data_key(first_workspace).await.expect("read"),
        Some(next.clone())
    );
    // A rotation that read the key before the rewrap is stale: it changes nothing.
    let stale = rewrapped(&first, "mk-3");
    assert!(
        !t.store
            .rewrap_data_key(first_workspace, &first, &stale)
            .await
            .expect("stale rewrap")
    );
    // So is one that names another workspace.
    let (second_workspace, second) = old[1].clone();
    assert!(
        !t.store
            .rewrap_data_key(second_workspace, &first, &stale)
            .await
            .expect("rewrap in the wrong workspace")
    );
    assert_eq!(
        t.store.data_key(first_workspace).await.expect("read"),
        Some(next)
    );
    assert_eq!(
        t.store.data_keys_not_under("mk-2", 10).await.expect("find"),
        old[1..]
    );
    // A rewrap never changes which key it is.
    let another_key = key("mk-2", 5);
    let refused = t
        .store
        .rewrap_data_key(second_workspace, &second, &another_key)
        .await;
    assert!(
        matches!(refused, Err(DomainError::Internal(_))),
        "{refused:?}"
    );
    assert_eq!(
        t.store.data_key(second_workspace).await.expect("read"),
        Some(second)
    );
}

async fn master_key_usage_counts_data_keys_and_signing_keys(t: Ctx) {
    assert!(t.store.master_key_usage().await.expect("usage").is_empty());
    for (name, master_key_id) in [("one", "mk-1"), ("two", "mk-1"), ("three", "mk-2")] {
        let workspace_id = workspace(&t, name).await;
        insert(&t, workspace_id, key(master_key_id, 0)).await;
    }
    for (kid, master_key_id) in [("k-legacy", None), ("k-1", Some("mk-1"))] {
        t.store
            .insert_signing_key(&StoredSigningKey {
                kid: kid.into(),
                encrypted_secret: vec![1; 32],
                master_key_id: master_key_id.map(str::to_owned),
                created_at: Utc::now().trunc_subsecs(6),
            })
            .await
            .expect("insert a signing key");
    }

    assert_eq!(
        t.store.master_key_usage().await.expect("usage"),
        vec![
            (None, 1),
            (Some("mk-1".to_owned()), 3),
            (Some("mk-2".to_owned()), 1),
        ]
    );
}

async fn resealing_a_signing_key_is_conditional(t: Ctx) {
    let legacy = StoredSigningKey {
        kid: "k1".into(),
        encrypted_secret: vec![0, 1, 2, 255],
        master_key_id: None,
        created_at: Utc::now().trunc_subsecs(6),
    };
    t.store.insert_signing_key(&legacy).await.expect("insert");

    // The key is not under mk-0: a rotation that thinks so is wrong and changes nothing.
    assert!(
        !t.store
            .reseal_signing_key("k1", Some("mk-0"), "mk-1", &[9; 40])
            .await
            .expect("stale reseal")
    );
    assert!(
        t.store
            .reseal_signing_key("k1", None, "mk-1", &[1; 40])
            .await
            .expect("reseal a key sealed before master keys had ids")
    );
    assert!(
        !t.store
            .reseal_signing_key("k1", None, "mk-9", &[9; 40])
            .await
            .expect("a second reseal from the old state")
    );
    assert!(
        t.store
            .reseal_signing_key("k1", Some("mk-1"), "mk-2", &[2; 40])
            .await
            .expect("reseal under the next key")
    );
    assert!(
        !t.store
            .reseal_signing_key("unknown", None, "mk-2", &[2; 40])
            .await
            .expect("reseal an unknown key")
    );
    assert_eq!(
        t.store.signing_keys().await.expect("keys"),
        vec![StoredSigningKey {
            encrypted_secret: vec![2; 40],
            master_key_id: Some("mk-2".into()),
            ..legacy
        }]
    );
}

async fn a_workspaces_data_key_goes_with_it(t: Ctx) {
    let owner = t.user("owner").await;
    let (doomed, scope) = t.workspace(&owner, "doomed").await;
    insert(&t, doomed.id, key("mk-1", 0)).await;

    t.store.delete_workspace(&scope).await.expect("delete");

    assert_eq!(t.store.data_key(doomed.id).await.expect("read"), None);
    assert!(t.store.master_key_usage().await.expect("usage").is_empty());
}
