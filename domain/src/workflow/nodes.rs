//! Reading the `nodes` array: each entry's own keys, id, type, config, retry policy and
//! editor data. Whatever can be read from a broken entry is kept, so graph checks still
//! see the node and do not add noise such as "there is no node `x`".

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::Value;

use super::Problem;
use super::config::parse_config;
use super::definition::{Node, NodeId, OnError, Position};
use super::fields::{FieldReader, bounded_text, closest, integer_in, number_in, one_of, shown};
use super::node_types::NodeType;
use super::retry::RetryPolicy;

const MAX_NAME_CHARS: usize = 200;
const MAX_NOTES_CHARS: usize = 10_000;

/// One entry of `nodes` as far as it could be read.
pub(super) struct NodeDraft<'v> {
    /// The id as written, when it is a string, even a malformed one.
    pub(super) id: Option<&'v str>,
    /// `None` when the type is missing or unknown.
    pub(super) node_type: Option<NodeType>,
    pub(super) config: Option<&'v Value>,
    /// The finished node; `None` when the entry had any problem of its own.
    pub(super) built: Option<Node>,
}

impl<'v> NodeDraft<'v> {
    /// The id for a message: cut short if long, `?` if missing.
    pub(super) fn shown_id(&self) -> Cow<'v, str> {
        self.id.map_or(Cow::Borrowed("?"), shown)
    }

    pub(super) fn problem(&self, index: usize, message: impl Into<String>) -> Problem {
        node_problem(index, self.id, message)
    }
}

/// The drafts in `nodes` order, and where to find each id.
pub(super) struct NodeDrafts<'v> {
    pub(super) drafts: Vec<NodeDraft<'v>>,
    /// Each id's first node; later nodes with the same id are reported as duplicates and
    /// cannot be the end of an edge.
    pub(super) by_id: HashMap<&'v str, usize>,
}

impl<'v> NodeDrafts<'v> {
    pub(super) fn len(&self) -> usize {
        self.drafts.len()
    }

    pub(super) fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Whether `index` is the node its id names (not a later duplicate).
    pub(super) fn is_named(&self, index: usize) -> bool {
        self.drafts
            .get(index)
            .and_then(|d| d.id)
            .is_some_and(|id| self.index_of(id) == Some(index))
    }

    pub(super) fn into_built(self) -> Option<Vec<Node>> {
        self.drafts.into_iter().map(|d| d.built).collect()
    }
}

/// A problem of the node at `index`: on its id when it has one, else on the graph with
/// the node's position.
pub(super) fn node_problem(index: usize, id: Option<&str>, message: impl Into<String>) -> Problem {
    match id {
        Some(id) => Problem::node(id, message),
        None => Problem::graph(format!("nodes[{index}]: {}", message.into())),
    }
}

pub(super) fn read_nodes<'v>(entries: &'v [Value], problems: &mut Vec<Problem>) -> NodeDrafts<'v> {
    let drafts: Vec<NodeDraft> = entries
        .iter()
        .enumerate()
        .map(|(index, entry)| read_node(index, entry, problems))
        .collect();
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    let mut duplicates: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, draft) in drafts.iter().enumerate() {
        let Some(id) = draft.id else { continue };
        match by_id.get(id) {
            Some(&first) => duplicates
                .entry(id)
                .or_insert_with(|| vec![first])
                .push(index),
            None => {
                by_id.insert(id, index);
            }
        }
    }
    let mut duplicates: Vec<(&str, Vec<usize>)> = duplicates.into_iter().collect();
    duplicates.sort_by_key(|(_, indices)| indices[0]);
    for (id, indices) in duplicates {
        let listed: Vec<String> = indices.iter().map(|i| format!("nodes[{i}]")).collect();
        problems.push(Problem::node(
            id,
            format!(
                "duplicate id `{}`: ids must be unique, but {} share it",
                shown(id),
                listed.join(", ")
            ),
        ));
    }
    NodeDrafts { drafts, by_id }
}

fn read_node<'v>(index: usize, entry: &'v Value, problems: &mut Vec<Problem>) -> NodeDraft<'v> {
    let Some(object) = entry.as_object() else {
        problems.push(Problem::graph(format!(
            "nodes[{index}]: must be an object with `id`, `type` and `config`"
        )));
        return NodeDraft {
            id: None,
            node_type: None,
            config: None,
            built: None,
        };
    };
    let id = match object.get("id") {
        None | Some(Value::Null) => {
            problems.push(Problem::graph(format!("nodes[{index}]: has no `id`")));
            None
        }
        Some(Value::String(id)) => Some(id.as_str()),
        Some(_) => {
            problems.push(Problem::graph(format!(
                "nodes[{index}]: `id` must be a string"
            )));
            None
        }
    };

    let mut messages = Vec::new();
    let node_id = id.and_then(|raw| NodeId::parse(raw).map_err(|m| messages.push(m)).ok());
    let node_type = read_type(object.get("type"), &mut messages);

    let mut reader = FieldReader::of(object, "", &mut messages);
    reader.any("id");
    reader.any("type");
    let config = reader.any("config");
    let retry = reader.any("retry");
    let on_error = reader
        .optional("onError", one_of(&OnError::NAMES, OnError::parse))
        .unwrap_or_default();
    let name = reader.optional("name", bounded_text(MAX_NAME_CHARS));
    let notes = reader.optional("notes", bounded_text(MAX_NOTES_CHARS));
    let position = reader.any("position").filter(|p| !p.is_null());
    reader.finish();

    let kind = node_type.and_then(|t| parse_config(t, config, &mut messages));
    let retry = match retry.filter(|r| !r.is_null()) {
        Some(raw) => read_retry(raw, &mut messages),
        None => Some(RetryPolicy::NO_RETRY),
    };
    let position = position.and_then(|raw| read_position(raw, &mut messages));

    let built = match (node_id, kind, retry) {
        (Some(node_id), Some(kind), Some(retry)) if messages.is_empty() => {
            Some(Node::new(node_id, kind, retry, on_error).with_editor_data(name, position, notes))
        }
        _ => None,
    };
    problems.extend(messages.into_iter().map(|m| node_problem(index, id, m)));
    NodeDraft {
        id,
        node_type,
        config: config.filter(|c| !c.is_null()),
        built,
    }
}

fn read_type(raw: Option<&Value>, messages: &mut Vec<String>) -> Option<NodeType> {
    let name = match raw {
        None | Some(Value::Null) => {
            messages.push("has no `type`".to_owned());
            return None;
        }
        Some(Value::String(name)) => name,
        Some(_) => {
            messages.push("`type` must be a string".to_owned());
            return None;
        }
    };
    let node_type = NodeType::parse(name);
    if node_type.is_none() {
        let known: Vec<&str> = NodeType::ALL.iter().map(|t| t.as_str()).collect();
        let suggestion = closest(name, known.iter().copied())
            .map(|k| format!("did you mean `{k}`? "))
            .unwrap_or_default();
        messages.push(format!(
            "unknown node type `{}` ({suggestion}known types: {})",
            shown(name),
            known.join(", ")
        ));
    }
    node_type
}

pub(super) fn read_retry(raw: &Value, messages: &mut Vec<String>) -> Option<RetryPolicy> {
    let mut r = FieldReader::new(raw, "retry", messages)?;
    let max_attempts = r
        .required(
            "maxAttempts",
            integer_in(1, u64::from(RetryPolicy::MAX_ATTEMPTS)),
        )
        .and_then(|n| u32::try_from(n).ok());
    let initial_interval_ms = r
        .optional(
            "initialIntervalMs",
            integer_in(0, RetryPolicy::MAX_INITIAL_INTERVAL_MS),
        )
        .unwrap_or(RetryPolicy::DEFAULT_INITIAL_INTERVAL_MS);
    let backoff_multiplier = r
        .optional(
            "backoffMultiplier",
            number_in(1.0, RetryPolicy::MAX_BACKOFF_MULTIPLIER),
        )
        .unwrap_or(RetryPolicy::DEFAULT_BACKOFF_MULTIPLIER);
    let max_interval_ms = r.optional(
        "maxIntervalMs",
        integer_in(0, RetryPolicy::MAX_INTERVAL_CAP_MS),
    );
    if !r.finish() {
        return None;
    }
    // Each field is in range here, so only the relation between fields can still fail.
    RetryPolicy::new(
        max_attempts?,
        initial_interval_ms,
        backoff_multiplier,
        max_interval_ms,
    )
    .map_err(|message| messages.push(format!("retry: {message}")))
    .ok()
}

fn read_position(raw: &Value, messages: &mut Vec<String>) -> Option<Position> {
    let mut r = FieldReader::new(raw, "position", messages)?;
    let x = r.required("x", coordinate);
    let y = r.required("y", coordinate);
    let clean = r.finish();
    Some(Position { x: x?, y: y? }).filter(|_| clean)
}

fn coordinate(value: &Value) -> Result<f64, String> {
    value.as_f64().ok_or_else(|| "must be a number".to_owned())
}
