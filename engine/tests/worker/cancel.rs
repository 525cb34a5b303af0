//! Cancelling: a claimed run ends CANCELLED at its worker's next write (at the latest
//! before its next side effect; pure steps run on to that write, so a run of pure steps
//! that is already executing ends as it would have), a run
//! sleeping in a retry backoff is woken to be cancelled, and a queued run nobody holds is
//! cancelled by the store at once.

use aos_domain::ports::{CancelOutcome, RunStore};
use aos_domain::run::{RunStatus, StepStatus};
use aos_persistence::SeaStore;
use chrono::Utc;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Harness, LATER_MS, LEASE_MS, now_ms};
use crate::support::on_every_backend;

on_every_backend!(
    a_claimed_run_is_cancelled_before_its_next_side_effect,
    a_run_sleeping_in_a_backoff_is_woken_and_cancelled,
    a_queued_run_nobody_holds_is_cancelled_at_once,
    a_queued_run_cancelled_while_held_ends_without_starting,
);

fn linear() -> serde_json::Value {
    json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual"},
            {"id": "greet", "type": "set", "config": {"fields": {"hello": true}}}
        ],
        "edges": [{"from": "start", "to": "greet"}]
    })
}

async fn a_claimed_run_is_cancelled_before_its_next_side_effect(store: SeaStore) {
    let t = Harness::new(store).await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let run_id = t
        .start(
            json!({
                "nodes": [
                    {"id": "start", "type": "trigger.manual"},
                    {"id": "greet", "type": "set", "config": {"fields": {"hello": true}}},
                    {"id": "call", "type": "http.request",
                     "config": {"method": "POST", "url": server.uri()}}
                ],
                "edges": [{"from": "start", "to": "greet"}, {"from": "greet", "to": "call"}]
            }),
            json!({}),
        )
        .await;
    let claimed = t.claim(run_id).await;
    let outcome = t
        .store
        .request_cancel(&t.scope, run_id, Utc::now())
        .await
        .expect("request a cancel");
    assert!(
        matches!(outcome, CancelOutcome::Requested(_)),
        "{outcome:?}"
    );

    t.engine.drive(claimed).await.expect("drive");

    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Cancelled);
    assert!(run.finished_at.is_some());
    assert!(
        server
            .received_requests()
            .await
            .expect("recorded")
            .is_empty(),
        "the side effect never happened"
    );
    assert_eq!(t.step(run_id, "call").await.status, StepStatus::Failed);
    t.assert_events(
        run_id,
        &[
            "RUN_QUEUED",
            "RUN_STARTED",
            "STEP_STARTED start",
            "STEP_SUCCEEDED start",
            "STEP_STARTED greet",
            "STEP_SUCCEEDED greet",
            "STEP_STARTED call",
            "STEP_FAILED call",
            "RUN_CANCELLED",
        ],
    )
    .await;
}

async fn a_run_sleeping_in_a_backoff_is_woken_and_cancelled(store: SeaStore) {
    let t = Harness::new(store).await;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let run_id = t
        .start(
            json!({
                "nodes": [
                    {"id": "start", "type": "trigger.manual"},
                    {"id": "call", "type": "http.request", "config": {"method": "GET", "url": server.uri()},
                     "retry": {"maxAttempts": 3, "initialIntervalMs": 3_600_000}}
                ],
                "edges": [{"from": "start", "to": "call"}]
            }),
            json!({}),
        )
        .await;
    t.drive(run_id).await;
    assert_eq!(t.step(run_id, "call").await.status, StepStatus::Retrying);
    assert!(
        t.claim_at("w2", now_ms() + LATER_MS).await.is_none(),
        "asleep for at least half an hour"
    );

    let outcome = t
        .store
        .request_cancel(&t.scope, run_id, Utc::now())
        .await
        .expect("request a cancel");

    assert!(
        matches!(outcome, CancelOutcome::Requested(_)),
        "{outcome:?}"
    );
    let woken = t.claim(run_id).await;
    assert!(woken.run.cancel_requested);
    t.engine.drive(woken).await.expect("drive");
    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Cancelled);
    let call = t.step(run_id, "call").await;
    assert_eq!(
        (call.status, call.attempt, call.error.as_deref()),
        (StepStatus::Failed, 1, Some("the run was cancelled"))
    );
    assert_eq!(call.finish_order, Some(2), "after the trigger");
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        1,
        "no attempt after the cancel"
    );
    t.assert_events(
        run_id,
        &[
            "RUN_QUEUED",
            "RUN_STARTED",
            "STEP_STARTED start",
            "STEP_SUCCEEDED start",
            "STEP_STARTED call",
            "STEP_RETRYING call",
            "STEP_FAILED call",
            "RUN_CANCELLED",
        ],
    )
    .await;
}

async fn a_queued_run_nobody_holds_is_cancelled_at_once(store: SeaStore) {
    let t = Harness::new(store).await;
    let run_id = t.start(linear(), json!({})).await;

    let outcome = t
        .store
        .request_cancel(&t.scope, run_id, Utc::now())
        .await
        .expect("cancel");

    let CancelOutcome::Cancelled { run, events } = outcome else {
        panic!("an unheld queued run is cancelled by the store: {outcome:?}");
    };
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(events.len(), 1);
    assert!(t.claim_at("w1", now_ms() + LATER_MS).await.is_none());
    let stored = t
        .assert_stored_events(run_id, &["RUN_QUEUED", "RUN_CANCELLED"])
        .await;
    assert_eq!(stored[1..], events[..], "the store returns what it wrote");
    assert!(t.sink.of(run_id).is_empty(), "no worker was involved");
}

/// Its first worker claimed it and vanished before starting it; the next one finds the
/// request and ends the run without a `RUN_STARTED` it never had.
async fn a_queued_run_cancelled_while_held_ends_without_starting(store: SeaStore) {
    let t = Harness::new(store).await;
    let run_id = t.start(linear(), json!({})).await;
    t.claim_at("w1", now_ms()).await.expect("w1 claims");
    let outcome = t
        .store
        .request_cancel(&t.scope, run_id, Utc::now())
        .await
        .expect("request a cancel");
    assert!(
        matches!(outcome, CancelOutcome::Requested(_)),
        "{outcome:?}"
    );
    let next = t
        .claim_at("w2", now_ms() + LEASE_MS + LATER_MS)
        .await
        .expect("claimable once w1's lease ran out");
    assert_eq!(
        (next.run.status, next.run.cancel_requested),
        (RunStatus::Queued, true)
    );

    t.engine.drive(next).await.expect("drive");

    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(run.started_at, None);
    t.assert_events(run_id, &["RUN_QUEUED", "RUN_CANCELLED"])
        .await;
}
