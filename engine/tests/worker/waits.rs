//! A delay puts its run back in the queue until it is due, holding no worker, and counts
//! from the step's first start whoever resumes it; what was decided before the sleep (a
//! branch, the skips it caused) is replayed, not journaled again.

use std::time::Duration;

use aos_domain::run::{RunStatus, StepStatus};
use aos_persistence::SeaStore;
use serde_json::json;

use crate::harness::Harness;
use crate::support::on_every_backend;

on_every_backend!(a_delay_sleeps_then_completes);

const DELAY_MS: i64 = 50;

async fn a_delay_sleeps_then_completes(store: SeaStore) {
    let t = Harness::new(store).await;
    let run_id = t
        .start(
            json!({
                "nodes": [
                    {"id": "start", "type": "trigger.manual"},
                    {"id": "check", "type": "if", "config": {"condition": "{{ trigger.go }}"}},
                    {"id": "other", "type": "set", "config": {"fields": {"other": true}}},
                    {"id": "wait", "type": "delay", "config": {"ms": DELAY_MS}},
                    {"id": "after", "type": "set", "config": {"fields": {"waited": "{{ steps.wait.x }}"}}}
                ],
                "edges": [
                    {"from": "start", "to": "check"},
                    {"from": "check", "to": "wait", "branch": "true"},
                    {"from": "check", "to": "other", "branch": "false"},
                    {"from": "wait", "to": "after"}
                ]
            }),
            json!({"x": 1, "go": true}),
        )
        .await;

    t.drive(run_id).await;

    let wait = t.step(run_id, "wait").await;
    assert_eq!(wait.status, StepStatus::Running);
    assert_eq!(t.run(run_id).await.status, RunStatus::Running);
    let started_at = wait.started_at.expect("started");
    let due_ms = started_at.timestamp_millis() + DELAY_MS;
    assert!(
        t.claim_at("w2", due_ms - 1).await.is_none(),
        "asleep until the delay is over"
    );
    // The delay compares with the clock, so let the real time pass before resuming.
    let remaining = due_ms - chrono::Utc::now().timestamp_millis();
    if let Ok(remaining) = u64::try_from(remaining) {
        tokio::time::sleep(Duration::from_millis(remaining + 1)).await;
    }
    let resumed = t.claim_at("w2", due_ms).await.expect("claimable when due");
    assert_eq!(resumed.run.id, run_id);
    t.engine.drive(resumed).await.expect("drive");

    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.output, Some(json!({"waited": 1})));
    let wait = t.step(run_id, "wait").await;
    assert_eq!(wait.status, StepStatus::Succeeded);
    assert_eq!(
        wait.output,
        Some(json!({"x": 1, "go": true})),
        "a delay passes its input on"
    );
    assert_eq!(t.step(run_id, "other").await.status, StepStatus::Skipped);
    assert_eq!(
        wait.started_at,
        Some(started_at),
        "one start, across the sleep"
    );
    t.assert_events(
        run_id,
        &[
            "RUN_QUEUED",
            "RUN_STARTED",
            "STEP_STARTED start",
            "STEP_SUCCEEDED start",
            "STEP_STARTED check",
            "STEP_SUCCEEDED check",
            "STEP_SKIPPED other",
            "STEP_STARTED wait",
            "STEP_SUCCEEDED wait",
            "STEP_STARTED after",
            "STEP_SUCCEEDED after",
            "RUN_SUCCEEDED",
        ],
    )
    .await;
}
