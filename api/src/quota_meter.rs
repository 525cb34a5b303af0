//! Admission of runs executed in place (webhooks answered on completion) against the
//! `runsPerMonth` quota, at the cost the webhook path can bear.
//!
//! A queued run is counted in the transaction that stores it. A run executed in place is
//! stored with its first write, possibly after it ran, so it is admitted before it starts:
//! - in a workspace whose month is limited, by one conditional increment of the month's
//!   counter (`QuotaStore::admit_run_now`), exact at the boundary;
//! - in a workspace whose month is unlimited (the default) nothing can be refused, so the
//!   count is only usage reporting: it is added up here and written every
//!   [`FLUSH_EVERY`], one statement per workspace, instead of one write per run, which
//!   on SQLite would take the single writer once more for every webhook call.
//!
//! A workspace's limits are read through a cache of [`LIMITS_TTL`], so a changed
//! `runsPerMonth` override reaches webhook runs within that time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;

use aos_domain::DomainError;
use aos_domain::ids::WorkspaceId;
use aos_domain::ports::Store;
use aos_domain::quota::Limit;

use crate::error::ErrorChain;
use crate::ttl_cache::TtlCache;

pub const FLUSH_EVERY: Duration = Duration::from_millis(500);
pub const LIMITS_TTL: Duration = Duration::from_secs(10);

pub struct RunMeter {
    store: Arc<dyn Store>,
    limits: TtlCache<WorkspaceId, Limit>,
    unwritten: Mutex<HashMap<WorkspaceId, u64>>,
}

/// How a run executed in place was admitted, to give it back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Exact,
    Tallied,
}

impl RunMeter {
    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            store,
            limits: TtlCache::new(LIMITS_TTL),
            unwritten: Mutex::new(HashMap::new()),
        })
    }

    /// Admits one run of `workspace_id` to execute in place now, or refuses it.
    pub async fn admit(&self, workspace_id: WorkspaceId) -> Result<Admission, DomainError> {
        if self.monthly_limit(workspace_id).await?.is_some() {
            self.store.admit_run_now(workspace_id, Utc::now()).await?;
            return Ok(Admission::Exact);
        }
        *self.unwritten().entry(workspace_id).or_default() += 1;
        Ok(Admission::Tallied)
    }

    /// Gives back a run admitted by [`RunMeter::admit`] that is queued after all (and
    /// counted there).
    pub async fn give_back(
        &self,
        workspace_id: WorkspaceId,
        admission: Admission,
    ) -> Result<(), DomainError> {
        match admission {
            Admission::Exact => self.store.refund_run_now(workspace_id, Utc::now()).await,
            Admission::Tallied => {
                let mut unwritten = self.unwritten();
                if let Some(count) = unwritten.get_mut(&workspace_id) {
                    *count = count.saturating_sub(1);
                }
                Ok(())
            }
        }
    }

    /// Writes the tallied runs; what fails to be written is kept for the next flush.
    pub async fn flush(&self) {
        self.limits.forget_stale();
        let tallied: Vec<(WorkspaceId, u64)> = self
            .unwritten()
            .drain()
            .filter(|(_, count)| *count > 0)
            .collect();
        if tallied.is_empty() {
            return;
        }
        if let Err(error) = self.store.count_runs_now(&tallied, Utc::now()).await {
            tracing::warn!(error = %ErrorChain(&error), "writing the month's run counts failed; retrying");
            let mut unwritten = self.unwritten();
            for (workspace_id, count) in tallied {
                *unwritten.entry(workspace_id).or_default() += count;
            }
        }
    }

    /// Flushes every [`FLUSH_EVERY`] for as long as the process runs.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        loop {
            tick.tick().await;
            self.flush().await;
        }
    }

    async fn monthly_limit(&self, workspace_id: WorkspaceId) -> Result<Limit, DomainError> {
        if let Some(limit) = self.limits.fresh(&workspace_id) {
            return Ok(limit);
        }
        let limit = self.store.quota_limits(workspace_id).await?.runs_per_month;
        self.limits.insert(workspace_id, limit);
        Ok(limit)
    }

    // A poisoned map holds only complete entries: a panic cannot half-write one.
    fn unwritten(&self) -> std::sync::MutexGuard<'_, HashMap<WorkspaceId, u64>> {
        self.unwritten
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
