//! `generateWorkflow` with the offline planner (no model configured), against the real
//! binary.
//!
//! Invariants protected: what is generated is accepted by `createWorkflow` as is, and
//! nothing is saved until the client saves it; generations count against the
//! `aiGenerationsPerDay` quota, refused at the boundary and not before; empty and oversized
//! prompts are `BAD_USER_INPUT`; a VIEWER may not generate; a base workflow of another
//! workspace is `NOT_FOUND`; the planner uses the workspace's connections by id and no
//! secret ever comes back.

use serde_json::{Value, json};

use crate::harness::{TestApp, data, definitions, first_error, string_at};

const GENERATE: &str = "mutation($input: GenerateWorkflowInput!) { generateWorkflow(input: $input) { definition explanation warnings } }";
const WORKFLOWS: &str =
    "query($id: ID!) { workspace(id: $id) { workflows(first: 50) { nodes { id } } } }";

async fn generate(app: &TestApp, token: &str, workspace: &str, prompt: &str) -> Value {
    app.gql_as(
        token,
        GENERATE,
        json!({"input": {"workspaceId": workspace, "prompt": prompt}}),
    )
    .await
}

fn node_types(definition: &Value) -> Vec<String> {
    definition["nodes"]
        .as_array()
        .map(|nodes| nodes.iter().map(|node| string_at(&node["type"])).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_generated_workflow_is_accepted_as_is_and_nothing_is_saved_before() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace = app.create_workspace(token, "Team").await;

    let response = generate(
        &app,
        token,
        &workspace,
        "When a webhook is received, if the amount is over 100, POST to https://example.com/alerts",
    )
    .await;
    let generated = &data(&response)["generateWorkflow"];
    let definition = generated["definition"].clone();
    let types = node_types(&definition);
    assert_eq!(
        types.first().map(String::as_str),
        Some("trigger.webhook"),
        "{generated}"
    );
    assert!(types.iter().any(|t| t == "if"), "{generated}");
    assert!(types.iter().any(|t| t == "http.request"), "{generated}");
    assert!(
        definition
            .to_string()
            .contains("https://example.com/alerts"),
        "{generated}"
    );
    assert!(
        generated["explanation"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );

    let listed = app.gql_as(token, WORKFLOWS, json!({"id": workspace})).await;
    assert_eq!(
        data(&listed)["workspace"]["workflows"]["nodes"],
        json!([]),
        "generating saves nothing"
    );
    let saved = app
        .create_workflow(token, &workspace, "generated", definition)
        .await;
    assert!(
        saved["id"].is_string(),
        "createWorkflow accepts it: {saved}"
    );
}

#[tokio::test]
async fn what_the_planner_cannot_map_comes_back_as_warnings() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace = app.create_workspace(token, "Team").await;

    let response = generate(
        &app,
        token,
        &workspace,
        "teleport the quarterly figures to Mars",
    )
    .await;
    let generated = &data(&response)["generateWorkflow"];
    assert!(
        generated["warnings"]
            .as_array()
            .is_some_and(|w| !w.is_empty()),
        "{generated}"
    );
    let saved = app
        .create_workflow(
            token,
            &workspace,
            "fallback",
            generated["definition"].clone(),
        )
        .await;
    assert!(saved["id"].is_string(), "{saved}");
}

#[tokio::test]
async fn generations_are_refused_past_the_daily_quota() {
    let app = TestApp::builder()
        .env("AOS_QUOTA_AI_GENERATIONS_PER_DAY", "2")
        .spawn()
        .await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace = app.create_workspace(token, "Team").await;
    let other = app.create_workspace(token, "Other").await;
    let prompt = "every day at 9am call https://example.com/report";
    for _ in 0..2 {
        data(&generate(&app, token, &workspace, prompt).await);
    }
    let refused = generate(&app, token, &workspace, prompt).await;
    let error = first_error(&refused);
    assert_eq!(error["extensions"]["code"], "QUOTA_EXCEEDED", "{refused}");
    assert_eq!(
        error["extensions"]["quota"], "aiGenerationsPerDay",
        "{refused}"
    );
    assert_eq!(error["extensions"]["limit"], 2, "{refused}");
    data(&generate(&app, token, &other, prompt).await);

    let usage = app
        .gql_as(
            token,
            "query($id: ID!) { workspace(id: $id) { usage { quotas { quota used limit } } } }",
            json!({"id": workspace}),
        )
        .await;
    let quotas = data(&usage)["workspace"]["usage"]["quotas"].clone();
    let ai = quotas
        .as_array()
        .and_then(|all| all.iter().find(|q| q["quota"] == "aiGenerationsPerDay"))
        .cloned()
        .expect("the AI quota is listed");
    assert_eq!(
        (ai["used"].clone(), ai["limit"].clone()),
        (json!(2), json!(2))
    );
}

#[tokio::test]
async fn bad_prompts_viewers_and_other_workspaces_are_refused() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace = app.create_workspace(token, "Team").await;
    let theirs = app.create_workspace(token, "Theirs").await;

    for prompt in ["   ".to_owned(), "call https://example.com ".repeat(400)] {
        let refused = generate(&app, token, &workspace, &prompt).await;
        assert_eq!(
            first_error(&refused)["extensions"]["code"],
            "BAD_USER_INPUT",
            "{refused}"
        );
    }

    let viewer = app
        .member(token, &workspace, "viewer@example.com", "VIEWER")
        .await;
    let refused = generate(
        &app,
        &viewer.access_token,
        &workspace,
        "call https://example.com",
    )
    .await;
    assert_eq!(
        first_error(&refused)["extensions"]["code"],
        "FORBIDDEN",
        "{refused}"
    );

    let elsewhere = app
        .create_workflow(token, &theirs, "theirs", definitions::manual())
        .await;
    let editor = app
        .member(token, &workspace, "editor@example.com", "EDITOR")
        .await;
    let refused = app
        .gql_as(
            &editor.access_token,
            GENERATE,
            json!({"input": {"workspaceId": workspace, "prompt": "call https://example.com",
                "baseWorkflowId": string_at(&elsewhere["id"])}}),
        )
        .await;
    assert_eq!(
        first_error(&refused)["extensions"]["code"],
        "NOT_FOUND",
        "{refused}"
    );
}

#[tokio::test]
async fn the_planner_uses_the_workspace_connection_and_no_secret_comes_back() {
    const SECRET: &str = "xoxb-never-shown-again-42";
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace = app.create_workspace(token, "Team").await;
    let created = app
        .gql_as(
            token,
            "mutation($input: CreateConnectionInput!) { createConnection(input: $input) { id } }",
            json!({"input": {"workspaceId": workspace, "connector": "slack", "name": "team slack",
                "credentials": {"kind": "bearer", "token": SECRET}}}),
        )
        .await;
    let connection = string_at(&data(&created)["createConnection"]["id"]);

    let response = generate(
        &app,
        token,
        &workspace,
        "When a webhook is received, post \"New order\" to Slack #sales",
    )
    .await;
    let text = response.to_string();
    assert!(!text.contains(SECRET), "{text}");
    let generated = &data(&response)["generateWorkflow"];
    assert!(
        text.contains(&connection),
        "the Slack step uses the connection: {generated}"
    );
    let saved = app
        .create_workflow(token, &workspace, "slack", generated["definition"].clone())
        .await;
    assert!(saved["id"].is_string(), "{saved}");
}
