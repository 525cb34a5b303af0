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

use aos_domain::ids::{WorkflowId, WorkspaceId};
use aos_domain::workflow::{Workflow, WorkflowDescription, WorkflowName};

use crate::live_bus::{LiveBus, WireForm};

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

/// The `workflowEvents` bus: local, or shared on [`WORKFLOW_EVENTS_CHANNEL`]
/// ([`LiveBus::for_redis_url`]).
pub type WorkflowEventBus = LiveBus<WireEvent>;

/// A change on the Redis channel. The domain's `Workflow` is not serializable, and its
/// name and description are checked again on the way in rather than trusted.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireEvent {
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

impl WireForm for WireEvent {
    type Event = WorkflowEvent;
    const CHANNEL: &'static str = WORKFLOW_EVENTS_CHANNEL;
    const TOPIC: &'static str = "workflow events";

    fn from_event(event: &WorkflowEvent) -> Self {
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
    use crate::live_bus::WireForm;
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
        let payload = serde_json::to_string(&WireEvent::from_event(event)).expect("serializes");
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
        let node_a = WorkflowEventBus::shared(&url, &channel).expect("bus A");
        let node_b = WorkflowEventBus::shared(&url, &channel).expect("bus B");
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
