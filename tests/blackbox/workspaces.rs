//! Workspaces and their members.
//!
//! Invariants protected here: a workspace always has an owner (the last one can be neither
//! removed nor demoted); only an OWNER makes owners; a removed member loses access on their
//! very next request, with the token they already hold.

use serde_json::{Value, json};

use crate::harness::{Session, TestApp, assert_error_code, data};

const WORKSPACE: &str = "query($id: ID!) { workspace(id: $id) { id name viewerRole members { role user { id email } } } }";
const UPDATE_ROLE: &str = "mutation($input: UpdateMemberRoleInput!) { updateMemberRole(input: $input) { role user { id } } }";
const REMOVE_MEMBER: &str = "mutation($input: RemoveMemberInput!) { removeMember(input: $input) }";
const ADD_MEMBER: &str =
    "mutation($input: AddMemberInput!) { addMember(input: $input) { role user { id } } }";

async fn owner_with_workspace(app: &TestApp) -> (Session, String) {
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let workspace_id = app.create_workspace(&owner.access_token, "Acme").await;
    (owner, workspace_id)
}

fn role_of(workspace: &Value, user_id: &str) -> Option<String> {
    workspace["members"]
        .as_array()?
        .iter()
        .find(|member| member["user"]["id"] == user_id)
        .and_then(|member| member["role"].as_str())
        .map(str::to_owned)
}

#[tokio::test]
async fn the_creator_of_a_workspace_is_its_owner() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;

    let created = app
        .gql_as(
            &owner.access_token,
            "mutation($input: CreateWorkspaceInput!) { createWorkspace(input: $input) { id name viewerRole } }",
            json!({"input": {"name": "Acme"}}),
        )
        .await;

    let workspace = &data(&created)["createWorkspace"];
    assert_eq!(workspace["name"], "Acme");
    assert_eq!(workspace["viewerRole"], "OWNER");
    let viewer = app
        .gql_as(
            &owner.access_token,
            "{ viewer { workspaces { id name viewerRole } } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&viewer)["viewer"]["workspaces"], json!([workspace]));
}

#[tokio::test]
async fn members_can_be_added_with_every_role() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;

    for role in ["OWNER", "ADMIN", "EDITOR", "VIEWER"] {
        let email = format!("member-{}@example.com", role.to_lowercase());
        let member = app.sign_up(&email, role).await;

        let added = app
            .add_member(&owner.access_token, &workspace_id, &email, role)
            .await;

        assert_eq!(added["role"], role);
        assert_eq!(added["user"]["id"], member.user_id.as_str());
        let seen_by_member = app
            .gql_as(&member.access_token, WORKSPACE, json!({"id": workspace_id}))
            .await;
        assert_eq!(data(&seen_by_member)["workspace"]["viewerRole"], role);
    }
    let workspace = app
        .gql_as(&owner.access_token, WORKSPACE, json!({"id": workspace_id}))
        .await;
    assert_eq!(
        data(&workspace)["workspace"]["members"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );
}

#[tokio::test]
async fn adding_an_unknown_email_is_not_found_and_a_member_twice_is_a_conflict() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    app.member(
        &owner.access_token,
        &workspace_id,
        "ed@example.com",
        "EDITOR",
    )
    .await;

    let unknown = app
        .gql_as(
            &owner.access_token,
            ADD_MEMBER,
            json!({"input": {"workspaceId": workspace_id, "email": "nobody@example.com", "role": "EDITOR"}}),
        )
        .await;
    let twice = app
        .gql_as(
            &owner.access_token,
            ADD_MEMBER,
            json!({"input": {"workspaceId": workspace_id, "email": "ed@example.com", "role": "VIEWER"}}),
        )
        .await;

    assert_error_code(&unknown, "NOT_FOUND");
    assert_error_code(&twice, "CONFLICT");
}

#[tokio::test]
async fn update_member_role_changes_what_the_member_may_do() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let member = app
        .member(
            &owner.access_token,
            &workspace_id,
            "vi@example.com",
            "VIEWER",
        )
        .await;
    let denied = app
        .try_create_workflow(
            &member.access_token,
            &workspace_id,
            "w",
            crate::harness::definitions::manual(),
        )
        .await;
    assert_error_code(&denied, "FORBIDDEN");

    let updated = app
        .gql_as(
            &owner.access_token,
            UPDATE_ROLE,
            json!({"input": {"workspaceId": workspace_id, "userId": member.user_id, "role": "EDITOR"}}),
        )
        .await;

    assert_eq!(data(&updated)["updateMemberRole"]["role"], "EDITOR");
    let allowed = app
        .try_create_workflow(
            &member.access_token,
            &workspace_id,
            "w",
            crate::harness::definitions::manual(),
        )
        .await;
    data(&allowed);
}

/// Removal takes effect immediately: the removed member's existing access token, still
/// unexpired, no longer reaches the workspace.
#[tokio::test]
async fn a_removed_member_loses_access_at_once() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let member = app
        .member(
            &owner.access_token,
            &workspace_id,
            "ed@example.com",
            "EDITOR",
        )
        .await;
    data(
        &app.gql_as(&member.access_token, WORKSPACE, json!({"id": workspace_id}))
            .await,
    );

    let removed = app
        .gql_as(
            &owner.access_token,
            REMOVE_MEMBER,
            json!({"input": {"workspaceId": workspace_id, "userId": member.user_id}}),
        )
        .await;

    assert_eq!(data(&removed)["removeMember"], true);
    let after = app
        .gql_as(&member.access_token, WORKSPACE, json!({"id": workspace_id}))
        .await;
    assert_error_code(&after, "NOT_FOUND");
    assert_eq!(after["data"]["workspace"], Value::Null);
    let create = app
        .try_create_workflow(
            &member.access_token,
            &workspace_id,
            "w",
            crate::harness::definitions::manual(),
        )
        .await;
    assert_error_code(&create, "NOT_FOUND");
    let viewer = app
        .gql_as(
            &member.access_token,
            "{ viewer { workspaces { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&viewer)["viewer"]["workspaces"], json!([]));
}

/// A workspace without an owner could never be administered again.
#[tokio::test]
async fn the_last_owner_can_be_neither_removed_nor_demoted() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    app.member(
        &owner.access_token,
        &workspace_id,
        "admin@example.com",
        "ADMIN",
    )
    .await;

    let removed = app
        .gql_as(
            &owner.access_token,
            REMOVE_MEMBER,
            json!({"input": {"workspaceId": workspace_id, "userId": owner.user_id}}),
        )
        .await;
    let demoted = app
        .gql_as(
            &owner.access_token,
            UPDATE_ROLE,
            json!({"input": {"workspaceId": workspace_id, "userId": owner.user_id, "role": "ADMIN"}}),
        )
        .await;

    assert_error_code(&removed, "CONFLICT");
    assert_error_code(&demoted, "CONFLICT");
    let workspace = app
        .gql_as(&owner.access_token, WORKSPACE, json!({"id": workspace_id}))
        .await;
    assert_eq!(
        role_of(&data(&workspace)["workspace"], &owner.user_id).as_deref(),
        Some("OWNER")
    );
}

#[tokio::test]
async fn an_owner_can_step_down_once_there_is_another_owner() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let second = app
        .member(
            &owner.access_token,
            &workspace_id,
            "second@example.com",
            "OWNER",
        )
        .await;

    let demoted = app
        .gql_as(
            &second.access_token,
            UPDATE_ROLE,
            json!({"input": {"workspaceId": workspace_id, "userId": owner.user_id, "role": "ADMIN"}}),
        )
        .await;

    assert_eq!(data(&demoted)["updateMemberRole"]["role"], "ADMIN");
}

/// Owner rights are granted only by an owner, so an ADMIN cannot promote anyone, least
/// of all themselves, past their own role.
#[tokio::test]
async fn an_admin_cannot_grant_owner() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let admin = app
        .member(
            &owner.access_token,
            &workspace_id,
            "admin@example.com",
            "ADMIN",
        )
        .await;
    let editor = app
        .member(
            &owner.access_token,
            &workspace_id,
            "ed@example.com",
            "EDITOR",
        )
        .await;
    app.sign_up("new@example.com", "New").await;

    let add_owner = app
        .gql_as(
            &admin.access_token,
            ADD_MEMBER,
            json!({"input": {"workspaceId": workspace_id, "email": "new@example.com", "role": "OWNER"}}),
        )
        .await;
    let promote_other = app
        .gql_as(
            &admin.access_token,
            UPDATE_ROLE,
            json!({"input": {"workspaceId": workspace_id, "userId": editor.user_id, "role": "OWNER"}}),
        )
        .await;
    let promote_self = app
        .gql_as(
            &admin.access_token,
            UPDATE_ROLE,
            json!({"input": {"workspaceId": workspace_id, "userId": admin.user_id, "role": "OWNER"}}),
        )
        .await;

    assert_error_code(&add_owner, "FORBIDDEN");
    assert_error_code(&promote_other, "FORBIDDEN");
    assert_error_code(&promote_self, "FORBIDDEN");
    let workspace = data(
        &app.gql_as(&owner.access_token, WORKSPACE, json!({"id": workspace_id}))
            .await,
    )["workspace"]
        .clone();
    assert_eq!(
        role_of(&workspace, &admin.user_id).as_deref(),
        Some("ADMIN")
    );
    assert_eq!(
        role_of(&workspace, &editor.user_id).as_deref(),
        Some("EDITOR")
    );
    assert_eq!(workspace["members"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn an_admin_can_manage_members_below_owner() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let admin = app
        .member(
            &owner.access_token,
            &workspace_id,
            "admin@example.com",
            "ADMIN",
        )
        .await;
    let newcomer = app.sign_up("new@example.com", "New").await;

    let added = app
        .add_member(
            &admin.access_token,
            &workspace_id,
            "new@example.com",
            "EDITOR",
        )
        .await;
    let removed = app
        .gql_as(
            &admin.access_token,
            REMOVE_MEMBER,
            json!({"input": {"workspaceId": workspace_id, "userId": newcomer.user_id}}),
        )
        .await;

    assert_eq!(added["role"], "EDITOR");
    assert_eq!(data(&removed)["removeMember"], true);
}

#[tokio::test]
async fn rename_and_delete_a_workspace() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let admin = app
        .member(
            &owner.access_token,
            &workspace_id,
            "admin@example.com",
            "ADMIN",
        )
        .await;

    let renamed = app
        .gql_as(
            &admin.access_token,
            "mutation($input: RenameWorkspaceInput!) { renameWorkspace(input: $input) { id name } }",
            json!({"input": {"id": workspace_id, "name": "Acme Corp"}}),
        )
        .await;
    assert_eq!(data(&renamed)["renameWorkspace"]["name"], "Acme Corp");

    let delete = "mutation($input: DeleteWorkspaceInput!) { deleteWorkspace(input: $input) }";
    let by_admin = app
        .gql_as(
            &admin.access_token,
            delete,
            json!({"input": {"id": workspace_id}}),
        )
        .await;
    assert_error_code(&by_admin, "FORBIDDEN");

    let by_owner = app
        .gql_as(
            &owner.access_token,
            delete,
            json!({"input": {"id": workspace_id}}),
        )
        .await;
    assert_eq!(data(&by_owner)["deleteWorkspace"], true);
    for session in [&owner, &admin] {
        let gone = app
            .gql_as(
                &session.access_token,
                WORKSPACE,
                json!({"id": workspace_id}),
            )
            .await;
        assert_error_code(&gone, "NOT_FOUND");
    }
}
