//! Runs executed in place: a webhook's `onCompletion` run runs on the server that received
//! it, and is stored before its first side effect. Killed there, the server leaves a
//! leased run, which a restarted server finishes once the lease has expired, sending the
//! interrupted request again with the same `Idempotency-Key`.

use serde_json::{Value, json};

use crate::harness::{TestApp, TestAppBuilder, data, string_at};
use crate::stall::{Recorder, assert_succeeded_once, wait_until};

/// Short, so the restarted server takes the run over soon.
const LEASE_MS: &str = "1500";

fn server() -> TestAppBuilder {
    TestApp::builder()
        .arg("--http-allow-private")
        .arg("--run-lease-ms")
        .arg(LEASE_MS)
}

/// A webhook answered on completion → `call` (a POST to the recorder) → `done`.
fn hook_then_post(recorder_url: &str) -> Value {
    json!({
        "nodes": [
            {"id": "start", "type": "trigger.webhook", "config": {"respond": "onCompletion"}},
            {"id": "call", "type": "http.request", "config": {
                "method": "POST", "url": format!("{recorder_url}/deliveries"),
                "body": {"run": "{{ run.id }}"}, "timeoutMs": 120_000}},
            {"id": "done", "type": "set", "config": {"fields": {"delivery": "{{ steps.call.body.delivery }}"}}}
        ],
        "edges": [{"from": "start", "to": "call"}, {"from": "call", "to": "done"}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_run_killed_mid_step_in_place_is_finished_after_a_restart() {
    let recorder = Recorder::start();
    let app = server().spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.clone();
    let workspace_id = app.create_workspace(&token, "Acme").await;
    let workflow = app
        .create_workflow(&token, &workspace_id, "hook", hook_then_post(&recorder.url))
        .await;
    let workflow_id = string_at(&workflow["id"]);
    data(
        &app.gql_as(
            &token,
            "mutation($input: SetWorkflowActiveInput!) { setWorkflowActive(input: $input) { active } }",
            json!({"input": {"id": workflow_id, "active": true}}),
        )
        .await,
    );
    let hook_url = string_at(&workflow["webhookUrl"]);
    let caller = app.http().clone();
    // The caller gets no answer: the server dies first.
    let call = tokio::spawn(async move { caller.post(hook_url).json(&json!({})).send().await });

    wait_until("the run's request reaches the recorder", || {
        recorder.deliveries().len() == 1
    })
    .await;
    let remains = app.kill_hard();
    assert!(
        call.await.expect("the caller's task").is_err(),
        "the caller of a killed server gets no answer"
    );
    recorder.release_first();
    let app = server()
        .data_dir(remains.data_dir)
        .database(remains.database)
        .spawn()
        .await;

    let runs = app
        .gql_as(
            &token,
            "query($ws: ID!) { workspace(id: $ws) { runs(first: 5) { edges { node { id trigger } } } } }",
            json!({"ws": workspace_id}),
        )
        .await;
    let edges = data(&runs)["workspace"]["runs"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        edges.len(),
        1,
        "stored before its request went out: {edges:?}"
    );
    assert_eq!(edges[0]["node"]["trigger"], "WEBHOOK");
    let run_id = string_at(&edges[0]["node"]["id"]);
    let run = app.wait_for_run(&token, &run_id).await;
    assert_succeeded_once(&run, &run_id);
    assert_eq!(run["output"], json!({"delivery": 2}), "the repeat's answer");
    let keys: Vec<Option<String>> = recorder
        .deliveries()
        .into_iter()
        .map(|delivery| delivery.idempotency_key)
        .collect();
    let key = format!("{run_id}:call");
    assert_eq!(keys, [Some(key.clone()), Some(key)]);
}
