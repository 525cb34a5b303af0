//! What can go wrong when the run model is asked to do something its rules forbid.
//!
//! Mapping to the domain's vocabulary: a refused status change is a `Conflict` (cancelling
//! a finished run), an unknown node named by the caller is `Invalid` (a `retryRun` from a
//! node the workflow lacks), and a journal that does not fit the graph is `Internal`: the
//! engine only records outcomes of nodes the scheduler made ready, so that is a bug.

use crate::DomainError;
use crate::workflow::definition::NodeId;
use crate::workflow::node_types::NodeType;

use super::status::{RunStatus, StepStatus};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("a run that is {from} cannot become {to}")]
    IllegalRunTransition { from: RunStatus, to: RunStatus },
    #[error("a step that is {from} cannot become {to}")]
    IllegalStepTransition { from: StepStatus, to: StepStatus },
    #[error("the workflow has no node `{0}`")]
    UnknownNode(String),
    /// Its predecessors have not all finished, or it was skipped.
    #[error("node `{0}` is not ready to run")]
    NotReady(NodeId),
    #[error("node `{0}` already has an outcome")]
    AlreadyFinished(NodeId),
    /// A branch chosen by a node that is not an `if`, or an `if` that chose none.
    #[error("node `{node}` is a `{node_type}` node, which cannot have this outcome")]
    OutcomeDoesNotFit { node: NodeId, node_type: NodeType },
}

impl From<RunError> for DomainError {
    fn from(error: RunError) -> Self {
        match error {
            RunError::IllegalRunTransition { .. } | RunError::IllegalStepTransition { .. } => {
                DomainError::Conflict(error.to_string())
            }
            RunError::UnknownNode(_) => DomainError::Invalid(error.to_string()),
            RunError::NotReady(_)
            | RunError::AlreadyFinished(_)
            | RunError::OutcomeDoesNotFit { .. } => DomainError::internal(error),
        }
    }
}
