//! What the engine writes down about a run, and reads back to resume it: the run row, its
//! steps and its numbered events, as the storage ports exchange them.
//!
//! Invariant: a run's events are numbered from 1 without gaps, in the order they were
//! journaled, and a step's result is journaled together with its events in one write, so a
//! reader never sees a finished step without its events or the other way round.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::ids::{WorkflowId, WorkspaceId};
use crate::run::{RunId, RunStatus, StepStatus};

/// The contract's `RunEvent.kind` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunEventKind {
    RunQueued,
    RunStarted,
    StepStarted,
    StepLog,
    StepRetrying,
    StepSucceeded,
    StepFailed,
    StepSkipped,
    RunSucceeded,
    RunFailed,
    RunCancelled,
}

impl RunEventKind {
    pub const ALL: [RunEventKind; 11] = [
        RunEventKind::RunQueued,
        RunEventKind::RunStarted,
        RunEventKind::StepStarted,
        RunEventKind::StepLog,
        RunEventKind::StepRetrying,
        RunEventKind::StepSucceeded,
        RunEventKind::StepFailed,
        RunEventKind::StepSkipped,
        RunEventKind::RunSucceeded,
        RunEventKind::RunFailed,
        RunEventKind::RunCancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunEventKind::RunQueued => "RUN_QUEUED",
            RunEventKind::RunStarted => "RUN_STARTED",
            RunEventKind::StepStarted => "STEP_STARTED",
            RunEventKind::StepLog => "STEP_LOG",
            RunEventKind::StepRetrying => "STEP_RETRYING",
            RunEventKind::StepSucceeded => "STEP_SUCCEEDED",
            RunEventKind::StepFailed => "STEP_FAILED",
            RunEventKind::StepSkipped => "STEP_SKIPPED",
            RunEventKind::RunSucceeded => "RUN_SUCCEEDED",
            RunEventKind::RunFailed => "RUN_FAILED",
            RunEventKind::RunCancelled => "RUN_CANCELLED",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The last event a run ever gets.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunEventKind::RunSucceeded | RunEventKind::RunFailed | RunEventKind::RunCancelled
        )
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunTrigger {
    Manual,
    Webhook,
    Schedule,
    /// A `trigger.poll` found a new item.
    Poll,
    Retry,
}

impl RunTrigger {
    pub const ALL: [RunTrigger; 5] = [
        RunTrigger::Manual,
        RunTrigger::Webhook,
        RunTrigger::Schedule,
        RunTrigger::Poll,
        RunTrigger::Retry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunTrigger::Manual => "MANUAL",
            RunTrigger::Webhook => "WEBHOOK",
            RunTrigger::Schedule => "SCHEDULE",
            RunTrigger::Poll => "POLL",
            RunTrigger::Retry => "RETRY",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|trigger| trigger.as_str() == name)
    }
}

/// A run about to be queued, pinned to one version of its workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub id: RunId,
    pub workflow_id: WorkflowId,
    pub workflow_version: i32,
    pub trigger: RunTrigger,
    pub input: Value,
    /// For `retryRun`: the run retried and the node it restarts from.
    pub retry_of: Option<(RunId, String)>,
    /// Steps carried over unchanged (a retry reuses the outputs before its node).
    pub reused_steps: Vec<StepRecord>,
    pub queued_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: RunId,
    pub workspace_id: WorkspaceId,
    pub workflow_id: WorkflowId,
    pub workflow_version: i32,
    pub status: RunStatus,
    pub trigger: RunTrigger,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub retry_of: Option<RunId>,
    pub retry_from_node: Option<String>,
    pub cancel_requested: bool,
    /// The number of the newest event; 0 before the first.
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Run {
    /// The `RUN_QUEUED` event every run is stored with (always seq 1), for publishing to
    /// live subscribers without reading it back.
    pub fn queued_event(&self) -> RunEvent {
        let event = NewRunEvent::queued(self.trigger, self.created_at);
        RunEvent {
            run_id: self.id,
            workspace_id: self.workspace_id,
            seq: 1,
            at: event.at,
            kind: event.kind,
            node_id: event.node_id,
            message: event.message,
            data: event.data,
        }
    }
}

/// One node's step within a run, as last journaled.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub node_id: String,
    pub status: StepStatus,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    /// The branch an `if` took (`"true"`/`"false"`).
    pub branch: Option<String>,
    /// The position of this step among the run's finished steps, from 1.
    pub finish_order: Option<u32>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// An event about to be journaled; storage gives it the run's next `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRunEvent {
    pub kind: RunEventKind,
    pub node_id: Option<String>,
    pub message: String,
    pub data: Option<Value>,
    pub at: DateTime<Utc>,
}

impl NewRunEvent {
    /// The first event of every run, stored with it when it is queued.
    pub fn queued(trigger: RunTrigger, at: DateTime<Utc>) -> Self {
        Self {
            kind: RunEventKind::RunQueued,
            node_id: None,
            message: "queued".into(),
            data: Some(serde_json::json!({"trigger": trigger.as_str()})),
            at,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunEvent {
    pub run_id: RunId,
    pub workspace_id: WorkspaceId,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub kind: RunEventKind,
    pub node_id: Option<String>,
    pub message: String,
    pub data: Option<Value>,
}

/// A worker's hold on a run. Every write carries it; storage refuses a write whose
/// fencing token is no longer the run's newest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub run_id: RunId,
    pub workspace_id: WorkspaceId,
    pub worker: String,
    pub fencing_token: i64,
}

/// A claimed run with everything needed to resume it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedRun {
    pub lease: Lease,
    pub run: Run,
    /// The definition of the version the run is pinned to, as stored (it validated when
    /// it was saved).
    pub definition: Value,
    pub steps: Vec<StepRecord>,
}

/// How a journal write changes the run itself (after starting it, if it `starts`).
#[derive(Debug, Clone, PartialEq)]
pub enum RunChange {
    /// The run ended; it leaves the queue.
    Finished {
        status: RunStatus,
        output: Option<Value>,
        error: Option<String>,
        at: DateTime<Utc>,
    },
    /// Nothing to do before `until_ms` (a delay or a retry backoff): the lease is given
    /// up and the run becomes claimable again then, by any worker.
    SleepUntil { until_ms: i64 },
}

/// One atomic write of a worker: step results, their events, and the run's change.
///
/// A run's start travels with whatever the worker writes first (its first steps, or even
/// its end), so starting a run costs no write of its own.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Journal {
    /// QUEUED → RUNNING at this time, before `run` applies.
    pub starts: Option<DateTime<Utc>>,
    pub steps: Vec<StepRecord>,
    pub events: Vec<NewRunEvent>,
    pub run: Option<RunChange>,
}

impl Journal {
    /// Whether the write would change anything beyond extending the lease.
    pub fn is_empty(&self) -> bool {
        self.starts.is_none()
            && self.steps.is_empty()
            && self.events.is_empty()
            && self.run.is_none()
    }
}

/// How a run ended, as the worker that ended it knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub steps: Vec<StepRecord>,
}

/// Why a journal write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalRefusal {
    /// Another worker claimed the run since (this worker's lease expired).
    #[error("the lease on this run was lost to another worker")]
    LeaseLost,
    /// The run was deleted with its workflow.
    #[error("the run no longer exists")]
    RunGone,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in RunEventKind::ALL {
            assert_eq!(RunEventKind::parse(kind.as_str()), Some(kind));
        }
        for trigger in RunTrigger::ALL {
            assert_eq!(RunTrigger::parse(trigger.as_str()), Some(trigger));
        }
        assert_eq!(RunEventKind::parse("run_queued"), None);
    }

    #[test]
    fn only_the_run_outcomes_are_terminal_events() {
        let terminal: Vec<_> = RunEventKind::ALL
            .into_iter()
            .filter(|kind| kind.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                RunEventKind::RunSucceeded,
                RunEventKind::RunFailed,
                RunEventKind::RunCancelled
            ]
        );
    }
}
