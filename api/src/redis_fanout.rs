//! A Redis pub/sub channel the nodes of a cluster share, so live events delivered on one
//! node reach the subscribers of the others.
//!
//! Publishing never waits for Redis: events queue in a bounded backlog that a background
//! task drains, and when the backlog is full the caller is told and goes on, because a
//! request or a worker must not slow down for another node's subscribers. Every node tags
//! what it publishes with a random node id and skips its own messages when they come back,
//! as it already delivered them locally. Connection problems are logged and retried in the
//! background, for as long as the process lives.

use std::time::Duration;

use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// How long the receiver waits before it connects and subscribes again.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

/// The publishing side of the channel; the receiving side runs in the background and
/// hands the other nodes' events to the `deliver` given to [`RedisFanout::start`].
pub struct RedisFanout<W> {
    outgoing: mpsc::Sender<Vec<W>>,
}

// Derived, it would require `W: Clone`, which the sender does not need.
impl<W> Clone for RedisFanout<W> {
    fn clone(&self) -> Self {
        Self {
            outgoing: self.outgoing.clone(),
        }
    }
}

impl<W> RedisFanout<W>
where
    W: Serialize + DeserializeOwned + Send + 'static,
{
    /// Publishes on, and listens to, `channel` of the Redis at `url`. `deliver` gets each
    /// event another node published, in the order Redis relays them; `topic` names the
    /// events in logs; at most `backlog` batches wait to be published.
    pub fn start(
        url: &str,
        channel: &str,
        topic: &'static str,
        backlog: usize,
        deliver: impl FnMut(W) + Send + 'static,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let (outgoing, queued) = mpsc::channel(backlog);
        let node = uuid::Uuid::new_v4().to_string();
        tokio::spawn(publish(
            client.clone(),
            channel.to_owned(),
            topic,
            node.clone(),
            queued,
        ));
        tokio::spawn(receive(client, channel.to_owned(), topic, node, deliver));
        Ok(Self { outgoing })
    }

    /// Queues `events` for the other nodes; `false` if the backlog is full (or the
    /// publisher is gone) and they were dropped.
    pub fn publish(&self, events: Vec<W>) -> bool {
        self.outgoing.try_send(events).is_ok()
    }
}

/// An event as it goes out, its fields next to the node that published it.
#[derive(Serialize)]
struct Outgoing<'a, W> {
    node: &'a str,
    #[serde(flatten)]
    event: &'a W,
}

/// An event as it comes in.
#[derive(Deserialize)]
struct Incoming<W> {
    node: String,
    #[serde(flatten)]
    event: W,
}

async fn publish<W: Serialize>(
    client: redis::Client,
    channel: String,
    topic: &'static str,
    node: String,
    mut queued: mpsc::Receiver<Vec<W>>,
) {
    let mut connection = None;
    while let Some(events) = queued.recv().await {
        if connection.is_none() {
            match client.get_connection_manager().await {
                Ok(manager) => connection = Some(manager),
                Err(error) => {
                    tracing::warn!(error = %error, "cannot reach Redis to publish {topic}");
                    continue;
                }
            }
        }
        let Some(manager) = connection.as_mut() else {
            continue;
        };
        for event in events {
            let Some(payload) = payload(&node, &event) else {
                continue;
            };
            let published: redis::RedisResult<usize> =
                redis::AsyncCommands::publish(manager, &channel, payload).await;
            if let Err(error) = published {
                tracing::warn!(error = %error, "publishing {topic} on Redis failed");
                break;
            }
        }
    }
}

// Apart, so that no borrow of the event lives across an await (which would need `W: Sync`).
fn payload<W: Serialize>(node: &str, event: &W) -> Option<String> {
    serde_json::to_string(&Outgoing { node, event }).ok()
}

async fn receive<W: DeserializeOwned>(
    client: redis::Client,
    channel: String,
    topic: &'static str,
    node: String,
    mut deliver: impl FnMut(W),
) {
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    let mut messages = pubsub.into_on_message();
                    while let Some(message) = messages.next().await {
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        let Ok(incoming) = serde_json::from_str::<Incoming<W>>(&payload) else {
                            continue;
                        };
                        if incoming.node != node {
                            deliver(incoming.event);
                        }
                    }
                    tracing::warn!("the Redis subscription for {topic} ended; reconnecting");
                }
                Err(error) => {
                    tracing::warn!(error = %error, "subscribing to {topic} on Redis failed");
                }
            },
            Err(error) => {
                tracing::warn!(error = %error, "cannot reach Redis to receive {topic}");
            }
        }
        tokio::time::sleep(RESUBSCRIBE_AFTER).await;
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::{Incoming, Outgoing};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Event {
        run_id: String,
        seq: i64,
        data: Option<serde_json::Value>,
    }

    /// Nodes of different versions share the channel during a rolling deploy, so the node
    /// tag must stay a plain field beside the event's own.
    #[test]
    fn the_node_travels_beside_the_fields_of_the_event() {
        let event = Event {
            run_id: "r1".into(),
            seq: 7,
            data: Some(serde_json::json!({"n": [1, 2.5, null]})),
        };

        let payload = serde_json::to_value(Outgoing {
            node: "a",
            event: &event,
        })
        .expect("serializes");
        let incoming: Incoming<Event> =
            serde_json::from_value(payload.clone()).expect("deserializes");

        assert_eq!(
            payload,
            serde_json::json!({"node": "a", "runId": "r1", "seq": 7, "data": {"n": [1, 2.5, null]}})
        );
        assert_eq!(incoming.node, "a");
        assert_eq!(incoming.event, event);
    }
}
