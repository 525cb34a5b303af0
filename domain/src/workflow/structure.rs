//! Checks of the graph as a whole: exactly one trigger, no cycle, every node reachable
//! from the trigger.

use super::Problem;
use super::graph::Graph;
use super::node_types::NodeType;
use super::nodes::NodeDrafts;

/// `graph` is `None` when the edges could not be read; only the trigger count is checked
/// then.
pub(super) fn check_structure(
    nodes: &NodeDrafts,
    graph: Option<&Graph>,
    problems: &mut Vec<Problem>,
) {
    let triggers: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes.drafts[i].node_type.is_some_and(NodeType::is_trigger))
        .collect();
    match triggers.as_slice() {
        [] => {
            let kinds: Vec<String> = NodeType::ALL
                .into_iter()
                .filter(|node_type| node_type.is_trigger())
                .map(|node_type| format!("`{node_type}`"))
                .collect();
            problems.push(Problem::graph(format!(
                "a workflow needs one trigger node ({}), and this one has none",
                kinds.join(", ")
            )));
        }
        [_] => {}
        several => {
            let listed: Vec<String> = several
                .iter()
                .map(|&i| format!("`{}`", nodes.drafts[i].shown_id()))
                .collect();
            for &i in several {
                problems.push(nodes.drafts[i].problem(
                    i,
                    format!(
                        "is one of {} triggers ({}): a workflow has exactly one",
                        several.len(),
                        listed.join(", ")
                    ),
                ));
            }
        }
    }
    let Some(graph) = graph else { return };
    for cycle in graph.cycles() {
        let Some(&start) = cycle.first() else {
            continue;
        };
        let path: Vec<_> = cycle.iter().map(|&i| nodes.drafts[i].shown_id()).collect();
        problems.push(
            nodes.drafts[start]
                .problem(start, format!("is part of a cycle: {}", path.join(" -> "))),
        );
    }
    // With no trigger or several, "unreachable" would have no clear meaning; a trigger
    // without an id cannot have edges, so everything else would be unreachable from it.
    if let [trigger] = triggers.as_slice()
        && nodes.is_named(*trigger)
    {
        let reached = graph.reachable_from(*trigger);
        for (i, draft) in nodes.drafts.iter().enumerate() {
            if !reached[i] && nodes.is_named(i) {
                problems.push(draft.problem(
                    i,
                    format!(
                        "is not reachable from the trigger `{}`",
                        nodes.drafts[*trigger].shown_id()
                    ),
                ));
            }
        }
    }
}
