//! How a run flows through its graph in one drive: expressions over the trigger and the
//! steps, `if` branches and the skips they cause, failures with and without an error
//! path, and which node's output becomes the run's.

use aos_domain::ports::WorkflowStore;
use aos_domain::run::{RunStatus, StepStatus};
use aos_domain::workflow::{NewWorkflow, WorkflowName};
use aos_persistence::SeaStore;
use serde_json::{Value, json};

use crate::harness::{Harness, statuses};
use crate::support::on_every_backend;

on_every_backend!(
    a_linear_run_succeeds_with_the_output_of_its_last_node,
    an_if_runs_one_branch_skips_the_other_and_joins_them,
    a_fail_node_fails_the_run_with_its_message,
    an_error_edge_recovers_a_failed_step,
    on_error_continue_goes_on_after_a_failed_step,
    a_respond_node_gives_the_run_its_output,
    a_trigger_alone_outputs_the_run_input,
    a_run_pinned_to_a_definition_that_no_longer_validates_fails,
);

async fn a_linear_run_succeeds_with_the_output_of_its_last_node(store: SeaStore) {
    let t = Harness::new(store).await;
    let run_id = t
        .start(
            json!({
                "nodes": [
                    {"id": "start", "type": "trigger.manual"},
                    {"id": "greet", "type": "set", "config": {"fields": {
                        "message": "Hello {{ trigger.name }}", "n": "{{ trigger.n * 2 }}"}}},
                    {"id": "sum", "type": "set", "config": {"fields": {
                        "who": "{{ steps.greet.message }}", "total": "{{ steps.greet.n + 1 }}",
                        "run": "{{ run.id }}"}}}
                ],
                "edges": [{"from": "start", "to": "greet"}, {"from": "greet", "to": "sum"}]
            }),
            json!({"name": "Ada", "n": 7}),
        )
        .await;

    t.drive(run_id).await;

    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(
        run.output,
        Some(json!({"who": "Hello Ada", "total": 15, "run": run_id.to_string()}))
    );
    assert_eq!(run.error, None);
    assert!(run.started_at.is_some() && run.finished_at.is_some());
    let steps = t.steps(run_id).await;
    let summary: Vec<_> = steps
        .iter()
        .map(|step| {
            (
                step.node_id.as_str(),
                step.status,
                step.attempt,
                step.finish_order,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("start", StepStatus::Succeeded, 1, Some(1)),
            ("greet", StepStatus::Succeeded, 1, Some(2)),
            ("sum", StepStatus::Succeeded, 1, Some(3)),
        ]
    );
    assert_eq!(steps[0].output, Some(json!({"name": "Ada", "n": 7})));
    assert_eq!(
        steps[1].input, steps[0].output,
        "a step's input is its predecessor's output"
    );
    assert_eq!(
        steps[1].output,
        Some(json!({"message": "Hello Ada", "n": 14}))
    );
    t.assert_events(
        run_id,
        &[
            "RUN_QUEUED",
            "RUN_STARTED",
            "STEP_STARTED start",
            "STEP_SUCCEEDED start",
            "STEP_STARTED greet",
            "STEP_SUCCEEDED greet",
            "STEP_STARTED sum",
            "STEP_SUCCEEDED sum",
            "RUN_SUCCEEDED",
        ],
    )
    .await;
}

/// `check` chooses between `yes → yes_more` and `no`; both lead to `merge`.
fn branching() -> Value {
    json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual"},
            {"id": "check", "type": "if", "config": {"condition": "{{ trigger.big }}"}},
            {"id": "yes", "type": "set", "config": {"fields": {"path": "yes"}}},
            {"id": "yes_more", "type": "set", "config": {"fields": {"path": "yes, more"}}},
            {"id": "no", "type": "set", "config": {"fields": {"path": "no"}}},
            {"id": "merge", "type": "set", "config": {"fields": {"done": true, "big": "{{ steps.check.big }}"}}}
        ],
        "edges": [
            {"from": "start", "to": "check"},
            {"from": "check", "to": "yes", "branch": "true"},
            {"from": "check", "to": "no", "branch": "false"},
            {"from": "yes", "to": "yes_more"},
            {"from": "yes_more", "to": "merge"},
            {"from": "no", "to": "merge"}
        ]
    })
}

async fn an_if_runs_one_branch_skips_the_other_and_joins_them(store: SeaStore) {
    let t = Harness::new(store).await;
    let workflow = t.workflow(branching()).await;
    let cases: [(bool, &str, Vec<&str>, &[&str]); 2] = [
        (
            true,
            "true",
            vec!["no"],
            &[
                "RUN_QUEUED",
                "RUN_STARTED",
                "STEP_STARTED start",
                "STEP_SUCCEEDED start",
                "STEP_STARTED check",
                "STEP_SUCCEEDED check",
                "STEP_SKIPPED no",
                "STEP_STARTED yes",
                "STEP_SUCCEEDED yes",
                "STEP_STARTED yes_more",
                "STEP_SUCCEEDED yes_more",
                "STEP_STARTED merge",
                "STEP_SUCCEEDED merge",
                "RUN_SUCCEEDED",
            ],
        ),
        (
            false,
            "false",
            vec!["yes", "yes_more"],
            &[
                "RUN_QUEUED",
                "RUN_STARTED",
                "STEP_STARTED start",
                "STEP_SUCCEEDED start",
                "STEP_STARTED check",
                "STEP_SUCCEEDED check",
                "STEP_SKIPPED yes",
                "STEP_SKIPPED yes_more",
                "STEP_STARTED no",
                "STEP_SUCCEEDED no",
                "STEP_STARTED merge",
                "STEP_SUCCEEDED merge",
                "RUN_SUCCEEDED",
            ],
        ),
    ];
    for (big, branch, skipped, expected_events) in cases {
        let run_id = t.enqueue(&workflow, json!({"big": big})).await;

        t.drive(run_id).await;

        let run = t.run(run_id).await;
        assert_eq!(run.status, RunStatus::Succeeded, "big = {big}");
        assert_eq!(run.output, Some(json!({"done": true, "big": big})));
        let steps = t.steps(run_id).await;
        let check = steps.iter().find(|s| s.node_id == "check").expect("check");
        assert_eq!(check.branch.as_deref(), Some(branch));
        assert_eq!(
            check.output,
            Some(json!({"big": big})),
            "an if passes its input on"
        );
        let mut actually_skipped: Vec<&str> = steps
            .iter()
            .filter(|step| step.status == StepStatus::Skipped)
            .map(|step| step.node_id.as_str())
            .collect();
        actually_skipped.sort_unstable();
        assert_eq!(actually_skipped, skipped, "big = {big}");
        assert_eq!(steps.len(), 6, "every node has a step");
        t.assert_events(run_id, expected_events).await;
    }
}

fn failing(recovery: Value) -> Value {
    let mut boom =
        json!({"id": "boom", "type": "fail", "config": {"message": "no {{ trigger.name }}"}});
    let mut definition = json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual"},
            boom.take(),
            {"id": "after", "type": "set", "config": {"fields": {"saw": "{{ steps.boom.error }}"}}}
        ],
        "edges": [{"from": "start", "to": "boom"}, {"from": "boom", "to": "after"}]
    });
    if let Some(on_error) = recovery.get("onError") {
        definition["nodes"][1]["onError"] = on_error.clone();
    }
    if let Some(node) = recovery.get("node") {
        definition["nodes"]
            .as_array_mut()
            .expect("nodes")
            .push(node.clone());
        definition["edges"]
            .as_array_mut()
            .expect("edges")
            .push(json!({"from": "boom", "to": node["id"], "branch": "error"}));
    }
    definition
}

async fn a_fail_node_fails_the_run_with_its_message(store: SeaStore) {
    let t = Harness::new(store).await;
    let run_id = t.start(failing(json!({})), json!({"name": "Ada"})).await;

    t.drive(run_id).await;

    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("boom: no Ada"));
    assert_eq!(run.output, None);
    let boom = t.step(run_id, "boom").await;
    assert_eq!(boom.error.as_deref(), Some("no Ada"));
    assert_eq!(
        statuses(&t.steps(run_id).await),
        [
            ("boom".to_owned(), "FAILED", 1),
            ("start".to_owned(), "SUCCEEDED", 1)
        ],
        "nothing after the failure ran or was skipped"
    );
    t.assert_events(
        run_id,
        &[
            "RUN_QUEUED",
            "RUN_STARTED",
            "STEP_STARTED start",
            "STEP_SUCCEEDED start",
            "STEP_STARTED boom",
            "STEP_FAILED boom",
            "RUN_FAILED",
        ],
    )
    .await;
}

async fn an_error_edge_recovers_a_failed_step(store: SeaStore) {
    let t = Harness::new(store).await;
    let recover = json!({"id": "recover", "type": "set", "config": {"fields": {"why": "{{ steps.boom.error }}"}}});
    let run_id = t
        .start(failing(json!({"node": recover})), json!({"name": "Ada"}))
        .await;

    t.drive(run_id).await;

    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.output, Some(json!({"why": "no Ada"})));
    assert_eq!(
        statuses(&t.steps(run_id).await),
        [
            ("after".to_owned(), "SKIPPED", 0),
            ("boom".to_owned(), "FAILED", 1),
            ("recover".to_owned(), "SUCCEEDED", 1),
            ("start".to_owned(), "SUCCEEDED", 1),
        ]
    );
    t.assert_events(
        run_id,
        &[
            "RUN_QUEUED",
            "RUN_STARTED",
            "STEP_STARTED start",
            "STEP_SUCCEEDED start",
            "STEP_STARTED boom",
            "STEP_FAILED boom",
            "STEP_SKIPPED after",
            "STEP_STARTED recover",
            "STEP_SUCCEEDED recover",
            "RUN_SUCCEEDED",
        ],
    )
    .await;
}

async fn on_error_continue_goes_on_after_a_failed_step(store: SeaStore) {
    let t = Harness::new(store).await;
    let run_id = t
        .start(
            failing(json!({"onError": "continue"})),
            json!({"name": "Ada"}),
        )
        .await;

    t.drive(run_id).await;

    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.output, Some(json!({"saw": "no Ada"})));
    assert_eq!(t.step(run_id, "boom").await.status, StepStatus::Failed);
    t.assert_events(
        run_id,
        &[
            "RUN_QUEUED",
            "RUN_STARTED",
            "STEP_STARTED start",
            "STEP_SUCCEEDED start",
            "STEP_STARTED boom",
            "STEP_FAILED boom",
            "STEP_STARTED after",
            "STEP_SUCCEEDED after",
            "RUN_SUCCEEDED",
        ],
    )
    .await;
}

async fn a_respond_node_gives_the_run_its_output(store: SeaStore) {
    let t = Harness::new(store).await;
    let run_id = t
        .start(
            json!({
                "nodes": [
                    {"id": "start", "type": "trigger.manual"},
                    {"id": "reply", "type": "respond", "config": {
                        "status": 201, "body": {"greeting": "hi {{ trigger.name }}"}}},
                    {"id": "after", "type": "set", "config": {"fields": {"later": true}}}
                ],
                "edges": [{"from": "start", "to": "reply"}, {"from": "reply", "to": "after"}]
            }),
            json!({"name": "Ada"}),
        )
        .await;

    t.drive(run_id).await;

    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(
        run.output,
        Some(json!({"status": 201, "headers": {}, "body": {"greeting": "hi Ada"}})),
        "the respond node's output, though another node finished after it"
    );
    assert_eq!(
        t.step(run_id, "after").await.output,
        Some(json!({"later": true}))
    );
}

/// The run starts and ends in consecutive writes: a write carries one status change.
async fn a_trigger_alone_outputs_the_run_input(store: SeaStore) {
    let t = Harness::new(store).await;
    let run_id = t
        .start(
            json!({"nodes": [{"id": "start", "type": "trigger.manual"}], "edges": []}),
            json!({"name": "Ada"}),
        )
        .await;

    t.drive(run_id).await;

    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.output, Some(json!({"name": "Ada"})));
    t.assert_events(
        run_id,
        &[
            "RUN_QUEUED",
            "RUN_STARTED",
            "STEP_STARTED start",
            "STEP_SUCCEEDED start",
            "RUN_SUCCEEDED",
        ],
    )
    .await;
}

/// Definitions are validated when saved, but the rules may tighten after a run was
/// queued: such a run fails once instead of being retried on every claim.
async fn a_run_pinned_to_a_definition_that_no_longer_validates_fails(store: SeaStore) {
    let t = Harness::new(store).await;
    let workflow = t
        .store
        .create_workflow(
            &t.scope,
            NewWorkflow {
                name: WorkflowName::parse("Legacy").expect("a name"),
                description: None,
                definition: json!({"nodes": [], "edges": []}),
                webhook_key: format!("whk_{}", uuid::Uuid::new_v4().simple()),
            },
        )
        .await
        .expect("the store keeps what it is given");
    let run_id = t.enqueue(&workflow, json!({})).await;

    t.drive(run_id).await;

    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error
            .as_deref()
            .is_some_and(|error| error.contains("no longer validates")),
        "{:?}",
        run.error
    );
    t.assert_events(run_id, &["RUN_QUEUED", "RUN_STARTED", "RUN_FAILED"])
        .await;
}
