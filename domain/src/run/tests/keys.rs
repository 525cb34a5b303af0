//! Ids, idempotency keys and the small vocabulary the engine stores.

use serde_json::json;

use crate::ids::InvalidId;
use crate::run::{IdempotencyKey, IfBranch, RunId, StepOutcome, StepStatus};
use crate::workflow::definition::{Branch, NodeId};

#[test]
fn run_ids_round_trip_through_text_and_sort_by_creation() {
    let first = RunId::generate();
    let second = RunId::generate();
    assert_eq!(first.to_string().parse::<RunId>(), Ok(first));
    assert!(first < second);
    assert_eq!(RunId::from_uuid(first.as_uuid()), first);
    assert_eq!("not-a-run".parse::<RunId>(), Err(InvalidId));
}

#[test]
fn a_step_key_is_the_run_and_the_node_and_the_same_for_every_attempt() {
    let run = "0190f1a2-0000-7000-8000-000000000001"
        .parse::<RunId>()
        .expect("a valid id");
    let node = NodeId::parse("call_api").expect("a valid node id");
    let key = IdempotencyKey::for_step(run, &node);
    assert_eq!(
        key.as_str(),
        "0190f1a2-0000-7000-8000-000000000001:call_api"
    );
    assert_eq!(key.to_string(), key.as_str());
    assert_eq!(IdempotencyKey::for_step(run, &node), key);
    assert_ne!(IdempotencyKey::for_step(RunId::generate(), &node), key);
}

#[test]
fn an_iteration_key_extends_its_loop_nodes_key_with_the_index_and_body_step() {
    let run = "0190f1a2-0000-7000-8000-000000000001"
        .parse::<RunId>()
        .expect("a valid id");
    let each = NodeId::parse("each").expect("a valid node id");
    let call = NodeId::parse("call").expect("a valid node id");
    let key = IdempotencyKey::for_step(run, &each).for_iteration(3, &call);
    assert_eq!(
        key.as_str(),
        "0190f1a2-0000-7000-8000-000000000001:each:3:call"
    );
}

#[test]
fn outcomes_map_to_the_stored_step_status_and_visible_output() {
    let cases = [
        (
            StepOutcome::Succeeded(json!({"a": 1})),
            StepStatus::Succeeded,
            json!({"a": 1}),
        ),
        (
            StepOutcome::Branched {
                output: json!([1]),
                branch: IfBranch::False,
            },
            StepStatus::Succeeded,
            json!([1]),
        ),
        (
            StepOutcome::Failed("timed out".into()),
            StepStatus::Failed,
            json!({"error": "timed out"}),
        ),
    ];
    for (outcome, status, output) in cases {
        assert_eq!(outcome.step_status(), status, "{outcome:?}");
        assert_eq!(outcome.visible_output(), output, "{outcome:?}");
    }
}

#[test]
fn if_branches_are_the_true_and_false_edge_labels() {
    assert_eq!(IfBranch::of(true), IfBranch::True);
    assert_eq!(IfBranch::of(false).as_branch(), Branch::False);
    for branch in [IfBranch::True, IfBranch::False] {
        assert_eq!(IfBranch::parse(branch.as_str()), Some(branch));
    }
    assert_eq!(IfBranch::parse("error"), None);
    assert_eq!(IfBranch::parse("TRUE"), None);
}
