//! How few writes a run costs: pure steps travel with the next write the run needs (a
//! side effect, a wait, its end), and a run executed in place is stored with its first
//! write, so a run of pure steps costs one write whether it was queued or not.

use std::sync::Arc;
use std::time::Duration;

use aos_domain::ports::ExecutedRun;
use aos_domain::run::{RunId, RunStatus, StepStatus};
use aos_domain::workflow::validate_definition;
use aos_engine::code::CodeLimits;
use aos_engine::worker::BUFFER_FOR;
use aos_persistence::SeaStore;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Harness, LATER_MS, config, new_run, now_ms, statuses};
use crate::support::on_every_backend;

on_every_backend!(
    a_queued_run_of_pure_steps_is_one_write,
    a_side_effect_is_journaled_before_it_and_after_it,
    pure_steps_slower_than_the_buffer_are_written_as_they_go,
    a_run_executed_in_place_is_stored_with_its_end,
    a_run_executed_in_place_is_stored_before_its_side_effect,
    a_run_executed_in_place_that_waits_continues_in_the_queue,
    a_run_executed_in_place_past_the_limit_is_handed_back,
    a_run_executed_in_place_whose_workflow_is_gone_leaves_nothing,
);

fn five_sets() -> Value {
    json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual"},
            {"id": "a", "type": "set", "config": {"fields": {"v": "{{ trigger.n + 1 }}"}}},
            {"id": "check", "type": "if", "config": {"condition": "{{ steps.a.v > 1 }}"}},
            {"id": "b", "type": "set", "config": {"fields": {"v": "{{ steps.a.v + 1 }}"}}},
            {"id": "no", "type": "set", "config": {"fields": {"v": 0}}},
            {"id": "c", "type": "code", "config": {"source": "return {v: steps.b.v * 10};"}}
        ],
        "edges": [
            {"from": "start", "to": "a"},
            {"from": "a", "to": "check"},
            {"from": "check", "to": "b", "branch": "true"},
            {"from": "check", "to": "no", "branch": "false"},
            {"from": "b", "to": "c"}
        ]
    })
}

const FIVE_SETS_EVENTS: [&str; 14] = [
    "RUN_QUEUED",
    "RUN_STARTED",
    "STEP_STARTED start",
    "STEP_SUCCEEDED start",
    "STEP_STARTED a",
    "STEP_SUCCEEDED a",
    "STEP_STARTED check",
    "STEP_SUCCEEDED check",
    "STEP_SKIPPED no",
    "STEP_STARTED b",
    "STEP_SUCCEEDED b",
    "STEP_STARTED c",
    "STEP_SUCCEEDED c",
    "RUN_SUCCEEDED",
];

async fn a_queued_run_of_pure_steps_is_one_write(store: SeaStore) {
    let t = Harness::new(store).await;
    let run_id = t.start(five_sets(), json!({"n": 1})).await;

    t.drive(run_id).await;

    assert_eq!(
        t.queue.writes(),
        1,
        "start, steps, skip and end in one write"
    );
    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.output, Some(json!({"v": 30})));
    assert!(run.started_at.is_some() && run.finished_at.is_some());
    t.assert_events(run_id, &FIVE_SETS_EVENTS).await;
    let steps = t.steps(run_id).await;
    let finish_order: Vec<_> = steps
        .iter()
        .filter(|step| step.status == StepStatus::Succeeded)
        .map(|step| (step.node_id.as_str(), step.finish_order))
        .collect();
    assert_eq!(
        finish_order,
        [
            ("start", Some(1)),
            ("a", Some(2)),
            ("check", Some(3)),
            ("b", Some(4)),
            ("c", Some(5))
        ]
    );
}

fn set_call_set(server: &MockServer) -> Value {
    json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual"},
            {"id": "before", "type": "set", "config": {"fields": {"amount": "{{ trigger.amount }}"}}},
            {"id": "call", "type": "http.request",
             "config": {"method": "POST", "url": format!("{}/charge", server.uri()),
                        "body": {"amount": "{{ steps.before.amount }}"}}},
            {"id": "after", "type": "set", "config": {"fields": {"status": "{{ steps.call.status }}"}}},
            {"id": "last", "type": "set", "config": {"fields": {"done": "{{ steps.after.status }}"}}}
        ],
        "edges": [
            {"from": "start", "to": "before"},
            {"from": "before", "to": "call"},
            {"from": "call", "to": "after"},
            {"from": "after", "to": "last"}
        ]
    })
}

async fn charging_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"charged": true})))
        .mount(&server)
        .await;
    server
}

async fn a_side_effect_is_journaled_before_it_and_after_it(store: SeaStore) {
    let t = Harness::new(store).await;
    let server = charging_server().await;
    let run_id = t.start(set_call_set(&server), json!({"amount": 5})).await;

    t.drive(run_id).await;

    // Before the request (start, `before`, `call` RUNNING), after it (its result), and
    // the end with the two `set` steps that follow.
    assert_eq!(t.queue.writes(), 3);
    assert_eq!(t.run(run_id).await.output, Some(json!({"done": 201})));
    t.assert_events(
        run_id,
        &[
            "RUN_QUEUED",
            "RUN_STARTED",
            "STEP_STARTED start",
            "STEP_SUCCEEDED start",
            "STEP_STARTED before",
            "STEP_SUCCEEDED before",
            "STEP_STARTED call",
            "STEP_SUCCEEDED call",
            "STEP_STARTED after",
            "STEP_SUCCEEDED after",
            "STEP_STARTED last",
            "STEP_SUCCEEDED last",
            "RUN_SUCCEEDED",
        ],
    )
    .await;
}

async fn pure_steps_slower_than_the_buffer_are_written_as_they_go(store: SeaStore) {
    let t = Harness::new(store).await;
    let busy_ms = BUFFER_FOR.as_millis() + 50;
    let slow =
        format!("const end = Date.now() + {busy_ms}; while (Date.now() < end) {{}} return 1;");
    let run_id = t
        .start(
            json!({
                "nodes": [
                    {"id": "start", "type": "trigger.manual"},
                    {"id": "slow", "type": "code", "config": {"source": slow}},
                    {"id": "next", "type": "set", "config": {"fields": {"v": 2}}},
                    {"id": "last", "type": "set", "config": {"fields": {"v": 3}}}
                ],
                "edges": [
                    {"from": "start", "to": "slow"},
                    {"from": "slow", "to": "next"},
                    {"from": "next", "to": "last"}
                ]
            }),
            json!({}),
        )
        .await;

    t.drive(run_id).await;

    // The slow step's result (and those before it) waited long enough to be written
    // before `next` started; `next` and `last` went with the end.
    assert_eq!(t.queue.writes(), 2);
    assert_eq!(t.run(run_id).await.status, RunStatus::Succeeded);
    let published = t.sink.of(run_id);
    let first_write: Vec<_> = published
        .iter()
        .take_while(|event| event.node_id.as_deref() != Some("next"))
        .map(|event| event.kind.as_str())
        .collect();
    assert_eq!(
        first_write,
        [
            "RUN_STARTED",
            "STEP_STARTED",
            "STEP_SUCCEEDED",
            "STEP_STARTED",
            "STEP_SUCCEEDED"
        ]
    );
}

async fn a_run_executed_in_place_is_stored_with_its_end(store: SeaStore) {
    let t = Harness::new(store).await;
    let (run_id, executed) = execute_in_place(&t, five_sets(), json!({"n": 1})).await;

    let ExecutedRun::Ended(outcome) = executed else {
        panic!("the run did not end in place: {executed:?}");
    };
    assert_eq!(outcome.status, RunStatus::Succeeded);
    assert_eq!(outcome.output, Some(json!({"v": 30})));
    assert_eq!(t.queue.writes(), 1, "stored once, with its end");
    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.output, outcome.output);
    assert!(run.started_at.is_some() && run.finished_at.is_some());
    // Everything, RUN_QUEUED included, was published by the engine this time.
    let stored = t.assert_stored_events(run_id, &FIVE_SETS_EVENTS).await;
    assert_eq!(t.sink.of(run_id), stored);
    assert_eq!(statuses(&outcome.steps), statuses(&t.steps(run_id).await));
    assert!(
        t.claim_at("w1", now_ms() + LATER_MS).await.is_none(),
        "a finished run is not claimable"
    );
}

async fn a_run_executed_in_place_is_stored_before_its_side_effect(store: SeaStore) {
    let t = Harness::new(store).await;
    let server = charging_server().await;
    let (run_id, executed) =
        execute_in_place(&t, set_call_set(&server), json!({"amount": 5})).await;

    assert!(matches!(executed, ExecutedRun::Ended(_)), "{executed:?}");
    assert_eq!(
        t.queue.writes(),
        3,
        "stored before the request, then as usual"
    );
    let requests = server.received_requests().await.expect("recorded");
    let keys: Vec<_> = requests
        .iter()
        .map(|request| request.headers.get("idempotency-key").cloned())
        .collect();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        keys[0].as_ref().and_then(|key| key.to_str().ok()),
        Some(format!("{run_id}:call").as_str())
    );
    assert_eq!(t.run(run_id).await.output, Some(json!({"done": 201})));
}

async fn a_run_executed_in_place_that_waits_continues_in_the_queue(store: SeaStore) {
    let t = Harness::new(store).await;
    let (run_id, executed) = execute_in_place(
        &t,
        json!({
            "nodes": [
                {"id": "start", "type": "trigger.manual"},
                {"id": "wait", "type": "delay", "config": {"ms": 20}},
                {"id": "after", "type": "set", "config": {"fields": {"ok": true}}}
            ],
            "edges": [{"from": "start", "to": "wait"}, {"from": "wait", "to": "after"}]
        }),
        json!({}),
    )
    .await;

    assert_eq!(executed, ExecutedRun::Continues);
    assert_eq!(t.run(run_id).await.status, RunStatus::Running);
    assert_eq!(t.step(run_id, "wait").await.status, StepStatus::Running);
    tokio::time::sleep(Duration::from_millis(30)).await;
    t.drive(run_id).await;
    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.output, Some(json!({"ok": true})));
    t.assert_stored_events(
        run_id,
        &[
            "RUN_QUEUED",
            "RUN_STARTED",
            "STEP_STARTED start",
            "STEP_SUCCEEDED start",
            "STEP_STARTED wait",
            "STEP_SUCCEEDED wait",
            "STEP_STARTED after",
            "STEP_SUCCEEDED after",
            "RUN_SUCCEEDED",
        ],
    )
    .await;
}

/// Saves a workflow of `definition` and executes a run of it in place.
async fn execute_in_place(t: &Harness, definition: Value, input: Value) -> (RunId, ExecutedRun) {
    let workflow = t.workflow(definition).await;
    let definition = Arc::new(validate_definition(&workflow.definition).expect("valid"));
    let run = new_run(&workflow, input);
    let run_id = run.id;
    let executed = t
        .engine
        .execute_now(t.scope.workspace_id(), run, definition)
        .await
        .expect("executed");
    (run_id, executed)
}

async fn a_run_executed_in_place_past_the_limit_is_handed_back(store: SeaStore) {
    let mut none_in_place = config();
    none_in_place.in_place_limit = 0;
    let t = Harness::with(store, none_in_place, CodeLimits::default()).await;
    let workflow = t.workflow(five_sets()).await;
    let definition = Arc::new(validate_definition(&workflow.definition).expect("valid"));
    let run = new_run(&workflow, json!({"n": 1}));

    let executed = t
        .engine
        .execute_now(t.scope.workspace_id(), run.clone(), definition)
        .await
        .expect("answered");

    assert_eq!(executed, ExecutedRun::Declined(Box::new(run)));
    assert_eq!(t.queue.writes(), 0);
}

async fn a_run_executed_in_place_whose_workflow_is_gone_leaves_nothing(store: SeaStore) {
    let t = Harness::new(store).await;
    let workflow = t.workflow(five_sets()).await;
    let definition = Arc::new(validate_definition(&workflow.definition).expect("valid"));
    let mut run = new_run(&workflow, json!({"n": 1}));
    run.workflow_version = 99;
    let run_id = run.id;

    let executed = t
        .engine
        .execute_now(t.scope.workspace_id(), run, definition)
        .await;

    assert!(executed.is_err(), "{executed:?}");
    assert!(t.events(run_id).await.is_empty());
    assert!(t.sink.of(run_id).is_empty(), "nothing was published");
}
