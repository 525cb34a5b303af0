//! Run statistics through GraphQL: `Workflow.stats` and `Workspace.usage.runs`.
//!
//! Invariants protected: runs are counted by how they ended, on the UTC day they finished,
//! whether a worker ran them or they ran in place for a webhook; the success rate is
//! succeeded / (succeeded + failed); every member may read them, a VIEWER included;
//! another workspace sees none of them (its own usage is empty, and the workflow's stats
//! are NOT_FOUND); a `since` in the future or more than 400 days back is BAD_USER_INPUT.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde_json::{Value, json};

use crate::harness::{TestApp, assert_error_code, data, definitions, string_at};

const STATS_FIELDS: &str = "since until total finished succeeded failed cancelled queued running \
    successRate timed meanDurationMs p50DurationMs p95DurationMs byStatus { status count } \
    perDay { day finished succeeded failed cancelled successRate p50DurationMs p95DurationMs }";

fn workflow_stats_query() -> String {
    format!(
        "query($id: ID!, $since: DateTime) {{ workflow(id: $id) {{ stats(since: $since) {{ {STATS_FIELDS} }} }} }}"
    )
}

fn usage_query() -> String {
    format!(
        "query($id: ID!, $since: DateTime) {{ workspace(id: $id) {{ usage {{ runs(since: $since) {{ {STATS_FIELDS} }} }} }} }}"
    )
}

async fn workflow_stats(app: &TestApp, token: &str, workflow_id: &str) -> Value {
    let response = app
        .gql_as(token, &workflow_stats_query(), json!({"id": workflow_id}))
        .await;
    data(&response)["workflow"]["stats"].clone()
}

async fn usage(app: &TestApp, token: &str, workspace_id: &str) -> Value {
    let response = app
        .gql_as(token, &usage_query(), json!({"id": workspace_id}))
        .await;
    data(&response)["workspace"]["usage"]["runs"].clone()
}

fn failing() -> Value {
    json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual", "config": {}},
            {"id": "boom", "type": "fail", "config": {"message": "no luck"}}
        ],
        "edges": [{"from": "start", "to": "boom"}]
    })
}

/// A webhook answered once its run completed: executed in place, stored already finished.
fn answered_on_completion() -> Value {
    json!({
        "nodes": [
            {"id": "hook", "type": "trigger.webhook", "config": {"respond": "onCompletion"}},
            {"id": "greet", "type": "set", "config": {"fields": {"message": "hi"}}}
        ],
        "edges": [{"from": "hook", "to": "greet"}]
    })
}

async fn run_to_the_end(app: &TestApp, token: &str, workflow_id: &str, expected: &str) {
    let queued = app.run_workflow(token, workflow_id, json!({})).await;
    let run = app.wait_for_run(token, &string_at(&queued["id"])).await;
    assert_eq!(run["status"], expected);
}

fn count(stats: &Value, status: &str) -> i64 {
    stats["byStatus"]
        .as_array()
        .and_then(|counts| counts.iter().find(|count| count["status"] == status))
        .and_then(|count| count["count"].as_i64())
        .unwrap_or_else(|| panic!("no {status} in {stats}"))
}

/// The entry of `perDay` for the UTC day `until` falls on.
fn today(stats: &Value) -> Value {
    let until: DateTime<Utc> = string_at(&stats["until"]).parse().expect("an instant");
    let day = until.format("%Y-%m-%d").to_string();
    let days = stats["perDay"].as_array().expect("perDay");
    let last = days.last().expect("today is in the window").clone();
    assert_eq!(last["day"], day.as_str(), "the window ends today");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_read_the_statistics_of_their_runs_and_nobody_else_does() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.clone();
    let workspace_id = app.create_workspace(&token, "Acme").await;
    let ok = string_at(
        &app.create_workflow(&token, &workspace_id, "ok", definitions::manual())
            .await["id"],
    );
    let boom = string_at(
        &app.create_workflow(&token, &workspace_id, "boom", failing())
            .await["id"],
    );
    let hook = app
        .create_workflow(&token, &workspace_id, "hook", answered_on_completion())
        .await;
    data(
        &app.gql_as(
            &token,
            "mutation($input: SetWorkflowActiveInput!) { setWorkflowActive(input: $input) { active } }",
            json!({"input": {"id": hook["id"], "active": true}}),
        )
        .await,
    );
    for _ in 0..3 {
        run_to_the_end(&app, &token, &ok, "SUCCEEDED").await;
    }
    for _ in 0..2 {
        run_to_the_end(&app, &token, &boom, "FAILED").await;
    }
    let answer = app
        .http()
        .post(string_at(&hook["webhookUrl"]))
        .json(&json!({"name": "Ada"}))
        .send()
        .await
        .expect("call the webhook");
    assert_eq!(answer.status(), 200, "answered once the run completed");

    let ok_stats = workflow_stats(&app, &token, &ok).await;
    let boom_stats = workflow_stats(&app, &token, &boom).await;
    let hook_stats = workflow_stats(&app, &token, &string_at(&hook["id"])).await;
    let all = usage(&app, &token, &workspace_id).await;

    assert_eq!(
        (ok_stats["succeeded"].as_i64(), ok_stats["failed"].as_i64()),
        (Some(3), Some(0))
    );
    assert_eq!(ok_stats["successRate"], 1.0);
    assert_eq!(ok_stats["timed"], 3);
    assert!(ok_stats["p50DurationMs"].is_number(), "{ok_stats}");
    assert!(ok_stats["p95DurationMs"].as_f64() >= ok_stats["p50DurationMs"].as_f64());
    assert_eq!(boom_stats["successRate"], 0.0);
    assert_eq!(count(&boom_stats, "FAILED"), 2);
    assert_eq!(
        hook_stats["succeeded"], 1,
        "a run executed in place counts too"
    );

    assert_eq!(
        (
            all["succeeded"].as_i64(),
            all["failed"].as_i64(),
            all["cancelled"].as_i64()
        ),
        (Some(4), Some(2), Some(0))
    );
    assert_eq!(
        (all["queued"].as_i64(), all["running"].as_i64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        (all["total"].as_i64(), all["finished"].as_i64()),
        (Some(6), Some(6))
    );
    let rate = all["successRate"].as_f64().expect("a rate");
    assert!((rate - 4.0 / 6.0).abs() < 1e-9, "{rate}");
    let statuses: Vec<String> = all["byStatus"]
        .as_array()
        .expect("byStatus")
        .iter()
        .map(|count| string_at(&count["status"]))
        .collect();
    assert_eq!(
        statuses,
        ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
    );
    // The default window: the last 30 days and today, from midnight UTC.
    assert_eq!(all["perDay"].as_array().map(Vec::len), Some(31));
    let since: DateTime<Utc> = string_at(&all["since"]).parse().expect("an instant");
    let until: DateTime<Utc> = string_at(&all["until"]).parse().expect("an instant");
    assert_eq!(since.time(), NaiveTime::MIN);
    assert_eq!(
        since.date_naive(),
        (until - Duration::days(30)).date_naive()
    );
    let day = today(&all);
    assert_eq!(
        (day["succeeded"].as_i64(), day["failed"].as_i64()),
        (Some(4), Some(2))
    );

    // A VIEWER reads both.
    let viewer = app
        .member(&token, &workspace_id, "viewer@example.com", "VIEWER")
        .await;
    assert_eq!(
        workflow_stats(&app, &viewer.access_token, &ok).await["succeeded"],
        3
    );
    assert_eq!(
        usage(&app, &viewer.access_token, &workspace_id).await["finished"],
        6
    );

    // Another workspace's owner sees none of it.
    let stranger = app.sign_up("stranger@example.com", "Stranger").await;
    let elsewhere = app
        .create_workspace(&stranger.access_token, "Elsewhere")
        .await;
    let theirs = usage(&app, &stranger.access_token, &elsewhere).await;
    assert_eq!(
        (theirs["total"].as_i64(), theirs["finished"].as_i64()),
        (Some(0), Some(0))
    );
    assert!(theirs["successRate"].is_null() && theirs["p95DurationMs"].is_null());
    let probe = app
        .gql_as(
            &stranger.access_token,
            &workflow_stats_query(),
            json!({"id": ok}),
        )
        .await;
    assert_error_code(&probe, "NOT_FOUND");
    let probe = app
        .gql_as(
            &stranger.access_token,
            &usage_query(),
            json!({"id": workspace_id}),
        )
        .await;
    assert_error_code(&probe, "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_since_in_the_future_or_too_far_back_is_bad_input() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.clone();
    let workspace_id = app.create_workspace(&token, "Acme").await;
    let workflow = app
        .create_workflow(&token, &workspace_id, "ok", definitions::manual())
        .await;

    for since in [
        Utc::now() + Duration::hours(1),
        Utc::now() - Duration::days(401),
    ] {
        let since = since.to_rfc3339();
        let of_workspace = app
            .gql_as(
                &token,
                &usage_query(),
                json!({"id": workspace_id, "since": since}),
            )
            .await;
        assert_error_code(&of_workspace, "BAD_USER_INPUT");
        let of_workflow = app
            .gql_as(
                &token,
                &workflow_stats_query(),
                json!({"id": workflow["id"], "since": since}),
            )
            .await;
        assert_error_code(&of_workflow, "BAD_USER_INPUT");
    }

    let year = app
        .gql_as(
            &token,
            &usage_query(),
            json!({"id": workspace_id, "since": (Utc::now() - Duration::days(365)).to_rfc3339()}),
        )
        .await;
    let days = data(&year)["workspace"]["usage"]["runs"]["perDay"]
        .as_array()
        .map(Vec::len);
    assert_eq!(days, Some(366), "a year back and today");
}
