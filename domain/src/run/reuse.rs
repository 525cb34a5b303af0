//! `retryRun(fromNode)`: a new run that re-executes `fromNode` and everything reachable
//! from it, and takes every other step's outcome from the run it retries.
//!
//! The reused set is closed under predecessors (a node upstream of a re-executed one
//! could only be re-executed if it were reachable from `fromNode`), so the reused journal
//! replays into a [`super::Scheduler`] in its original order and leaves exactly the
//! re-executed part of the graph (plus whatever the old run never reached) to run. A
//! reused failure that failed the old run fails the new one again at once.

use std::collections::HashSet;

use crate::workflow::Definition;

use super::error::RunError;
use super::outcome::StepOutcome;

/// The entries of `previous` (the retried run's journal, in its order) that the new run
/// keeps: those of nodes not in `definition.downstream_of(from_node)`, in the same order.
/// Entries naming a node the definition lacks are kept, so that replaying them reports
/// the mismatch instead of hiding it.
pub fn outcomes_to_reuse<K: AsRef<str>>(
    definition: &Definition,
    from_node: &str,
    previous: impl IntoIterator<Item = (K, StepOutcome)>,
) -> Result<Vec<(K, StepOutcome)>, RunError> {
    if definition.node(from_node).is_none() {
        return Err(RunError::UnknownNode(from_node.to_owned()));
    }
    let rerun: HashSet<&str> = definition
        .downstream_of(from_node)
        .into_iter()
        .map(|node| node.id().as_str())
        .collect();
    Ok(previous
        .into_iter()
        .filter(|(node_id, _)| !rerun.contains(node_id.as_ref()))
        .collect())
}
