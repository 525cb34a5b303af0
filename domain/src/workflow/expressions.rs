//! Checks of the `{{ }}` templates in node configs: each must parse, and each `steps.<id>`
//! it reads must name a node upstream of the one it is in, so an expression never reads a
//! step that cannot have finished (or cannot exist) when it runs.
//!
//! `code.source` is JavaScript, not a template, and is left alone. A trigger runs before
//! any step and has no output of its own yet, so its config may read neither `steps` nor
//! `trigger`. A `trigger.poll` config may hold no template at all (its config check says
//! so), so it is left alone here rather than reported twice.
//!
//! A `loop` node's body steps are checked with the loop body's names in scope (`item`,
//! `index`): there, `steps.<id>` may also name an earlier step of the same body, and a
//! body step id may not be a graph node's id, since both would be read as `steps.<id>`.

use serde_json::{Map, Value};

use super::Problem;
use super::graph::Graph;
use super::node_types::NodeType;
use super::nodes::NodeDrafts;
use crate::expr::{self, Roots};

/// `graph` is `None` when the edges could not be read; then only syntax is checked.
pub(super) fn check_expressions(
    nodes: &NodeDrafts,
    graph: Option<&Graph>,
    problems: &mut Vec<Problem>,
) {
    for (index, draft) in nodes.drafts.iter().enumerate() {
        let (Some(node_type), Some(Value::Object(config))) = (draft.node_type, draft.config) else {
            continue;
        };
        if node_type == NodeType::PollTrigger {
            continue;
        }
        let mut upstream = Upstream {
            graph,
            index,
            cached: None,
        };
        let mut report = |message: String| problems.push(draft.problem(index, message));
        for (key, value) in config {
            if node_type == NodeType::Code && key == "source" {
                continue;
            }
            if node_type == NodeType::Loop && key == "steps" {
                check_loop_body(value, nodes, &mut upstream, &mut report);
                continue;
            }
            let key_path = format!("config/{}", escape_key(key));
            check_value(
                value,
                &key_path,
                Roots::Workflow,
                &mut report,
                |reference| {
                    if node_type.is_trigger() {
                        trigger_reference_problem(reference)
                    } else {
                        step_reference_problem(reference, nodes, upstream.get())
                    }
                },
            );
        }
    }
}

/// Which nodes run before one node, computed at the first `steps.<id>` reference, since
/// most nodes have none.
struct Upstream<'g> {
    graph: Option<&'g Graph>,
    index: usize,
    cached: Option<Vec<bool>>,
}

impl Upstream<'_> {
    /// `None` when the graph is unknown.
    fn get(&mut self) -> Option<&[bool]> {
        let graph = self.graph?;
        let index = self.index;
        Some(
            self.cached
                .get_or_insert_with(|| graph.upstream_of(index))
                .as_slice(),
        )
    }
}

/// Reports every template in `value` that does not parse with `roots` in scope, and every
/// reference that `judge` finds a problem with.
fn check_value(
    value: &Value,
    key_path: &str,
    roots: Roots,
    report: &mut impl FnMut(String),
    mut judge: impl FnMut(&expr::Reference) -> Option<String>,
) {
    for (path, error) in expr::check_templates_with(value, roots) {
        report(format!("{key_path}{path}: invalid expression {error}"));
    }
    for (path, template) in expr::templates_in_with(value, roots) {
        for reference in template.references() {
            if let Some(message) = judge(&reference) {
                report(format!("{key_path}{path}: {message}"));
            }
        }
    }
}

/// The body of a loop node, as written (its shape is checked with the config).
fn check_loop_body(
    steps: &Value,
    nodes: &NodeDrafts,
    upstream: &mut Upstream,
    report: &mut impl FnMut(String),
) {
    let Some(entries) = steps.as_array() else {
        return;
    };
    let body_ids: Vec<Option<&str>> = entries
        .iter()
        .map(|entry| entry.get("id").and_then(Value::as_str))
        .collect();
    for (position, entry) in entries.iter().enumerate() {
        let step_path = format!("config/steps/{position}");
        if let Some(id) = body_ids[position]
            && nodes.index_of(id).is_some()
        {
            report(format!(
                "{step_path}/id: `{id}` is already the id of a node of the graph; a body step needs an id of its own, since both are read as `steps.{id}`"
            ));
        }
        let node_type = entry
            .get("type")
            .and_then(Value::as_str)
            .and_then(NodeType::parse);
        let Some(config) = entry.get("config").and_then(Value::as_object) else {
            continue;
        };
        let earlier = &body_ids[..position];
        check_body_step_config(
            config,
            node_type,
            &step_path,
            |reference| body_reference_problem(reference, earlier, &body_ids, nodes, upstream),
            report,
        );
    }
}

fn check_body_step_config(
    config: &Map<String, Value>,
    node_type: Option<NodeType>,
    step_path: &str,
    mut judge: impl FnMut(&expr::Reference) -> Option<String>,
    report: &mut impl FnMut(String),
) {
    for (key, value) in config {
        if node_type == Some(NodeType::Code) && key == "source" {
            continue;
        }
        let key_path = format!("{step_path}/config/{}", escape_key(key));
        check_value(value, &key_path, Roots::LoopBody, report, &mut judge);
    }
}

/// `earlier` are the ids of the body steps before the one holding the reference, `body`
/// all of them.
fn body_reference_problem(
    reference: &expr::Reference,
    earlier: &[Option<&str>],
    body: &[Option<&str>],
    nodes: &NodeDrafts,
    upstream: &mut Upstream,
) -> Option<String> {
    let step = reference
        .first
        .as_deref()
        .filter(|_| reference.root == "steps")?;
    if earlier.contains(&Some(step)) {
        return None;
    }
    if body.contains(&Some(step)) {
        return Some(format!(
            "refers to steps.{step}, which does not run before this step of the loop body (only earlier body steps of the same iteration can be read)"
        ));
    }
    step_reference_problem(reference, nodes, upstream.get())
}

fn escape_key(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn trigger_reference_problem(reference: &expr::Reference) -> Option<String> {
    matches!(reference.root.as_str(), "steps" | "trigger").then(|| {
        format!(
            "a trigger's config cannot refer to `{}`: nothing has run yet when it is read",
            reference.root
        )
    })
}

/// `upstream[i]` tells whether node `i` runs before the node holding the reference;
/// `None` when the graph is unknown.
fn step_reference_problem(
    reference: &expr::Reference,
    nodes: &NodeDrafts,
    upstream: Option<&[bool]>,
) -> Option<String> {
    if reference.root != "steps" {
        return None;
    }
    // `steps` read whole or with a computed index cannot be checked before the run.
    let step = reference.first.as_deref()?;
    match nodes.index_of(step) {
        None => Some(format!(
            "refers to steps.{step}, but there is no node `{step}`"
        )),
        Some(node) if upstream.is_some_and(|u| !u[node]) => Some(format!(
            "refers to steps.{step}, which does not run before this node"
        )),
        Some(_) => None,
    }
}
