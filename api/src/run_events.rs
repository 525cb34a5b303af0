//! Live run events for the `runEvents` and `workspaceRuns` subscriptions.
//!
//! The bus only carries the live tail: events are durable in the journal first, and a
//! subscriber replays from storage by `seq`, then follows the bus, and refills from storage
//! whenever it sees a gap (it lagged, or an event was published on another node). So a
//! lost or late publish delays an event, it never loses one.
//!
//! With Redis (`--redis-url`), every node publishes its workers' events on one pub/sub
//! channel and feeds the events of the other nodes into its local bus, so a subscriber on
//! node B sees a run executing on node A as it happens. Without Redis, the bus is local
//! and subscribers fall back to reading storage after a quiet second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use aos_domain::ids::WorkspaceId;
use aos_domain::journal::{RunEvent, RunEventKind};
use aos_domain::ports::RunEventSink;
use aos_domain::run::RunId;

use crate::redis_fanout::RedisFanout;

/// The Redis channel all nodes of a cluster share.
pub const REDIS_CHANNEL: &str = "aos:run-events";

#[derive(Clone)]
pub struct RunEventBus {
    local: LocalBus,
    /// The other nodes, through Redis; `None` without Redis.
    remote: Option<RedisFanout<WireEvent>>,
}

/// Routes each event to the subscribers of its run only, so a thousand `runEvents`
/// subscriptions do not each wake for every event of every run; the run-status events
/// also go to one channel for `workspaceRuns`.
#[derive(Clone)]
struct LocalBus {
    statuses: broadcast::Sender<Arc<RunEvent>>,
    runs: Arc<Mutex<HashMap<RunId, broadcast::Sender<Arc<RunEvent>>>>>,
}

impl LocalBus {
    /// Per run: a subscriber this far behind refills from storage.
    const RUN_CAPACITY: usize = 256;
    /// Runs whose channel is checked for abandonment when a new one is made.
    const SWEEP_ABOVE: usize = 1024;

    fn new() -> Self {
        Self {
            statuses: broadcast::channel(RunEventBus::CAPACITY).0,
            runs: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, broadcast::Sender<Arc<RunEvent>>>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn subscribe_run(&self, run_id: RunId) -> broadcast::Receiver<Arc<RunEvent>> {
        let mut runs = self.runs();
        if runs.len() > Self::SWEEP_ABOVE {
            runs.retain(|_, sender| sender.receiver_count() > 0);
        }
        runs.entry(run_id)
            .or_insert_with(|| broadcast::channel(Self::RUN_CAPACITY).0)
            .subscribe()
    }

    fn deliver(&self, event: Arc<RunEvent>) {
        if is_status_change(event.kind) {
            // No subscribers is not an error.
            let _ = self.statuses.send(Arc::clone(&event));
        }
        let mut runs = self.runs();
        if let Some(sender) = runs.get(&event.run_id) {
            if sender.receiver_count() == 0 || event.kind.is_terminal() {
                // Nobody listens any more, or nothing follows a terminal event; the
                // receivers still read what was sent before the channel is dropped.
                let _ = sender.send(Arc::clone(&event));
                runs.remove(&event.run_id);
            } else {
                let _ = sender.send(event);
            }
        }
    }
}

/// Events that change a run's status, which `workspaceRuns` reports.
pub fn is_status_change(kind: RunEventKind) -> bool {
    matches!(
        kind,
        RunEventKind::RunQueued
            | RunEventKind::RunStarted
            | RunEventKind::RunSucceeded
            | RunEventKind::RunFailed
            | RunEventKind::RunCancelled
    )
}

impl RunEventBus {
    /// A `workspaceRuns` subscriber this far behind skips to the newer changes.
    const CAPACITY: usize = 4096;
    /// Events waiting for Redis: beyond this, publishes are dropped (subscribers elsewhere
    /// then read them from storage) rather than slowing the workers down.
    const REDIS_BACKLOG: usize = 1024;

    /// A bus local to this process.
    pub fn new() -> Self {
        Self {
            local: LocalBus::new(),
            remote: None,
        }
    }

    /// A bus shared with every node that uses the same Redis and `channel`. Connection
    /// problems are logged and retried in the background; until Redis is back, other
    /// nodes see this node's events through storage.
    pub fn with_redis(url: &str, channel: &str) -> Result<Self, redis::RedisError> {
        let local = LocalBus::new();
        let others = local.clone();
        let remote = RedisFanout::start(
            url,
            channel,
            "run events",
            Self::REDIS_BACKLOG,
            move |wire: WireEvent| {
                if let Some(event) = wire.into_event() {
                    others.deliver(Arc::new(event));
                }
            },
        )?;
        Ok(Self {
            local,
            remote: Some(remote),
        })
    }

    /// How long a subscriber waits for a live event before it reads storage itself. With
    /// Redis every node's events arrive on the bus, and the read is only a safety net
    /// (a publish lost while Redis was away); without it, it is how events journaled by
    /// another process (a `worker`) reach this node's subscribers.
    pub fn quiet_refill(&self) -> Duration {
        if self.remote.is_some() {
            Duration::from_secs(10)
        } else {
            Duration::from_secs(1)
        }
    }

    /// The live events of one run.
    pub fn subscribe_run(&self, run_id: RunId) -> broadcast::Receiver<Arc<RunEvent>> {
        self.local.subscribe_run(run_id)
    }

    /// The status changes of every run (`RUN_QUEUED`, `RUN_STARTED` and the ends).
    pub fn subscribe_statuses(&self) -> broadcast::Receiver<Arc<RunEvent>> {
        self.local.statuses.subscribe()
    }
}

impl Default for RunEventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl RunEventSink for RunEventBus {
    fn publish(&self, events: &[RunEvent]) {
        for event in events {
            self.local.deliver(Arc::new(event.clone()));
        }
        if let Some(remote) = &self.remote
            && !remote.publish(events.iter().map(WireEvent::from).collect())
        {
            tracing::warn!(
                "the Redis publisher is behind; other nodes will read these run events from storage"
            );
        }
    }
}

/// An event on the Redis channel.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEvent {
    run_id: uuid::Uuid,
    workspace_id: uuid::Uuid,
    seq: i64,
    at: DateTime<Utc>,
    kind: String,
    node_id: Option<String>,
    message: String,
    data: Option<serde_json::Value>,
}

impl From<&RunEvent> for WireEvent {
    fn from(event: &RunEvent) -> Self {
        Self {
            run_id: event.run_id.as_uuid(),
            workspace_id: event.workspace_id.as_uuid(),
            seq: event.seq,
            at: event.at,
            kind: event.kind.as_str().to_owned(),
            node_id: event.node_id.clone(),
            message: event.message.clone(),
            data: event.data.clone(),
        }
    }
}

impl WireEvent {
    fn into_event(self) -> Option<RunEvent> {
        Some(RunEvent {
            run_id: RunId::from_uuid(self.run_id),
            workspace_id: WorkspaceId::from_uuid(self.workspace_id),
            seq: self.seq,
            at: self.at,
            kind: RunEventKind::parse(&self.kind)?,
            node_id: self.node_id,
            message: self.message,
            data: self.data,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::RunEventBus;
    use aos_domain::ids::WorkspaceId;
    use aos_domain::journal::{RunEvent, RunEventKind};
    use aos_domain::ports::RunEventSink;
    use aos_domain::run::RunId;

    fn event(seq: i64) -> RunEvent {
        RunEvent {
            run_id: RunId::generate(),
            workspace_id: WorkspaceId::generate(),
            seq,
            at: Utc::now(),
            kind: RunEventKind::StepSucceeded,
            node_id: Some("greet".into()),
            message: "greet succeeded".into(),
            data: Some(serde_json::json!({"output": {"n": 1}})),
        }
    }

    /// Needs the machine's Redis; without `AOS_TEST_REDIS_URL` it reports and passes.
    #[tokio::test]
    async fn an_event_published_on_one_node_reaches_the_subscribers_of_another() {
        let Ok(url) = std::env::var("AOS_TEST_REDIS_URL") else {
            eprintln!("skipped: set AOS_TEST_REDIS_URL to run the Redis tests");
            return;
        };
        let channel = format!("aos:test:{}", uuid::Uuid::new_v4().simple());
        let node_a = RunEventBus::with_redis(&url, &channel).expect("bus A");
        let node_b = RunEventBus::with_redis(&url, &channel).expect("bus B");
        let sent = event(3);
        let mut on_a = node_a.subscribe_run(sent.run_id);
        let mut on_b = node_b.subscribe_run(sent.run_id);

        // The subscriptions connect in the background: publish until B hears one.
        let received = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                node_a.publish(std::slice::from_ref(&sent));
                if let Ok(Ok(event)) =
                    tokio::time::timeout(Duration::from_millis(200), on_b.recv()).await
                {
                    return event;
                }
            }
        })
        .await
        .expect("node B receives node A's event through Redis");

        assert_eq!(*received, sent);
        let own = on_a
            .recv()
            .await
            .expect("A's own event, from its local bus");
        assert_eq!(*own, sent);
    }
}
