//! The workflow definition format of the contract, as typed data.
//!
//! Invariant: a [`Definition`] only comes out of [`super::validate_definition`] (its
//! `Deserialize` goes through it too), so it is always a DAG of known node types with
//! exactly one trigger that reaches every other node, with valid configs, retry policies
//! and edges. It serializes back to the contract's JSON with every default written out,
//! and that JSON validates to an equal `Definition`.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::graph::Graph;
use super::node_types::{NodeKind, NodeType};
use super::retry::RetryPolicy;

#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    index_of: HashMap<NodeId, usize>,
    graph: Graph,
    trigger: usize,
    order: Vec<usize>,
}

impl Definition {
    /// Builds the indexes of a graph the validator has checked; `None` if the graph breaks
    /// the invariant after all (no single trigger, a dangling edge, a cycle).
    pub(super) fn from_checked_parts(nodes: Vec<Node>, edges: Vec<Edge>) -> Option<Self> {
        let index_of: HashMap<NodeId, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (node.id.clone(), i))
            .collect();
        if index_of.len() != nodes.len() {
            return None;
        }
        let endpoints = edges
            .iter()
            .map(|edge| Some((*index_of.get(&edge.from)?, *index_of.get(&edge.to)?)))
            .collect::<Option<Vec<_>>>()?;
        let graph = Graph::new(nodes.len(), endpoints);
        let mut triggers = nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| node.node_type().is_trigger());
        let (trigger, _) = triggers.next()?;
        if triggers.next().is_some() {
            return None;
        }
        let order = graph.topological_order()?;
        Some(Self {
            nodes,
            edges,
            index_of,
            graph,
            trigger,
            order,
        })
    }

    /// Nodes in the order the definition lists them.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    pub fn trigger(&self) -> &Node {
        &self.nodes[self.trigger]
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.index_of.get(id).map(|&i| &self.nodes[i])
    }

    /// Edges leaving `id`, in definition order; none for an unknown id.
    pub fn outgoing<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a Edge> + 'a {
        let edges = self
            .index_of
            .get(id)
            .map_or(&[][..], |&i| self.graph.outgoing_edges(i));
        edges.iter().map(|&e| &self.edges[e])
    }

    /// Edges entering `id`, in definition order; none for an unknown id.
    pub fn incoming<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a Edge> + 'a {
        let edges = self
            .index_of
            .get(id)
            .map_or(&[][..], |&i| self.graph.incoming_edges(i));
        edges.iter().map(|&e| &self.edges[e])
    }

    /// Every node after all nodes upstream of it; the trigger comes first. Among nodes
    /// that could go in either order, the one listed first in the definition goes first.
    pub fn topological_order(&self) -> impl Iterator<Item = &Node> {
        self.order.iter().map(|&i| &self.nodes[i])
    }

    /// The nodes from which `id` can be reached (whose outputs it may use), in
    /// topological order; empty for an unknown id.
    pub fn upstream_of(&self, id: &str) -> Vec<&Node> {
        let Some(&target) = self.index_of.get(id) else {
            return Vec::new();
        };
        let upstream = self.graph.upstream_of(target);
        self.in_order_where(|i| upstream[i])
    }

    /// `id` and every node reachable from it, in topological order; empty for an unknown
    /// id. Retrying a run from `id` re-executes exactly these.
    pub fn downstream_of(&self, id: &str) -> Vec<&Node> {
        let Some(&start) = self.index_of.get(id) else {
            return Vec::new();
        };
        let reached = self.graph.reachable_from(start);
        self.in_order_where(|i| reached[i])
    }

    fn in_order_where(&self, keep: impl Fn(usize) -> bool) -> Vec<&Node> {
        self.order
            .iter()
            .filter(|&&i| keep(i))
            .map(|&i| &self.nodes[i])
            .collect()
    }
}

impl Serialize for Definition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            nodes: &'a [Node],
            edges: &'a [Edge],
        }
        Wire {
            nodes: &self.nodes,
            edges: &self.edges,
        }
        .serialize(serializer)
    }
}

/// Deserializing validates, so stored JSON cannot smuggle in a definition that breaks the
/// invariant; the error lists every problem.
impl<'de> Deserialize<'de> for Definition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = serde_json::Value::deserialize(deserializer)?;
        super::validate_definition(&raw).map_err(|problems| {
            let listed: Vec<String> = problems
                .iter()
                .map(|p| match &p.node_id {
                    Some(id) => format!("{id}: {}", p.message),
                    None => p.message.clone(),
                })
                .collect();
            serde::de::Error::custom(format!(
                "invalid workflow definition: {}",
                listed.join("; ")
            ))
        })
    }
}

/// A node id: 1 to 64 ASCII letters, digits and underscores, not starting with a digit,
/// so that `steps.<id>` is a plain path in an expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut chars = raw.chars();
        let valid_start = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let valid_rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_start || !valid_rest || raw.len() > Self::MAX_LEN {
            return Err(format!(
                "id `{}` must be 1 to {} letters, digits or underscores (A-Z, a-z, 0-9, _), not starting with a digit",
                super::fields::shown(raw),
                Self::MAX_LEN
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for NodeId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    id: NodeId,
    #[serde(flatten)]
    kind: NodeKind,
    retry: RetryPolicy,
    on_error: OnError,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<Position>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notes: Option<String>,
}

impl Node {
    pub(super) fn new(id: NodeId, kind: NodeKind, retry: RetryPolicy, on_error: OnError) -> Self {
        Self {
            id,
            kind,
            retry,
            on_error,
            name: None,
            position: None,
            notes: None,
        }
    }

    pub(super) fn with_editor_data(
        mut self,
        name: Option<String>,
        position: Option<Position>,
        notes: Option<String>,
    ) -> Self {
        self.name = name;
        self.position = position;
        self.notes = notes;
        self
    }

    pub fn id(&self) -> &NodeId {
        &self.id
    }

    pub fn kind(&self) -> &NodeKind {
        &self.kind
    }

    pub fn node_type(&self) -> NodeType {
        self.kind.node_type()
    }

    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    pub fn on_error(&self) -> OnError {
        self.on_error
    }

    /// The editor's display label.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Where the editor draws the node.
    pub fn position(&self) -> Option<Position> {
        self.position
    }

    pub fn notes(&self) -> Option<&str> {
        self.notes.as_deref()
    }
}

/// What happens when a node has failed its last attempt and no `error` edge leaves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The run fails.
    #[default]
    Fail,
    /// The run goes on past the failed node.
    Continue,
}

impl OnError {
    pub const NAMES: [&'static str; 2] = ["fail", "continue"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "fail" => Some(Self::Fail),
            "continue" => Some(Self::Continue),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Position {
    pub x: f64,
    pub y: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    from: NodeId,
    to: NodeId,
    #[serde(skip_serializing_if = "Option::is_none")]
    branch: Option<Branch>,
}

impl Edge {
    pub(super) fn new(from: NodeId, to: NodeId, branch: Option<Branch>) -> Self {
        Self { from, to, branch }
    }

    pub fn from(&self) -> &NodeId {
        &self.from
    }

    pub fn to(&self) -> &NodeId {
        &self.to
    }

    /// `None`: taken whenever `from` succeeds.
    pub fn branch(&self) -> Option<Branch> {
        self.branch
    }
}

/// The condition under which an edge is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Branch {
    /// Leaves an `if` node whose condition held.
    True,
    /// Leaves an `if` node whose condition did not hold.
    False,
    /// Leaves any node that failed its last attempt.
    Error,
}

impl Branch {
    pub const NAMES: [&'static str; 3] = ["true", "false", "error"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "true" => Some(Self::True),
            "false" => Some(Self::False),
            "error" => Some(Self::Error),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Branch::True => "true",
            Branch::False => "false",
            Branch::Error => "error",
        }
    }
}
