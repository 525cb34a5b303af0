//! Validation of workflow definitions: every problem at once, never just the first.
//!
//! Policy: any JSON value is accepted as input and never causes a panic; each part of the
//! definition is checked even when other parts are broken, so a user fixes a definition in
//! one round trip. Checks that would only restate an earlier problem are skipped (a node of
//! unknown type gets no config check; with no single trigger nothing is "unreachable").
//! Work is bounded by [`MAX_NODES`] and [`MAX_EDGES`], checked before anything else.

use serde_json::{Map, Value};

use super::Problem;
use super::definition::{Definition, Edge};
use super::edges::{EdgeDraft, read_edges};
use super::expressions::check_expressions;
use super::fields::shown;
use super::graph::Graph;
use super::nodes::{NodeDrafts, read_nodes};
use super::structure::check_structure;

pub const MAX_NODES: usize = 500;
pub const MAX_EDGES: usize = 2_000;

pub fn validate_definition(raw: &Value) -> Result<Definition, Vec<Problem>> {
    let mut problems = Vec::new();
    let Some(root) = read_root(raw, &mut problems) else {
        return Err(problems);
    };
    let nodes = read_nodes(root.nodes, &mut problems);
    let edges = root
        .edges
        .map(|entries| read_edges(entries, &nodes, &mut problems));
    // Without readable edges the graph is unknown, and checks of its shape would only
    // report every node as unreachable.
    let graph = edges.as_deref().map(|edges| {
        // Self-loops are reported as such by `read_edges`; kept out of the graph, they do
        // not come back as one-node cycles.
        let endpoints = edges
            .iter()
            .filter(|e| e.from != e.to)
            .map(|e| (e.from, e.to))
            .collect();
        Graph::new(nodes.len(), endpoints)
    });
    check_structure(&nodes, graph.as_ref(), &mut problems);
    check_expressions(&nodes, graph.as_ref(), &mut problems);
    match edges {
        Some(edges) if problems.is_empty() => assemble(nodes, &edges),
        _ => Err(problems),
    }
}

struct Root<'v> {
    nodes: &'v [Value],
    /// `None` when `edges` is present but unusable (with a problem).
    edges: Option<&'v [Value]>,
}

/// The `nodes` and `edges` arrays; `None` when there are no nodes to check.
fn read_root<'v>(raw: &'v Value, problems: &mut Vec<Problem>) -> Option<Root<'v>> {
    let Some(root) = raw.as_object() else {
        problems.push(Problem::graph(
            "a definition must be a JSON object with `nodes` and `edges`",
        ));
        return None;
    };
    for key in root.keys() {
        if !matches!(key.as_str(), "nodes" | "edges") {
            problems.push(Problem::graph(format!(
                "unknown top-level key `{}` (only `nodes` and `edges` are allowed)",
                shown(key)
            )));
        }
    }
    let edges = read_edge_array(root, problems);
    let nodes = match root.get("nodes") {
        None => {
            problems.push(Problem::graph("`nodes` is required"));
            return None;
        }
        Some(Value::Array(nodes)) if nodes.is_empty() => {
            problems.push(Problem::graph(
                "`nodes` must not be empty: a workflow needs a trigger",
            ));
            return None;
        }
        Some(Value::Array(nodes)) if nodes.len() > MAX_NODES => {
            problems.push(Problem::graph(format!(
                "a workflow may have at most {MAX_NODES} nodes, this one has {}",
                nodes.len()
            )));
            return None;
        }
        Some(Value::Array(nodes)) => nodes,
        Some(_) => {
            problems.push(Problem::graph("`nodes` must be an array"));
            return None;
        }
    };
    Some(Root { nodes, edges })
}

fn read_edge_array<'v>(
    root: &'v Map<String, Value>,
    problems: &mut Vec<Problem>,
) -> Option<&'v [Value]> {
    match root.get("edges") {
        None | Some(Value::Null) => Some(&[]),
        Some(Value::Array(edges)) if edges.len() > MAX_EDGES => {
            problems.push(Problem::graph(format!(
                "a workflow may have at most {MAX_EDGES} edges, this one has {}",
                edges.len()
            )));
            None
        }
        Some(Value::Array(edges)) => Some(edges.as_slice()),
        Some(_) => {
            problems.push(Problem::graph("`edges` must be an array"));
            None
        }
    }
}

/// Builds the `Definition` of a graph that passed every check.
fn assemble(nodes: NodeDrafts, edges: &[EdgeDraft]) -> Result<Definition, Vec<Problem>> {
    let definition = nodes.into_built().and_then(|built| {
        let typed_edges = edges
            .iter()
            .map(|edge| {
                let from = built.get(edge.from)?.id().clone();
                let to = built.get(edge.to)?.id().clone();
                edge.clean.then(|| Edge::new(from, to, edge.branch))
            })
            .collect::<Option<Vec<_>>>()?;
        Definition::from_checked_parts(built, typed_edges)
    });
    // Every failed check records a problem, so this only happens if the checks and the
    // definition's invariant disagree: refuse rather than store a broken graph.
    definition.ok_or_else(|| {
        vec![Problem::graph(
            "internal error: the definition passed validation but could not be built",
        )]
    })
}
