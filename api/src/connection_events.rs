//! Live connection changes for `connectionEvents` subscribers.
//!
//! Like workflow events (`crate::events`): a change reaches the subscribers of the node it
//! was made on at once and, with Redis (`--redis-url`), every other node's through one
//! pub/sub channel. That includes changes made by processes that serve no subscriber at
//! all, such as a `worker` that found a connection's grant revoked while renewing its
//! token: it publishes on the channel, and the API nodes deliver.
//!
//! Events carry no secret (see `ConnectionEvent`), so they may cross Redis as they are.
//! Nothing refills an event lost between nodes; a subscriber that must not miss one
//! refetches the connections when it subscribes again.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use aos_domain::connection::{ConnectionEvent, ConnectionEventKind, ConnectionStatus};
use aos_domain::ids::{ConnectionId, WorkspaceId};
use aos_domain::ports::ConnectionEventSink;

use crate::redis_fanout::RedisFanout;

/// The Redis channel the nodes of a cluster share for connection changes.
pub const CONNECTION_EVENTS_CHANNEL: &str = "aos:connection-events";

pub struct ConnectionEventBus {
    local: broadcast::Sender<ConnectionEvent>,
    /// The other nodes, through Redis; `None` without Redis.
    remote: Option<RedisFanout<WireEvent>>,
}

impl ConnectionEventBus {
    /// A slow subscriber that falls more than this far behind misses events (and is told).
    const CAPACITY: usize = 1024;
    /// Changes waiting for Redis: beyond this, they are dropped for the other nodes rather
    /// than holding up whoever made them.
    const REDIS_BACKLOG: usize = 1024;

    /// A bus local to this process.
    pub fn new() -> Self {
        Self {
            local: broadcast::channel(Self::CAPACITY).0,
            remote: None,
        }
    }

    /// A bus shared with every node that uses the same Redis and `channel`. Connection
    /// problems are logged and retried in the background.
    pub fn with_redis(url: &str, channel: &str) -> Result<Self, redis::RedisError> {
        let local = broadcast::channel(Self::CAPACITY).0;
        let others = local.clone();
        let remote = RedisFanout::start(
            url,
            channel,
            "connection events",
            Self::REDIS_BACKLOG,
            move |wire: WireEvent| {
                if let Some(event) = wire.into_event() {
                    // No subscribers is not an error.
                    let _ = others.send(event);
                }
            },
        )?;
        Ok(Self {
            local,
            remote: Some(remote),
        })
    }

    /// The bus of a node: shared on [`CONNECTION_EVENTS_CHANNEL`] when a Redis URL is
    /// configured, else local.
    pub fn for_redis_url(redis_url: Option<&str>) -> Result<Self, redis::RedisError> {
        match redis_url.filter(|url| !url.trim().is_empty()) {
            Some(url) => Self::with_redis(url, CONNECTION_EVENTS_CHANNEL),
            None => Ok(Self::new()),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.local.subscribe()
    }
}

impl Default for ConnectionEventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectionEventSink for ConnectionEventBus {
    fn publish(&self, event: ConnectionEvent) {
        if let Some(remote) = &self.remote
            && !remote.publish(vec![WireEvent::from(&event)])
        {
            tracing::warn!(
                "the Redis publisher is behind; subscribers on other nodes miss this connection change"
            );
        }
        // No subscribers is not an error.
        let _ = self.local.send(event);
    }
}

/// An event on the Redis channel; its kind and status are checked again on the way in.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEvent {
    workspace_id: WorkspaceId,
    connection_id: ConnectionId,
    kind: String,
    status: String,
    at: DateTime<Utc>,
    message: String,
}

impl From<&ConnectionEvent> for WireEvent {
    fn from(event: &ConnectionEvent) -> Self {
        Self {
            workspace_id: event.workspace_id,
            connection_id: event.connection_id,
            kind: event.kind.as_str().to_owned(),
            status: event.status.as_str().to_owned(),
            at: event.at,
            message: event.message.clone(),
        }
    }
}

impl WireEvent {
    fn into_event(self) -> Option<ConnectionEvent> {
        Some(ConnectionEvent {
            workspace_id: self.workspace_id,
            connection_id: self.connection_id,
            kind: ConnectionEventKind::parse(&self.kind)?,
            status: ConnectionStatus::parse(&self.status)?,
            at: self.at,
            message: self.message,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::{ConnectionEventBus, WireEvent};
    use aos_domain::connection::{ConnectionEvent, ConnectionEventKind, ConnectionStatus};
    use aos_domain::ids::{ConnectionId, WorkspaceId};
    use aos_domain::ports::ConnectionEventSink;

    fn needs_reauth() -> ConnectionEvent {
        ConnectionEvent {
            workspace_id: WorkspaceId::generate(),
            connection_id: ConnectionId::generate(),
            kind: ConnectionEventKind::NeedsReauth,
            status: ConnectionStatus::NeedsReauth,
            at: Utc::now(),
            message: "connection `crm` needs to be authorized again — reconnect it".into(),
        }
    }

    #[test]
    fn every_kind_arrives_from_the_wire_as_it_was_sent() {
        for kind in ConnectionEventKind::ALL {
            let sent = ConnectionEvent {
                kind,
                ..needs_reauth()
            };
            let payload = serde_json::to_string(&WireEvent::from(&sent)).expect("serializes");
            let received = serde_json::from_str::<WireEvent>(&payload)
                .expect("deserializes")
                .into_event();
            assert_eq!(received, Some(sent));
        }
    }

    #[test]
    fn an_unknown_kind_from_another_version_is_dropped() {
        let mut wire = WireEvent::from(&needs_reauth());
        wire.kind = "CONNECTION_TELEPORTED".into();
        assert_eq!(wire.into_event(), None);
    }

    /// Needs the machine's Redis; without `AOS_TEST_REDIS_URL` it reports and passes.
    #[tokio::test]
    async fn an_event_published_by_one_process_reaches_the_subscribers_of_another() {
        let Ok(url) = std::env::var("AOS_TEST_REDIS_URL") else {
            eprintln!("skipped: set AOS_TEST_REDIS_URL to run the Redis tests");
            return;
        };
        let channel = format!("aos:test:{}", uuid::Uuid::new_v4().simple());
        let worker = ConnectionEventBus::with_redis(&url, &channel).expect("worker's bus");
        let api = ConnectionEventBus::with_redis(&url, &channel).expect("API node's bus");
        let sent = needs_reauth();
        let mut on_api = api.subscribe();

        // The subscriptions connect in the background: publish until the API node hears.
        let received = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                worker.publish(sent.clone());
                if let Ok(Ok(event)) =
                    tokio::time::timeout(Duration::from_millis(200), on_api.recv()).await
                {
                    return event;
                }
            }
        })
        .await
        .expect("the API node receives the worker's event through Redis");

        assert_eq!(received, sent);
    }
}
