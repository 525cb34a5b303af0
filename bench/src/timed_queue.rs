//! A `RunQueue` that times every call of the one it wraps, so a drained queue can be
//! split into storage time (claims, journal writes) and the engine's own time.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use aos_domain::DomainError;
use aos_domain::ids::WorkspaceId;
use aos_domain::journal::{ClaimedRun, Journal, Lease, NewRun};
use aos_domain::ports::{LeaseRenewal, QueueError, RunQueue};
use async_trait::async_trait;

use crate::stats::Samples;

pub struct TimedQueue {
    inner: Arc<dyn RunQueue>,
    times: Mutex<QueueTimes>,
}

/// Time spent in each kind of queue call.
#[derive(Debug, Default, Clone)]
pub struct QueueTimes {
    /// Claims that found a run.
    pub claims: Samples,
    /// Claims that found nothing (an idle worker looking).
    pub empty_claims: Samples,
    /// Journal writes with steps or events.
    pub writes: Samples,
    /// Journal writes with nothing in them: heartbeats.
    pub heartbeats: Samples,
}

impl TimedQueue {
    pub fn new(inner: Arc<dyn RunQueue>) -> Self {
        Self {
            inner,
            times: Mutex::new(QueueTimes::default()),
        }
    }

    /// The times so far, and a fresh start.
    pub fn take(&self) -> QueueTimes {
        std::mem::take(&mut *self.times.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn record(&self, what: impl FnOnce(&mut QueueTimes) -> &mut Samples, started: Instant) {
        let elapsed = started.elapsed();
        what(&mut self.times.lock().unwrap_or_else(PoisonError::into_inner)).push(elapsed);
    }
}

#[async_trait]
impl RunQueue for TimedQueue {
    async fn another_workspace_waiting(
        &self,
        workspace_id: WorkspaceId,
        now_ms: i64,
        per_workspace_limit: u32,
    ) -> Result<bool, DomainError> {
        self.inner
            .another_workspace_waiting(workspace_id, now_ms, per_workspace_limit)
            .await
    }

    async fn claim(
        &self,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
        per_workspace_limit: u32,
    ) -> Result<Option<ClaimedRun>, DomainError> {
        let started = Instant::now();
        let claimed = self
            .inner
            .claim(worker, now_ms, lease_ms, per_workspace_limit)
            .await;
        match &claimed {
            Ok(Some(_)) => self.record(|times| &mut times.claims, started),
            _ => self.record(|times| &mut times.empty_claims, started),
        }
        claimed
    }

    async fn journal(
        &self,
        lease: &Lease,
        journal: Journal,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<LeaseRenewal, QueueError> {
        let empty = journal.is_empty();
        let started = Instant::now();
        let renewal = self.inner.journal(lease, journal, now_ms, lease_ms).await;
        if empty {
            self.record(|times| &mut times.heartbeats, started);
        } else {
            self.record(|times| &mut times.writes, started);
        }
        renewal
    }

    async fn insert_claimed(
        &self,
        workspace_id: WorkspaceId,
        run: NewRun,
        worker: &str,
        journal: Journal,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<(Lease, LeaseRenewal), QueueError> {
        let started = Instant::now();
        let inserted = self
            .inner
            .insert_claimed(workspace_id, run, worker, journal, now_ms, lease_ms)
            .await;
        self.record(|times| &mut times.writes, started);
        inserted
    }
}
