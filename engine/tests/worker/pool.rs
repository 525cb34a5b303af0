//! The worker pool: workers claim and finish queued runs on their own, including runs
//! that sleep and come due; at shutdown they stop claiming, and one driving a run
//! journals its current step and hands the run back to the queue.

use std::time::Duration;

use aos_domain::run::{RunId, RunStatus, StepStatus};
use aos_engine::code::CodeLimits;
use aos_engine::worker::EngineConfig;
use aos_persistence::SeaStore;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Harness, config, now_ms};
use crate::support::on_every_backend;

on_every_backend!(
    the_pool_runs_queued_runs_to_completion,
    shutdown_hands_a_run_back_after_its_current_step,
    workers_stop_when_the_shutdown_sender_is_dropped,
);

/// Only a hang reaches it: this is no speed assertion.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn pool_config(concurrency: usize) -> EngineConfig {
    EngineConfig {
        concurrency,
        ..config()
    }
}

async fn stop(workers: JoinSet<()>) {
    tokio::time::timeout(HANG_GUARD, workers.join_all())
        .await
        .expect("the workers stop");
}

async fn until(t: &Harness, runs: &[RunId], done: impl Fn(RunStatus) -> bool) {
    tokio::time::timeout(HANG_GUARD, async {
        loop {
            let mut all = true;
            for run_id in runs {
                all &= done(t.run(*run_id).await.status);
            }
            if all {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the runs get there");
}

async fn the_pool_runs_queued_runs_to_completion(store: SeaStore) {
    let t = Harness::with(store, pool_config(2), CodeLimits::default()).await;
    let quick = t
        .workflow(json!({
            "nodes": [
                {"id": "start", "type": "trigger.manual"},
                {"id": "double", "type": "set", "config": {"fields": {"n": "{{ trigger.n * 2 }}"}}}
            ],
            "edges": [{"from": "start", "to": "double"}]
        }))
        .await;
    let sleepy = t
        .workflow(json!({
            "nodes": [
                {"id": "start", "type": "trigger.manual"},
                {"id": "wait", "type": "delay", "config": {"ms": 30}},
                {"id": "double", "type": "set", "config": {"fields": {"n": "{{ trigger.n * 2 }}"}}}
            ],
            "edges": [{"from": "start", "to": "wait"}, {"from": "wait", "to": "double"}]
        }))
        .await;
    let mut runs = Vec::new();
    for n in 0..5 {
        let workflow = if n % 2 == 0 { &quick } else { &sleepy };
        runs.push((t.enqueue(workflow, json!({"n": n})).await, n));
    }
    let (shutdown, stopped) = watch::channel(false);

    let workers = t.engine.spawn_workers(stopped);
    t.engine.wake();
    let ids: Vec<RunId> = runs.iter().map(|(id, _)| *id).collect();
    until(&t, &ids, RunStatus::is_terminal).await;
    shutdown.send(true).expect("the workers listen");
    stop(workers).await;

    for (run_id, n) in runs {
        let run = t.run(run_id).await;
        assert_eq!(run.status, RunStatus::Succeeded, "run {n}");
        assert_eq!(run.output, Some(json!({"n": n * 2})));
        let events = t.events(run_id).await;
        assert!(
            events.iter().map(|e| e.seq).eq(1..=events.len() as i64),
            "contiguous"
        );
        assert_eq!(t.sink.of(run_id), events[1..]);
    }
}

async fn shutdown_hands_a_run_back_after_its_current_step(store: SeaStore) {
    let t = Harness::with(store, pool_config(1), CodeLimits::default()).await;
    let server = MockServer::start().await;
    // Slow enough that the shutdown arrives while the request is in flight.
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let run_id = t
        .start(
            json!({
                "nodes": [
                    {"id": "start", "type": "trigger.manual"},
                    {"id": "call", "type": "http.request", "config": {"method": "GET", "url": server.uri()}},
                    {"id": "after", "type": "set", "config": {"fields": {"status": "{{ steps.call.status }}"}}}
                ],
                "edges": [{"from": "start", "to": "call"}, {"from": "call", "to": "after"}]
            }),
            json!({}),
        )
        .await;
    let (shutdown, stopped) = watch::channel(false);
    let workers = t.engine.spawn_workers(stopped);
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
    .expect("the worker sends the request");

    shutdown.send(true).expect("the worker listens");
    stop(workers).await;

    assert_eq!(t.run(run_id).await.status, RunStatus::Running);
    assert_eq!(
        t.step(run_id, "call").await.status,
        StepStatus::Succeeded,
        "the step in flight was finished and journaled"
    );
    assert!(
        t.steps(run_id)
            .await
            .iter()
            .all(|step| step.node_id != "after"),
        "nothing started after the shutdown"
    );
    let resumed = t
        .claim_at("w2", now_ms())
        .await
        .expect("handed back: claimable at once, not after its lease");
    t.engine
        .drive(resumed)
        .await
        .expect("another worker finishes it");
    assert_eq!(t.run(run_id).await.output, Some(json!({"status": 200})));
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
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        1
    );
}

async fn workers_stop_when_the_shutdown_sender_is_dropped(store: SeaStore) {
    let t = Harness::with(store, pool_config(2), CodeLimits::default()).await;
    let (shutdown, stopped) = watch::channel(false);
    let workers = t.engine.spawn_workers(stopped);

    drop(shutdown);

    stop(workers).await;
}
