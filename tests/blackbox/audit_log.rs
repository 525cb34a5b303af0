//! The audit log.
//!
//! Invariants protected: every mutation attempted in a workspace, granted or refused, is
//! recorded once, in order, with its actor (user or API token), action, target, client IP
//! and outcome, and never with its input (connection credentials stay out); a workspace's
//! log shows nothing of another workspace, and probing another tenant's ids writes nothing
//! into that tenant's log; only ADMIN and above (or a token with the ADMIN scope) may read
//! it; filters and pages narrow and walk it.

use serde_json::{Value, json};

use crate::harness::{Session, TestApp, assert_error_code, data, definitions, string_at};

const AUDIT_LOG: &str = "query($id: ID!, $first: Int, $after: String, $filter: AuditLogFilter) {
  workspace(id: $id) { auditLog(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id at action actorKind actorId actorUserId targetKind targetId clientIp outcome } }
    pageInfo { hasNextPage endCursor }
  } } }";

const SECRET: &str = "s3cr3t-bearer-value-that-must-not-be-logged";

async fn audit_log(app: &TestApp, token: &str, workspace_id: &str, filter: Value) -> Value {
    app.gql_as(
        token,
        AUDIT_LOG,
        json!({"id": workspace_id, "first": 100, "filter": filter}),
    )
    .await
}

/// The log's records, oldest first.
fn records(response: &Value) -> Vec<Value> {
    let mut nodes: Vec<Value> = data(response)["workspace"]["auditLog"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| edge["node"].clone())
        .collect();
    nodes.reverse();
    nodes
}

fn summary(node: &Value) -> (String, String, String, String) {
    (
        string_at(&node["action"]),
        string_at(&node["targetKind"]),
        string_at(&node["targetId"]),
        string_at(&node["outcome"]),
    )
}

fn entry(action: &str, kind: &str, id: &str, outcome: &str) -> (String, String, String, String) {
    (action.into(), kind.into(), id.into(), outcome.into())
}

async fn gql_ok(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    let response = app.gql_as(token, query, variables).await;
    data(&response).clone()
}

#[tokio::test]
async fn the_log_records_every_mutation_of_a_session_and_nothing_of_another_workspace() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let outsider = app.sign_up("outsider@example.com", "Outsider").await;
    let viewer = app.sign_up("viewer@example.com", "Viewer").await;
    let workspace_id = app.create_workspace(&owner.access_token, "Acme").await;
    let other_workspace = app
        .create_workspace(&outsider.access_token, "Elsewhere")
        .await;
    let outsider_workflow = string_at(
        &app.create_workflow(
            &outsider.access_token,
            &other_workspace,
            "theirs",
            definitions::manual(),
        )
        .await["id"],
    );

    // The scripted session.
    app.add_member(
        &owner.access_token,
        &workspace_id,
        "viewer@example.com",
        "VIEWER",
    )
    .await;
    let token = app
        .create_token(
            &owner.access_token,
            &workspace_id,
            &["ADMIN", "WORKFLOWS_WRITE"],
        )
        .await;
    let workflow = string_at(
        &app.create_workflow(
            &owner.access_token,
            &workspace_id,
            "greet",
            definitions::manual(),
        )
        .await["id"],
    );
    gql_ok(
        &app,
        &owner.access_token,
        "mutation($input: UpdateWorkflowInput!) { updateWorkflow(input: $input) { id } }",
        json!({"input": {"id": workflow, "name": "greet v2"}}),
    )
    .await;
    gql_ok(
        &app,
        &owner.access_token,
        "mutation($input: SetWorkflowActiveInput!) { setWorkflowActive(input: $input) { id } }",
        json!({"input": {"id": workflow, "active": true}}),
    )
    .await;
    let run = app
        .run_workflow(&owner.access_token, &workflow, json!({}))
        .await;
    assert!(run["id"].is_string(), "{run}");
    let connection = app
        .create_connection(
            &owner.access_token,
            &workspace_id,
            "api",
            json!({"kind": "bearer", "token": SECRET}),
        )
        .await;
    gql_ok(
        &app,
        &owner.access_token,
        "mutation($input: DeleteConnectionInput!) { deleteConnection(input: $input) }",
        json!({"input": {"id": connection}}),
    )
    .await;
    // Refused: a VIEWER may not write workflows.
    let refused = app
        .gql_as(
            &viewer.access_token,
            "mutation($input: DeleteWorkflowInput!) { deleteWorkflow(input: $input) }",
            json!({"input": {"id": workflow}}),
        )
        .await;
    assert_error_code(&refused, "FORBIDDEN");
    // A token's mutation.
    let by_token = string_at(
        &app.create_workflow(
            &token.token,
            &workspace_id,
            "by token",
            definitions::manual(),
        )
        .await["id"],
    );
    // The outsider probes this workspace's workflow, and the owner another's: NOT_FOUND,
    // and recorded in neither log.
    let probe = app
        .gql_as(
            &outsider.access_token,
            "mutation($input: DeleteWorkflowInput!) { deleteWorkflow(input: $input) }",
            json!({"input": {"id": workflow}}),
        )
        .await;
    assert_error_code(&probe, "NOT_FOUND");
    let probe = app
        .gql_as(
            &owner.access_token,
            "mutation($input: DeleteWorkflowInput!) { deleteWorkflow(input: $input) }",
            json!({"input": {"id": outsider_workflow}}),
        )
        .await;
    assert_error_code(&probe, "NOT_FOUND");

    let response = audit_log(&app, &owner.access_token, &workspace_id, Value::Null).await;
    let log = records(&response);

    assert_eq!(
        log.iter().map(summary).collect::<Vec<_>>(),
        vec![
            entry("createWorkspace", "Workspace", &workspace_id, "SUCCESS"),
            entry("addMember", "User", &viewer.user_id, "SUCCESS"),
            entry("createApiToken", "ApiToken", &token.id, "SUCCESS"),
            entry("createWorkflow", "Workflow", &workflow, "SUCCESS"),
            entry("updateWorkflow", "Workflow", &workflow, "SUCCESS"),
            entry("setWorkflowActive", "Workflow", &workflow, "SUCCESS"),
            entry("runWorkflow", "Workflow", &workflow, "SUCCESS"),
            entry("createConnection", "Connection", &connection, "SUCCESS"),
            entry("deleteConnection", "Connection", &connection, "SUCCESS"),
            entry("deleteWorkflow", "Workflow", &workflow, "FORBIDDEN"),
            entry("createWorkflow", "Workflow", &by_token, "SUCCESS"),
        ],
        "{response}"
    );
    for node in &log {
        assert_eq!(node["clientIp"], "127.0.0.1", "{node}");
    }
    let actors: Vec<(String, String)> = log
        .iter()
        .map(|node| (string_at(&node["actorKind"]), string_at(&node["actorId"])))
        .collect();
    assert_eq!(actors[0], ("USER".into(), owner.user_id.clone()));
    assert_eq!(actors[9], ("USER".into(), viewer.user_id.clone()));
    assert_eq!(actors[10], ("API_TOKEN".into(), token.id.clone()));
    assert_eq!(log[10]["actorUserId"], json!(owner.user_id));
    assert!(
        !response.to_string().contains(SECRET),
        "a credential reached the log: {response}"
    );

    let theirs = audit_log(&app, &outsider.access_token, &other_workspace, Value::Null).await;
    assert_eq!(
        records(&theirs).iter().map(summary).collect::<Vec<_>>(),
        vec![
            entry("createWorkspace", "Workspace", &other_workspace, "SUCCESS"),
            entry("createWorkflow", "Workflow", &outsider_workflow, "SUCCESS"),
        ],
        "{theirs}"
    );
    let peek = audit_log(&app, &outsider.access_token, &workspace_id, Value::Null).await;
    assert_error_code(&peek, "NOT_FOUND");
}

async fn workspace_with_history(app: &TestApp) -> (Session, String, Vec<String>) {
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let workspace_id = app.create_workspace(&owner.access_token, "Acme").await;
    let mut workflows = Vec::new();
    for n in 0..4 {
        let created = app
            .create_workflow(
                &owner.access_token,
                &workspace_id,
                &format!("w{n}"),
                definitions::manual(),
            )
            .await;
        workflows.push(string_at(&created["id"]));
    }
    (owner, workspace_id, workflows)
}

#[tokio::test]
async fn only_admins_and_admin_tokens_read_the_log() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id, _) = workspace_with_history(&app).await;
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
            "editor@example.com",
            "EDITOR",
        )
        .await;
    let viewer = app
        .member(
            &owner.access_token,
            &workspace_id,
            "viewer@example.com",
            "VIEWER",
        )
        .await;
    let admin_token = app
        .create_token(&owner.access_token, &workspace_id, &["ADMIN"])
        .await;
    let writer_token = app
        .create_token(&owner.access_token, &workspace_id, &["WORKFLOWS_WRITE"])
        .await;

    for reader in [&admin.access_token, &admin_token.token] {
        let response = audit_log(&app, reader, &workspace_id, Value::Null).await;
        assert!(!records(&response).is_empty(), "{response}");
    }
    for refused in [
        &editor.access_token,
        &viewer.access_token,
        &writer_token.token,
    ] {
        let response = audit_log(&app, refused, &workspace_id, Value::Null).await;
        assert_error_code(&response, "FORBIDDEN");
    }
}

#[tokio::test]
async fn filters_and_pages_narrow_and_walk_the_log() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id, workflows) = workspace_with_history(&app).await;
    let refused = app
        .gql_as(
            &owner.access_token,
            "mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) { id } }",
            json!({"input": {"workspaceId": workspace_id, "name": "", "definition": {}}}),
        )
        .await;
    assert_error_code(&refused, "BAD_USER_INPUT");

    let by_action = audit_log(
        &app,
        &owner.access_token,
        &workspace_id,
        json!({"action": "createWorkflow", "outcome": "SUCCESS"}),
    )
    .await;
    let by_target = audit_log(
        &app,
        &owner.access_token,
        &workspace_id,
        json!({"targetId": workflows[2]}),
    )
    .await;
    let by_outcome = audit_log(
        &app,
        &owner.access_token,
        &workspace_id,
        json!({"outcome": "BAD_USER_INPUT", "actorId": owner.user_id}),
    )
    .await;
    let in_the_future = audit_log(
        &app,
        &owner.access_token,
        &workspace_id,
        json!({"since": "2999-01-01T00:00:00Z"}),
    )
    .await;

    let targets = |response: &Value| -> Vec<String> {
        records(response)
            .iter()
            .map(|node| string_at(&node["targetId"]))
            .collect()
    };
    assert_eq!(targets(&by_action), workflows);
    assert_eq!(targets(&by_target), vec![workflows[2].clone()]);
    assert_eq!(records(&by_outcome).len(), 1, "{by_outcome}");
    assert!(records(&in_the_future).is_empty(), "{in_the_future}");

    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = app
            .gql_as(
                &owner.access_token,
                AUDIT_LOG,
                json!({"id": workspace_id, "first": 2, "after": after}),
            )
            .await;
        let log = &data(&page)["workspace"]["auditLog"];
        for edge in log["edges"].as_array().expect("edges") {
            seen.push(string_at(&edge["node"]["id"]));
        }
        if log["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = log["pageInfo"]["endCursor"].clone();
    }
    let everything = audit_log(&app, &owner.access_token, &workspace_id, Value::Null).await;
    let mut all: Vec<String> = records(&everything)
        .iter()
        .map(|node| string_at(&node["id"]))
        .collect();
    all.reverse();
    // createWorkspace, four createWorkflow and the refused one.
    assert_eq!(all.len(), 6, "{everything}");
    assert_eq!(seen, all);
}
