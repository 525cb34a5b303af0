use serde_json::json;

use super::{definition, edge, failed, node, ok, ready_ids};
use crate::DomainError;
use crate::run::{RunEnd, RunError, Scheduler, StepOutcome, outcomes_to_reuse};
use crate::workflow::Definition;

/// t -> a -> b -> d; t -> c -> d.
fn diamond() -> Definition {
    definition(json!({
        "nodes": [
            node("t", "trigger.manual"), node("a", "set"), node("b", "set"),
            node("c", "set"), node("d", "set")
        ],
        "edges": [edge("t", "a"), edge("a", "b"), edge("b", "d"), edge("t", "c"), edge("c", "d")]
    }))
}

fn full_journal() -> Vec<(&'static str, StepOutcome)> {
    ["t", "a", "c", "b", "d"]
        .into_iter()
        .map(|id| (id, ok(json!(id))))
        .collect()
}

#[test]
fn retrying_from_a_node_reuses_every_outcome_outside_what_it_reaches() {
    let definition = diamond();
    let cases: [(&str, &[&str], &[&str]); 5] = [
        ("t", &[], &["t"]),
        ("a", &["t", "c"], &["a"]),
        ("b", &["t", "a", "c"], &["b"]),
        ("c", &["t", "a", "b"], &["c"]),
        ("d", &["t", "a", "c", "b"], &["d"]),
    ];
    for (from, reused, ready) in cases {
        let reuse = outcomes_to_reuse(&definition, from, full_journal()).expect("a known node");
        let reused_ids: Vec<&str> = reuse.iter().map(|(id, _)| *id).collect();
        assert_eq!(reused_ids, reused, "from {from}: journal order is kept");
        let scheduler = Scheduler::resume(&definition, reuse).expect("the reused part replays");
        assert_eq!(ready_ids(&scheduler), ready, "from {from}");
        assert_eq!(scheduler.end(), None, "from {from}");
    }
}

#[test]
fn retrying_a_failed_run_from_its_failure_also_runs_what_it_never_reached() {
    let definition = diamond();
    // `a` failed the run while `c` was still waiting to start.
    let previous = vec![("t", ok(json!("t"))), ("a", failed("boom"))];
    let reuse = outcomes_to_reuse(&definition, "a", previous).expect("a known node");
    let scheduler = Scheduler::resume(&definition, reuse).expect("replays");
    assert_eq!(ready_ids(&scheduler), ["a", "c"]);
}

#[test]
fn a_reused_failure_of_the_run_fails_the_retry_again() {
    let definition = diamond();
    let previous = vec![("t", ok(json!("t"))), ("a", failed("boom"))];
    let reuse = outcomes_to_reuse(&definition, "c", previous).expect("a known node");
    let scheduler = Scheduler::resume(&definition, reuse).expect("replays");
    assert!(matches!(
        scheduler.end(),
        Some(RunEnd::Failed { error: "boom", .. })
    ));
}

#[test]
fn retrying_from_a_node_the_workflow_lacks_is_bad_input() {
    let definition = diamond();
    let error = outcomes_to_reuse(&definition, "ghost", full_journal()).expect_err("no such node");
    assert_eq!(error, RunError::UnknownNode("ghost".into()));
    assert!(matches!(DomainError::from(error), DomainError::Invalid(m) if m.contains("ghost")));
}
