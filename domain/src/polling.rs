//! Polling triggers: the state of each `trigger.poll` node of a workflow (its cursor and
//! when it polls next), kept so exactly one process polls it per interval.
//!
//! Invariants:
//! - a node is polled only under a lease ([`PollLease`]): claiming a due poll takes it and
//!   bumps a fencing token, and only the holder of the newest token may record what the
//!   poll found, so two processes never both poll a node in one interval, and one whose
//!   lease was taken over records nothing;
//! - the cursor advances in the same write that queues the runs of the new items
//!   ([`PollStore::finish_poll`]): a crash before that write leaves the old cursor, and the
//!   next poll finds the same items again, so an item is neither lost nor run twice;
//! - a poll's state belongs to its workflow and node: it outlives new versions of the
//!   workflow (which poll on from the stored cursor) and deactivation, and goes with the
//!   workflow when it is deleted.
//!
//! Like [`crate::ports::TriggerStore`], this port is unscoped: polls start runs on behalf
//! of no caller, and only the poller holds it.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::DomainResult;
use crate::ids::{WorkflowId, WorkspaceId};
use crate::journal::{NewRun, Run};
use crate::ports::TriggerTarget;

/// The longest wait between polls that failed, unless the trigger's own interval is
/// longer: a broken connection is still tried every hour, so it recovers on its own.
pub const MAX_FAILURE_BACKOFF: Duration = Duration::from_secs(3_600);

/// Which polling trigger: a node of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PollKey {
    pub workflow_id: WorkflowId,
    pub node_id: String,
}

/// What storage keeps about one polling trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct PollState {
    pub workspace_id: WorkspaceId,
    pub key: PollKey,
    /// The connector's cursor; `None` until the first poll recorded one.
    pub cursor: Option<Value>,
    /// Epoch milliseconds; the node is due once this time has come.
    pub next_poll_at_ms: i64,
    /// Polls that failed in a row since the last one that worked.
    pub failures: u32,
    /// Why the last poll failed, safe to show (no secret); `None` after one that worked.
    pub last_error: Option<String>,
    pub last_polled_at: Option<DateTime<Utc>>,
}

/// A poller's hold on one polling trigger, carried by every write about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollLease {
    pub key: PollKey,
    pub owner: String,
    /// Grows with every claim; a write carrying an older one changes nothing.
    pub token: i64,
}

/// A due poll, leased: its state and its workflow's current version.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedPoll {
    pub lease: PollLease,
    pub state: PollState,
    pub target: TriggerTarget,
}

/// What became of a poll.
#[derive(Debug, Clone, PartialEq)]
pub enum PollOutcome {
    /// The poll worked: its runs (one per new item, none on a first poll) are queued and
    /// the cursor moves on, in one write.
    Polled {
        cursor: Value,
        runs: Vec<NewRun>,
        next_poll_at_ms: i64,
    },
    /// The poll failed: the error is recorded and the failure counted.
    Failed { error: String, next_poll_at_ms: i64 },
}

#[async_trait]
pub trait PollStore: Send + Sync {
    /// Starts keeping the state of a polling trigger of an active workflow, due at
    /// `first_poll_at_ms`, unless there is one already: then it changes nothing, so a new
    /// version of the workflow polls on from the stored cursor.
    async fn ensure_poll_state(
        &self,
        workspace_id: WorkspaceId,
        key: &PollKey,
        first_poll_at_ms: i64,
    ) -> DomainResult<()>;

    /// Leases the poll of an active workflow that is due at `now_ms` and not held by a
    /// live lease, until `now_ms + lease_ms`; `None` when nothing is due. Two claimers
    /// never get the same poll.
    async fn claim_due_poll(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> DomainResult<Option<ClaimedPoll>>;

    /// Records `outcome` and gives the lease up, if `lease` is still the newest: then the
    /// runs queued (with their cursor, in one transaction). `None` when another poller
    /// has claimed the node since: nothing is written.
    async fn finish_poll(
        &self,
        lease: &PollLease,
        outcome: PollOutcome,
        now: DateTime<Utc>,
    ) -> DomainResult<Option<Vec<Run>>>;

    /// Drops the state of a node that is no longer its workflow's polling trigger, if
    /// `lease` is still the newest.
    async fn forget_poll_state(&self, lease: &PollLease) -> DomainResult<()>;

    async fn poll_state(&self, key: &PollKey) -> DomainResult<Option<PollState>>;
}

/// How long to wait after the `failures`-th poll in a row failed (from 1): the interval,
/// doubled for each failure after the first, at most [`MAX_FAILURE_BACKOFF`] (or the
/// interval itself, when that is longer).
pub fn failure_backoff(interval: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    let cap = MAX_FAILURE_BACKOFF.max(interval);
    interval.saturating_mul(1 << doublings).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_double_the_wait_up_to_an_hour() {
        let minute = Duration::from_secs(60);
        let waits: Vec<u64> = (1..=8)
            .map(|failures| failure_backoff(minute, failures).as_secs())
            .collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(
            failure_backoff(minute, u32::MAX),
            MAX_FAILURE_BACKOFF,
            "many failures do not overflow"
        );
    }

    #[test]
    fn an_interval_longer_than_the_cap_is_kept() {
        let day = Duration::from_secs(86_400);
        assert_eq!(failure_backoff(day, 1), day);
        assert_eq!(failure_backoff(day, 5), day);
    }
}
