//! How a step ended, as the engine journals it: everything the scheduler needs to decide
//! which edges leaving the step are taken, and nothing it could derive itself (a skip is
//! never journalled as an outcome, it follows from the outcomes upstream).

use serde_json::{Value, json};

use crate::workflow::definition::Branch;

use super::status::StepStatus;

/// The result of a step's last attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// A node other than `if` produced its output.
    Succeeded(Value),
    /// An `if` node passed its input on unchanged (`output`) and chose a branch. The branch
    /// is not in the output, so it is journalled on its own.
    Branched { output: Value, branch: IfBranch },
    /// The last attempt failed (retries are over) with this message.
    Failed(String),
}

impl StepOutcome {
    /// The status the step is stored with.
    pub fn step_status(&self) -> StepStatus {
        match self {
            StepOutcome::Succeeded(_) | StepOutcome::Branched { .. } => StepStatus::Succeeded,
            StepOutcome::Failed(_) => StepStatus::Failed,
        }
    }

    /// What later expressions see as `steps.<id>` (and what may become the run's output):
    /// the output of a success, and `{"error": message}` for a failure, so an `error`
    /// branch or an `onError: "continue"` successor can read why the step failed.
    pub fn visible_output(&self) -> Value {
        match self {
            StepOutcome::Succeeded(output) | StepOutcome::Branched { output, .. } => output.clone(),
            StepOutcome::Failed(message) => failure_output(message),
        }
    }
}

pub(super) fn failure_output(message: &str) -> Value {
    json!({ "error": message })
}

/// The branch an `if` node chose: the edges labelled with it are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IfBranch {
    True,
    False,
}

impl IfBranch {
    /// The branch of a condition's truthiness.
    pub fn of(condition: bool) -> Self {
        if condition {
            IfBranch::True
        } else {
            IfBranch::False
        }
    }

    /// The edge label it selects.
    pub fn as_branch(self) -> Branch {
        match self {
            IfBranch::True => Branch::True,
            IfBranch::False => Branch::False,
        }
    }

    /// `"true"` or `"false"`, the edge labels of the definition format.
    pub fn as_str(self) -> &'static str {
        self.as_branch().as_str()
    }

    pub fn parse(label: &str) -> Option<Self> {
        match label {
            "true" => Some(IfBranch::True),
            "false" => Some(IfBranch::False),
            _ => None,
        }
    }
}
