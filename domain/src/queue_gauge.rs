//! What the run queue holds at one instant, across every workspace, for the metrics.
//!
//! The states are those of the queue (see `crate::journal` and the `runs` table), not of
//! the run lifecycle: a run waits in the queue from its creation until it ends, and at any
//! instant it is in exactly one of these states:
//! - **due**: claimable now, waiting for a worker (new runs, runs whose wait is over, runs
//!   handed back at shutdown, and runs whose lease expired, also counted as `expired`);
//! - **leased**: held by a live lease, executing on some worker;
//! - **delayed**: waiting for a time to come (a `delay` step, a retry's backoff).
//!
//! Like [`crate::ports::RunQueue`], this port is unscoped: it reads every workspace's runs,
//! counts only, and only the metrics sampler holds it.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::DomainResult;

/// The queue at `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    pub due: u64,
    /// Of the due runs, those whose worker's lease ran out before it let go of the run: it
    /// crashed, stalled or lost its database. A worker resumes them from their journal.
    pub expired: u64,
    pub leased: u64,
    pub delayed: u64,
    /// Since when (epoch ms) the longest-waiting due run has been claimable: the end of
    /// its wait, or of the lease it lost. `None` when no run is due.
    pub oldest_due_since_ms: Option<i64>,
}

impl QueueDepth {
    /// How long the longest-waiting due run has waited for a worker at `now_ms`, in
    /// seconds; 0 when none is due.
    pub fn oldest_due_age_secs(&self, now_ms: i64) -> f64 {
        self.oldest_due_since_ms.map_or(0.0, |since_ms| {
            let waited_ms = u64::try_from(now_ms.saturating_sub(since_ms)).unwrap_or(0);
            Duration::from_millis(waited_ms).as_secs_f64()
        })
    }
}

/// Counts of the queue's runs, for the metrics. Cheap enough to call every few seconds:
/// it reads only the runs that have not ended, through the index the claims use.
#[async_trait]
pub trait QueueGauge: Send + Sync {
    async fn queue_depth(&self, now_ms: i64) -> DomainResult<QueueDepth>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_due_run_ages_from_when_it_became_claimable() {
        let depth = QueueDepth {
            due: 2,
            oldest_due_since_ms: Some(10_000),
            ..QueueDepth::default()
        };

        assert!((depth.oldest_due_age_secs(12_500) - 2.5).abs() < f64::EPSILON);
        assert!(
            depth.oldest_due_age_secs(9_000).abs() < f64::EPSILON,
            "a clock behind the database's times never gives a negative age"
        );
        assert!(QueueDepth::default().oldest_due_age_secs(12_500).abs() < f64::EPSILON);
    }
}
