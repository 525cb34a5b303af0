//! Audit log retention: a periodic sweep that deletes records older than their
//! workspace's number of days.
//!
//! Deletes go in small batches with a pause between them, so the sweep never holds many
//! row locks (or, on SQLite, the write lock) for long and requests keep flowing. Running
//! it on several nodes at once is harmless: a record is deleted once, whoever gets there.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use aos_domain::audit::{AuditRetention, AuditStore};

use crate::error::ErrorChain;

/// Records deleted per statement.
pub const BATCH: u64 = 500;
const PAUSE_BETWEEN_BATCHES: Duration = Duration::from_millis(50);
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Deletes every expired record now, batch by batch; returns how many went.
pub async fn sweep(store: &dyn AuditStore, retention: &AuditRetention) -> u64 {
    let mut deleted = 0;
    loop {
        match store.purge_audit_events(retention, Utc::now(), BATCH).await {
            Ok(count) => {
                deleted += count;
                if count < BATCH {
                    return deleted;
                }
            }
            Err(error) => {
                tracing::error!(error = %ErrorChain(&error), "audit log retention failed");
                return deleted;
            }
        }
        tokio::time::sleep(PAUSE_BETWEEN_BATCHES).await;
    }
}

/// Sweeps at start and then hourly, for as long as the process runs.
pub async fn run(store: Arc<dyn AuditStore>, retention: AuditRetention) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        let deleted = sweep(store.as_ref(), &retention).await;
        if deleted > 0 {
            tracing::info!(deleted, "audit log retention deleted expired records");
        }
    }
}
