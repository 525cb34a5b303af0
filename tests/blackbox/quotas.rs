//! Per-workspace quotas, against the real binary.
//!
//! Invariants protected here: every quota admits exactly its limit and refuses the next
//! with `QUOTA_EXCEEDED` naming the quota (never before the boundary); freeing one makes
//! room again; a refused run leaves nothing behind; another workspace is never touched by
//! one workspace's usage; webhooks refused by a quota get 429 with `Retry-After`;
//! `Workspace.usage` reports usage against each quota; an instance administrator's
//! `automationos quotas set` applies at once, without a restart.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{
    DataDir, TestApp, TestDatabase, binary, data, definitions, first_error, string_at,
};

const ACTIVATE: &str =
    "mutation($input: SetWorkflowActiveInput!) { setWorkflowActive(input: $input) { active } }";
const CREATE_CONNECTION: &str =
    "mutation($input: CreateConnectionInput!) { createConnection(input: $input) { id } }";
const DELETE_CONNECTION: &str =
    "mutation($input: DeleteConnectionInput!) { deleteConnection(input: $input) }";
const USAGE: &str =
    "query($id: ID!) { workspace(id: $id) { usage { quotas { quota used limit resetsAt } } } }";
const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const RUNS: &str =
    "query($id: ID!) { workspace(id: $id) { runs(first: 50) { nodes { id status } } } }";

/// Asserts `response` is a `QUOTA_EXCEEDED` refusal of `quota` at `limit`.
fn assert_quota_exceeded(response: &Value, quota: &str, limit: u64) {
    let error = first_error(response);
    assert_eq!(error["extensions"]["code"], "QUOTA_EXCEEDED", "{response}");
    assert_eq!(error["extensions"]["quota"], quota, "{response}");
    assert_eq!(error["extensions"]["limit"], limit, "{response}");
    assert!(
        error["message"].as_str().is_some_and(|m| m.contains(quota)),
        "the message names the quota: {response}"
    );
}

async fn usage_of(app: &TestApp, token: &str, workspace: &str, quota: &str) -> Value {
    let response = app.gql_as(token, USAGE, json!({"id": workspace})).await;
    data(&response)["workspace"]["usage"]["quotas"]
        .as_array()
        .expect("a list of quotas")
        .iter()
        .find(|usage| usage["quota"] == quota)
        .cloned()
        .unwrap_or_else(|| panic!("no {quota} in {response}"))
}

async fn create_connection(app: &TestApp, token: &str, workspace: &str, name: &str) -> Value {
    app.gql_as(
        token,
        CREATE_CONNECTION,
        json!({"input": {"workspaceId": workspace, "connector": "http", "name": name,
            "credentials": {"kind": "bearer", "token": "s3cret-value"}}}),
    )
    .await
}

fn quotas_command(app: &TestApp, args: &[&str]) -> String {
    let mut command = binary();
    command
        .arg("quotas")
        .args(args)
        .arg("--data-dir")
        .arg(app.data_path());
    if let Some(url) = app.database_url() {
        command.arg("--database-url").arg(url);
    }
    let output = command.output().expect("run automationos quotas");
    assert!(
        output.status.success(),
        "quotas {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn members_are_refused_past_the_quota_and_only_there() {
    let app = TestApp::builder()
        .env("AOS_QUOTA_MEMBERS", "3")
        .spawn()
        .await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace = app.create_workspace(token, "Team").await;
    let other = app.create_workspace(token, "Other").await;
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        app.sign_up(email, "Someone").await;
    }
    let add = "mutation($input: AddMemberInput!) { addMember(input: $input) { role } }";

    for email in ["a@example.com", "b@example.com"] {
        let added = app
            .gql_as(
                token,
                add,
                json!({"input": {"workspaceId": workspace, "email": email, "role": "EDITOR"}}),
            )
            .await;
        assert_eq!(data(&added)["addMember"]["role"], "EDITOR", "{added}");
    }
    let usage = usage_of(&app, token, &workspace, "members").await;
    assert_eq!(usage["used"], 3, "the owner and two members: {usage}");
    assert_eq!(usage["limit"], 3);
    assert_eq!(usage["resetsAt"], Value::Null, "members are not per period");

    let refused = app
        .gql_as(
            token,
            add,
            json!({"input": {"workspaceId": workspace, "email": "c@example.com", "role": "VIEWER"}}),
        )
        .await;
    assert_quota_exceeded(&refused, "members", 3);
    assert_eq!(
        usage_of(&app, token, &workspace, "members").await["used"],
        3,
        "the refused member was not added"
    );

    let elsewhere = app
        .gql_as(
            token,
            add,
            json!({"input": {"workspaceId": other, "email": "c@example.com", "role": "VIEWER"}}),
        )
        .await;
    assert_eq!(
        data(&elsewhere)["addMember"]["role"],
        "VIEWER",
        "another workspace has its own count"
    );
}

#[tokio::test]
async fn connections_are_refused_past_the_quota_and_deleting_one_makes_room() {
    let app = TestApp::builder()
        .env("AOS_QUOTA_CONNECTIONS", "2")
        .spawn()
        .await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace = app.create_workspace(token, "Team").await;

    let first = create_connection(&app, token, &workspace, "one").await;
    let first_id = string_at(&data(&first)["createConnection"]["id"]);
    data(&create_connection(&app, token, &workspace, "two").await);
    let refused = create_connection(&app, token, &workspace, "three").await;
    assert_quota_exceeded(&refused, "connections", 2);
    assert!(
        !refused.to_string().contains("s3cret-value"),
        "a refusal never echoes credentials"
    );

    let deleted = app
        .gql_as(token, DELETE_CONNECTION, json!({"input": {"id": first_id}}))
        .await;
    assert_eq!(data(&deleted)["deleteConnection"], true);
    let again = create_connection(&app, token, &workspace, "three").await;
    assert!(
        data(&again)["createConnection"]["id"].is_string(),
        "{again}"
    );
    let usage = usage_of(&app, token, &workspace, "connections").await;
    assert_eq!(
        (usage["used"].clone(), usage["limit"].clone()),
        (json!(2), json!(2))
    );
}

#[tokio::test]
async fn activations_are_refused_past_the_quota_but_reactivating_passes() {
    let app = TestApp::builder()
        .env("AOS_QUOTA_ACTIVE_WORKFLOWS", "1")
        .spawn()
        .await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace = app.create_workspace(token, "Team").await;
    let first = app
        .create_workflow(token, &workspace, "first", definitions::webhook())
        .await;
    let second = app
        .create_workflow(token, &workspace, "second", definitions::webhook())
        .await;
    let set_active = |id: &Value, active: bool| {
        app.gql_as(
            token,
            ACTIVATE,
            json!({"input": {"id": string_at(id), "active": active}}),
        )
    };

    assert_eq!(
        data(&set_active(&first["id"], true).await)["setWorkflowActive"]["active"],
        true
    );
    assert_eq!(
        data(&set_active(&first["id"], true).await)["setWorkflowActive"]["active"],
        true,
        "activating an active workflow adds nothing"
    );
    let refused = set_active(&second["id"], true).await;
    assert_quota_exceeded(&refused, "activeWorkflows", 1);
    let workflow = app
        .gql_as(
            token,
            "query($id: ID!) { workflow(id: $id) { active } }",
            json!({"id": string_at(&second["id"])}),
        )
        .await;
    assert_eq!(
        data(&workflow)["workflow"]["active"],
        false,
        "the refusal changed nothing"
    );

    data(&set_active(&first["id"], false).await);
    assert_eq!(
        data(&set_active(&second["id"], true).await)["setWorkflowActive"]["active"],
        true
    );
}

#[tokio::test]
async fn runs_per_month_refuse_graphql_and_webhook_runs_past_the_quota() {
    let app = TestApp::builder()
        .env("AOS_QUOTA_RUNS_PER_MONTH", "3")
        .spawn()
        .await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace = app.create_workspace(token, "Team").await;
    let other = app.create_workspace(token, "Other").await;
    let manual = app
        .create_workflow(token, &workspace, "manual", definitions::manual())
        .await;
    let manual_id = string_at(&manual["id"]);
    // Answered on completion: executed in place, admitted before it starts.
    let hook = app
        .create_workflow(token, &workspace, "hook", definitions::contract_example())
        .await;
    data(
        &app.gql_as(
            token,
            ACTIVATE,
            json!({"input": {"id": string_at(&hook["id"]), "active": true}}),
        )
        .await,
    );
    let hook_url = string_at(&hook["webhookUrl"]);

    // Two through GraphQL, one through the webhook: the third is the last admitted.
    for _ in 0..2 {
        let run = app.run_workflow(token, &manual_id, json!({})).await;
        app.wait_for_run(token, &string_at(&run["id"])).await;
    }
    let hooked = app
        .http()
        .post(&hook_url)
        .json(&json!({"name": "Ada", "n": 1}))
        .send()
        .await
        .expect("call the webhook");
    assert_eq!(hooked.status(), StatusCode::OK);

    let refused = app.try_run_workflow(token, &manual_id, json!({})).await;
    assert_quota_exceeded(&refused, "runsPerMonth", 3);
    let refused_hook = app
        .http()
        .post(&hook_url)
        .json(&json!({"name": "Ada", "n": 2}))
        .send()
        .await
        .expect("call the webhook");
    assert_eq!(refused_hook.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: i64 = refused_hook
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("Retry-After in seconds");
    assert!(
        (1..=31 * 24 * 3600).contains(&retry_after),
        "retry when the month ends: {retry_after}"
    );
    let body: Value = refused_hook.json().await.expect("a JSON body");
    assert_eq!(body["code"], "QUOTA_EXCEEDED", "{body}");
    assert_eq!(body["quota"], "runsPerMonth", "{body}");

    let runs = app.gql_as(token, RUNS, json!({"id": workspace})).await;
    assert_eq!(
        data(&runs)["workspace"]["runs"]["nodes"]
            .as_array()
            .map(Vec::len),
        Some(3),
        "refused runs leave nothing behind: {runs}"
    );
    let usage = usage_of(&app, token, &workspace, "runsPerMonth").await;
    assert_eq!(
        (usage["used"].clone(), usage["limit"].clone()),
        (json!(3), json!(3))
    );
    assert!(usage["resetsAt"].is_string(), "{usage}");

    let elsewhere = app
        .create_workflow(token, &other, "manual", definitions::manual())
        .await;
    let run = app
        .run_workflow(token, &string_at(&elsewhere["id"]), json!({}))
        .await;
    assert!(
        run["id"].is_string(),
        "another workspace's month is its own"
    );
}

#[tokio::test]
async fn queued_runs_are_refused_past_the_quota_and_room_returns_as_the_queue_drains() {
    // No workers: runs stay queued until a worker process would claim them.
    let app = TestApp::builder()
        .env("AOS_WORKERS", "0")
        .env("AOS_QUOTA_QUEUED_RUNS", "2")
        .spawn()
        .await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace = app.create_workspace(token, "Team").await;
    let workflow = app
        .create_workflow(token, &workspace, "manual", definitions::manual())
        .await;
    let workflow_id = string_at(&workflow["id"]);

    let first = app.run_workflow(token, &workflow_id, json!({})).await;
    app.run_workflow(token, &workflow_id, json!({})).await;
    let refused = app.try_run_workflow(token, &workflow_id, json!({})).await;
    assert_quota_exceeded(&refused, "queuedRuns", 2);
    let usage = usage_of(&app, token, &workspace, "queuedRuns").await;
    assert_eq!(
        (usage["used"].clone(), usage["limit"].clone()),
        (json!(2), json!(2))
    );

    let cancelled = app
        .gql_as(
            token,
            "mutation($input: CancelRunInput!) { cancelRun(input: $input) { status } }",
            json!({"input": {"id": string_at(&first["id"])}}),
        )
        .await;
    assert_eq!(
        data(&cancelled)["cancelRun"]["status"],
        "CANCELLED",
        "{cancelled}"
    );
    let admitted = app.try_run_workflow(token, &workflow_id, json!({})).await;
    assert!(
        admitted.get("errors").is_none(),
        "a cancelled run leaves the queue: {admitted}"
    );
}

#[tokio::test]
async fn an_override_set_with_the_cli_applies_at_once_to_its_workspace_only() {
    let app = TestApp::builder()
        .env("AOS_QUOTA_CONNECTIONS", "1")
        .spawn()
        .await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let roomy = app.create_workspace(token, "Roomy").await;
    let plain = app.create_workspace(token, "Plain").await;

    let shown = quotas_command(
        &app,
        &[
            "set",
            "--workspace",
            &roomy,
            "--quota",
            "connections=3",
            "--quota",
            "runsPerMonth=unlimited",
            "--scheduling-weight",
            "2",
        ],
    );
    assert!(shown.contains("connections=3"), "{shown}");
    assert!(shown.contains("runsPerMonth=unlimited"), "{shown}");
    assert!(shown.contains("schedulingWeight=2"), "{shown}");
    let listed = quotas_command(&app, &["show"]);
    assert!(
        listed.contains(&roomy) && !listed.contains(&plain),
        "{listed}"
    );

    for name in ["a", "b", "c"] {
        let created = create_connection(&app, token, &roomy, name).await;
        assert!(
            data(&created)["createConnection"]["id"].is_string(),
            "{created}"
        );
    }
    assert_quota_exceeded(
        &create_connection(&app, token, &roomy, "d").await,
        "connections",
        3,
    );
    data(&create_connection(&app, token, &plain, "a").await);
    assert_quota_exceeded(
        &create_connection(&app, token, &plain, "b").await,
        "connections",
        1,
    );
    let usage = usage_of(&app, token, &roomy, "runsPerMonth").await;
    assert_eq!(usage["limit"], Value::Null, "unlimited: {usage}");

    quotas_command(&app, &["clear", "--workspace", &roomy]);
    assert_quota_exceeded(
        &create_connection(&app, token, &roomy, "e").await,
        "connections",
        1,
    );
    let listed = quotas_command(&app, &["show"]);
    assert!(!listed.contains(&roomy), "{listed}");
}

#[tokio::test]
async fn bad_quota_settings_are_refused_by_the_cli_with_a_reason() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let workspace = app.create_workspace(&owner.access_token, "Team").await;
    for bad in [
        vec!["--quota", "connections=0"],
        vec!["--quota", "seats=3"],
        vec!["--quota", "members"],
        vec!["--running-runs", "0"],
        vec![],
    ] {
        let mut command = binary();
        command
            .args(["quotas", "set", "--workspace", &workspace])
            .args(&bad)
            .arg("--data-dir")
            .arg(app.data_path());
        if let Some(url) = app.database_url() {
            command.arg("--database-url").arg(url);
        }
        let output = command.output().expect("run automationos quotas");
        assert!(!output.status.success(), "{bad:?} was accepted");
        assert!(!output.stderr.is_empty(), "{bad:?} says why");
    }
    let listed = quotas_command(&app, &["show"]);
    assert!(!listed.contains(&workspace), "nothing was stored: {listed}");
}

#[tokio::test]
async fn an_unlimited_month_still_counts_every_run_in_usage() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace = app.create_workspace(token, "Team").await;
    let in_place = app
        .create_workflow(
            token,
            &workspace,
            "in place",
            definitions::contract_example(),
        )
        .await;
    let queued = app
        .create_workflow(token, &workspace, "queued", definitions::webhook())
        .await;
    for workflow in [&in_place, &queued] {
        data(
            &app.gql_as(
                token,
                ACTIVATE,
                json!({"input": {"id": string_at(&workflow["id"]), "active": true}}),
            )
            .await,
        );
    }
    for workflow in [&in_place, &in_place, &in_place, &queued, &queued] {
        let response = app
            .http()
            .post(string_at(&workflow["webhookUrl"]))
            .json(&json!({"name": "Ada", "n": 1}))
            .send()
            .await
            .expect("call the webhook");
        assert!(response.status().is_success(), "{}", response.status());
    }
    // Runs executed in place are written to the month's count in batches: wait for them.
    let mut usage = Value::Null;
    for _ in 0..100 {
        usage = usage_of(&app, token, &workspace, "runsPerMonth").await;
        if usage["used"] == 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(usage["used"], 5, "every run is counted: {usage}");
    assert_eq!(usage["limit"], Value::Null, "{usage}");
}

#[tokio::test]
async fn two_servers_on_one_database_share_every_quota() {
    let Some(database) = TestDatabase::create_if_configured().await else {
        eprintln!("skipped: two servers need AOS_TEST_DATABASE_URL");
        return;
    };
    let spawn = || {
        TestApp::builder()
            .env("AOS_MASTER_KEY", MASTER_KEY)
            .env("AOS_QUOTA_CONNECTIONS", "3")
            .data_dir(DataDir::new())
            .database(None)
            .arg("--database-url")
            .arg(&database.url)
            .spawn()
    };
    let first = spawn().await;
    let second = spawn().await;
    let owner = first.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace = first.create_workspace(token, "Shared").await;

    // Six concurrent attempts, three on each node: exactly three are admitted.
    let names: Vec<String> = (0..6).map(|index| format!("c{index}")).collect();
    let attempts = names.iter().enumerate().map(|(index, name)| {
        let app = if index % 2 == 0 { &first } else { &second };
        create_connection(app, token, &workspace, name)
    });
    let results = futures::future::join_all(attempts).await;
    let admitted = results
        .iter()
        .filter(|response| response.get("errors").is_none())
        .count();
    assert_eq!(admitted, 3, "{results:?}");
    for refused in results
        .iter()
        .filter(|response| response.get("errors").is_some())
    {
        assert_quota_exceeded(refused, "connections", 3);
    }
}
