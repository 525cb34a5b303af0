//! Live run events for the `runEvents` and `workspaceRuns` subscriptions.
//!
//! The bus only carries the live tail: events are durable in the journal first, and a
//! subscriber replays from storage by `seq`, then follows the bus, and refills from storage
//! whenever it sees a gap (it lagged, or an event was published on another node). So a
//! lost or late publish delays an event, it never loses one.
//!
//! In process for now: a subscriber sees runs executed by this node's workers. Fan-out
//! across nodes (Redis pub/sub) plugs in behind the same `RunEventSink`.

use std::sync::Arc;

use tokio::sync::broadcast;

use aos_domain::journal::RunEvent;
use aos_domain::ports::RunEventSink;

#[derive(Clone)]
pub struct RunEventBus(broadcast::Sender<Arc<RunEvent>>);

impl RunEventBus {
    /// A subscriber this far behind is told it lagged and refills from storage.
    const CAPACITY: usize = 4096;

    pub fn new() -> Self {
        Self(broadcast::channel(Self::CAPACITY).0)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<RunEvent>> {
        self.0.subscribe()
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
            // No subscribers is not an error.
            let _ = self.0.send(Arc::new(event.clone()));
        }
    }
}
