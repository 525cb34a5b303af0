//! API tokens: listing, revocation, use, and revocation when their creator leaves.

use aos_domain::DomainError;
use aos_domain::access::WorkspaceScope;
use aos_domain::api_token::{ApiToken, ApiTokenName, Scope, Scopes};
use aos_domain::ports::{AccessStore, NewApiToken, ObjectRef, WorkspaceStore};
use aos_domain::workspace::Role;
use chrono::{Duration, SubsecRound, Utc};

use crate::support::{Ctx, on_every_backend, scope};

on_every_backend!(
    tokens_are_listed_newest_first_until_revoked,
    removing_a_member_revokes_their_tokens_in_that_workspace_only,
);

pub async fn create(t: &Ctx, scope: &WorkspaceScope, name: &str, hash: &str) -> ApiToken {
    t.store
        .create_api_token(
            scope,
            NewApiToken {
                name: ApiTokenName::parse(name).expect("valid token name"),
                scopes: Scopes::new([Scope::WorkflowsRead, Scope::RunsWrite]).expect("scopes"),
                token_hash: hash.to_owned(),
                expires_at: Some(Utc::now() + Duration::days(90)),
            },
        )
        .await
        .expect("create an API token")
}

async fn tokens_are_listed_newest_first_until_revoked(t: Ctx) {
    let ada = t.user("ada").await;
    let (workspace, scope) = t.workspace(&ada, "Acme").await;
    let older = create(&t, &scope, "deploy", "hash-deploy").await;
    let newer = create(&t, &scope, "backup", "hash-backup").await;
    assert_eq!(older.created_by, ada.id);
    assert_eq!(older.workspace_id, workspace.id);

    assert_eq!(
        t.store.api_tokens(&scope).await.expect("list"),
        vec![newer.clone(), older.clone()]
    );
    assert_eq!(
        t.store
            .locate(ObjectRef::ApiToken(older.id))
            .await
            .expect("locate"),
        Some(workspace.id)
    );

    let used_at = Utc::now().trunc_subsecs(6);
    t.store
        .touch_api_token(newer.id, used_at)
        .await
        .expect("touch");
    let found = t
        .store
        .api_token_by_hash("hash-backup")
        .await
        .expect("by hash")
        .expect("found");
    assert_eq!(found.last_used_at, Some(used_at));

    let revoked_at = Utc::now().trunc_subsecs(6);
    t.store
        .revoke_api_token(&scope, older.id, revoked_at)
        .await
        .expect("revoke");
    assert_eq!(t.store.api_tokens(&scope).await.expect("list"), vec![found]);
    let revoked = t
        .store
        .api_token_by_hash("hash-deploy")
        .await
        .expect("by hash")
        .expect("a revoked token is still found, for the caller to refuse");
    assert_eq!(revoked.revoked_at, Some(revoked_at));
    assert!(!revoked.is_usable_at(Utc::now()));
    let twice = t.store.revoke_api_token(&scope, older.id, Utc::now()).await;
    assert!(
        matches!(twice, Err(DomainError::NotFound("API token"))),
        "{twice:?}"
    );
}

async fn removing_a_member_revokes_their_tokens_in_that_workspace_only(t: Ctx) {
    let ada = t.user("ada").await;
    let bob = t.user("bob").await;
    let (acme, ada_in_acme) = t.workspace(&ada, "Acme").await;
    let (_, bob_in_globex) = t.workspace(&bob, "Globex").await;
    t.store
        .add_member(&ada_in_acme, bob.id, Role::Admin)
        .await
        .expect("bob joins acme");
    let bob_in_acme = scope(bob.id, acme.id, Role::Admin);
    let bobs_acme_token = create(&t, &bob_in_acme, "bob@acme", "hash-bob-acme").await;
    let bobs_globex_token = create(&t, &bob_in_globex, "bob@globex", "hash-bob-globex").await;
    let adas_token = create(&t, &ada_in_acme, "ada@acme", "hash-ada-acme").await;

    t.store
        .remove_member(&ada_in_acme, bob.id, Utc::now())
        .await
        .expect("remove bob from acme");

    let revoked = t
        .store
        .api_token_by_hash("hash-bob-acme")
        .await
        .expect("by hash")
        .expect("found");
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        t.store.api_tokens(&ada_in_acme).await.expect("acme tokens"),
        vec![adas_token]
    );
    assert_eq!(
        t.store
            .api_tokens(&bob_in_globex)
            .await
            .expect("globex tokens"),
        vec![bobs_globex_token]
    );
    assert_ne!(bobs_acme_token.revoked_at, revoked.revoked_at);
}
