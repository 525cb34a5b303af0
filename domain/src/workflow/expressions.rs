//! Checks of the `{{ }}` templates in node configs: each must parse, and each `steps.<id>`
//! it reads must name a node upstream of the one it is in, so an expression never reads a
//! step that cannot have finished (or cannot exist) when it runs.
//!
//! `code.source` is JavaScript, not a template, and is left alone. A trigger runs before
//! any step and has no output of its own yet, so its config may read neither `steps` nor
//! `trigger`.

use serde_json::Value;

use super::Problem;
use super::graph::Graph;
use super::node_types::NodeType;
use super::nodes::NodeDrafts;
use crate::expr;

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
        // Computed at the first `steps.<id>` reference, since most nodes have none.
        let mut upstream: Option<Vec<bool>> = None;
        for (key, value) in config {
            if node_type == NodeType::Code && key == "source" {
                continue;
            }
            let key_path = format!("config/{}", key.replace('~', "~0").replace('/', "~1"));
            for (path, error) in expr::check_templates(value) {
                problems.push(draft.problem(
                    index,
                    format!("{key_path}{path}: invalid expression {error}"),
                ));
            }
            for (path, template) in expr::templates_in(value) {
                for reference in template.references() {
                    let message = if node_type.is_trigger() {
                        trigger_reference_problem(&reference)
                    } else {
                        let upstream = graph.map(|g| {
                            upstream
                                .get_or_insert_with(|| g.upstream_of(index))
                                .as_slice()
                        });
                        step_reference_problem(&reference, nodes, upstream)
                    };
                    if let Some(message) = message {
                        problems.push(draft.problem(index, format!("{key_path}{path}: {message}")));
                    }
                }
            }
        }
    }
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
