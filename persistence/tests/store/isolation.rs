//! Tenant isolation through the ports.
//!
//! Invariant protected: a scope for workspace B never reads, changes or deletes a row of
//! workspace A through any scoped method, even when it names A's objects by id; it sees
//! them exactly as if they did not exist, and A's data is untouched afterwards.

use aos_domain::DomainError;
use aos_domain::page::PageRequest;
use aos_domain::ports::{WorkflowStore, WorkspaceStore};
use aos_domain::workflow::WorkflowChange;
use aos_domain::workspace::Role;
use chrono::Utc;

use crate::support::{Ctx, on_every_backend};
use crate::{tokens, workflows};

on_every_backend!(a_scope_for_one_workspace_never_reaches_another_workspaces_rows);

async fn a_scope_for_one_workspace_never_reaches_another_workspaces_rows(t: Ctx) {
    let ada = t.user("ada").await;
    let bob = t.user("bob").await;
    let carol = t.user("carol").await;
    let (_, in_a) = t.workspace(&ada, "A").await;
    let (_, in_b) = t.workspace(&bob, "B").await;
    t.store
        .add_member(&in_a, carol.id, Role::Editor)
        .await
        .expect("carol joins A");
    let a_workflow = workflows::create(&t, &in_a, "A's workflow").await;
    let a_token = tokens::create(&t, &in_a, "A's token", "hash-a").await;
    let b_workflow = workflows::create(&t, &in_b, "B's workflow").await;

    // Reads see nothing of A.
    assert_eq!(
        t.store.workflow(&in_b, a_workflow.id).await.expect("read"),
        None
    );
    let listed = t
        .store
        .workflows(&in_b, PageRequest::new(Some(100), None).expect("page"))
        .await
        .expect("list");
    assert_eq!(listed.items, vec![b_workflow]);
    assert!(
        t.store
            .workflow_versions(&in_b, a_workflow.id)
            .await
            .expect("versions")
            .is_empty()
    );
    assert!(t.store.api_tokens(&in_b).await.expect("tokens").is_empty());
    let b_members = t.store.members(&in_b).await.expect("members");
    assert_eq!(
        b_members.iter().map(|m| m.user.id).collect::<Vec<_>>(),
        vec![bob.id]
    );
    assert_eq!(
        t.store.member_role(&in_b, carol.id).await.expect("role"),
        None
    );
    assert_eq!(t.store.owner_count(&in_b).await.expect("owners"), 1);

    // Writes aimed at A's objects find nothing.
    let not_found = |result: Result<(), DomainError>, what: &str| {
        assert!(
            matches!(result, Err(DomainError::NotFound(_))),
            "{what}: {result:?}"
        );
    };
    not_found(
        t.store
            .update_workflow(&in_b, a_workflow.id, WorkflowChange::default())
            .await
            .map(drop),
        "update",
    );
    not_found(
        t.store
            .set_workflow_active(&in_b, a_workflow.id, true)
            .await
            .map(drop),
        "activate",
    );
    not_found(
        t.store.delete_workflow(&in_b, a_workflow.id).await,
        "delete",
    );
    not_found(
        t.store
            .revoke_api_token(&in_b, a_token.id, Utc::now())
            .await,
        "revoke",
    );
    not_found(
        t.store
            .set_member_role(&in_b, carol.id, Role::Owner)
            .await
            .map(drop),
        "set role",
    );
    not_found(
        t.store.remove_member(&in_b, carol.id, Utc::now()).await,
        "remove",
    );

    // A is exactly as it was.
    assert_eq!(
        t.store.workflow(&in_a, a_workflow.id).await.expect("read"),
        Some(a_workflow)
    );
    assert_eq!(
        t.store.api_tokens(&in_a).await.expect("tokens"),
        vec![a_token]
    );
    assert_eq!(
        t.store.member_role(&in_a, carol.id).await.expect("role"),
        Some(Role::Editor)
    );
}
