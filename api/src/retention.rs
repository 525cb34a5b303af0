//! History retention: a periodic sweep that deletes the finished runs and the audit
//! records older than their workspace's `retentionDays` quota.
//!
//! The retention is read afresh each sweep, so `automationos quotas set` applies by the
//! next one. Deletes go in small batches with a pause between them, so a sweep never
//! holds many row locks (or, on SQLite, the write lock) for long and requests keep
//! flowing. Running it on several nodes at once is harmless: a row is deleted once,
//! whoever gets there.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use aos_domain::error::DomainResult;
use aos_domain::ports::Store;
use aos_domain::quota::{QuotaLimits, Retention, retention};

use crate::error::ErrorChain;

/// Rows deleted per statement.
pub const BATCH: u64 = 500;
const PAUSE_BETWEEN_BATCHES: Duration = Duration::from_millis(50);
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// The retention that holds now: `defaults` with the workspaces' overrides.
pub async fn current(store: &dyn Store, defaults: &QuotaLimits) -> Option<Retention> {
    match store.quota_overrides().await {
        Ok(overrides) => Some(retention(defaults, &overrides)),
        Err(error) => {
            tracing::error!(error = %ErrorChain(&error), "reading the retention quotas failed");
            None
        }
    }
}

/// Deletes everything `purge` finds expired now, batch by batch; returns how many went.
/// `what` names the history in the log when a batch fails.
pub async fn sweep<F, Fut>(what: &'static str, purge: F) -> u64
where
    F: Fn(DateTime<Utc>, u64) -> Fut,
    Fut: Future<Output = DomainResult<u64>>,
{
    let mut deleted = 0;
    loop {
        match purge(Utc::now(), BATCH).await {
            Ok(count) => {
                deleted += count;
                if count < BATCH {
                    return deleted;
                }
            }
            Err(error) => {
                tracing::error!(error = %ErrorChain(&error), what, "retention failed");
                return deleted;
            }
        }
        tokio::time::sleep(PAUSE_BETWEEN_BATCHES).await;
    }
}

/// Sweeps at start and then hourly, for as long as the process runs.
pub async fn run(store: Arc<dyn Store>, defaults: QuotaLimits) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        let Some(retention) = current(store.as_ref(), &defaults).await else {
            continue;
        };
        let runs = sweep("runs", |now, batch| {
            store.purge_expired_runs(&retention, now, batch)
        })
        .await;
        let audit = sweep("audit log", |now, batch| {
            store.purge_audit_events(&retention, now, batch)
        })
        .await;
        if runs > 0 || audit > 0 {
            tracing::info!(runs, audit, "retention deleted expired history");
        }
    }
}
