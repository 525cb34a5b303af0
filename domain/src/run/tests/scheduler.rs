//! Scenarios of the graph semantics, each a small workflow driven step by step.

use serde_json::{Value, json};

use super::{branch, chose, definition, edge, failed, node, ok, ready_ids, skipped_ids};
use crate::run::{Progress, RunEnd, RunError, RunStatus, Scheduler, StepOutcome, StepStatus};
use crate::workflow::Definition;

fn ids(nodes: &[&crate::workflow::definition::Node]) -> Vec<String> {
    nodes.iter().map(|n| n.id().to_string()).collect()
}

/// Records `outcome` for `id`, which must be accepted; returns (newly ready, newly
/// skipped).
fn step(scheduler: &mut Scheduler, id: &str, outcome: StepOutcome) -> (Vec<String>, Vec<String>) {
    let Progress { ready, skipped } = scheduler
        .record(id, outcome)
        .unwrap_or_else(|e| panic!("recording {id}: {e}"));
    (ids(&ready), ids(&skipped))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn succeeded_with(scheduler: &Scheduler) -> Value {
    match scheduler.end() {
        Some(RunEnd::Succeeded { output }) => output.clone(),
        other => panic!("expected a succeeded run, got {other:?}"),
    }
}

fn linear() -> Definition {
    definition(json!({
        "nodes": [node("t", "trigger.manual"), node("a", "set"), node("b", "set")],
        "edges": [edge("t", "a"), edge("a", "b")]
    }))
}

#[test]
fn a_linear_chain_runs_one_node_after_the_other() {
    let definition = linear();
    let mut scheduler = Scheduler::new(&definition);
    assert_eq!(ready_ids(&scheduler), ["t"]);
    assert_eq!(scheduler.end(), None);

    assert_eq!(
        step(&mut scheduler, "t", ok(json!(1))),
        (strings(&["a"]), vec![])
    );
    assert_eq!(scheduler.end(), None);
    assert_eq!(
        step(&mut scheduler, "a", ok(json!(2))),
        (strings(&["b"]), vec![])
    );
    assert_eq!(step(&mut scheduler, "b", ok(json!(3))), (vec![], vec![]));

    assert_eq!(succeeded_with(&scheduler), json!(3));
    assert_eq!(
        scheduler.end().map(|end| end.status()),
        Some(RunStatus::Succeeded)
    );
    assert_eq!(ready_ids(&scheduler), Vec::<String>::new());
}

#[test]
fn the_trigger_is_the_first_ready_node_wherever_it_is_listed() {
    let definition = definition(json!({
        "nodes": [node("a", "set"), node("b", "set"), node("t", "trigger.manual")],
        "edges": [edge("t", "b"), edge("b", "a")]
    }));
    let mut scheduler = Scheduler::new(&definition);
    assert_eq!(
        scheduler.start_next().map(|n| n.id().to_string()),
        Some("t".into())
    );
    assert_eq!(scheduler.start_next(), None);
}

/// t -> c (if); c -true-> yes -> yes2; c -false-> no -> no2.
fn two_branches() -> Definition {
    definition(json!({
        "nodes": [
            node("t", "trigger.manual"), node("c", "if"),
            node("yes", "set"), node("yes2", "set"), node("no", "set"), node("no2", "set")
        ],
        "edges": [
            edge("t", "c"), branch("c", "yes", "true"), branch("c", "no", "false"),
            edge("yes", "yes2"), edge("no", "no2")
        ]
    }))
}

#[test]
fn an_if_runs_the_chosen_branch_and_skips_the_other_one_entirely() {
    let cases = [
        (true, ["yes", "yes2"], ["no", "no2"]),
        (false, ["no", "no2"], ["yes", "yes2"]),
    ];
    for (condition, [taken, taken_next], [other, other_next]) in cases {
        let definition = two_branches();
        let mut scheduler = Scheduler::new(&definition);
        step(&mut scheduler, "t", ok(json!({})));
        assert_eq!(
            step(&mut scheduler, "c", chose(condition)),
            (strings(&[taken]), strings(&[other, other_next])),
            "condition {condition}"
        );
        assert_eq!(scheduler.status_of(other), Some(StepStatus::Skipped));
        assert_eq!(step(&mut scheduler, taken, ok(json!(1))).0, [taken_next]);
        assert_eq!(scheduler.end(), None);
        step(&mut scheduler, taken_next, ok(json!(taken_next)));
        assert_eq!(succeeded_with(&scheduler), json!(taken_next));
        assert_eq!(skipped_ids(&scheduler), [other, other_next]);
    }
}

#[test]
fn an_if_passes_its_input_on_as_its_output() {
    let definition = two_branches();
    let mut scheduler = Scheduler::new(&definition);
    step(&mut scheduler, "t", ok(json!({})));
    step(&mut scheduler, "c", chose(true));
    assert_eq!(
        scheduler.output_of("c"),
        Some(&json!({"passed": "through"}))
    );
}

/// t -> c (if); c -true-> a; c -false-> b; a -> m; b -> m.
#[test]
fn a_merge_after_an_if_runs_once_its_taken_side_finished() {
    for (condition, taken, skipped) in [(true, "a", "b"), (false, "b", "a")] {
        let definition = definition(json!({
            "nodes": [
                node("t", "trigger.manual"), node("c", "if"),
                node("a", "set"), node("b", "set"), node("m", "set")
            ],
            "edges": [
                edge("t", "c"), branch("c", "a", "true"), branch("c", "b", "false"),
                edge("a", "m"), edge("b", "m")
            ]
        }));
        let mut scheduler = Scheduler::new(&definition);
        step(&mut scheduler, "t", ok(json!({})));
        assert_eq!(
            step(&mut scheduler, "c", chose(condition)),
            (strings(&[taken]), strings(&[skipped]))
        );
        assert_eq!(scheduler.status_of("m"), Some(StepStatus::Pending));
        assert_eq!(
            step(&mut scheduler, taken, ok(json!(1))),
            (strings(&["m"]), vec![])
        );
        step(&mut scheduler, "m", ok(json!("merged")));
        assert_eq!(succeeded_with(&scheduler), json!("merged"));
    }
}

#[test]
fn a_merge_whose_inputs_are_all_skipped_is_skipped_too() {
    // t -> c; c -false-> a -> m; c -false-> b -> m; m -> after; c -true-> z.
    let definition = definition(json!({
        "nodes": [
            node("t", "trigger.manual"), node("c", "if"), node("a", "set"),
            node("b", "set"), node("m", "set"), node("after", "set"), node("z", "set")
        ],
        "edges": [
            edge("t", "c"), branch("c", "a", "false"), branch("c", "b", "false"),
            edge("a", "m"), edge("b", "m"), edge("m", "after"), branch("c", "z", "true")
        ]
    }));
    let mut scheduler = Scheduler::new(&definition);
    step(&mut scheduler, "t", ok(json!({})));
    let (ready, skipped) = step(&mut scheduler, "c", chose(true));
    assert_eq!(ready, ["z"]);
    let mut sorted = skipped.clone();
    sorted.sort();
    assert_eq!(sorted, ["a", "after", "b", "m"]);
    // Each skip is announced after the skips it follows from.
    let position = |id: &str| skipped.iter().position(|s| s == id);
    assert!(position("m") > position("a") && position("m") > position("b"));
    assert!(position("after") > position("m"));
    step(&mut scheduler, "z", ok(json!("z")));
    assert_eq!(succeeded_with(&scheduler), json!("z"));
}

#[test]
fn a_merge_waits_for_every_taken_input() {
    let definition = definition(json!({
        "nodes": [node("t", "trigger.manual"), node("a", "set"), node("b", "set"), node("m", "set")],
        "edges": [edge("t", "a"), edge("t", "b"), edge("a", "m"), edge("b", "m")]
    }));
    let mut scheduler = Scheduler::new(&definition);
    assert_eq!(step(&mut scheduler, "t", ok(json!({}))).0, ["a", "b"]);
    assert_eq!(step(&mut scheduler, "b", ok(json!(1))), (vec![], vec![]));
    assert_eq!(
        scheduler.record("m", ok(json!(0))),
        Err(RunError::NotReady(definition.nodes()[3].id().clone()))
    );
    assert_eq!(step(&mut scheduler, "a", ok(json!(2))).0, ["m"]);
}

#[test]
fn two_edges_from_an_if_to_one_node_make_it_run_on_either_branch() {
    for condition in [true, false] {
        let definition = definition(json!({
            "nodes": [node("t", "trigger.manual"), node("c", "if"), node("x", "set")],
            "edges": [edge("t", "c"), branch("c", "x", "true"), branch("c", "x", "false")]
        }));
        let mut scheduler = Scheduler::new(&definition);
        step(&mut scheduler, "t", ok(json!({})));
        assert_eq!(
            step(&mut scheduler, "c", chose(condition)),
            (strings(&["x"]), vec![])
        );
    }
}

/// t -> a; a -> next; a -error-> handler; `a` has `on_error`.
fn with_error_edge(on_error: &str) -> Definition {
    let mut a = node("a", "set");
    a["onError"] = json!(on_error);
    definition(json!({
        "nodes": [node("t", "trigger.manual"), a, node("next", "set"), node("handler", "set")],
        "edges": [edge("t", "a"), edge("a", "next"), branch("a", "handler", "error")]
    }))
}

#[test]
fn a_failure_takes_the_error_edge_and_not_the_normal_ones_whatever_on_error_says() {
    for on_error in ["fail", "continue"] {
        let definition = with_error_edge(on_error);
        let mut scheduler = Scheduler::new(&definition);
        step(&mut scheduler, "t", ok(json!({})));
        assert_eq!(
            step(&mut scheduler, "a", failed("boom")),
            (strings(&["handler"]), strings(&["next"])),
            "onError {on_error}"
        );
        assert_eq!(scheduler.status_of("a"), Some(StepStatus::Failed));
        // The handler can read why `a` failed.
        assert_eq!(scheduler.output_of("a"), Some(&json!({"error": "boom"})));
        step(&mut scheduler, "handler", ok(json!("handled")));
        assert_eq!(succeeded_with(&scheduler), json!("handled"));
    }
}

#[test]
fn a_success_takes_the_normal_edges_and_skips_the_error_edge() {
    let definition = with_error_edge("fail");
    let mut scheduler = Scheduler::new(&definition);
    step(&mut scheduler, "t", ok(json!({})));
    assert_eq!(
        step(&mut scheduler, "a", ok(json!(1))),
        (strings(&["next"]), strings(&["handler"]))
    );
}

#[test]
fn on_error_continue_without_an_error_edge_goes_on_past_the_failure() {
    let mut a = node("a", "set");
    a["onError"] = json!("continue");
    let definition = definition(json!({
        "nodes": [node("t", "trigger.manual"), a, node("next", "set")],
        "edges": [edge("t", "a"), edge("a", "next")]
    }));
    let mut scheduler = Scheduler::new(&definition);
    step(&mut scheduler, "t", ok(json!({})));
    assert_eq!(
        step(&mut scheduler, "a", failed("boom")),
        (strings(&["next"]), vec![])
    );
    assert_eq!(scheduler.end(), None);
    assert_eq!(scheduler.output_of("a"), Some(&json!({"error": "boom"})));
    step(&mut scheduler, "next", ok(json!("went on")));
    assert_eq!(succeeded_with(&scheduler), json!("went on"));
}

#[test]
fn a_continued_failure_that_finishes_last_is_the_run_output() {
    let mut a = node("a", "set");
    a["onError"] = json!("continue");
    let definition = definition(json!({
        "nodes": [node("t", "trigger.manual"), a],
        "edges": [edge("t", "a")]
    }));
    let mut scheduler = Scheduler::new(&definition);
    step(&mut scheduler, "t", ok(json!({})));
    step(&mut scheduler, "a", failed("boom"));
    assert_eq!(succeeded_with(&scheduler), json!({"error": "boom"}));
}

#[test]
fn a_failed_if_with_continue_takes_neither_branch() {
    let mut c = node("c", "if");
    c["onError"] = json!("continue");
    let definition = definition(json!({
        "nodes": [node("t", "trigger.manual"), c, node("yes", "set"), node("no", "set")],
        "edges": [edge("t", "c"), branch("c", "yes", "true"), branch("c", "no", "false")]
    }));
    let mut scheduler = Scheduler::new(&definition);
    step(&mut scheduler, "t", ok(json!({})));
    assert_eq!(
        step(&mut scheduler, "c", failed("bad condition")),
        (vec![], strings(&["yes", "no"]))
    );
    assert_eq!(
        succeeded_with(&scheduler),
        json!({"error": "bad condition"})
    );
}

/// t -> a -> b; t -> c.
fn fork() -> Definition {
    definition(json!({
        "nodes": [node("t", "trigger.manual"), node("a", "set"), node("b", "set"), node("c", "set")],
        "edges": [edge("t", "a"), edge("a", "b"), edge("t", "c")]
    }))
}

#[test]
fn a_failure_without_error_edge_or_continue_fails_the_run_at_once() {
    let definition = fork();
    let mut scheduler = Scheduler::new(&definition);
    step(&mut scheduler, "t", ok(json!({})));
    assert_eq!(
        scheduler.start("a").map(|n| n.id().to_string()),
        Ok("a".into())
    );
    assert_eq!(scheduler.status_of("a"), Some(StepStatus::Running));
    assert_eq!(step(&mut scheduler, "a", failed("boom")), (vec![], vec![]));

    let end = scheduler.end().expect("the run has ended");
    assert_eq!(end.status(), RunStatus::Failed);
    assert!(matches!(end, RunEnd::Failed { node, error: "boom" } if node.as_str() == "a"));
    // `c` was ready but not started: it never will be.
    assert_eq!(ready_ids(&scheduler), Vec::<String>::new());
    assert_eq!(scheduler.start_next(), None);
    assert!(matches!(scheduler.start("c"), Err(RunError::NotReady(_))));
    // Nothing downstream of the failure became ready.
    assert!(matches!(
        scheduler.record("b", ok(json!(1))),
        Err(RunError::NotReady(_))
    ));
}

#[test]
fn steps_in_flight_when_the_run_failed_can_still_be_recorded() {
    let definition = fork();
    let mut scheduler = Scheduler::new(&definition);
    step(&mut scheduler, "t", ok(json!({})));
    scheduler.start("a").expect("a is ready");
    scheduler.start("c").expect("c is ready");
    step(&mut scheduler, "a", failed("first"));
    assert_eq!(step(&mut scheduler, "c", ok(json!(1))), (vec![], vec![]));
    assert_eq!(scheduler.status_of("c"), Some(StepStatus::Succeeded));
    assert!(matches!(
        scheduler.end(),
        Some(RunEnd::Failed { error: "first", .. })
    ));
}

#[test]
fn the_run_outputs_what_respond_produced_even_when_other_nodes_finish_later() {
    let definition = definition(json!({
        "nodes": [node("t", "trigger.manual"), node("reply", "respond"), node("after", "set")],
        "edges": [edge("t", "reply"), edge("reply", "after")]
    }));
    let mut scheduler = Scheduler::new(&definition);
    step(&mut scheduler, "t", ok(json!({})));
    step(
        &mut scheduler,
        "reply",
        ok(json!({"status": 200, "body": "hi"})),
    );
    step(&mut scheduler, "after", ok(json!("later")));
    assert_eq!(
        succeeded_with(&scheduler),
        json!({"status": 200, "body": "hi"})
    );
}

#[test]
fn a_failed_respond_does_not_become_the_output() {
    let mut reply = node("reply", "respond");
    reply["onError"] = json!("continue");
    let definition = definition(json!({
        "nodes": [node("t", "trigger.manual"), node("a", "set"), reply],
        "edges": [edge("t", "a"), edge("t", "reply")]
    }));
    let mut scheduler = Scheduler::new(&definition);
    step(&mut scheduler, "t", ok(json!({})));
    step(&mut scheduler, "reply", failed("bad status"));
    step(&mut scheduler, "a", ok(json!("a")));
    assert_eq!(succeeded_with(&scheduler), json!("a"));
}

#[test]
fn without_respond_the_last_recorded_step_is_the_output() {
    let definition = fork();
    for (order, expected) in [
        (["a", "c", "b"], "b"),
        (["c", "a", "b"], "b"),
        (["a", "b", "c"], "c"),
    ] {
        let mut scheduler = Scheduler::new(&definition);
        step(&mut scheduler, "t", ok(json!({})));
        for id in order {
            step(&mut scheduler, id, ok(json!(id)));
        }
        assert_eq!(succeeded_with(&scheduler), json!(expected), "{order:?}");
    }
}

/// The contract's example definition.
fn contract_example() -> Definition {
    definition(json!({
      "nodes": [
        {"id": "hook", "type": "trigger.webhook", "config": {"respond": "onCompletion"}},
        {"id": "greet", "type": "set", "config": {"fields": {"message": "Hello {{ trigger.body.name }}", "n": "{{ trigger.body.n * 2 }}"}}},
        {"id": "big", "type": "if", "config": {"condition": "{{ steps.greet.n > 10 }}"}},
        {"id": "call", "type": "http.request", "config": {"method": "POST", "url": "https://example.com/x", "body": {"m": "{{ steps.greet.message }}"}},
         "retry": {"maxAttempts": 3, "initialIntervalMs": 200, "backoffMultiplier": 2}},
        {"id": "reply", "type": "respond", "config": {"status": 200, "body": {"message": "{{ steps.greet.message }}"}}}
      ],
      "edges": [
        {"from": "hook", "to": "greet"},
        {"from": "greet", "to": "big"},
        {"from": "big", "to": "call", "branch": "true"},
        {"from": "big", "to": "reply", "branch": "false"},
        {"from": "call", "to": "reply"}
      ]
    }))
}

/// Outcomes by node id, in the order they were recorded.
type Journal = Vec<(&'static str, StepOutcome)>;

fn contract_journal() -> Journal {
    vec![
        ("hook", ok(json!({"body": {"name": "Ada", "n": 7}}))),
        ("greet", ok(json!({"message": "Hello Ada", "n": 14}))),
        ("big", chose(true)),
        (
            "call",
            ok(json!({"status": 200, "headers": {}, "body": "done"})),
        ),
        (
            "reply",
            ok(json!({"status": 200, "body": {"message": "Hello Ada"}})),
        ),
    ]
}

#[test]
fn the_contract_example_runs_call_before_reply_when_n_is_big() {
    let definition = contract_example();
    let mut scheduler = Scheduler::new(&definition);
    let mut order = Vec::new();
    let mut journal = contract_journal().into_iter();
    while let Some(node) = scheduler.start_next() {
        let (id, outcome) = journal
            .next()
            .expect("a journal entry for every started node");
        assert_eq!(node.id().as_str(), id);
        order.push(id);
        step(&mut scheduler, id, outcome);
    }
    assert_eq!(order, ["hook", "greet", "big", "call", "reply"]);
    assert_eq!(
        succeeded_with(&scheduler),
        json!({"status": 200, "body": {"message": "Hello Ada"}})
    );
}

#[test]
fn resuming_from_any_prefix_of_the_journal_yields_exactly_the_remaining_work() {
    let definition = contract_example();
    let journal = contract_journal();
    for cut in 0..=journal.len() {
        let mut live = Scheduler::new(&definition);
        for (id, outcome) in journal[..cut].iter().cloned() {
            live.start(id).expect("ready");
            step(&mut live, id, outcome);
        }
        let resumed = Scheduler::resume(&definition, journal[..cut].iter().cloned())
            .expect("a journal of this run replays");
        assert_eq!(ready_ids(&resumed), ready_ids(&live), "after {cut} steps");
        assert_eq!(
            skipped_ids(&resumed),
            skipped_ids(&live),
            "after {cut} steps"
        );
        assert_eq!(
            resumed.outputs().collect::<Vec<_>>(),
            live.outputs().collect::<Vec<_>>()
        );
        assert_eq!(resumed.end(), live.end(), "after {cut} steps");
        let next = journal.get(cut).map(|(id, _)| (*id).to_owned());
        assert_eq!(
            ready_ids(&resumed).first().cloned(),
            next,
            "after {cut} steps"
        );
    }
}

#[test]
fn a_started_step_is_offered_again_after_a_resume() {
    let definition = contract_example();
    let journal = &contract_journal()[..2];
    let mut live = Scheduler::resume(&definition, journal.iter().cloned()).expect("replays");
    assert_eq!(
        live.start_next().map(|n| n.id().to_string()),
        Some("big".into())
    );
    assert_eq!(ready_ids(&live), Vec::<String>::new());
    // The worker died: the journal has no outcome for `big`, so it is ready again.
    let resumed = Scheduler::resume(&definition, journal.iter().cloned()).expect("replays");
    assert_eq!(ready_ids(&resumed), ["big"]);
}

#[test]
fn a_journal_that_does_not_fit_the_graph_is_refused() {
    let definition = contract_example();
    let cases: Vec<(&str, Journal, RunError)> = vec![
        (
            "out of order",
            vec![("greet", ok(json!({})))],
            RunError::NotReady(id_of(&definition, "greet")),
        ),
        (
            "twice",
            vec![("hook", ok(json!({}))), ("hook", ok(json!({})))],
            RunError::AlreadyFinished(id_of(&definition, "hook")),
        ),
        (
            "unknown node",
            vec![("ghost", ok(json!({})))],
            RunError::UnknownNode("ghost".into()),
        ),
        (
            "a branch from a node that is not an if",
            vec![("hook", chose(true))],
            RunError::OutcomeDoesNotFit {
                node: id_of(&definition, "hook"),
                node_type: crate::workflow::node_types::NodeType::WebhookTrigger,
            },
        ),
        (
            "an if without a branch",
            vec![
                ("hook", ok(json!({}))),
                ("greet", ok(json!({}))),
                ("big", ok(json!({}))),
            ],
            RunError::OutcomeDoesNotFit {
                node: id_of(&definition, "big"),
                node_type: crate::workflow::node_types::NodeType::If,
            },
        ),
        (
            "a skipped node",
            vec![
                ("hook", ok(json!({}))),
                ("greet", ok(json!({}))),
                ("big", chose(false)),
                ("call", ok(json!({}))),
            ],
            RunError::NotReady(id_of(&definition, "call")),
        ),
    ];
    for (case, journal, expected) in cases {
        let result = Scheduler::resume(&definition, journal).map(|_| ());
        assert_eq!(result, Err(expected), "{case}");
    }
}

#[test]
fn a_refused_record_changes_nothing() {
    let definition = contract_example();
    let mut scheduler = Scheduler::new(&definition);
    step(&mut scheduler, "hook", ok(json!({})));
    step(&mut scheduler, "greet", ok(json!({})));
    assert!(scheduler.record("big", ok(json!({}))).is_err());
    assert_eq!(ready_ids(&scheduler), ["big"]);
    assert_eq!(scheduler.status_of("big"), Some(StepStatus::Pending));
    assert_eq!(
        step(&mut scheduler, "big", chose(false)),
        (strings(&["reply"]), strings(&["call"]))
    );
}

#[test]
fn starting_is_only_for_ready_nodes_and_only_once() {
    let definition = contract_example();
    let mut scheduler = Scheduler::new(&definition);
    assert!(matches!(
        scheduler.start("greet"),
        Err(RunError::NotReady(_))
    ));
    assert!(matches!(
        scheduler.start("ghost"),
        Err(RunError::UnknownNode(_))
    ));
    scheduler.start("hook").expect("the trigger is ready");
    assert!(matches!(
        scheduler.start("hook"),
        Err(RunError::NotReady(_))
    ));
    assert_eq!(scheduler.status_of("hook"), Some(StepStatus::Running));
    assert_eq!(scheduler.status_of("ghost"), None);
}

#[test]
fn outputs_list_only_finished_steps() {
    let definition = contract_example();
    let journal = &contract_journal()[..3];
    let scheduler = Scheduler::resume(&definition, journal.iter().cloned()).expect("replays");
    let finished: Vec<String> = scheduler.outputs().map(|(id, _)| id.to_string()).collect();
    assert_eq!(finished, ["hook", "greet", "big"]);
    assert_eq!(scheduler.output_of("call"), None);
    assert_eq!(
        scheduler.output_of("greet"),
        Some(&json!({"message": "Hello Ada", "n": 14}))
    );
}

fn id_of(definition: &Definition, id: &str) -> crate::workflow::definition::NodeId {
    definition
        .node(id)
        .expect("a node of the definition")
        .id()
        .clone()
}

/// What a `merge` reads: t -> c (if); c -true-> m; c -false-> b; b -> m; a -> m where `a`
/// fails and takes its `error` edge instead.
#[test]
fn is_taken_tells_which_edges_into_a_node_were_chosen() {
    let mut a = node("a", "set");
    a["onError"] = json!("continue");
    let definition = definition(json!({
        "nodes": [
            node("t", "trigger.manual"), node("c", "if"), node("b", "set"), a,
            node("h", "set"), node("m", "set")
        ],
        "edges": [
            edge("t", "c"), edge("t", "a"), branch("c", "m", "true"), branch("c", "b", "false"),
            edge("b", "m"), branch("a", "h", "error"), edge("a", "m"), edge("h", "m")
        ]
    }));
    let mut scheduler = Scheduler::new(&definition);
    let taken_into_m = |scheduler: &Scheduler| -> Vec<String> {
        definition
            .incoming("m")
            .filter(|e| scheduler.is_taken(e))
            .map(|e| e.from().to_string())
            .collect()
    };
    assert_eq!(taken_into_m(&scheduler), Vec::<String>::new());
    step(&mut scheduler, "t", ok(json!({})));
    step(&mut scheduler, "c", chose(true));
    step(&mut scheduler, "a", failed("boom"));
    step(&mut scheduler, "h", ok(json!("handled")));
    // `b` is skipped, `a` failed and took only its error edge.
    assert_eq!(taken_into_m(&scheduler), ["c", "h"]);
    assert_eq!(scheduler.status_of("m"), Some(StepStatus::Pending));
}
