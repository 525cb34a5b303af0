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

use aos_domain::connection::{ConnectionEvent, ConnectionEventKind, ConnectionStatus};
use aos_domain::ids::{ConnectionId, WorkspaceId};
use aos_domain::ports::ConnectionEventSink;

use crate::live_bus::{LiveBus, WireForm};

/// The Redis channel the nodes of a cluster share for connection changes.
pub const CONNECTION_EVENTS_CHANNEL: &str = "aos:connection-events";

/// The `connectionEvents` bus: local, or shared on [`CONNECTION_EVENTS_CHANNEL`]
/// ([`LiveBus::for_redis_url`]).
pub type ConnectionEventBus = LiveBus<WireEvent>;

impl ConnectionEventSink for ConnectionEventBus {
    fn publish(&self, event: ConnectionEvent) {
        LiveBus::publish(self, event);
    }
}

/// An event on the Redis channel; its kind and status are checked again on the way in.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireEvent {
    workspace_id: WorkspaceId,
    connection_id: ConnectionId,
    kind: String,
    status: String,
    at: DateTime<Utc>,
    message: String,
}

impl WireForm for WireEvent {
    type Event = ConnectionEvent;
    const CHANNEL: &'static str = CONNECTION_EVENTS_CHANNEL;
    const TOPIC: &'static str = "connection events";

    fn from_event(event: &ConnectionEvent) -> Self {
        Self {
            workspace_id: event.workspace_id,
            connection_id: event.connection_id,
            kind: event.kind.as_str().to_owned(),
            status: event.status.as_str().to_owned(),
            at: event.at,
            message: event.message.clone(),
        }
    }

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
    use crate::live_bus::WireForm;
    use aos_domain::connection::{ConnectionEvent, ConnectionEventKind, ConnectionStatus};
    use aos_domain::ids::{ConnectionId, WorkspaceId};

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
            let payload = serde_json::to_string(&WireEvent::from_event(&sent)).expect("serializes");
            let received = serde_json::from_str::<WireEvent>(&payload)
                .expect("deserializes")
                .into_event();
            assert_eq!(received, Some(sent));
        }
    }

    #[test]
    fn an_unknown_kind_from_another_version_is_dropped() {
        let mut wire = WireEvent::from_event(&needs_reauth());
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
        let worker = ConnectionEventBus::shared(&url, &channel).expect("worker's bus");
        let api = ConnectionEventBus::shared(&url, &channel).expect("API node's bus");
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
