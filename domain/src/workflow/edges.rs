//! Reading the `edges` array and checking each edge on its own: its keys, that both ends
//! exist, that it is not a self-loop or a repeat, that its branch label fits the node it
//! leaves, and that it does not enter the trigger.
//!
//! An edge's problem is reported on the node it leaves, or else on the node it enters, so
//! the editor can show it next to the graph; its message starts with `edges[i]` to say
//! which edge.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Map, Value};

use super::Problem;
use super::definition::Branch;
use super::fields::shown;
use super::node_types::NodeType;
use super::nodes::{NodeDraft, NodeDrafts};

/// An edge whose two ends are known nodes (indices into the drafts).
pub(super) struct EdgeDraft {
    pub(super) from: usize,
    pub(super) to: usize,
    pub(super) branch: Option<Branch>,
    /// Whether the edge had no problem of its own.
    pub(super) clean: bool,
}

pub(super) fn read_edges(
    entries: &[Value],
    nodes: &NodeDrafts,
    problems: &mut Vec<Problem>,
) -> Vec<EdgeDraft> {
    let mut seen: HashMap<(usize, usize, Option<&str>), usize> = HashMap::new();
    let mut drafts = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let Some(object) = entry.as_object() else {
            problems.push(Problem::graph(format!(
                "edges[{index}]: must be an object with `from` and `to`"
            )));
            continue;
        };
        let mut edge = EdgeReader {
            index,
            object,
            nodes,
            messages: Vec::new(),
        };
        let from = edge.end("from");
        let to = edge.end("to");
        let label = edge.label();
        edge.report_unknown_keys();

        let (Some(from), Some(to)) = (from, to) else {
            edge.flush(from.or(to), problems);
            continue;
        };
        let branch = label.and_then(|label| edge.branch(label));
        if from == to {
            edge.push(format!("connects `{}` to itself", edge.id_of(from)));
        }
        match seen.get(&(from, to, label)) {
            Some(first) => edge.push(format!("repeats edges[{first}]")),
            None => {
                seen.insert((from, to, label), index);
            }
        }
        edge.check_branch_fits(from, branch);
        let clean = edge.messages.is_empty();
        if nodes.drafts[to].node_type.is_some_and(NodeType::is_trigger) {
            problems.push(nodes.drafts[to].problem(
                to,
                format!(
                    "edges[{index}]: a trigger cannot have incoming edges (this one comes from `{}`)",
                    edge.id_of(from)
                ),
            ));
        }
        edge.flush(Some(from), problems);
        drafts.push(EdgeDraft {
            from,
            to,
            branch,
            clean,
        });
    }
    drafts
}

struct EdgeReader<'a, 'v> {
    index: usize,
    object: &'v Map<String, Value>,
    nodes: &'a NodeDrafts<'v>,
    messages: Vec<String>,
}

impl<'v> EdgeReader<'_, 'v> {
    fn push(&mut self, message: String) {
        self.messages.push(message);
    }

    /// The node at end `key` (`from` or `to`).
    fn end(&mut self, key: &str) -> Option<usize> {
        match self.object.get(key) {
            None | Some(Value::Null) => {
                self.push(format!("has no `{key}`"));
                None
            }
            Some(Value::String(id)) => {
                let node = self.nodes.index_of(id);
                if node.is_none() {
                    self.push(format!("`{key}`: there is no node `{}`", shown(id)));
                }
                node
            }
            Some(_) => {
                self.push(format!("`{key}` must be a string"));
                None
            }
        }
    }

    fn label(&mut self) -> Option<&'v str> {
        match self.object.get("branch") {
            None | Some(Value::Null) => None,
            Some(Value::String(label)) => Some(label),
            Some(_) => {
                self.push("`branch` must be a string".to_owned());
                None
            }
        }
    }

    fn branch(&mut self, label: &str) -> Option<Branch> {
        let branch = Branch::parse(label);
        if branch.is_none() {
            self.push(format!(
                "unknown branch `{}` (a branch is `true`, `false` or `error`)",
                shown(label)
            ));
        }
        branch
    }

    fn report_unknown_keys(&mut self) {
        let unknown: Vec<String> = self
            .object
            .keys()
            .filter(|key| !matches!(key.as_str(), "from" | "to" | "branch"))
            .map(|key| {
                format!(
                    "unknown key `{}` (an edge has `from`, `to` and `branch`)",
                    shown(key)
                )
            })
            .collect();
        self.messages.extend(unknown);
    }

    /// `true`/`false` only leave `if` nodes, and every edge leaving an `if` has a branch.
    /// A node of unknown type is already reported, so its edges are not judged.
    fn check_branch_fits(&mut self, from: usize, branch: Option<Branch>) {
        let Some(from_type) = self.nodes.drafts[from].node_type else {
            return;
        };
        match (from_type, branch) {
            (NodeType::If, None) if self.object.get("branch").is_none_or(Value::is_null) => self
                .push(
                    "an edge leaving an `if` node needs a `branch`: `true`, `false` or `error`"
                        .to_owned(),
                ),
            (other, Some(branch @ (Branch::True | Branch::False))) if other != NodeType::If => {
                self.push(format!(
                    "branch `{}` can only leave an `if` node, and `{}` is a `{other}` node",
                    branch.as_str(),
                    self.id_of(from)
                ));
            }
            _ => {}
        }
    }

    fn id_of(&self, node: usize) -> Cow<'v, str> {
        self.nodes
            .drafts
            .get(node)
            .map_or(Cow::Borrowed("?"), NodeDraft::shown_id)
    }

    fn flush(self, owner: Option<usize>, problems: &mut Vec<Problem>) {
        let index = self.index;
        for message in self.messages {
            let message = format!("edges[{index}]: {message}");
            problems.push(match owner {
                Some(node) => self.nodes.drafts[node].problem(node, message),
                None => Problem::graph(message),
            });
        }
    }
}
