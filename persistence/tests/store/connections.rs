//! Connections: their life cycle, unique names, and tenant isolation.
//!
//! Invariants protected: a connection is reachable only from its own workspace, through
//! a scope or through the engine's `sealed_connection_of` with that workspace's id; to
//! anyone else it is exactly as if it did not exist. Sealed credentials come back byte for
//! byte as they went in, and settings as the JSON they were.

use aos_domain::DomainError;
use aos_domain::access::WorkspaceScope;
use aos_domain::connection::{
    AuthKind, Connection, ConnectionChange, ConnectionName, ConnectionStatus, NewConnection,
};
use aos_domain::ids::ConnectionId;
use aos_domain::ports::{AccessStore, ConnectionStore, CredentialStore, ObjectRef, WorkspaceStore};
use chrono::{Duration, SubsecRound, Utc};
use serde_json::{Value, json};

use crate::support::{Ctx, on_every_backend};

on_every_backend!(
    connections_are_created_read_listed_updated_and_deleted,
    a_taken_name_is_a_conflict_within_one_workspace_only,
    another_workspaces_connection_is_not_found_everywhere,
    recording_a_test_keeps_the_configuration,
    a_workspaces_connections_go_with_it,
);

/// Every byte value, and trailing zeros a text column would lose.
fn sealed(tag: u8) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..=255).collect();
    bytes.extend([tag, 0, 0]);
    bytes
}

fn settings() -> Value {
    json!({
        "baseUrl": "https://api.example.com/v1",
        "testPath": "/me",
        "headers": { "X-Émoji": "✓ \"quoted\" \\ back" },
        "retries": 3,
        "ratio": 0.5,
        "verify": true,
        "proxy": null,
        "tags": ["a", 1, false, { "nested": [] }]
    })
}

fn name(raw: &str) -> ConnectionName {
    ConnectionName::parse(raw).expect("valid connection name")
}

pub async fn create(t: &Ctx, scope: &WorkspaceScope, raw_name: &str) -> Connection {
    t.store
        .create_connection(scope, new_connection(raw_name))
        .await
        .expect("create a connection")
}

fn new_connection(raw_name: &str) -> NewConnection {
    NewConnection {
        id: ConnectionId::generate(),
        name: name(raw_name),
        connector: "http".into(),
        auth_kind: AuthKind::Bearer,
        settings: settings(),
        sealed_credentials: sealed(1),
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, DomainError>, what: &str) {
    assert!(
        matches!(result, Err(DomainError::NotFound("connection"))),
        "{what}: {result:?}"
    );
}

async fn connections_are_created_read_listed_updated_and_deleted(t: Ctx) {
    let ada = t.user("ada").await;
    let (workspace, scope) = t.workspace(&ada, "Acme").await;
    let before = Utc::now().trunc_subsecs(6);
    let beta = create(&t, &scope, "beta").await;
    let alpha = create(&t, &scope, "alpha").await;
    assert_eq!(beta.workspace_id, workspace.id);
    assert_eq!(
        (beta.name.as_str(), beta.connector.as_str(), beta.auth_kind),
        ("beta", "http", AuthKind::Bearer)
    );
    assert_eq!(beta.status, ConnectionStatus::Valid);
    assert_eq!(beta.settings, settings());
    assert!(beta.created_at >= before);
    assert_eq!(beta.updated_at, beta.created_at);
    assert_eq!((beta.last_tested_at, beta.last_test_ok), (None, None));

    assert_eq!(
        t.store.connection(&scope, beta.id).await.expect("read"),
        Some(beta.clone())
    );
    assert_eq!(
        t.store.connections(&scope).await.expect("list"),
        vec![alpha.clone(), beta.clone()],
        "ordered by name"
    );
    let opened = t
        .store
        .sealed_connection(&scope, beta.id)
        .await
        .expect("read sealed")
        .expect("exists");
    assert_eq!(opened.connection, beta);
    assert_eq!(opened.sealed_credentials, sealed(1));
    assert_eq!(
        t.store
            .locate(ObjectRef::Connection(beta.id))
            .await
            .expect("locate"),
        Some(workspace.id)
    );

    // Each change touches only what it names.
    let renamed = t
        .store
        .update_connection(
            &scope,
            beta.id,
            ConnectionChange {
                name: Some(name("gamma")),
                ..ConnectionChange::default()
            },
        )
        .await
        .expect("rename");
    assert_eq!(renamed.name.as_str(), "gamma");
    assert!(renamed.updated_at >= beta.updated_at);
    assert_eq!(
        Connection {
            name: beta.name.clone(),
            updated_at: beta.updated_at,
            ..renamed.clone()
        },
        beta
    );
    let resettled = t
        .store
        .update_connection(
            &scope,
            beta.id,
            ConnectionChange {
                settings: Some(json!({ "baseUrl": "https://other.example.com" })),
                ..ConnectionChange::default()
            },
        )
        .await
        .expect("change settings");
    assert_eq!(
        resettled.settings,
        json!({ "baseUrl": "https://other.example.com" })
    );
    assert_eq!(resettled.name.as_str(), "gamma");
    let rekeyed = t
        .store
        .update_connection(
            &scope,
            beta.id,
            ConnectionChange {
                credentials: Some((AuthKind::Basic, sealed(2))),
                ..ConnectionChange::default()
            },
        )
        .await
        .expect("replace credentials");
    assert_eq!(rekeyed.auth_kind, AuthKind::Basic);
    assert_eq!(rekeyed.settings, resettled.settings);
    assert_eq!(rekeyed.status, ConnectionStatus::Valid);
    let opened = t
        .store
        .sealed_connection(&scope, beta.id)
        .await
        .expect("read sealed")
        .expect("exists");
    assert_eq!(opened.sealed_credentials, sealed(2));
    assert_eq!(opened.connection, rekeyed);
    let touched = t
        .store
        .update_connection(&scope, beta.id, ConnectionChange::default())
        .await
        .expect("an empty change");
    assert_eq!(
        Connection {
            updated_at: rekeyed.updated_at,
            ..touched
        },
        rekeyed
    );

    t.store
        .delete_connection(&scope, beta.id)
        .await
        .expect("delete");
    assert_eq!(
        t.store.connection(&scope, beta.id).await.expect("read"),
        None
    );
    assert_eq!(
        t.store.connections(&scope).await.expect("list"),
        vec![alpha]
    );
    assert_eq!(
        t.store
            .locate(ObjectRef::Connection(beta.id))
            .await
            .expect("locate"),
        None
    );
    assert_not_found(
        t.store.delete_connection(&scope, beta.id).await,
        "delete twice",
    );
    assert_not_found(
        t.store
            .update_connection(&scope, beta.id, ConnectionChange::default())
            .await,
        "update a deleted connection",
    );
}

async fn a_taken_name_is_a_conflict_within_one_workspace_only(t: Ctx) {
    let ada = t.user("ada").await;
    let bob = t.user("bob").await;
    let (_, in_a) = t.workspace(&ada, "A").await;
    let (_, in_b) = t.workspace(&bob, "B").await;
    let slack = create(&t, &in_a, "slack").await;
    let github = create(&t, &in_a, "github").await;

    let again = t
        .store
        .create_connection(&in_a, new_connection("slack"))
        .await;
    let Err(DomainError::Conflict(message)) = again else {
        panic!("a second `slack` was created: {again:?}");
    };
    assert!(
        message.contains("\"slack\"") && message.contains("already exists"),
        "{message}"
    );
    let renamed = t
        .store
        .update_connection(
            &in_a,
            github.id,
            ConnectionChange {
                name: Some(name("slack")),
                settings: Some(json!({})),
                ..ConnectionChange::default()
            },
        )
        .await;
    assert!(
        matches!(renamed, Err(DomainError::Conflict(_))),
        "{renamed:?}"
    );
    // The refused rename changed nothing, its settings included.
    assert_eq!(
        t.store.connections(&in_a).await.expect("list"),
        vec![github, slack]
    );

    // Names are per workspace.
    let b_slack = create(&t, &in_b, "slack").await;
    assert_eq!(
        t.store.connections(&in_b).await.expect("list"),
        vec![b_slack]
    );
}

async fn another_workspaces_connection_is_not_found_everywhere(t: Ctx) {
    let ada = t.user("ada").await;
    let bob = t.user("bob").await;
    let (a, in_a) = t.workspace(&ada, "A").await;
    let (b, in_b) = t.workspace(&bob, "B").await;
    let a_connection = create(&t, &in_a, "secret stuff").await;
    let id = a_connection.id;

    assert_eq!(t.store.connection(&in_b, id).await.expect("read"), None);
    assert!(
        t.store
            .sealed_connection(&in_b, id)
            .await
            .expect("read sealed")
            .is_none()
    );
    assert!(t.store.connections(&in_b).await.expect("list").is_empty());
    let change = ConnectionChange {
        name: Some(name("hijacked")),
        settings: Some(json!({ "baseUrl": "https://evil.example.com" })),
        credentials: Some((AuthKind::ApiKey, sealed(9))),
        token_expires_at: None,
    };
    assert_not_found(t.store.update_connection(&in_b, id, change).await, "update");
    assert_not_found(
        t.store
            .record_connection_test(&in_b, id, Utc::now(), false)
            .await,
        "record a test",
    );
    assert_not_found(t.store.delete_connection(&in_b, id).await, "delete");
    // The engine reaches a connection only with the workspace it belongs to.
    assert!(
        t.store
            .sealed_connection_of(b.id, id)
            .await
            .expect("read for B")
            .is_none()
    );
    // An id nobody has is answered the same way.
    let unknown = ConnectionId::generate();
    assert_eq!(
        t.store.connection(&in_a, unknown).await.expect("read"),
        None
    );
    assert!(
        t.store
            .sealed_connection_of(a.id, unknown)
            .await
            .expect("read unknown")
            .is_none()
    );
    assert_not_found(
        t.store.delete_connection(&in_a, unknown).await,
        "delete unknown",
    );

    // A's connection is exactly as it was.
    let opened = t
        .store
        .sealed_connection_of(a.id, id)
        .await
        .expect("read for A")
        .expect("exists");
    assert_eq!(opened.connection, a_connection);
    assert_eq!(opened.sealed_credentials, sealed(1));
}

async fn recording_a_test_keeps_the_configuration(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let created = create(&t, &scope, "api").await;

    let failed_at = Utc::now() + Duration::seconds(1);
    let failed = t
        .store
        .record_connection_test(&scope, created.id, failed_at, false)
        .await
        .expect("record a failed test");
    assert_eq!(failed.last_tested_at, Some(failed_at.trunc_subsecs(6)));
    assert_eq!(failed.last_test_ok, Some(false));
    assert_eq!(
        Connection {
            last_tested_at: None,
            last_test_ok: None,
            ..failed.clone()
        },
        created,
        "a test changes nothing else, `updated_at` included"
    );
    let passed_at = failed_at + Duration::seconds(1);
    let passed = t
        .store
        .record_connection_test(&scope, created.id, passed_at, true)
        .await
        .expect("record a passed test");
    assert_eq!(
        (passed.last_tested_at, passed.last_test_ok),
        (Some(passed_at.trunc_subsecs(6)), Some(true))
    );
    assert_eq!(
        t.store.connection(&scope, created.id).await.expect("read"),
        Some(passed)
    );
}

async fn a_workspaces_connections_go_with_it(t: Ctx) {
    let ada = t.user("ada").await;
    let (a, in_a) = t.workspace(&ada, "A").await;
    let (_, in_other) = t.workspace(&ada, "Other").await;
    let doomed = create(&t, &in_a, "doomed").await;
    let kept = create(&t, &in_other, "kept").await;

    t.store.delete_workspace(&in_a).await.expect("delete A");

    assert!(
        t.store
            .sealed_connection_of(a.id, doomed.id)
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        t.store
            .locate(ObjectRef::Connection(doomed.id))
            .await
            .expect("locate"),
        None
    );
    assert_eq!(
        t.store.connections(&in_other).await.expect("list"),
        vec![kept]
    );
}
