//! Workspaces and their members.

use aos_domain::DomainError;
use aos_domain::ids::UserId;
use aos_domain::ports::{AccessStore, WorkspaceStore};
use aos_domain::workspace::{Role, WorkspaceName};

use crate::support::{Ctx, on_every_backend};

on_every_backend!(
    the_creator_of_a_workspace_is_its_first_owner,
    members_are_added_promoted_demoted_and_removed,
    a_workspace_can_be_renamed_and_deleted_with_everything_it_owns,
    the_store_never_takes_away_the_last_owner,
    two_owners_stepping_down_at_once_leave_one_owner,
);

async fn the_creator_of_a_workspace_is_its_first_owner(t: Ctx) {
    let ada = t.user("ada").await;
    let (first, scope) = t.workspace(&ada, "Analytical Engines").await;
    let (second, _) = t.workspace(&ada, "Difference Engines").await;

    assert_eq!(
        t.store
            .membership(ada.id, first.id)
            .await
            .expect("membership"),
        Some(Role::Owner)
    );
    assert_eq!(
        t.store.workspaces_of(ada.id).await.expect("workspaces"),
        vec![(first.clone(), Role::Owner), (second, Role::Owner)]
    );
    assert_eq!(t.store.workspace(&scope).await.expect("workspace"), first);
    let members = t.store.members(&scope).await.expect("members");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].user, ada);
    assert_eq!(members[0].role, Role::Owner);
    assert_eq!(t.store.owner_count(&scope).await.expect("owners"), 1);
}

async fn members_are_added_promoted_demoted_and_removed(t: Ctx) {
    let ada = t.user("ada").await;
    let bob = t.user("bob").await;
    let (workspace, scope) = t.workspace(&ada, "Acme").await;

    let added = t
        .store
        .add_member(&scope, bob.id, Role::Editor)
        .await
        .expect("add bob");
    assert_eq!(
        (added.user.clone(), added.role),
        (bob.clone(), Role::Editor)
    );

    let again = t.store.add_member(&scope, bob.id, Role::Viewer).await;
    assert!(
        matches!(&again, Err(DomainError::Conflict(m)) if m.contains("already a member")),
        "{again:?}"
    );
    let ghost = t
        .store
        .add_member(&scope, UserId::generate(), Role::Viewer)
        .await;
    assert!(
        matches!(ghost, Err(DomainError::NotFound("user"))),
        "{ghost:?}"
    );

    let promoted = t
        .store
        .set_member_role(&scope, bob.id, Role::Owner)
        .await
        .expect("promote bob");
    assert_eq!(promoted.role, Role::Owner);
    assert_eq!(t.store.owner_count(&scope).await.expect("owners"), 2);
    t.store
        .set_member_role(&scope, ada.id, Role::Admin)
        .await
        .expect("demote ada");
    assert_eq!(t.store.owner_count(&scope).await.expect("owners"), 1);
    assert_eq!(
        t.store
            .member_role(&scope, ada.id)
            .await
            .expect("ada's role"),
        Some(Role::Admin)
    );
    let members = t.store.members(&scope).await.expect("members");
    let in_join_order: Vec<_> = members.iter().map(|m| (m.user.id, m.role)).collect();
    assert_eq!(
        in_join_order,
        vec![(ada.id, Role::Admin), (bob.id, Role::Owner)]
    );

    t.store
        .remove_member(&scope, ada.id, chrono::Utc::now())
        .await
        .expect("remove ada");
    assert_eq!(
        t.store
            .membership(ada.id, workspace.id)
            .await
            .expect("gone"),
        None
    );
    assert_eq!(
        t.store.member_role(&scope, ada.id).await.expect("gone"),
        None
    );
    let twice = t
        .store
        .remove_member(&scope, ada.id, chrono::Utc::now())
        .await;
    assert!(
        matches!(twice, Err(DomainError::NotFound("member"))),
        "{twice:?}"
    );
    let stranger = t.store.set_member_role(&scope, ada.id, Role::Viewer).await;
    assert!(
        matches!(stranger, Err(DomainError::NotFound("member"))),
        "{stranger:?}"
    );
}

async fn a_workspace_can_be_renamed_and_deleted_with_everything_it_owns(t: Ctx) {
    let ada = t.user("ada").await;
    let (workspace, scope) = t.workspace(&ada, "Acme").await;
    let workflow = crate::workflows::create(&t, &scope, "Nightly").await;
    let token = crate::tokens::create(&t, &scope, "ci", "hash-ci").await;

    let renamed = t
        .store
        .rename_workspace(&scope, &WorkspaceName::parse("Acme Corp").expect("valid"))
        .await
        .expect("rename");
    assert_eq!(renamed.name.as_str(), "Acme Corp");
    assert_eq!(
        (renamed.id, renamed.created_at),
        (workspace.id, workspace.created_at)
    );

    t.store.delete_workspace(&scope).await.expect("delete");

    assert!(
        t.store
            .workspaces_of(ada.id)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        t.store.membership(ada.id, workspace.id).await.expect("m"),
        None
    );
    use aos_domain::ports::ObjectRef;
    assert_eq!(
        t.store
            .locate(ObjectRef::Workflow(workflow.id))
            .await
            .expect("wf"),
        None
    );
    assert_eq!(
        t.store
            .locate(ObjectRef::ApiToken(token.id))
            .await
            .expect("tok"),
        None
    );
    assert!(
        t.store
            .api_token_by_hash("hash-ci")
            .await
            .expect("tok")
            .is_none()
    );
    let gone = t.store.workspace(&scope).await;
    assert!(
        matches!(gone, Err(DomainError::NotFound("workspace"))),
        "{gone:?}"
    );
}

async fn the_store_never_takes_away_the_last_owner(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;

    let demoted = t.store.set_member_role(&scope, ada.id, Role::Admin).await;
    let removed = t
        .store
        .remove_member(&scope, ada.id, chrono::Utc::now())
        .await;

    assert!(
        matches!(&demoted, Err(DomainError::Conflict(_))),
        "{demoted:?}"
    );
    assert!(
        matches!(&removed, Err(DomainError::Conflict(_))),
        "{removed:?}"
    );
    let members = t.store.members(&scope).await.expect("members");
    assert_eq!((members.len(), members[0].role), (1, Role::Owner));
}

/// Each request checked "another owner remains" before acting; only the store's check
/// inside the transaction, behind a lock on the owner rows, keeps both from succeeding.
async fn two_owners_stepping_down_at_once_leave_one_owner(t: Ctx) {
    let ada = t.user("ada").await;
    let bob = t.user("bob").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    t.store
        .add_member(&scope, bob.id, Role::Owner)
        .await
        .expect("add bob as owner");

    let (demoted, removed) = tokio::join!(
        t.store.set_member_role(&scope, ada.id, Role::Editor),
        t.store.remove_member(&scope, bob.id, chrono::Utc::now()),
    );

    let outcomes = [demoted.is_ok(), removed.is_ok()];
    assert_eq!(
        outcomes.iter().filter(|ok| **ok).count(),
        1,
        "exactly one change may succeed: {demoted:?} / {removed:?}"
    );
    for failed in [demoted.err(), removed.err()].into_iter().flatten() {
        assert!(matches!(failed, DomainError::Conflict(_)), "{failed:?}");
    }
    assert_eq!(t.store.owner_count(&scope).await.expect("owners"), 1);
}
