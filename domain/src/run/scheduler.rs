//! Which nodes of a run may execute, which are skipped, and when and how the run ends.
//!
//! Semantics (the contract's "Workflow definition"): an edge is resolved once its source
//! has finished or been skipped, and taken when
//! - its source succeeded and the edge has no branch,
//! - its source is an `if` that chose the edge's branch (`true` / `false`),
//! - its source failed after its retries and the edge's branch is `error`, or
//! - its source failed, has no `error` edge, has `onError: "continue"`, and the edge has
//!   no branch (so a failed `if` with `continue` takes none of its edges).
//!
//! A node whose incoming edges are all resolved is ready if at least one was taken, and
//! skipped otherwise; a skipped node's edges are resolved and not taken, so skips
//! propagate. A node that fails with neither an `error` edge nor `continue` fails the run:
//! nothing else is made ready, though steps already handed out may still be recorded.
//!
//! Outputs: a failed step's visible output is `{"error": message}`. A run that succeeds
//! outputs the output of the last `respond` node to succeed, else of the last step to be
//! recorded (successful or failed with `continue`/an `error` edge); "last" is the order of
//! [`Scheduler::record`] calls, which is the journal's order.
//!
//! Cost: building a scheduler is O(nodes + edges); each `record` is O(edges leaving the
//! nodes it resolves + ready nodes), so a whole run is O(nodes + edges) overall. Resuming
//! is replaying the journal through `record`: the scheduler is a pure function of it.

use std::collections::{HashMap, VecDeque};

use serde_json::Value;

use crate::workflow::Definition;
use crate::workflow::definition::{Branch, Edge, Node, NodeId, OnError};
use crate::workflow::node_types::NodeType;

use super::error::RunError;
use super::outcome::{StepOutcome, failure_output};
use super::status::{RunStatus, StepStatus};

/// The state of one run's graph. Borrows the definition the run executes.
#[derive(Debug, Clone)]
pub struct Scheduler<'d> {
    nodes: &'d [Node],
    index_of: HashMap<&'d str, usize>,
    /// The edges leaving node `i` are `edges[edge_start[i]..edge_start[i + 1]]`, each as
    /// (target, branch): one allocation instead of one per node.
    edge_start: Vec<usize>,
    edges: Vec<(usize, Option<Branch>)>,
    unresolved_in: Vec<usize>,
    taken_in: Vec<usize>,
    states: Vec<NodeState>,
    /// Which outgoing edges each finished node takes; `None` until it has finished, and
    /// for a failure that failed the run.
    taken_out: Vec<Option<Taken>>,
    /// Ready nodes not yet started, in the order they became ready.
    ready: VecDeque<usize>,
    /// Skipped nodes in the order they were skipped (each after its predecessors).
    skipped: Vec<usize>,
    /// Nodes neither finished nor skipped.
    open: usize,
    last_finished: Option<usize>,
    last_respond: Option<usize>,
    /// The first node whose failure failed the run.
    failure: Option<usize>,
}

#[derive(Debug, Clone)]
enum NodeState {
    Waiting,
    Ready,
    Started,
    Succeeded(Value),
    Failed { message: String, output: Value },
    Skipped,
}

/// Which of a resolved node's outgoing edges are taken.
#[derive(Debug, Clone, Copy)]
enum Taken {
    Unlabelled,
    Labelled(Branch),
    None,
}

impl Taken {
    fn takes(self, branch: Option<Branch>) -> bool {
        match (self, branch) {
            (Taken::Unlabelled, None) => true,
            (Taken::Labelled(chosen), Some(branch)) => chosen == branch,
            _ => false,
        }
    }
}

/// What one [`Scheduler::record`] changed.
#[derive(Debug, Default, PartialEq)]
pub struct Progress<'d> {
    /// Nodes that just became ready, in a deterministic order.
    pub ready: Vec<&'d Node>,
    /// Nodes that just became skipped, each after the nodes it depends on.
    pub skipped: Vec<&'d Node>,
}

/// How a run ended, as far as its graph is concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RunEnd<'a> {
    Succeeded {
        output: &'a Value,
    },
    /// `node` failed with `error` and had neither an `error` edge nor `onError: continue`.
    Failed {
        node: &'a NodeId,
        error: &'a str,
    },
}

impl RunEnd<'_> {
    pub fn status(&self) -> RunStatus {
        match self {
            RunEnd::Succeeded { .. } => RunStatus::Succeeded,
            RunEnd::Failed { .. } => RunStatus::Failed,
        }
    }
}

static NO_OUTPUT: Value = Value::Null;

impl<'d> Scheduler<'d> {
    /// A run that has recorded nothing: only the trigger is ready.
    pub fn new(definition: &'d Definition) -> Self {
        let nodes = definition.nodes();
        let index_of: HashMap<&'d str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (node.id().as_str(), i))
            .collect();
        let mut endpoints: Vec<(usize, usize, Option<Branch>)> = definition
            .edges()
            .iter()
            .filter_map(|edge| {
                let from = *index_of.get(edge.from().as_str())?;
                let to = *index_of.get(edge.to().as_str())?;
                Some((from, to, edge.branch()))
            })
            .collect();
        // A stable sort keeps each node's edges in definition order.
        endpoints.sort_by_key(|&(from, _, _)| from);
        let mut edge_start = vec![0; nodes.len() + 1];
        let mut unresolved_in = vec![0; nodes.len()];
        for &(from, to, _) in &endpoints {
            edge_start[from + 1] += 1;
            unresolved_in[to] += 1;
        }
        for i in 0..nodes.len() {
            edge_start[i + 1] += edge_start[i];
        }
        let edges = endpoints
            .into_iter()
            .map(|(_, to, branch)| (to, branch))
            .collect();

        // Only the trigger has no incoming edge in a valid definition.
        let ready: VecDeque<usize> = (0..nodes.len())
            .filter(|&i| unresolved_in[i] == 0)
            .collect();
        let mut states = vec![NodeState::Waiting; nodes.len()];
        for &i in &ready {
            states[i] = NodeState::Ready;
        }
        Self {
            nodes,
            index_of,
            edge_start,
            edges,
            taken_in: vec![0; nodes.len()],
            unresolved_in,
            states,
            taken_out: vec![None; nodes.len()],
            ready,
            skipped: Vec::new(),
            open: nodes.len(),
            last_finished: None,
            last_respond: None,
            failure: None,
        }
    }

    /// The scheduler after `journal`, the outcomes recorded so far in the order they were
    /// recorded: what is ready, skipped or finished is exactly as it was when the last of
    /// them was recorded, except that nothing counts as started.
    pub fn resume<K: AsRef<str>>(
        definition: &'d Definition,
        journal: impl IntoIterator<Item = (K, StepOutcome)>,
    ) -> Result<Self, RunError> {
        let mut scheduler = Self::new(definition);
        for (node_id, outcome) in journal {
            scheduler.record(node_id.as_ref(), outcome)?;
        }
        Ok(scheduler)
    }

    /// Ready nodes that have not been started, in the order they became ready; none once
    /// the run has failed.
    pub fn ready(&self) -> impl Iterator<Item = &'d Node> + '_ {
        let nodes = self.nodes;
        let failed = self.failure.is_some();
        self.ready
            .iter()
            .filter(move |_| !failed)
            .map(move |&i| &nodes[i])
    }

    /// Marks `node_id` as handed to a worker, so [`Scheduler::ready`] stops offering it.
    pub fn start(&mut self, node_id: &str) -> Result<&'d Node, RunError> {
        let index = self.index(node_id)?;
        if self.failure.is_some() || !matches!(self.states[index], NodeState::Ready) {
            return Err(RunError::NotReady(self.nodes[index].id().clone()));
        }
        self.unready(index);
        self.states[index] = NodeState::Started;
        Ok(&self.nodes[index])
    }

    /// Starts the node that has been ready longest; `None` when nothing is ready (or the
    /// run has failed).
    pub fn start_next(&mut self) -> Option<&'d Node> {
        if self.failure.is_some() {
            return None;
        }
        let index = self.ready.pop_front()?;
        self.states[index] = NodeState::Started;
        Some(&self.nodes[index])
    }

    /// Records how a ready (or started) node's step ended, and resolves its outgoing
    /// edges. Once the run has failed, steps still in flight may be recorded, but nothing
    /// new becomes ready or skipped; a replayed journal does not say which ready nodes were
    /// in flight, so any ready node is accepted then.
    pub fn record(
        &mut self,
        node_id: &str,
        outcome: StepOutcome,
    ) -> Result<Progress<'d>, RunError> {
        let index = self.index(node_id)?;
        let node = &self.nodes[index];
        match self.states[index] {
            NodeState::Ready | NodeState::Started => {}
            NodeState::Succeeded(_) | NodeState::Failed { .. } => {
                return Err(RunError::AlreadyFinished(node.id().clone()));
            }
            NodeState::Waiting | NodeState::Skipped => {
                return Err(RunError::NotReady(node.id().clone()));
            }
        }
        let node_type = node.node_type();
        let fits = match outcome {
            StepOutcome::Succeeded(_) => node_type != NodeType::If,
            StepOutcome::Branched { .. } => node_type == NodeType::If,
            StepOutcome::Failed(_) => true,
        };
        if !fits {
            return Err(RunError::OutcomeDoesNotFit {
                node: node.id().clone(),
                node_type,
            });
        }
        let taken = match &outcome {
            StepOutcome::Succeeded(_) => Some(Taken::Unlabelled),
            StepOutcome::Branched { branch, .. } => Some(Taken::Labelled(branch.as_branch())),
            StepOutcome::Failed(_) => self.taken_after_failure(index),
        };

        if matches!(self.states[index], NodeState::Ready) {
            self.unready(index);
        }
        self.taken_out[index] = taken;
        self.open -= 1;
        self.last_finished = Some(index);
        if node_type == NodeType::Respond && !matches!(outcome, StepOutcome::Failed(_)) {
            self.last_respond = Some(index);
        }
        self.states[index] = match outcome {
            StepOutcome::Succeeded(output) | StepOutcome::Branched { output, .. } => {
                NodeState::Succeeded(output)
            }
            StepOutcome::Failed(message) => NodeState::Failed {
                output: failure_output(&message),
                message,
            },
        };

        let mut progress = Progress::default();
        match taken {
            None => {
                self.failure.get_or_insert(index);
            }
            Some(_) if self.failure.is_some() => {}
            Some(taken) => self.resolve(index, taken, &mut progress),
        }
        Ok(progress)
    }

    /// `None`: the failure fails the run.
    fn taken_after_failure(&self, index: usize) -> Option<Taken> {
        let has_error_edge = self
            .edges_of(index)
            .iter()
            .any(|&(_, branch)| branch == Some(Branch::Error));
        if has_error_edge {
            return Some(Taken::Labelled(Branch::Error));
        }
        match self.nodes[index].on_error() {
            OnError::Continue => Some(Taken::Unlabelled),
            OnError::Fail => None,
        }
    }

    /// Resolves the edges leaving `source`, and those of every node that this skips.
    fn resolve(&mut self, source: usize, taken: Taken, progress: &mut Progress<'d>) {
        // Allocates only when something is skipped.
        let mut newly_skipped = Vec::new();
        self.resolve_edges_of(source, taken, progress, &mut newly_skipped);
        while let Some(skipped) = newly_skipped.pop() {
            self.resolve_edges_of(skipped, Taken::None, progress, &mut newly_skipped);
        }
    }

    fn resolve_edges_of(
        &mut self,
        source: usize,
        taken: Taken,
        progress: &mut Progress<'d>,
        newly_skipped: &mut Vec<usize>,
    ) {
        let nodes = self.nodes;
        for edge in self.edge_start[source]..self.edge_start[source + 1] {
            let (target, branch) = self.edges[edge];
            self.unresolved_in[target] -= 1;
            if taken.takes(branch) {
                self.taken_in[target] += 1;
            }
            if self.unresolved_in[target] > 0 {
                continue;
            }
            if self.taken_in[target] > 0 {
                self.states[target] = NodeState::Ready;
                self.ready.push_back(target);
                progress.ready.push(&nodes[target]);
            } else {
                self.states[target] = NodeState::Skipped;
                self.open -= 1;
                self.skipped.push(target);
                progress.skipped.push(&nodes[target]);
                newly_skipped.push(target);
            }
        }
    }

    fn edges_of(&self, index: usize) -> &[(usize, Option<Branch>)] {
        &self.edges[self.edge_start[index]..self.edge_start[index + 1]]
    }

    fn unready(&mut self, index: usize) {
        if let Some(position) = self.ready.iter().position(|&i| i == index) {
            self.ready.remove(position);
        }
    }

    fn index(&self, node_id: &str) -> Result<usize, RunError> {
        self.index_of
            .get(node_id)
            .copied()
            .ok_or_else(|| RunError::UnknownNode(node_id.to_owned()))
    }

    /// Every skipped node, each after the nodes it depends on.
    pub fn skipped(&self) -> impl Iterator<Item = &'d Node> + '_ {
        let nodes = self.nodes;
        self.skipped.iter().map(move |&i| &nodes[i])
    }

    /// The visible output of each finished step (what expressions read as `steps.<id>`),
    /// in definition order.
    pub fn outputs(&self) -> impl Iterator<Item = (&'d NodeId, &Value)> + '_ {
        let nodes = self.nodes;
        self.states
            .iter()
            .enumerate()
            .filter_map(move |(i, state)| Some((nodes[i].id(), finished_output(state)?)))
    }

    /// Whether `edge` (of the definition this scheduler runs) was taken: its source has
    /// finished and chose it. A `merge` node reads the outputs of exactly these sources.
    pub fn is_taken(&self, edge: &Edge) -> bool {
        self.index_of
            .get(edge.from().as_str())
            .and_then(|&from| self.taken_out[from])
            .is_some_and(|taken| taken.takes(edge.branch()))
    }

    /// The visible output of `node_id` if its step has finished.
    pub fn output_of(&self, node_id: &str) -> Option<&Value> {
        let index = self.index_of.get(node_id)?;
        finished_output(&self.states[*index])
    }

    /// Where `node_id` stands; a node that is ready but not started is still `PENDING`.
    pub fn status_of(&self, node_id: &str) -> Option<StepStatus> {
        let index = self.index_of.get(node_id)?;
        Some(match self.states[*index] {
            NodeState::Waiting | NodeState::Ready => StepStatus::Pending,
            NodeState::Started => StepStatus::Running,
            NodeState::Succeeded(_) => StepStatus::Succeeded,
            NodeState::Failed { .. } => StepStatus::Failed,
            NodeState::Skipped => StepStatus::Skipped,
        })
    }

    /// `None` while the run goes on. A failure ends the run at once, even with steps in
    /// flight (the engine decides what becomes of them); success needs every node
    /// finished or skipped.
    pub fn end(&self) -> Option<RunEnd<'_>> {
        if let Some(failed) = self.failure {
            let error = match &self.states[failed] {
                NodeState::Failed { message, .. } => message.as_str(),
                _ => "",
            };
            return Some(RunEnd::Failed {
                node: self.nodes[failed].id(),
                error,
            });
        }
        if self.open > 0 {
            return None;
        }
        let output = self
            .last_respond
            .or(self.last_finished)
            .and_then(|i| finished_output(&self.states[i]))
            .unwrap_or(&NO_OUTPUT);
        Some(RunEnd::Succeeded { output })
    }
}

fn finished_output(state: &NodeState) -> Option<&Value> {
    match state {
        NodeState::Succeeded(output) | NodeState::Failed { output, .. } => Some(output),
        _ => None,
    }
}
