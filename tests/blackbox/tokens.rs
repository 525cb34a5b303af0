//! API tokens.
//!
//! Invariants protected here: the secret is shown exactly once, at creation; a token acts
//! only within its scopes and its workspace, never as the user who made it (no `viewer`, no
//! new workspaces); a revoked or expired token is refused at once.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Session, TestApp, assert_error_code, data, definitions, string_at};

const ALL_SCOPES: [&str; 7] = [
    "WORKFLOWS_READ",
    "WORKFLOWS_WRITE",
    "RUNS_READ",
    "RUNS_WRITE",
    "CONNECTIONS_READ",
    "CONNECTIONS_WRITE",
    "ADMIN",
];
const API_TOKENS: &str = "query($id: ID!) { workspace(id: $id) { apiTokens { id name scopes createdAt expiresAt lastUsedAt } } }";
const WORKFLOW: &str = "query($id: ID!) { workflow(id: $id) { id name } }";

async fn admin_with_workspace(app: &TestApp) -> (Session, String) {
    let admin = app.sign_up("owner@example.com", "Owner").await;
    let workspace_id = app.create_workspace(&admin.access_token, "Acme").await;
    (admin, workspace_id)
}

#[tokio::test]
async fn a_token_can_be_created_with_each_scope() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = admin_with_workspace(&app).await;

    for scope in ALL_SCOPES {
        let created = app
            .gql_as(
                &owner.access_token,
                "mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { token apiToken { id name scopes createdAt expiresAt lastUsedAt } } }",
                json!({"input": {"workspaceId": workspace_id, "name": format!("{scope} token"), "scopes": [scope]}}),
            )
            .await;

        let created = &data(&created)["createApiToken"];
        assert!(
            string_at(&created["token"]).starts_with("aos_"),
            "{created}"
        );
        assert_eq!(created["apiToken"]["scopes"], json!([scope]));
        assert_eq!(created["apiToken"]["name"], format!("{scope} token"));
        assert_eq!(created["apiToken"]["lastUsedAt"], serde_json::Value::Null);
    }
}

/// The secret leaves the server once; the list shows metadata only.
#[tokio::test]
async fn the_token_secret_is_shown_only_once() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = admin_with_workspace(&app).await;
    let token = app
        .create_token(&owner.access_token, &workspace_id, &ALL_SCOPES)
        .await;

    let listed = app
        .gql_as(&owner.access_token, API_TOKENS, json!({"id": workspace_id}))
        .await;
    let asking_for_the_secret = app
        .gql_as(
            &owner.access_token,
            "query($id: ID!) { workspace(id: $id) { apiTokens { id token } } }",
            json!({"id": workspace_id}),
        )
        .await;

    let tokens = &data(&listed)["workspace"]["apiTokens"];
    assert_eq!(tokens.as_array().map(Vec::len), Some(1));
    assert_eq!(tokens[0]["id"], token.id.as_str());
    assert!(
        !listed.to_string().contains(&token.token),
        "the list leaks the secret: {listed}"
    );
    assert_error_code(&asking_for_the_secret, "BAD_USER_INPUT");
}

#[tokio::test]
async fn workflows_read_can_read_but_not_create_workflows() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = admin_with_workspace(&app).await;
    let workflow = app
        .create_workflow(
            &owner.access_token,
            &workspace_id,
            "w",
            definitions::manual(),
        )
        .await;
    let token = app
        .create_token(&owner.access_token, &workspace_id, &["WORKFLOWS_READ"])
        .await;

    let read = app
        .gql_as(&token.token, WORKFLOW, json!({"id": workflow["id"]}))
        .await;
    let listed = app
        .gql_as(
            &token.token,
            "query($id: ID!) { workspace(id: $id) { workflows(first: 10) { nodes { id } } } }",
            json!({"id": workspace_id}),
        )
        .await;
    let create = app
        .try_create_workflow(&token.token, &workspace_id, "w2", definitions::manual())
        .await;

    assert_eq!(data(&read)["workflow"]["id"], workflow["id"]);
    assert_eq!(
        data(&listed)["workspace"]["workflows"]["nodes"][0]["id"],
        workflow["id"]
    );
    assert_error_code(&create, "FORBIDDEN");
}

#[tokio::test]
async fn runs_read_cannot_read_workflows() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = admin_with_workspace(&app).await;
    let workflow = app
        .create_workflow(
            &owner.access_token,
            &workspace_id,
            "w",
            definitions::manual(),
        )
        .await;
    let token = app
        .create_token(&owner.access_token, &workspace_id, &["RUNS_READ"])
        .await;

    let read = app
        .gql_as(&token.token, WORKFLOW, json!({"id": workflow["id"]}))
        .await;

    assert_error_code(&read, "FORBIDDEN");
}

#[tokio::test]
async fn workflows_write_can_create_workflows() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = admin_with_workspace(&app).await;
    let token = app
        .create_token(
            &owner.access_token,
            &workspace_id,
            &["WORKFLOWS_READ", "WORKFLOWS_WRITE"],
        )
        .await;

    let created = app
        .try_create_workflow(&token.token, &workspace_id, "w", definitions::manual())
        .await;

    assert_eq!(data(&created)["createWorkflow"]["version"], 1);
}

#[tokio::test]
async fn using_a_token_sets_last_used_at() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = admin_with_workspace(&app).await;
    let token = app
        .create_token(&owner.access_token, &workspace_id, &["WORKFLOWS_READ"])
        .await;

    data(
        &app.gql_as(
            &token.token,
            "query($id: ID!) { workspace(id: $id) { workflows(first: 1) { nodes { id } } } }",
            json!({"id": workspace_id}),
        )
        .await,
    );

    let listed = app
        .gql_as(&owner.access_token, API_TOKENS, json!({"id": workspace_id}))
        .await;
    let last_used_at = &data(&listed)["workspace"]["apiTokens"][0]["lastUsedAt"];
    assert!(
        last_used_at.is_string(),
        "lastUsedAt should be set after use: {listed}"
    );
}

#[tokio::test]
async fn a_revoked_token_is_unauthenticated() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = admin_with_workspace(&app).await;
    let token = app
        .create_token(&owner.access_token, &workspace_id, &["WORKFLOWS_READ"])
        .await;
    let workspace = "query($id: ID!) { workspace(id: $id) { id } }";
    data(
        &app.gql_as(&token.token, workspace, json!({"id": workspace_id}))
            .await,
    );

    let revoked = app
        .gql_as(
            &owner.access_token,
            "mutation($input: RevokeApiTokenInput!) { revokeApiToken(input: $input) }",
            json!({"input": {"id": token.id}}),
        )
        .await;

    assert_eq!(data(&revoked)["revokeApiToken"], true);
    assert_error_code(
        &app.gql_as(&token.token, workspace, json!({"id": workspace_id}))
            .await,
        "UNAUTHENTICATED",
    );
    let listed = app
        .gql_as(&owner.access_token, API_TOKENS, json!({"id": workspace_id}))
        .await;
    assert_eq!(data(&listed)["workspace"]["apiTokens"], json!([]));
}

#[tokio::test]
async fn an_expired_token_is_unauthenticated() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = admin_with_workspace(&app).await;
    let expires_at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let token = app
        .create_token_expiring(
            &owner.access_token,
            &workspace_id,
            &["WORKFLOWS_READ"],
            Some(&expires_at),
        )
        .await;
    let workspace = "query($id: ID!) { workspace(id: $id) { id } }";
    data(
        &app.gql_as(&token.token, workspace, json!({"id": workspace_id}))
            .await,
    );

    tokio::time::sleep(Duration::from_millis(2500)).await;

    assert_error_code(
        &app.gql_as(&token.token, workspace, json!({"id": workspace_id}))
            .await,
        "UNAUTHENTICATED",
    );
}

#[tokio::test]
async fn a_token_expiring_in_the_past_cannot_be_created() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = admin_with_workspace(&app).await;
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();

    let created = app
        .gql_as(
            &owner.access_token,
            "mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { token } }",
            json!({"input": {"workspaceId": workspace_id, "name": "stale", "scopes": ["ADMIN"], "expiresAt": yesterday}}),
        )
        .await;

    assert_error_code(&created, "BAD_USER_INPUT");
}

/// A token is a key to one workspace, not a stand-in for the user who made it.
#[tokio::test]
async fn a_token_cannot_act_as_a_user() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = admin_with_workspace(&app).await;
    let token = app
        .create_token(&owner.access_token, &workspace_id, &ALL_SCOPES)
        .await;

    let viewer = app
        .gql_as(&token.token, "{ viewer { user { id } } }", json!({}))
        .await;
    let new_workspace = app
        .gql_as(
            &token.token,
            "mutation($input: CreateWorkspaceInput!) { createWorkspace(input: $input) { id } }",
            json!({"input": {"name": "Elsewhere"}}),
        )
        .await;

    assert_error_code(&viewer, "FORBIDDEN");
    assert_error_code(&new_workspace, "FORBIDDEN");
    let workspaces = app
        .gql_as(
            &owner.access_token,
            "{ viewer { workspaces { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&workspaces)["viewer"]["workspaces"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

/// Removing a member revokes the tokens they made, so access does not outlive membership.
#[tokio::test]
async fn removing_a_member_revokes_their_tokens() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = admin_with_workspace(&app).await;
    let admin = app
        .member(
            &owner.access_token,
            &workspace_id,
            "admin@example.com",
            "ADMIN",
        )
        .await;
    let token = app
        .create_token(&admin.access_token, &workspace_id, &["WORKFLOWS_READ"])
        .await;
    let workspace = "query($id: ID!) { workspace(id: $id) { id } }";
    data(
        &app.gql_as(&token.token, workspace, json!({"id": workspace_id}))
            .await,
    );

    data(
        &app.gql_as(
            &owner.access_token,
            "mutation($input: RemoveMemberInput!) { removeMember(input: $input) }",
            json!({"input": {"workspaceId": workspace_id, "userId": admin.user_id}}),
        )
        .await,
    );

    assert_error_code(
        &app.gql_as(&token.token, workspace, json!({"id": workspace_id}))
            .await,
        "UNAUTHENTICATED",
    );
}

#[tokio::test]
async fn a_tokens_viewer_role_follows_its_scopes() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = admin_with_workspace(&app).await;
    let role_query = "query($id: ID!) { workspace(id: $id) { viewerRole } }";

    for (scopes, role) in [
        (&["ADMIN"][..], "ADMIN"),
        (&["WORKFLOWS_READ", "WORKFLOWS_WRITE"][..], "EDITOR"),
        (&["RUNS_WRITE"][..], "EDITOR"),
        (&["WORKFLOWS_READ", "RUNS_READ"][..], "VIEWER"),
    ] {
        let token = app
            .create_token(&owner.access_token, &workspace_id, scopes)
            .await;
        let response = app
            .gql_as(&token.token, role_query, json!({"id": workspace_id}))
            .await;
        assert_eq!(
            data(&response)["workspace"]["viewerRole"],
            role,
            "{scopes:?}"
        );
    }
}

/// Member lists and token lists are administration data: a read-only token or a VIEWER
/// sees the workflows, not who has access.
#[tokio::test]
async fn administration_lists_need_admin_rights() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = admin_with_workspace(&app).await;
    let read_only = app
        .create_token(&owner.access_token, &workspace_id, &["WORKFLOWS_READ"])
        .await;
    let admin_token = app
        .create_token(&owner.access_token, &workspace_id, &["ADMIN"])
        .await;
    let viewer = app
        .member(
            &owner.access_token,
            &workspace_id,
            "vi@example.com",
            "VIEWER",
        )
        .await;
    let members = "query($id: ID!) { workspace(id: $id) { members { role } } }";

    assert_error_code(
        &app.gql_as(&read_only.token, members, json!({"id": workspace_id}))
            .await,
        "FORBIDDEN",
    );
    assert_error_code(
        &app.gql_as(&read_only.token, API_TOKENS, json!({"id": workspace_id}))
            .await,
        "FORBIDDEN",
    );
    assert_error_code(
        &app.gql_as(
            &viewer.access_token,
            API_TOKENS,
            json!({"id": workspace_id}),
        )
        .await,
        "FORBIDDEN",
    );
    data(
        &app.gql_as(&viewer.access_token, members, json!({"id": workspace_id}))
            .await,
    );
    data(
        &app.gql_as(&admin_token.token, members, json!({"id": workspace_id}))
            .await,
    );
    data(
        &app.gql_as(&admin_token.token, API_TOKENS, json!({"id": workspace_id}))
            .await,
    );
}
