//! Audit log retention: deletes records older than their workspace's number of days
//! (the `retentionDays` quota; `crate::retention` runs it hourly with the runs').
//!
//! Deletes go in small batches with a pause between them, so the sweep never holds many
//! row locks (or, on SQLite, the write lock) for long and requests keep flowing. Running
//! it on several nodes at once is harmless: a record is deleted once, whoever gets there.

use std::time::Duration;

use chrono::Utc;

use aos_domain::audit::{AuditRetention, AuditStore};

use crate::error::ErrorChain;

/// Records deleted per statement.
pub const BATCH: u64 = 500;
const PAUSE_BETWEEN_BATCHES: Duration = Duration::from_millis(50);

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
