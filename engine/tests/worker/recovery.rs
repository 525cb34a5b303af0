//! Losing a worker: a run whose worker died mid-step is resumed by another once the lease
//! runs out, repeating the interrupted side effect with the same idempotency key; a
//! worker whose lease was taken over writes nothing.

use std::time::Duration;

use aos_domain::journal::{JournalRefusal, NewRun, RunTrigger, StepRecord};
use aos_domain::ports::{QueueError, RunStore};
use aos_domain::run::{RunId, RunStatus, StepStatus};
use aos_engine::code::CodeLimits;
use aos_engine::worker::EngineConfig;
use aos_persistence::SeaStore;
use chrono::Utc;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Harness, LEASE_MS, config, now_ms};
use crate::support::on_every_backend;

on_every_backend!(
    a_run_whose_worker_died_mid_step_resumes_on_another,
    a_worker_that_lost_its_lease_writes_nothing,
    heartbeats_keep_the_lease_of_a_step_longer_than_it,
    a_run_continues_after_the_steps_it_reuses,
    a_loop_resumed_after_a_crash_skips_the_items_it_journaled,
);

/// How long to wait for something another task does; only a hang reaches it.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn call_then_set(server: &MockServer) -> Value {
    json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual"},
            {"id": "call", "type": "http.request",
             "config": {"method": "POST", "url": format!("{}/charge", server.uri()), "body": {"amount": "{{ trigger.amount }}"}}},
            {"id": "after", "type": "set", "config": {"fields": {"status": "{{ steps.call.status }}"}}}
        ],
        "edges": [{"from": "start", "to": "call"}, {"from": "call", "to": "after"}]
    })
}

async fn a_run_whose_worker_died_mid_step_resumes_on_another(store: SeaStore) {
    let t = Harness::new(store).await;
    let server = MockServer::start().await;
    // The first request hangs, as if the worker died while waiting for it.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(600)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"charged": true})))
        .mount(&server)
        .await;
    let run_id = t.start(call_then_set(&server), json!({"amount": 5})).await;
    let first = t.claim(run_id).await;
    let engine = std::sync::Arc::clone(&t.engine);
    let doomed = tokio::spawn(async move { engine.drive(first).await });
    tokio::time::timeout(HANG_GUARD, async {
        while server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the first worker sends the request");

    doomed.abort();
    assert!(doomed.await.is_err_and(|error| error.is_cancelled()));

    let call = t.step(run_id, "call").await;
    assert_eq!(
        (call.status, call.attempt),
        (StepStatus::Running, 1),
        "journaled before the request went out"
    );
    assert!(
        t.claim_at("w2", now_ms() + 1_000).await.is_none(),
        "the dead worker's lease still holds the run"
    );
    let second = t
        .claim_at("w2", now_ms() + LEASE_MS + 1_000)
        .await
        .expect("claimable once the lease ran out");
    assert_eq!(second.run.id, run_id);
    t.engine
        .drive(second)
        .await
        .expect("the second worker drives");

    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.output, Some(json!({"status": 200})));
    let requests = server.received_requests().await.expect("recording is on");
    let keys: Vec<_> = requests
        .iter()
        .map(|request| request.headers.get("idempotency-key").cloned())
        .collect();
    assert_eq!(keys.len(), 2, "sent again after the crash");
    assert!(
        keys.iter().all(
            |key| key.as_ref().and_then(|k| k.to_str().ok()) == Some(&format!("{run_id}:call"))
        ),
        "both with the step's key: {keys:?}"
    );
    let call = t.step(run_id, "call").await;
    assert_eq!(
        (call.status, call.attempt, call.finish_order),
        (StepStatus::Succeeded, 1, Some(2)),
        "a repeat of the same attempt"
    );
    assert_eq!(
        call.output.expect("output")["body"],
        json!({"charged": true})
    );
    t.assert_events(
        run_id,
        &[
            "RUN_QUEUED",
            "RUN_STARTED",
            "STEP_STARTED start",
            "STEP_SUCCEEDED start",
            "STEP_STARTED call",
            "STEP_SUCCEEDED call",
            "STEP_STARTED after",
            "STEP_SUCCEEDED after",
            "RUN_SUCCEEDED",
        ],
    )
    .await;
}

async fn a_worker_that_lost_its_lease_writes_nothing(store: SeaStore) {
    let t = Harness::new(store).await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let run_id = t.start(call_then_set(&server), json!({"amount": 5})).await;
    let now = now_ms() + 1_000;
    let stale = t
        .claim_with_lease("w1", now, 100)
        .await
        .expect("w1 claims with a short lease");
    let current = t
        .claim_with_lease("w2", now + 200, 100)
        .await
        .expect("w2 claims after it expired");

    let refused = t.engine.drive(stale).await;

    assert!(
        matches!(refused, Err(QueueError::Refused(JournalRefusal::LeaseLost))),
        "{refused:?}"
    );
    assert_eq!(t.run(run_id).await.status, RunStatus::Queued);
    assert!(t.steps(run_id).await.is_empty());
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
    t.assert_events(run_id, &["RUN_QUEUED"]).await;

    t.engine.drive(current).await.expect("w2 drives");

    assert_eq!(t.run(run_id).await.status, RunStatus::Succeeded);
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        1
    );
}

async fn heartbeats_keep_the_lease_of_a_step_longer_than_it(store: SeaStore) {
    const SHORT_LEASE_MS: i64 = 600;
    let config = EngineConfig {
        lease: Duration::from_millis(600),
        ..config()
    };
    let t = Harness::with(store, config, CodeLimits::default()).await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(1_500)))
        .mount(&server)
        .await;
    let run_id = t.start(call_then_set(&server), json!({"amount": 5})).await;
    let claimed_at = now_ms();
    let claimed = t
        .claim_with_lease("w1", claimed_at, SHORT_LEASE_MS)
        .await
        .expect("w1 claims");
    let engine = std::sync::Arc::clone(&t.engine);
    let driving = tokio::spawn(async move { engine.drive(claimed).await });
    // Past the lease of the claim and of every write before the request went out.
    tokio::time::sleep(Duration::from_millis(900)).await;

    let intruder = t.claim_at("w2", now_ms()).await;

    assert!(
        intruder.is_none(),
        "heartbeats extended the lease while the request was in flight"
    );
    tokio::time::timeout(HANG_GUARD, driving)
        .await
        .expect("the drive ends")
        .expect("the task")
        .expect("w1 kept its lease");
    assert_eq!(t.run(run_id).await.status, RunStatus::Succeeded);
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        1
    );
}

fn reused(node_id: &str, output: Value, finish_order: u32) -> StepRecord {
    let at = Utc::now();
    StepRecord {
        node_id: node_id.to_owned(),
        status: StepStatus::Succeeded,
        attempt: 1,
        input: Some(Value::Null),
        output: Some(output),
        error: None,
        branch: None,
        finish_order: Some(finish_order),
        started_at: Some(at),
        finished_at: Some(at),
    }
}

/// A `retryRun` from `x` reuses `start` (1st to finish) and `y` (3rd, after `x`): the
/// steps it executes finish after every reused one, so replaying the journal in finish
/// order stays the order it happened in.
async fn a_run_continues_after_the_steps_it_reuses(store: SeaStore) {
    let t = Harness::new(store).await;
    let workflow = t
        .workflow(json!({
            "nodes": [
                {"id": "start", "type": "trigger.manual"},
                {"id": "x", "type": "set", "config": {"fields": {"x": "{{ trigger.n + 1 }}"}}},
                {"id": "y", "type": "set", "config": {"fields": {"y": "{{ trigger.n + 2 }}"}}},
                {"id": "z", "type": "set", "config": {"fields": {"sum": "{{ steps.x.x + steps.y.y }}"}}}
            ],
            "edges": [
                {"from": "start", "to": "x"}, {"from": "start", "to": "y"}, {"from": "x", "to": "z"},
                {"from": "y", "to": "z"}
            ]
        }))
        .await;
    let run_id = RunId::generate();
    t.store
        .enqueue_run(
            &t.scope,
            NewRun {
                id: run_id,
                workflow_id: workflow.id,
                workflow_version: workflow.version,
                trigger: RunTrigger::Retry,
                input: json!({"n": 10}),
                retry_of: None,
                reused_steps: vec![
                    reused("start", json!({"n": 10}), 1),
                    reused("y", json!({"y": 12}), 3),
                ],
                queued_at: Utc::now(),
            },
        )
        .await
        .expect("queue the retry");

    t.drive(run_id).await;

    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.output, Some(json!({"sum": 23})));
    let mut orders: Vec<(String, Option<u32>)> = t
        .steps(run_id)
        .await
        .into_iter()
        .map(|step| (step.node_id, step.finish_order))
        .collect();
    orders.sort_by_key(|(_, order)| *order);
    assert_eq!(
        orders,
        [
            ("start".to_owned(), Some(1)),
            ("y".to_owned(), Some(3)),
            ("x".to_owned(), Some(4)),
            ("z".to_owned(), Some(5)),
        ]
    );
    t.assert_events(
        run_id,
        &[
            "RUN_QUEUED",
            "RUN_STARTED",
            "STEP_STARTED x",
            "STEP_SUCCEEDED x",
            "STEP_STARTED z",
            "STEP_SUCCEEDED z",
            "RUN_SUCCEEDED",
        ],
    )
    .await;
}

async fn a_loop_resumed_after_a_crash_skips_the_items_it_journaled(store: SeaStore) {
    let t = Harness::new(store).await;
    let server = MockServer::start().await;
    // Item 2's first request hangs, as if the worker died while waiting for it.
    Mock::given(method("POST"))
        .and(path("/items/2"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(600)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&server)
        .await;
    let run_id = t
        .start(
            json!({
                "nodes": [
                    {"id": "start", "type": "trigger.manual"},
                    {"id": "each", "type": "loop", "config": {
                        "items": "{{ [0, 1, 2, 3] }}",
                        "concurrency": 1,
                        "steps": [
                            {"id": "send", "type": "http.request", "config": {
                                "method": "POST", "url": format!("{}/items/{{{{ item }}}}", server.uri())}},
                            {"id": "seen", "type": "set", "config": {"fields": {"item": "{{ item }}", "status": "{{ steps.send.status }}"}}}
                        ]
                    }}
                ],
                "edges": [{"from": "start", "to": "each"}]
            }),
            json!({}),
        )
        .await;
    let first = t.claim(run_id).await;
    let engine = std::sync::Arc::clone(&t.engine);
    let doomed = tokio::spawn(async move { engine.drive(first).await });
    // Items 0 and 1 are done and journaled while item 2 hangs.
    tokio::time::timeout(HANG_GUARD, async {
        loop {
            let steps = t.steps(run_id).await;
            let journaled = steps
                .iter()
                .find(|step| step.node_id == "each")
                .and_then(|step| step.output.as_ref())
                .and_then(|output| output["doneItems"].as_object())
                .map_or(0, |done| done.len());
            if journaled == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the first worker journals items 0 and 1");

    doomed.abort();
    assert!(doomed.await.is_err_and(|error| error.is_cancelled()));
    let second = t
        .claim_at("w2", now_ms() + LEASE_MS + 1_000)
        .await
        .expect("claimable once the lease ran out");
    t.engine
        .drive(second)
        .await
        .expect("the second worker drives");

    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(
        run.output,
        Some(json!([
            {"item": 0, "status": 200},
            {"item": 1, "status": 200},
            {"item": 2, "status": 200},
            {"item": 3, "status": 200}
        ]))
    );
    let requests = server.received_requests().await.expect("recording is on");
    let sent: Vec<(String, String)> = requests
        .iter()
        .map(|request| {
            let key = request
                .headers
                .get("idempotency-key")
                .and_then(|key| key.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (request.url.path().to_owned(), key)
        })
        .collect();
    let key = |index: usize| format!("{run_id}:each:{index}:send");
    assert_eq!(
        sent,
        [
            ("/items/0".to_owned(), key(0)),
            ("/items/1".to_owned(), key(1)),
            ("/items/2".to_owned(), key(2)),
            // Only the item that was in flight is sent again, with the same key.
            ("/items/2".to_owned(), key(2)),
            ("/items/3".to_owned(), key(3)),
        ]
    );
    let logs: Vec<_> = t
        .events(run_id)
        .await
        .into_iter()
        .filter(|event| event.kind.as_str() == "STEP_LOG")
        .map(|event| event.data.expect("data")["doneItems"].clone())
        .collect();
    assert!(
        logs.first() == Some(&json!([0])) || logs.first() == Some(&json!([0, 1])),
        "progress is logged as it is journaled: {logs:?}"
    );
}
