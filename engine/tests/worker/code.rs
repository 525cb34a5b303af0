//! Code nodes compute from the run's scope; one that never returns fails its step at
//! its time limit and leaves the worker able to drive the next run.

use std::time::Duration;

use aos_domain::run::{RunStatus, StepStatus};
use aos_engine::code::CodeLimits;
use aos_persistence::SeaStore;
use serde_json::{Value, json};

use crate::harness::{Harness, config};
use crate::support::on_every_backend;

on_every_backend!(
    a_code_node_computes_from_the_steps,
    a_code_node_that_never_returns_fails_its_step_only,
);

fn with_code(source: &str) -> Value {
    json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual"},
            {"id": "compute", "type": "code", "config": {"language": "javascript", "source": source}}
        ],
        "edges": [{"from": "start", "to": "compute"}]
    })
}

async fn a_code_node_computes_from_the_steps(store: SeaStore) {
    let t = Harness::new(store).await;
    let run_id = t
        .start(
            with_code("return { total: steps.start.n * 3, name: trigger.name.toUpperCase(), run: run.id };"),
            json!({"n": 7, "name": "Ada"}),
        )
        .await;

    t.drive(run_id).await;

    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(
        run.output,
        Some(json!({"total": 21, "name": "ADA", "run": run_id.to_string()}))
    );
}

async fn a_code_node_that_never_returns_fails_its_step_only(store: SeaStore) {
    let limits = CodeLimits {
        time: Duration::from_millis(200),
        ..CodeLimits::default()
    };
    let t = Harness::with(store, config(), limits).await;
    let spinning = t.start(with_code("while (true) {}"), json!({})).await;

    t.drive(spinning).await;

    let run = t.run(spinning).await;
    assert_eq!(run.status, RunStatus::Failed);
    let compute = t.step(spinning, "compute").await;
    assert_eq!(compute.status, StepStatus::Failed);
    assert!(
        run.error
            .as_deref()
            .is_some_and(|error| error.starts_with("compute: ")),
        "{:?}",
        run.error
    );
    let next = t.start(with_code("return 1 + 1;"), json!({})).await;
    t.drive(next).await;
    assert_eq!(
        t.run(next).await.output,
        Some(json!(2)),
        "the worker goes on"
    );
}
