//! The definition being built, and the last guarantee of the planner: what it returns
//! passes `validate_definition`. Steps the validator refuses are left out, each with a
//! warning, and their neighbours joined, so one odd fragment (a `{{ }}` the user wrote
//! that does not parse) costs that step only.

use std::collections::BTreeSet;

use aos_domain::workflow::validate_definition;
use serde_json::{Value, json};

struct Node {
    id: String,
    node_type: &'static str,
    config: Value,
}

#[derive(Clone, PartialEq)]
struct Edge {
    from: String,
    to: String,
    branch: Option<&'static str>,
}

#[derive(Default)]
pub(super) struct Graph {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

/// The id of the fallback trigger, when nothing else could be kept.
const FALLBACK_ID: &str = "start";

impl Graph {
    /// Adds a node under `base`, or `base_2`, `base_3`… when taken; returns its id.
    pub fn add(&mut self, base: &str, node_type: &'static str, config: Value) -> String {
        let taken = |id: &str| self.nodes.iter().any(|n| n.id == id);
        let id = if taken(base) {
            (2..)
                .map(|n| format!("{base}_{n}"))
                .find(|id| !taken(id))
                .unwrap_or_default()
        } else {
            base.to_owned()
        };
        self.nodes.push(Node {
            id: id.clone(),
            node_type,
            config,
        });
        id
    }

    pub fn connect(&mut self, from: &str, to: &str, branch: Option<&'static str>) {
        self.edges.push(Edge {
            from: from.to_owned(),
            to: to.to_owned(),
            branch,
        });
    }

    pub fn step_count(&self) -> usize {
        self.nodes.len().saturating_sub(1)
    }

    fn to_json(&self) -> Value {
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .map(|n| json!({"id": n.id, "type": n.node_type, "config": n.config}))
            .collect();
        let edges: Vec<Value> = self
            .edges
            .iter()
            .map(|e| match e.branch {
                Some(branch) => json!({"from": e.from, "to": e.to, "branch": branch}),
                None => json!({"from": e.from, "to": e.to}),
            })
            .collect();
        json!({"nodes": nodes, "edges": edges})
    }

    /// Removes a step and joins each of its predecessors (on the same branch) to each of
    /// its successors.
    fn remove(&mut self, id: &str) {
        let incoming: Vec<Edge> = self.edges.iter().filter(|e| e.to == id).cloned().collect();
        let outgoing: Vec<String> = self
            .edges
            .iter()
            .filter(|e| e.from == id)
            .map(|e| e.to.clone())
            .collect();
        self.edges.retain(|e| e.from != id && e.to != id);
        self.nodes.retain(|n| n.id != id);
        for edge in &incoming {
            for to in &outgoing {
                let joined = Edge {
                    from: edge.from.clone(),
                    to: to.clone(),
                    branch: edge.branch,
                };
                if !self.edges.contains(&joined) {
                    self.edges.push(joined);
                }
            }
        }
    }

    /// The definition, valid: refused steps are left out with a warning each; if the
    /// trigger itself is refused, the workflow is reduced to a manual trigger.
    pub fn into_valid(mut self, warnings: &mut Vec<String>) -> Value {
        let trigger = self.nodes.first().map(|n| n.id.clone()).unwrap_or_default();
        for _ in 0..=self.nodes.len() {
            let definition = self.to_json();
            let problems = match validate_definition(&definition) {
                Ok(_) => return definition,
                Err(problems) => problems,
            };
            let refused: BTreeSet<String> = problems
                .iter()
                .filter_map(|p| p.node_id.clone())
                .filter(|id| *id != trigger && self.nodes.iter().any(|n| n.id == *id))
                .collect();
            if refused.is_empty() {
                break;
            }
            for id in refused {
                let reasons: Vec<&str> = problems
                    .iter()
                    .filter(|p| p.node_id.as_deref() == Some(id.as_str()))
                    .map(|p| p.message.as_str())
                    .collect();
                warnings.push(format!(
                    "Left out step `{id}`, which would not validate: {}",
                    reasons.join("; ")
                ));
                self.remove(&id);
            }
        }
        warnings.push(
            "The planned workflow would not validate; it was reduced to a manual trigger."
                .to_owned(),
        );
        json!({
            "nodes": [{"id": FALLBACK_ID, "type": "trigger.manual", "config": {}}],
            "edges": []
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_made_unique() {
        let mut graph = Graph::default();
        assert_eq!(graph.add("a", "trigger.manual", json!({})), "a");
        assert_eq!(graph.add("a", "set", json!({"fields": {}})), "a_2");
        assert_eq!(graph.add("a", "set", json!({"fields": {}})), "a_3");
    }

    #[test]
    fn a_refused_step_is_left_out_and_its_neighbours_joined() {
        let mut graph = Graph::default();
        let start = graph.add("start", "trigger.manual", json!({}));
        let bad = graph.add("bad", "set", json!({"fields": {"x": "{{ 1 + }}"}}));
        let good = graph.add("good", "set", json!({"fields": {"y": 1}}));
        graph.connect(&start, &bad, None);
        graph.connect(&bad, &good, None);
        let mut warnings = Vec::new();
        let definition = graph.into_valid(&mut warnings);
        assert!(validate_definition(&definition).is_ok());
        assert_eq!(
            definition["edges"],
            json!([{"from": "start", "to": "good"}])
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("Left out step `bad`"));
    }

    #[test]
    fn a_refused_trigger_becomes_a_manual_one() {
        let mut graph = Graph::default();
        graph.add("schedule", "trigger.schedule", json!({"cron": "nope"}));
        let mut warnings = Vec::new();
        let definition = graph.into_valid(&mut warnings);
        assert!(validate_definition(&definition).is_ok());
        assert_eq!(definition["nodes"][0]["type"], "trigger.manual");
        assert_eq!(warnings.len(), 1);
    }
}
