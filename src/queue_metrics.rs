//! The queue's gauges for /metrics (depth by state, expired leases, the oldest due run's
//! wait), sampled from storage every few seconds by each `serve` process.
//!
//! Sampled rather than counted by the workers: the queue is the cluster's, runs are added
//! by API nodes, the scheduler and the poller, and a worker that crashed cannot report
//! the lease it lost. Every `serve` node exports the same values; aggregate them with
//! `max`. A failed read keeps the last values, counts the failure, and is logged when
//! reads start failing and when they work again, not on every tick.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aos_domain::ports::Store;
use aos_engine::observe;

/// Often enough for an alert on a growing backlog to fire within a minute; one indexed
/// query over the runs that have not ended.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Samples the queue's depth and the age of its oldest run until aborted.
pub fn spawn(store: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            let now_ms = now_ms();
            match store.queue_depth(now_ms).await {
                Ok(depth) => {
                    observe::queue_depth(&depth, now_ms);
                    if std::mem::take(&mut failing) {
                        tracing::info!("reading the queue's gauges works again");
                    }
                }
                Err(error) => {
                    observe::queue_sample_failed();
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(%error, "reading the queue's gauges failed; they keep their last values");
                    }
                }
            }
        }
    })
}

/// Epoch milliseconds, the unit of the queue's times.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|since| i64::try_from(since.as_millis()).ok())
        .unwrap_or(0)
}
