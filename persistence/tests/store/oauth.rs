//! OAuth2 storage: pending authorizations and the per-connection refresh lease.
//!
//! Invariants protected: a pending authorization is found by its state hash alone, once,
//! and never after it expired; expired ones do not pile up. Of any number of processes
//! asking for a connection's refresh lease at once exactly one gets it, a lease that ran
//! out can be taken over, and only the lease's holder writes the outcome. A connection
//! that needs to be authorized again is not refreshed until new credentials make it
//! `VALID`; the background refresher finds exactly the tokens coming due.

use aos_domain::access::WorkspaceScope;
use aos_domain::connection::{
    AuthKind, Connection, ConnectionChange, ConnectionName, ConnectionStatus, NewConnection,
};
use aos_domain::ids::{ConnectionId, WorkspaceId};
use aos_domain::oauth::{OAuthStore, PendingAuthorization, RefreshOutcome};
use aos_domain::ports::{ConnectionStore, CredentialStore};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::json;

use crate::support::{Ctx, on_every_backend};

on_every_backend!(
    a_pending_authorization_is_taken_once_by_its_state_hash,
    an_expired_authorization_is_never_taken_and_is_swept,
    of_concurrent_takes_of_one_state_exactly_one_succeeds,
    of_concurrent_claims_exactly_one_gets_the_refresh_lease,
    a_lease_that_ran_out_is_taken_over_and_its_old_holder_writes_nothing,
    a_refresh_stores_the_new_credentials_and_expiry,
    a_connection_that_needs_reauth_is_not_refreshed_until_it_gets_new_credentials,
    another_workspaces_connection_cannot_be_leased,
    the_background_refresher_finds_exactly_the_tokens_coming_due,
    a_revoked_connection_is_not_refreshed,
);

fn at(from_now_secs: i64) -> DateTime<Utc> {
    (Utc::now() + Duration::seconds(from_now_secs)).trunc_subsecs(3)
}

fn pending(
    workspace_id: WorkspaceId,
    user: &aos_domain::user::User,
    state_hash: &str,
    expires_at: DateTime<Utc>,
) -> PendingAuthorization {
    PendingAuthorization {
        id: uuid::Uuid::new_v4(),
        state_hash: state_hash.to_owned(),
        workspace_id,
        user_id: user.id,
        connection_id: ConnectionId::generate(),
        reauthorize: false,
        connector: "http".into(),
        name: ConnectionName::parse("CRM ✓").expect("valid name"),
        settings: json!({"testUrl": "https://api.example.com/me", "n": [1, 2.5]}),
        client_id: "client-1".into(),
        authorization_url: "https://auth.example.com/authorize".into(),
        token_url: "https://auth.example.com/token".into(),
        revocation_url: Some("https://auth.example.com/revoke".into()),
        scopes: vec!["read".into(), "write:all".into()],
        redirect_uri: "https://aos.example.com/oauth/callback".into(),
        sealed_secrets: vec![0, 1, 2, 255, 0],
        created_at: Utc::now().trunc_subsecs(6),
        expires_at,
    }
}

fn state_hash(tag: &str) -> String {
    format!("{tag}-{}", uuid::Uuid::new_v4().simple())
}

async fn oauth_connection(
    t: &Ctx,
    scope: &WorkspaceScope,
    name: &str,
    token_expires_at: Option<DateTime<Utc>>,
) -> Connection {
    t.store
        .create_oauth_connection(
            scope,
            NewConnection {
                id: ConnectionId::generate(),
                name: ConnectionName::parse(name).expect("valid name"),
                connector: "http".into(),
                auth_kind: AuthKind::OAuth2,
                settings: json!({}),
                sealed_credentials: vec![1, 1, 1],
            },
            token_expires_at,
        )
        .await
        .expect("create an OAuth2 connection")
}

async fn status_of(t: &Ctx, connection: &Connection) -> ConnectionStatus {
    t.store
        .sealed_connection_of(connection.workspace_id, connection.id)
        .await
        .expect("read")
        .expect("exists")
        .connection
        .status
}

async fn claim(t: &Ctx, connection: &Connection, owner: &str, now: DateTime<Utc>) -> bool {
    t.store
        .claim_refresh(
            connection.workspace_id,
            connection.id,
            owner,
            now,
            now + Duration::seconds(30),
        )
        .await
        .expect("claim")
}

async fn finish(t: &Ctx, connection: &Connection, owner: &str, outcome: RefreshOutcome) -> bool {
    t.store
        .finish_refresh(connection.workspace_id, connection.id, owner, outcome)
        .await
        .expect("finish")
}

async fn a_pending_authorization_is_taken_once_by_its_state_hash(t: Ctx) {
    let owner = t.user("ann").await;
    let (workspace, scope) = t.workspace(&owner, "Acme").await;
    let hash = state_hash("s");
    let stored = pending(workspace.id, &owner, &hash, at(600));
    t.store
        .insert_pending_authorization(&scope, stored.clone())
        .await
        .expect("insert");

    let wrong = t
        .store
        .take_pending_authorization(&state_hash("other"), Utc::now())
        .await
        .expect("take");
    let taken = t
        .store
        .take_pending_authorization(&hash, Utc::now())
        .await
        .expect("take");
    let again = t
        .store
        .take_pending_authorization(&hash, Utc::now())
        .await
        .expect("take again");

    assert_eq!(wrong, None);
    assert_eq!(taken, Some(stored));
    assert_eq!(again, None, "a state is used once");
}

async fn an_expired_authorization_is_never_taken_and_is_swept(t: Ctx) {
    let owner = t.user("ann").await;
    let (workspace, scope) = t.workspace(&owner, "Acme").await;
    let expired = state_hash("expired");
    let stale = state_hash("stale");
    let insert = |hash: String, expires_at| {
        let row = pending(workspace.id, &owner, &hash, expires_at);
        let store = t.store.clone();
        let scope = scope.clone();
        async move {
            store
                .insert_pending_authorization(&scope, row)
                .await
                .expect("insert")
        }
    };
    insert(expired.clone(), at(60)).await;
    insert(stale.clone(), at(-1)).await;

    let after_expiry = t
        .store
        .take_pending_authorization(&expired, at(61))
        .await
        .expect("take");
    // A new authorization of the workspace sweeps the ones already expired.
    insert(state_hash("fresh"), at(600)).await;
    let swept = t
        .store
        .take_pending_authorization(&stale, at(-3600))
        .await
        .expect("take");

    assert_eq!(after_expiry, None);
    assert_eq!(swept, None);
}

async fn of_concurrent_takes_of_one_state_exactly_one_succeeds(t: Ctx) {
    let owner = t.user("ann").await;
    let (workspace, scope) = t.workspace(&owner, "Acme").await;
    let hash = state_hash("raced");
    t.store
        .insert_pending_authorization(&scope, pending(workspace.id, &owner, &hash, at(600)))
        .await
        .expect("insert");

    let takes = (0..8).map(|_| {
        let store = t.store.clone();
        let hash = hash.clone();
        tokio::spawn(async move { store.take_pending_authorization(&hash, Utc::now()).await })
    });
    let results = futures::future::join_all(takes).await;

    let taken = results
        .into_iter()
        .map(|joined| joined.expect("joined").expect("take"))
        .filter(Option::is_some)
        .count();
    assert_eq!(taken, 1);
}

async fn of_concurrent_claims_exactly_one_gets_the_refresh_lease(t: Ctx) {
    let owner = t.user("ann").await;
    let (_, scope) = t.workspace(&owner, "Acme").await;
    let connection = oauth_connection(&t, &scope, "crm", Some(at(10))).await;

    let claims = (0..8).map(|n| {
        let store = t.store.clone();
        let connection = connection.clone();
        tokio::spawn(async move {
            let now = Utc::now();
            store
                .claim_refresh(
                    connection.workspace_id,
                    connection.id,
                    &format!("process-{n}"),
                    now,
                    now + Duration::seconds(30),
                )
                .await
        })
    });
    let results = futures::future::join_all(claims).await;

    let winners = results
        .into_iter()
        .map(|joined| joined.expect("joined").expect("claim"))
        .filter(|won| *won)
        .count();
    assert_eq!(winners, 1);
    assert_eq!(
        status_of(&t, &connection).await,
        ConnectionStatus::Refreshing
    );
}

async fn a_lease_that_ran_out_is_taken_over_and_its_old_holder_writes_nothing(t: Ctx) {
    let owner = t.user("ann").await;
    let (_, scope) = t.workspace(&owner, "Acme").await;
    let connection = oauth_connection(&t, &scope, "crm", Some(at(10))).await;
    let now = Utc::now();

    assert!(claim(&t, &connection, "a", now).await);
    assert!(
        !claim(&t, &connection, "b", now + Duration::seconds(29)).await,
        "the lease is live"
    );
    assert!(
        claim(&t, &connection, "b", now + Duration::seconds(31)).await,
        "the lease ran out"
    );
    let late = finish(
        &t,
        &connection,
        "a",
        RefreshOutcome::Refreshed {
            sealed_credentials: vec![9, 9],
            token_expires_at: Some(at(3600)),
        },
    )
    .await;

    assert!(!late, "the old holder no longer holds the lease");
    let stored = t
        .store
        .sealed_connection_of(connection.workspace_id, connection.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored.sealed_credentials, vec![1, 1, 1]);
    assert_eq!(stored.connection.status, ConnectionStatus::Refreshing);
    assert!(finish(&t, &connection, "b", RefreshOutcome::Released).await);
    assert_eq!(status_of(&t, &connection).await, ConnectionStatus::Valid);
}

async fn a_refresh_stores_the_new_credentials_and_expiry(t: Ctx) {
    let owner = t.user("ann").await;
    let (workspace, scope) = t.workspace(&owner, "Acme").await;
    let connection = oauth_connection(&t, &scope, "crm", Some(at(10))).await;
    let before = t
        .store
        .connection(&scope, connection.id)
        .await
        .expect("read")
        .expect("exists");

    assert!(claim(&t, &connection, "a", Utc::now()).await);
    let written = finish(
        &t,
        &connection,
        "a",
        RefreshOutcome::Refreshed {
            sealed_credentials: vec![7, 0, 7],
            token_expires_at: Some(at(7200)),
        },
    )
    .await;

    assert!(written);
    let stored = t
        .store
        .sealed_connection_of(workspace.id, connection.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored.sealed_credentials, vec![7, 0, 7]);
    assert_eq!(stored.connection.status, ConnectionStatus::Valid);
    assert_eq!(
        stored.connection.updated_at, before.updated_at,
        "a refresh is not a change the user made"
    );
    let due_soon = t
        .store
        .connections_to_refresh(at(3600), 10)
        .await
        .expect("list");
    assert!(
        !due_soon.contains(&(workspace.id, connection.id)),
        "its new token lasts"
    );
    assert!(
        claim(&t, &connection, "next", Utc::now()).await,
        "the lease is free again"
    );
}

async fn a_connection_that_needs_reauth_is_not_refreshed_until_it_gets_new_credentials(t: Ctx) {
    let owner = t.user("ann").await;
    let (workspace, scope) = t.workspace(&owner, "Acme").await;
    let connection = oauth_connection(&t, &scope, "crm", Some(at(10))).await;
    assert!(claim(&t, &connection, "a", Utc::now()).await);
    assert!(finish(&t, &connection, "a", RefreshOutcome::NeedsReauth).await);

    let claimed = claim(&t, &connection, "b", Utc::now() + Duration::hours(1)).await;
    let due = t
        .store
        .connections_to_refresh(at(3600), 10)
        .await
        .expect("list");
    let reauthorized = t
        .store
        .update_connection(
            &scope,
            connection.id,
            ConnectionChange {
                credentials: Some((AuthKind::OAuth2, vec![5, 5])),
                token_expires_at: Some(at(20)),
                ..ConnectionChange::default()
            },
        )
        .await
        .expect("new credentials");

    assert_eq!(status_of(&t, &connection).await, ConnectionStatus::Valid);
    assert!(!claimed);
    assert!(!due.contains(&(workspace.id, connection.id)));
    assert_eq!(reauthorized.status, ConnectionStatus::Valid);
    let due = t
        .store
        .connections_to_refresh(at(3600), 10)
        .await
        .expect("list");
    assert!(
        due.contains(&(workspace.id, connection.id)),
        "its new expiry is known"
    );
}

async fn another_workspaces_connection_cannot_be_leased(t: Ctx) {
    let owner = t.user("ann").await;
    let (_, acme) = t.workspace(&owner, "Acme").await;
    let (globex, _) = t.workspace(&owner, "Globex").await;
    let connection = oauth_connection(&t, &acme, "crm", Some(at(10))).await;
    let now = Utc::now();

    let claimed = t
        .store
        .claim_refresh(
            globex.id,
            connection.id,
            "intruder",
            now,
            now + Duration::seconds(30),
        )
        .await
        .expect("claim");

    assert!(!claimed);
    assert_eq!(status_of(&t, &connection).await, ConnectionStatus::Valid);
}

async fn the_background_refresher_finds_exactly_the_tokens_coming_due(t: Ctx) {
    let owner = t.user("ann").await;
    let (acme, acme_scope) = t.workspace(&owner, "Acme").await;
    let (globex, globex_scope) = t.workspace(&owner, "Globex").await;
    let later = oauth_connection(&t, &acme_scope, "later", Some(at(200))).await;
    let soonest = oauth_connection(&t, &globex_scope, "soonest", Some(at(-5))).await;
    let soon = oauth_connection(&t, &acme_scope, "soon", Some(at(100))).await;
    let far = oauth_connection(&t, &acme_scope, "far", Some(at(100_000))).await;
    let forever = oauth_connection(&t, &acme_scope, "forever", None).await;
    let bearer = crate::connections::create(&t, &acme_scope, "bearer").await;
    let stuck = oauth_connection(&t, &acme_scope, "stuck", Some(at(150))).await;
    // Its refresher died an hour ago, and its lease with it.
    let an_hour_ago = Utc::now() - Duration::hours(1);
    assert!(claim(&t, &stuck, "dead", an_hour_ago).await);
    let busy = oauth_connection(&t, &acme_scope, "busy", Some(at(50))).await;
    assert!(claim(&t, &busy, "alive", Utc::now()).await);

    let due = t
        .store
        .connections_to_refresh(at(300), 10)
        .await
        .expect("list");
    let limited = t
        .store
        .connections_to_refresh(at(300), 2)
        .await
        .expect("list");

    assert_eq!(
        due,
        vec![
            (globex.id, soonest.id),
            (acme.id, soon.id),
            (acme.id, stuck.id),
            (acme.id, later.id),
        ]
    );
    assert_eq!(limited, due[..2].to_vec());
    for absent in [&far, &forever, &busy] {
        assert!(
            !due.iter().any(|(_, id)| *id == absent.id),
            "{}",
            absent.name.as_str()
        );
    }
    assert!(!due.iter().any(|(_, id)| *id == bearer.id));
}

async fn a_revoked_connection_is_not_refreshed(t: Ctx) {
    let owner = t.user("ann").await;
    let (workspace, scope) = t.workspace(&owner, "Acme").await;
    let connection = oauth_connection(&t, &scope, "crm", Some(at(10))).await;
    assert!(claim(&t, &connection, "a", Utc::now()).await);

    let revoked = t
        .store
        .set_connection_status(&scope, connection.id, ConnectionStatus::Revoked)
        .await
        .expect("revoke");

    assert_eq!(revoked.status, ConnectionStatus::Revoked);
    assert!(
        !finish(&t, &connection, "a", RefreshOutcome::Released).await,
        "revoking ended the lease"
    );
    assert!(!claim(&t, &connection, "b", Utc::now()).await);
    let due = t
        .store
        .connections_to_refresh(at(3600), 10)
        .await
        .expect("list");
    assert!(!due.contains(&(workspace.id, connection.id)));
}
