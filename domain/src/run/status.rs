//! The lifecycles of a run and of its steps. Each status is stored and shown by its upper
//! snake case name (the contract's GraphQL enum values); a change of status goes through
//! `transition`, which refuses a move the lifecycle does not have instead of storing it.

use std::fmt;

use super::error::RunError;

/// ```text
/// QUEUED ──> RUNNING ──> SUCCEEDED | FAILED | CANCELLED
///    └─────────────────────────────────────> CANCELLED
/// ```
/// A worker that loses its lease leaves the run `RUNNING`; the next worker resumes it
/// without a change of status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "QUEUED",
            RunStatus::Running => "RUNNING",
            RunStatus::Succeeded => "SUCCEEDED",
            RunStatus::Failed => "FAILED",
            RunStatus::Cancelled => "CANCELLED",
        }
    }

    /// The status named `name` exactly as [`RunStatus::as_str`] writes it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// A terminal run never changes again: its events end with the terminal one.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    pub fn can_become(self, next: RunStatus) -> bool {
        use RunStatus::*;
        matches!(
            (self, next),
            (Queued, Running | Cancelled) | (Running, Succeeded | Failed | Cancelled)
        )
    }

    /// `next`, if the lifecycle goes from `self` to it; cancelling a finished run is the
    /// usual way to get the error.
    pub fn transition(self, next: RunStatus) -> Result<RunStatus, RunError> {
        if self.can_become(next) {
            Ok(next)
        } else {
            Err(RunError::IllegalRunTransition {
                from: self,
                to: next,
            })
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ```text
/// PENDING ──> RUNNING ──> SUCCEEDED | FAILED
///    │          │  ^
///    │          v  │
///    │        RETRYING ──> FAILED
///    └──> SKIPPED
/// ```
/// `RETRYING` is the wait between a failed attempt and the next one; a step leaves it for
/// `FAILED` when the run is cancelled during the wait. A step left `RUNNING` by a worker
/// that lost its lease is executed again (same idempotency key) without a change of status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepStatus {
    Pending,
    Running,
    Retrying,
    Succeeded,
    Failed,
    Skipped,
}

impl StepStatus {
    pub const ALL: [StepStatus; 6] = [
        StepStatus::Pending,
        StepStatus::Running,
        StepStatus::Retrying,
        StepStatus::Succeeded,
        StepStatus::Failed,
        StepStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "PENDING",
            StepStatus::Running => "RUNNING",
            StepStatus::Retrying => "RETRYING",
            StepStatus::Succeeded => "SUCCEEDED",
            StepStatus::Failed => "FAILED",
            StepStatus::Skipped => "SKIPPED",
        }
    }

    /// The status named `name` exactly as [`StepStatus::as_str`] writes it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded | StepStatus::Failed | StepStatus::Skipped
        )
    }

    pub fn can_become(self, next: StepStatus) -> bool {
        use StepStatus::*;
        matches!(
            (self, next),
            (Pending, Running | Skipped)
                | (Running, Succeeded | Failed | Retrying)
                | (Retrying, Running | Failed)
        )
    }

    pub fn transition(self, next: StepStatus) -> Result<StepStatus, RunError> {
        if self.can_become(next) {
            Ok(next)
        } else {
            Err(RunError::IllegalStepTransition {
                from: self,
                to: next,
            })
        }
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
