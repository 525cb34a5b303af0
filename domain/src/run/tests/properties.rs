//! The scheduler driven to the end over random valid workflows, with random outcomes and
//! random interleavings of parallel steps, against a reference model of the contract's
//! edge rules written independently of the scheduler (it reads the definition through
//! `incoming` / `outgoing` only).

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;
use serde_json::{Value, json};

use super::definition;
use crate::run::{IfBranch, RunEnd, Scheduler, StepOutcome};
use crate::workflow::Definition;
use crate::workflow::definition::{Branch, Edge, OnError};
use crate::workflow::node_types::NodeType;

/// A workflow of a trigger `n0` and up to 11 nodes `n1..`; each node gets an edge from an
/// earlier one (so the trigger reaches it and there is no cycle) and maybe more, with
/// branch labels that fit the node they leave.
fn valid_workflow() -> impl Strategy<Value = Value> {
    let kinds = prop::sample::select(vec!["set", "if", "fail", "respond", "delay"]);
    (1usize..12)
        .prop_flat_map(move |count| {
            (
                prop::collection::vec((kinds.clone(), any::<bool>()), count),
                // For node i (from 1): the parent index seed and label seed of its first
                // edge, and up to 3 more (from seed, label seed).
                prop::collection::vec(
                    (
                        any::<u16>(),
                        any::<u8>(),
                        prop::collection::vec((any::<u16>(), any::<u8>()), 0..4),
                    ),
                    count,
                ),
            )
        })
        .prop_map(|(kinds, incoming)| {
            let mut nodes = vec![json!({"id": "n0", "type": "trigger.manual"})];
            let mut types = vec!["trigger.manual"];
            for (i, (kind, continues)) in kinds.iter().enumerate() {
                let mut node = super::node(&format!("n{}", i + 1), kind);
                if *continues {
                    node["onError"] = json!("continue");
                }
                nodes.push(node);
                types.push(kind);
            }
            let mut edges: Vec<(usize, usize, Option<&str>)> = Vec::new();
            for (i, (first, first_label, more)) in incoming.into_iter().enumerate() {
                let to = i + 1;
                for (seed, label_seed) in std::iter::once((first, first_label)).chain(more) {
                    let from = usize::from(seed) % to;
                    let label = label_for(types[from], label_seed);
                    if !edges.contains(&(from, to, label)) {
                        edges.push((from, to, label));
                    }
                }
            }
            let edges: Vec<Value> = edges
                .into_iter()
                .map(|(from, to, label)| {
                    let mut edge = json!({"from": format!("n{from}"), "to": format!("n{to}")});
                    if let Some(label) = label {
                        edge["branch"] = json!(label);
                    }
                    edge
                })
                .collect();
            json!({"nodes": nodes, "edges": edges})
        })
}

fn label_for(source_type: &str, seed: u8) -> Option<&'static str> {
    match (source_type, seed % 4) {
        ("if", 0 | 1) => Some("true"),
        ("if", 2) => Some("false"),
        ("if", _) | ("set" | "fail" | "respond" | "delay", 3) => Some("error"),
        _ => None,
    }
}

/// Random numbers for the driver, reused cyclically.
struct Dice<'a> {
    rolls: &'a [u16],
    next: usize,
}

impl Dice<'_> {
    fn below(&mut self, bound: usize) -> usize {
        let roll = self.rolls[self.next % self.rolls.len()];
        self.next += 1;
        usize::from(roll) % bound
    }
}

fn random_outcome(node_type: NodeType, dice: &mut Dice) -> StepOutcome {
    let roll = dice.below(8);
    if roll < 2 {
        return StepOutcome::Failed(format!("failure {roll}"));
    }
    let output = json!({"roll": roll});
    if node_type == NodeType::If {
        StepOutcome::Branched {
            output,
            branch: IfBranch::of(roll.is_multiple_of(2)),
        }
    } else {
        StepOutcome::Succeeded(output)
    }
}

/// The contract's rule for one edge, given the outcome of its source (`None`: skipped).
fn reference_taken(definition: &Definition, edge: &Edge, source: Option<&StepOutcome>) -> bool {
    match source {
        None => false,
        Some(StepOutcome::Succeeded(_)) => edge.branch().is_none(),
        Some(StepOutcome::Branched { branch, .. }) => edge.branch() == Some(branch.as_branch()),
        Some(StepOutcome::Failed(_)) => {
            let has_error_edge = definition
                .outgoing(edge.from().as_str())
                .any(|e| e.branch() == Some(Branch::Error));
            if has_error_edge {
                edge.branch() == Some(Branch::Error)
            } else {
                let continues = definition
                    .node(edge.from().as_str())
                    .is_some_and(|n| n.on_error() == OnError::Continue);
                continues && edge.branch().is_none()
            }
        }
    }
}

fn fails_the_run(definition: &Definition, node_id: &str, outcome: &StepOutcome) -> bool {
    matches!(outcome, StepOutcome::Failed(_))
        && definition
            .node(node_id)
            .is_some_and(|n| n.on_error() == OnError::Fail)
        && !definition
            .outgoing(node_id)
            .any(|e| e.branch() == Some(Branch::Error))
}

type Journal = Vec<(String, StepOutcome)>;

/// What the live scheduler offered after each journal prefix: ready or in flight, and
/// how the run stood.
struct Snapshot {
    open_work: BTreeSet<String>,
    skipped: BTreeSet<String>,
    end: Option<String>,
}

fn describe(end: Option<RunEnd>) -> Option<String> {
    end.map(|end| format!("{end:?}"))
}

fn drive(
    definition: &Definition,
    dice: &mut Dice,
) -> Result<(Journal, Vec<Snapshot>), TestCaseError> {
    let node_count = definition.nodes().len();
    let mut scheduler = Scheduler::new(definition);
    let mut in_flight: Vec<String> = Vec::new();
    let mut finished: HashMap<String, StepOutcome> = HashMap::new();
    let mut skipped: BTreeSet<String> = BTreeSet::new();
    let mut journal: Journal = Vec::new();
    let mut snapshots = vec![snapshot(&scheduler, &in_flight, &skipped)];

    // Every iteration records one node, so a run cannot take more than one per node.
    for _ in 0..=node_count {
        // Start some of the ready nodes (at least one when nothing is in flight).
        let ready: Vec<String> = scheduler.ready().map(|n| n.id().to_string()).collect();
        let starting = if in_flight.is_empty() {
            ready.len().min(1).max(dice.below(ready.len() + 1))
        } else {
            dice.below(ready.len() + 1)
        };
        for id in ready.into_iter().take(starting) {
            let node = scheduler
                .start(&id)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            // Every incoming edge is resolved and one of them was taken.
            let incoming: Vec<&Edge> = definition.incoming(&id).collect();
            for edge in &incoming {
                let source = edge.from().as_str();
                prop_assert!(
                    finished.contains_key(source) || skipped.contains(source),
                    "{} started before {} was resolved",
                    id,
                    source
                );
            }
            prop_assert!(
                node.node_type().is_trigger()
                    || incoming.iter().any(|e| reference_taken(
                        definition,
                        e,
                        finished.get(e.from().as_str())
                    )),
                "{} started with no taken incoming edge",
                id
            );
            in_flight.push(id);
        }
        if in_flight.is_empty() {
            return Ok((journal, snapshots));
        }
        let id = in_flight.swap_remove(dice.below(in_flight.len()));
        let node_type = definition
            .node(&id)
            .map(|n| n.node_type())
            .ok_or_else(|| TestCaseError::fail("unknown node"))?;
        let outcome = random_outcome(node_type, dice);
        let progress = scheduler
            .record(&id, outcome.clone())
            .map_err(|e| TestCaseError::fail(format!("recording {id}: {e}")))?;
        for node in progress.skipped {
            let skipped_id = node.id().to_string();
            prop_assert!(
                !finished.contains_key(&skipped_id),
                "{} skipped after finishing",
                skipped_id
            );
            prop_assert!(
                skipped.insert(skipped_id.clone()),
                "{} skipped twice",
                skipped_id
            );
        }
        prop_assert!(
            finished.insert(id.clone(), outcome.clone()).is_none(),
            "{} finished twice",
            id
        );
        journal.push((id, outcome));
        snapshots.push(snapshot(&scheduler, &in_flight, &skipped));
    }
    Err(TestCaseError::fail(
        "the run did not end after one step per node",
    ))
}

fn snapshot(scheduler: &Scheduler, in_flight: &[String], skipped: &BTreeSet<String>) -> Snapshot {
    let failed = matches!(scheduler.end(), Some(RunEnd::Failed { .. }));
    let open_work = scheduler
        .ready()
        .map(|n| n.id().to_string())
        .chain(in_flight.iter().filter(|_| !failed).cloned())
        .collect();
    Snapshot {
        open_work,
        skipped: skipped.clone(),
        end: describe(scheduler.end()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn runs_end_with_every_node_resolved_once_as_the_edge_rules_say(
        raw in valid_workflow(),
        rolls in prop::collection::vec(any::<u16>(), 1..64),
    ) {
        let definition = definition(raw);
        let mut dice = Dice { rolls: &rolls, next: 0 };
        let (journal, snapshots) = drive(&definition, &mut dice)?;
        let scheduler = Scheduler::resume(&definition, journal.iter().cloned())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let finished: HashMap<&str, &StepOutcome> =
            journal.iter().map(|(id, outcome)| (id.as_str(), outcome)).collect();
        let skipped: BTreeSet<String> = scheduler.skipped().map(|n| n.id().to_string()).collect();
        prop_assert_eq!(&skipped, &snapshots.last().map(|s| s.skipped.clone()).unwrap_or_default());

        let run_failure = journal
            .iter()
            .find(|(id, outcome)| fails_the_run(&definition, id, outcome));
        match (scheduler.end(), run_failure) {
            (Some(RunEnd::Failed { node, error }), Some((failed_id, StepOutcome::Failed(message)))) => {
                prop_assert_eq!(node.as_str(), failed_id.as_str());
                prop_assert_eq!(error, message.as_str());
            }
            (Some(RunEnd::Succeeded { output }), None) => {
                // Every node is finished or skipped, never both.
                for node in definition.nodes() {
                    let id = node.id().as_str();
                    prop_assert!(
                        finished.contains_key(id) != skipped.contains(id),
                        "{} is not resolved exactly once", id
                    );
                }
                // A node is skipped exactly when none of its incoming edges was taken.
                for node in definition.topological_order().skip(1) {
                    let id = node.id().as_str();
                    let taken = definition
                        .incoming(id)
                        .any(|e| reference_taken(&definition, e, finished.get(e.from().as_str()).copied()));
                    prop_assert_eq!(taken, !skipped.contains(id), "{}", id);
                }
                let expected = journal
                    .iter()
                    .rev()
                    .find(|(id, outcome)| {
                        definition.node(id).is_some_and(|n| n.node_type() == NodeType::Respond)
                            && !matches!(outcome, StepOutcome::Failed(_))
                    })
                    .or(journal.last())
                    .map(|(_, outcome)| outcome.visible_output());
                prop_assert_eq!(Some(output.clone()), expected);
            }
            (end, failure) => {
                return Err(TestCaseError::fail(format!("run ended {end:?} with first fatal failure {failure:?}")));
            }
        }

        // Resuming after any prefix of the journal offers what was open then.
        for (cut, snapshot) in snapshots.iter().enumerate() {
            let resumed = Scheduler::resume(&definition, journal[..cut].iter().cloned())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let ready: BTreeSet<String> = resumed.ready().map(|n| n.id().to_string()).collect();
            prop_assert_eq!(&ready, &snapshot.open_work, "after {} steps", cut);
            let skipped: BTreeSet<String> = resumed.skipped().map(|n| n.id().to_string()).collect();
            prop_assert_eq!(&skipped, &snapshot.skipped, "after {} steps", cut);
            prop_assert_eq!(describe(resumed.end()), snapshot.end.clone(), "after {} steps", cut);
        }
    }
}
