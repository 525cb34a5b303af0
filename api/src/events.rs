//! Live workflow changes for `workflowEvents` subscribers.
//!
//! A change reaches the subscribers of the node it was made through at once. With Redis
//! (`--redis-url`), every node also publishes its changes on one pub/sub channel and feeds
//! the changes of the other nodes to its own subscribers, so a subscriber on node B sees a
//! workflow changed through node A. Without Redis, subscribers see only their own node's
//! changes.
//!
//! Unlike run events, workflow changes are not journaled, so nothing refills a change
//! lost on the way between nodes (Redis away, or its publisher too far behind): that is
//! logged, and a client that cannot miss a change refetches the workflows when it
//! subscribes again.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use aos_domain::ids::{WorkflowId, WorkspaceId};
use aos_domain::workflow::{Workflow, WorkflowDescription, WorkflowName};

use crate::redis_fanout::RedisFanout;

/// The Redis channel the nodes of a cluster share for workflow changes.
pub const WORKFLOW_EVENTS_CHANNEL: &str = "aos:workflow-events";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkflowEventKind {
    Created,
    Updated,
    Activated,
    Deactivated,
    Deleted,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowEvent {
    pub workspace_id: WorkspaceId,
    pub kind: WorkflowEventKind,
    pub workflow_id: WorkflowId,
    /// The workflow after the change; `None` once deleted.
    pub workflow: Option<Workflow>,
}

pub struct WorkflowEventBus {
    local: broadcast::Sender<WorkflowEvent>,
    /// The other nodes, through Redis; `None` without Redis.
    remote: Option<RedisFanout<WireEvent>>,
}

impl WorkflowEventBus {
    /// A slow subscriber that falls more than this far behind misses events (and is told).
    const CAPACITY: usize = 1024;
    /// Changes waiting for Redis: beyond this, they are dropped for the other nodes rather
    /// than holding up the requests that made them.
    const REDIS_BACKLOG: usize = 1024;

    /// A bus local to this process.
    pub fn new() -> Self {
        Self {
            local: broadcast::channel(Self::CAPACITY).0,
            remote: None,
        }
    }

    /// A bus shared with every node that uses the same Redis and `channel`. Connection
    /// problems are logged and retried in the background; until Redis is back, other
    /// nodes miss this node's changes.
    pub fn with_redis(url: &str, channel: &str) -> Result<Self, redis::RedisError> {
        let local = broadcast::channel(Self::CAPACITY).0;
        let others = local.clone();
        let remote = RedisFanout::start(
            url,
            channel,
            "workflow events",
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

    /// The bus of a `serve` node: shared on [`WORKFLOW_EVENTS_CHANNEL`] when a Redis URL
    /// is configured, else local.
    pub fn for_redis_url(redis_url: Option<&str>) -> Result<Self, redis::RedisError> {
        match redis_url.filter(|url| !url.trim().is_empty()) {
            Some(url) => Self::with_redis(url, WORKFLOW_EVENTS_CHANNEL),
            None => Ok(Self::new()),
        }
    }

    pub fn publish(&self, event: WorkflowEvent) {
        if let Some(remote) = &self.remote
            && !remote.publish(vec![WireEvent::from(&event)])
        {
            tracing::warn!(
                "the Redis publisher is behind; subscribers on other nodes miss this workflow change"
            );
        }
        // No subscribers is not an error.
        let _ = self.local.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<WorkflowEvent> {
        self.local.subscribe()
    }
}

impl Default for WorkflowEventBus {
    fn default() -> Self {
        Self::new()
    }
}

/// A change on the Redis channel. The domain's `Workflow` is not serializable, and its
/// name and description are checked again on the way in rather than trusted.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEvent {
    workspace_id: WorkspaceId,
    kind: WorkflowEventKind,
    workflow_id: WorkflowId,
    workflow: Option<WireWorkflow>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireWorkflow {
    id: WorkflowId,
    workspace_id: WorkspaceId,
    name: String,
    description: Option<String>,
    version: i32,
    definition: serde_json::Value,
    active: bool,
    webhook_key: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<&WorkflowEvent> for WireEvent {
    fn from(event: &WorkflowEvent) -> Self {
        Self {
            workspace_id: event.workspace_id,
            kind: event.kind,
            workflow_id: event.workflow_id,
            workflow: event.workflow.as_ref().map(|workflow| WireWorkflow {
                id: workflow.id,
                workspace_id: workflow.workspace_id,
                name: workflow.name.as_str().to_owned(),
                description: workflow
                    .description
                    .as_ref()
                    .map(|description| description.as_str().to_owned()),
                version: workflow.version,
                definition: workflow.definition.clone(),
                active: workflow.active,
                webhook_key: workflow.webhook_key.clone(),
                created_at: workflow.created_at,
                updated_at: workflow.updated_at,
            }),
        }
    }
}

impl WireEvent {
    fn into_event(self) -> Option<WorkflowEvent> {
        let workflow = match self.workflow {
            Some(wire) => Some(Workflow {
                id: wire.id,
                workspace_id: wire.workspace_id,
                name: WorkflowName::parse(&wire.name).ok()?,
                description: WorkflowDescription::parse(wire.description.as_deref()).ok()?,
                version: wire.version,
                definition: wire.definition,
                active: wire.active,
                webhook_key: wire.webhook_key,
                created_at: wire.created_at,
                updated_at: wire.updated_at,
            }),
            None => None,
        };
        Some(WorkflowEvent {
            workspace_id: self.workspace_id,
            kind: self.kind,
            workflow_id: self.workflow_id,
            workflow,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::{WireEvent, WorkflowEvent, WorkflowEventBus, WorkflowEventKind};
    use aos_domain::ids::{WorkflowId, WorkspaceId};
    use aos_domain::workflow::{Workflow, WorkflowDescription, WorkflowName};

    fn updated() -> WorkflowEvent {
        let workspace_id = WorkspaceId::generate();
        let workflow = Workflow {
            id: WorkflowId::generate(),
            workspace_id,
            name: WorkflowName::parse("Greet — ünïcode").expect("a valid name"),
            description: WorkflowDescription::parse(Some("says hello")).expect("valid"),
            version: 3,
            definition: serde_json::json!({"nodes": [{"id": "start", "type": "trigger.manual", "config": {"n": 1.5}}], "edges": []}),
            active: true,
            webhook_key: "k3y".into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        WorkflowEvent {
            workspace_id,
            kind: WorkflowEventKind::Updated,
            workflow_id: workflow.id,
            workflow: Some(workflow),
        }
    }

    fn across_the_wire(event: &WorkflowEvent) -> Option<WorkflowEvent> {
        let payload = serde_json::to_string(&WireEvent::from(event)).expect("serializes");
        serde_json::from_str::<WireEvent>(&payload)
            .expect("deserializes")
            .into_event()
    }

    #[test]
    fn a_change_arrives_from_the_wire_as_it_was_made() {
        let change = updated();
        let deleted = WorkflowEvent {
            kind: WorkflowEventKind::Deleted,
            workflow: None,
            ..change.clone()
        };

        assert_eq!(across_the_wire(&change), Some(change));
        assert_eq!(across_the_wire(&deleted), Some(deleted));
    }

    /// Needs the machine's Redis; without `AOS_TEST_REDIS_URL` it reports and passes.
    #[tokio::test]
    async fn a_change_published_on_one_node_reaches_the_subscribers_of_another() {
        let Ok(url) = std::env::var("AOS_TEST_REDIS_URL") else {
            eprintln!("skipped: set AOS_TEST_REDIS_URL to run the Redis tests");
            return;
        };
        let channel = format!("aos:test:{}", uuid::Uuid::new_v4().simple());
        let node_a = WorkflowEventBus::with_redis(&url, &channel).expect("bus A");
        let node_b = WorkflowEventBus::with_redis(&url, &channel).expect("bus B");
        let sent = updated();
        let mut on_a = node_a.subscribe();
        let mut on_b = node_b.subscribe();

        // The subscriptions connect in the background: publish until B hears one.
        let received = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                node_a.publish(sent.clone());
                if let Ok(Ok(event)) =
                    tokio::time::timeout(Duration::from_millis(200), on_b.recv()).await
                {
                    return event;
                }
            }
        })
        .await
        .expect("node B receives node A's change through Redis");

        assert_eq!(received, sent);
        let own = on_a
            .recv()
            .await
            .expect("A's own change, from its local bus");
        assert_eq!(own, sent);
    }
}
