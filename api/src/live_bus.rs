//! A bus of live events: delivered at once to this node's subscribers and, with Redis,
//! to every other node's through one pub/sub channel ([`crate::redis_fanout`]). Workflow
//! changes and connection changes each ride one, told apart by their wire form.
//!
//! Nothing here is journaled: an event lost between nodes (Redis away, or its publisher
//! too far behind) is logged, and a subscriber that must not miss one refetches when it
//! subscribes again.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use crate::redis_fanout::RedisFanout;

/// How an event crosses Redis: built from the event, and checked again on the way in
/// (`None`: not an event this version understands, dropped).
pub trait WireForm: Serialize + DeserializeOwned + Send + 'static {
    type Event: Clone + Send + 'static;
    /// Names the events in logs.
    const TOPIC: &'static str;
    /// The Redis channel the nodes of a cluster share for these events.
    const CHANNEL: &'static str;

    fn from_event(event: &Self::Event) -> Self;
    fn into_event(self) -> Option<Self::Event>;
}

pub struct LiveBus<W: WireForm> {
    local: broadcast::Sender<W::Event>,
    /// The other nodes, through Redis; `None` without Redis.
    remote: Option<RedisFanout<W>>,
}

impl<W: WireForm> LiveBus<W> {
    /// A slow subscriber that falls more than this far behind misses events (and is told).
    const CAPACITY: usize = 1024;
    /// Events waiting for Redis: beyond this, they are dropped for the other nodes rather
    /// than holding up whoever made them.
    const REDIS_BACKLOG: usize = 1024;

    /// A bus local to this process.
    pub fn local() -> Self {
        Self {
            local: broadcast::channel(Self::CAPACITY).0,
            remote: None,
        }
    }

    /// A bus shared with every node that uses the same Redis and `channel`. Connection
    /// problems are logged and retried in the background; until Redis is back, other
    /// nodes miss this node's events.
    pub fn shared(url: &str, channel: &str) -> Result<Self, redis::RedisError> {
        let local = broadcast::channel(Self::CAPACITY).0;
        let others = local.clone();
        let remote = RedisFanout::start(
            url,
            channel,
            W::TOPIC,
            Self::REDIS_BACKLOG,
            move |wire: W| {
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

    /// The bus of a node: shared on the events' channel when a Redis URL is configured,
    /// else local.
    pub fn for_redis_url(redis_url: Option<&str>) -> Result<Self, redis::RedisError> {
        match redis_url.filter(|url| !url.trim().is_empty()) {
            Some(url) => Self::shared(url, W::CHANNEL),
            None => Ok(Self::local()),
        }
    }

    pub fn publish(&self, event: W::Event) {
        if let Some(remote) = &self.remote
            && !remote.publish(vec![W::from_event(&event)])
        {
            tracing::warn!(
                topic = W::TOPIC,
                "the Redis publisher is behind; subscribers on other nodes miss this event"
            );
        }
        // No subscribers is not an error.
        let _ = self.local.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<W::Event> {
        self.local.subscribe()
    }
}
