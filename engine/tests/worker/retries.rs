//! Retries: a failed attempt puts the run to sleep for its backoff (holding no worker),
//! the next claim makes the next attempt with the same idempotency key, and the step
//! fails for good after `maxAttempts`.

use aos_domain::run::{RunStatus, StepStatus};
use aos_persistence::SeaStore;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Harness, now_ms};
use crate::support::on_every_backend;

on_every_backend!(
    a_failing_request_is_retried_until_it_succeeds,
    a_step_fails_the_run_after_its_last_attempt,
);

fn calling(server: &MockServer, max_attempts: u32) -> Value {
    json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual"},
            {"id": "call", "type": "http.request",
             "config": {"method": "POST", "url": format!("{}/flaky", server.uri()), "body": {"n": "{{ trigger.n }}"}},
             "retry": {"maxAttempts": max_attempts, "initialIntervalMs": 10}}
        ],
        "edges": [{"from": "start", "to": "call"}]
    })
}

async fn idempotency_keys(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .expect("recording is on")
        .iter()
        .map(|request| {
            request
                .headers
                .get("idempotency-key")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("<none>")
                .to_owned()
        })
        .collect()
}

async fn a_failing_request_is_retried_until_it_succeeds(store: SeaStore) {
    let t = Harness::new(store).await;
    let server = MockServer::start().await;
    // The first mounted mock answers first, for as long as it may.
    Mock::given(method("POST"))
        .and(path("/flaky"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/flaky"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&server)
        .await;
    let run_id = t.start(calling(&server, 3), json!({"n": 1})).await;

    t.drive(run_id).await;

    let call = t.step(run_id, "call").await;
    assert_eq!((call.status, call.attempt), (StepStatus::Retrying, 1));
    assert_eq!(call.error.as_deref(), Some("the server answered HTTP 500"));
    assert_eq!(t.run(run_id).await.status, RunStatus::Running);
    let failed_at_ms = call.started_at.expect("started").timestamp_millis();
    assert!(
        t.claim_at("w2", failed_at_ms).await.is_none(),
        "asleep during its backoff"
    );

    t.drive(run_id).await;
    let call = t.step(run_id, "call").await;
    assert_eq!((call.status, call.attempt), (StepStatus::Retrying, 2));

    t.drive(run_id).await;

    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    let output = run.output.expect("an output");
    assert_eq!(
        (&output["status"], &output["body"]),
        (&json!(200), &json!({"ok": true}))
    );
    let call = t.step(run_id, "call").await;
    assert_eq!((call.status, call.attempt), (StepStatus::Succeeded, 3));
    assert_eq!(
        idempotency_keys(&server).await,
        vec![format!("{run_id}:call"); 3],
        "every attempt carries the step's key"
    );
    let events = t
        .assert_events(
            run_id,
            &[
                "RUN_QUEUED",
                "RUN_STARTED",
                "STEP_STARTED start",
                "STEP_SUCCEEDED start",
                "STEP_STARTED call",
                "STEP_RETRYING call",
                "STEP_STARTED call",
                "STEP_RETRYING call",
                "STEP_STARTED call",
                "STEP_SUCCEEDED call",
                "RUN_SUCCEEDED",
            ],
        )
        .await;
    let attempts: Vec<(&str, Value, Value)> = events
        .iter()
        .filter(|event| event.node_id.as_deref() == Some("call"))
        .map(|event| {
            let data = event.data.clone().unwrap_or_default();
            (
                event.kind.as_str(),
                data["attempt"].clone(),
                data["nextAttempt"].clone(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [
            ("STEP_STARTED", json!(1), Value::Null),
            ("STEP_RETRYING", json!(1), json!(2)),
            ("STEP_STARTED", json!(2), Value::Null),
            ("STEP_RETRYING", json!(2), json!(3)),
            ("STEP_STARTED", json!(3), Value::Null),
            ("STEP_SUCCEEDED", json!(3), Value::Null),
        ]
    );
    let backoffs: Vec<u64> = events
        .iter()
        .filter_map(|event| event.data.as_ref()?.get("delayMs")?.as_u64())
        .collect();
    assert!(
        backoffs
            .iter()
            .zip([10, 20])
            .all(|(ms, max)| (max / 2..=max).contains(ms)),
        "equal jitter around 10 ms, then 20 ms: {backoffs:?}"
    );
}

async fn a_step_fails_the_run_after_its_last_attempt(store: SeaStore) {
    let t = Harness::new(store).await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let run_id = t.start(calling(&server, 2), json!({"n": 1})).await;

    t.drive_times(run_id, 2).await;

    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        run.error.as_deref(),
        Some("call: the server answered HTTP 500")
    );
    let call = t.step(run_id, "call").await;
    assert_eq!((call.status, call.attempt), (StepStatus::Failed, 2));
    assert_eq!(idempotency_keys(&server).await.len(), 2);
    assert!(
        t.claim_at("w2", now_ms() + 3_600_000).await.is_none(),
        "a finished run left the queue"
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
            "STEP_STARTED call",
            "STEP_FAILED call",
            "RUN_FAILED",
        ],
    )
    .await;
}
