//! Request rate limits, against the real binary.
//!
//! Invariants protected here: a workspace over its limit is refused with a retry hint
//! (`RATE_LIMITED` with `extensions.retryAfterMs` inside GraphQL, HTTP 429 with
//! `Retry-After` before it) while another workspace's requests pass; webhook calls count
//! against their workflow's workspace, unknown webhook keys against the caller's IP and no
//! workspace; an instance administrator's override (`automationos limits set`) applies
//! without a restart; with Redis, two servers share one budget.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{
    DataDir, TestApp, TestDatabase, binary, data, definitions, first_error, string_at,
};

const WORKSPACE: &str = "query($id: ID!) { workspace(id: $id) { id } }";
const ACTIVATE: &str =
    "mutation($input: SetWorkflowActiveInput!) { setWorkflowActive(input: $input) { active } }";
const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

async fn limited_app(rps: &str, burst: &str) -> TestApp {
    TestApp::builder()
        .env("AOS_RATE_LIMIT_RPS", rps)
        .env("AOS_RATE_LIMIT_BURST", burst)
        .spawn()
        .await
}

/// Whether `response` is refused for its rate, checking the retry hint when it is.
fn is_rate_limited(response: &Value) -> bool {
    if response.get("errors").is_none() {
        return false;
    }
    let error = first_error(response);
    if error["extensions"]["code"] != "RATE_LIMITED" {
        return false;
    }
    let retry_after_ms = error["extensions"]["retryAfterMs"].as_u64();
    assert!(
        retry_after_ms.is_some_and(|ms| ms > 0 && ms <= 1000),
        "retryAfterMs within one emission interval: {response}"
    );
    true
}

fn retry_after_secs(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("a 429 carries Retry-After in seconds")
}

#[tokio::test]
async fn a_workspace_over_its_limit_is_refused_while_another_is_not() {
    let app = limited_app("1", "5").await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let busy = app.create_workspace(token, "Busy").await;
    let quiet = app.create_workspace(token, "Quiet").await;

    let mut refused = 0;
    for _ in 0..12 {
        let response = app.gql_as(token, WORKSPACE, json!({"id": busy})).await;
        if is_rate_limited(&response) {
            refused += 1;
        } else {
            assert_eq!(data(&response)["workspace"]["id"], json!(busy));
        }
    }
    assert!(
        refused >= 5,
        "a burst of five (plus refill) admits at most 7 of 12, refused {refused}"
    );

    for _ in 0..4 {
        let response = app.gql_as(token, WORKSPACE, json!({"id": quiet})).await;
        assert_eq!(
            data(&response)["workspace"]["id"],
            json!(quiet),
            "{response}"
        );
    }
}

#[tokio::test]
async fn an_api_token_over_its_workspace_limit_gets_429_before_graphql_runs() {
    let app = limited_app("1", "4").await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let workspace = app.create_workspace(&owner.access_token, "Acme").await;
    let api_token = app
        .create_token(&owner.access_token, &workspace, &["WORKFLOWS_READ"])
        .await;

    let body = json!({"query": WORKSPACE, "variables": {"id": workspace}});
    let mut refusal = None;
    for _ in 0..10 {
        let response = app.post_graphql(Some(&api_token.token), &body).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            refusal = Some(response);
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
    }
    let refusal = refusal.expect("the token's workspace runs out of its burst of four");
    assert!(retry_after_secs(&refusal) >= 1);
    let body: Value = refusal.json().await.expect("a JSON body");
    assert!(is_rate_limited(&body), "{body}");
}

/// An active webhook workflow (answering at once) in a new workspace, and its URL.
async fn active_hook(app: &TestApp, email: &str) -> (String, String) {
    let owner = app.sign_up(email, "Owner").await;
    let workspace = app.create_workspace(&owner.access_token, "Hooks").await;
    let workflow = app
        .create_workflow(
            &owner.access_token,
            &workspace,
            "hook",
            definitions::webhook(),
        )
        .await;
    data(
        &app.gql_as(
            &owner.access_token,
            ACTIVATE,
            json!({"input": {"id": string_at(&workflow["id"]), "active": true}}),
        )
        .await,
    );
    (workspace, string_at(&workflow["webhookUrl"]))
}

#[tokio::test]
async fn webhook_calls_over_the_workspace_limit_get_429_with_retry_after() {
    let app = limited_app("1", "6").await;
    let (_, url) = active_hook(&app, "owner@example.com").await;

    let mut accepted = 0;
    let mut retry_after = None;
    for _ in 0..15 {
        let response = app
            .http()
            .post(&url)
            .json(&json!({"n": 1}))
            .send()
            .await
            .expect("call the webhook");
        match response.status() {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                retry_after = Some(retry_after_secs(&response));
                let body: Value = response.json().await.expect("a JSON body");
                assert!(
                    body["retryAfterMs"].as_u64().is_some_and(|ms| ms > 0),
                    "{body}"
                );
            }
            other => panic!("unexpected {other} from the webhook"),
        }
    }
    assert!(accepted >= 1, "the first calls start runs");
    assert!(
        retry_after.is_some_and(|secs| secs >= 1),
        "accepted {accepted} of 15"
    );
}

#[tokio::test]
async fn unknown_webhook_keys_are_limited_per_ip_and_spend_no_workspace_budget() {
    let app = limited_app("1", "5").await;
    let (_, url) = active_hook(&app, "owner@example.com").await;

    let mut refused = false;
    for attempt in 0..15 {
        let response = app
            .http()
            .post(app.url(&format!("/hooks/guess-{attempt}")))
            .send()
            .await
            .expect("probe a webhook key");
        match response.status() {
            StatusCode::NOT_FOUND => {}
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(retry_after_secs(&response) >= 1);
                refused = true;
            }
            other => panic!("unexpected {other} for an unknown key"),
        }
    }
    assert!(
        refused,
        "probing fifteen keys at once exceeds the IP's burst of five"
    );

    let response = app
        .http()
        .post(&url)
        .json(&json!({}))
        .send()
        .await
        .expect("call the real webhook");
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "the workspace's budget is intact"
    );
}

fn limits_command(app: &TestApp, args: &[&str]) -> String {
    let mut command = binary();
    command
        .arg("limits")
        .args(args)
        .arg("--data-dir")
        .arg(app.data_path());
    if let Some(url) = app.database_url() {
        command.arg("--database-url").arg(url);
    }
    let output = command.output().expect("run automationos limits");
    assert!(
        output.status.success(),
        "limits {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn an_override_set_with_the_cli_applies_to_its_workspace_only() {
    let app = limited_app("1", "10").await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let tight = app.create_workspace(token, "Tight").await;
    let roomy = app.create_workspace(token, "Roomy").await;

    limits_command(
        &app,
        &["set", "--workspace", &tight, "--rps", "1", "--burst", "2"],
    );
    limits_command(
        &app,
        &["set", "--workspace", &roomy, "--rps", "1", "--burst", "30"],
    );
    let shown = limits_command(&app, &["show"]);
    assert!(
        shown.contains(&format!("{tight}  1 requests/s  burst 2")),
        "{shown}"
    );

    let mut tight_allowed = 0;
    for _ in 0..6 {
        let response = app.gql_as(token, WORKSPACE, json!({"id": tight})).await;
        if !is_rate_limited(&response) {
            tight_allowed += 1;
        }
    }
    assert!(
        tight_allowed <= 3,
        "a burst of two admitted {tight_allowed} of 6"
    );
    for _ in 0..20 {
        let response = app.gql_as(token, WORKSPACE, json!({"id": roomy})).await;
        assert_eq!(
            data(&response)["workspace"]["id"],
            json!(roomy),
            "{response}"
        );
    }

    limits_command(&app, &["clear", "--workspace", &roomy]);
    let shown = limits_command(&app, &["show"]);
    assert!(!shown.contains(&roomy), "{shown}");
}

#[tokio::test]
async fn two_servers_sharing_redis_share_one_limit() {
    let (Some(database), Ok(redis_url)) = (
        TestDatabase::create_if_configured().await,
        std::env::var("AOS_TEST_REDIS_URL"),
    ) else {
        eprintln!("skipped: two servers need AOS_TEST_DATABASE_URL and AOS_TEST_REDIS_URL");
        return;
    };
    let spawn = |data_dir: DataDir| {
        TestApp::builder()
            .env("AOS_MASTER_KEY", MASTER_KEY)
            .env("REDIS_URL", &redis_url)
            .env("AOS_RATE_LIMIT_RPS", "1")
            .env("AOS_RATE_LIMIT_BURST", "8")
            .data_dir(data_dir)
            .database(None)
            .arg("--database-url")
            .arg(&database.url)
            .spawn()
    };
    let first = spawn(DataDir::new()).await;
    let second = spawn(DataDir::new()).await;
    let owner = first.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace = first.create_workspace(token, "Shared").await;

    let mut allowed = [0, 0];
    for round in 0..20 {
        let node = round % 2;
        let app = if node == 0 { &first } else { &second };
        let response = app.gql_as(token, WORKSPACE, json!({"id": workspace})).await;
        if !is_rate_limited(&response) {
            assert_eq!(data(&response)["workspace"]["id"], json!(workspace));
            allowed[node] += 1;
        }
    }
    let total = allowed[0] + allowed[1];
    // Each node alone would admit its own burst of eight: sixteen of twenty.
    assert!(
        (8..=10).contains(&total),
        "one shared burst of eight (plus refill), admitted {allowed:?}"
    );
    assert!(
        allowed[0] > 0 && allowed[1] > 0,
        "both nodes served: {allowed:?}"
    );
}
