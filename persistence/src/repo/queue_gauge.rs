//! `QueueGauge` for `SeaStore`: counts of the queue for the metrics.
//!
//! Like the claim (`queue`), it reads every workspace's runs, as the connecting role
//! that owns the tables (row-level security does not bind it), and outside any write
//! transaction: a count a moment stale is fine, and on SQLite it must not queue behind
//! the writers. One statement, which reads only the runs that have not ended (those with
//! an `available_at_ms`, through `idx_runs_available_at_ms`): its cost grows with the
//! queue, never with the history of finished runs.

use aos_domain::error::DomainResult;
use aos_domain::queue_gauge::{QueueDepth, QueueGauge};
use async_trait::async_trait;
use sea_orm::{ConnectionTrait, QueryResult, Statement};

use crate::error::{corrupt_row, internal};
use crate::store::SeaStore;

/// `$1` now (ms). The states follow the claim's rule: due when available, come and not
/// under a live lease; a lease that ran out while its owner is still recorded is one
/// given up by no one (a clean hand-back or a sleep clears the owner). A due run has been
/// claimable since the later of its availability and the end of its last lease.
const DEPTH: &str = "\
SELECT
    COUNT(CASE WHEN available_at_ms <= $1 AND lease_expires_at_ms <= $1 THEN 1 END) AS due,
    COUNT(CASE WHEN available_at_ms <= $1 AND lease_expires_at_ms <= $1
                AND lease_owner IS NOT NULL THEN 1 END) AS expired,
    COUNT(CASE WHEN lease_expires_at_ms > $1 THEN 1 END) AS leased,
    COUNT(CASE WHEN available_at_ms > $1 AND lease_expires_at_ms <= $1 THEN 1 END) AS delayed,
    MIN(CASE WHEN available_at_ms <= $1 AND lease_expires_at_ms <= $1 THEN
            CASE WHEN lease_expires_at_ms > available_at_ms
                 THEN lease_expires_at_ms ELSE available_at_ms END
        END) AS oldest_due_since_ms
FROM runs
WHERE available_at_ms IS NOT NULL";

#[async_trait]
impl QueueGauge for SeaStore {
    async fn queue_depth(&self, now_ms: i64) -> DomainResult<QueueDepth> {
        let backend = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                DEPTH,
                [now_ms.into()],
            ))
            .await
            .map_err(internal("count the queue"))?
            .ok_or_else(|| corrupt_row("an aggregate returned no row"))?;
        Ok(QueueDepth {
            due: count(&row, "due")?,
            expired: count(&row, "expired")?,
            leased: count(&row, "leased")?,
            delayed: count(&row, "delayed")?,
            oldest_due_since_ms: row
                .try_get::<Option<i64>>("", "oldest_due_since_ms")
                .map_err(internal("read the oldest due run"))?,
        })
    }
}

fn count(row: &QueryResult, column: &str) -> DomainResult<u64> {
    let count = row
        .try_get::<i64>("", column)
        .map_err(internal("read a queue count"))?;
    u64::try_from(count).map_err(|_| corrupt_row("a negative count"))
}
