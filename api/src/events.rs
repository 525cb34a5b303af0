//! Live workflow changes for `workflowEvents` subscribers.
//!
//! In process: a subscriber on one node sees the changes made through that node. Fan-out
//! across nodes goes through Redis pub/sub with the engine's run events (the engine issue).

use tokio::sync::broadcast;

use aos_domain::ids::WorkspaceId;
use aos_domain::workflow::Workflow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkflowEventKind {
    Created,
    Updated,
    Activated,
    Deactivated,
    Deleted,
}

#[derive(Debug, Clone)]
pub struct WorkflowEvent {
    pub workspace_id: WorkspaceId,
    pub kind: WorkflowEventKind,
    pub workflow_id: aos_domain::ids::WorkflowId,
    /// The workflow after the change; `None` once deleted.
    pub workflow: Option<Workflow>,
}

pub struct WorkflowEventBus(broadcast::Sender<WorkflowEvent>);

impl WorkflowEventBus {
    /// A slow subscriber that falls more than this far behind misses events (and is told).
    const CAPACITY: usize = 1024;

    pub fn new() -> Self {
        Self(broadcast::channel(Self::CAPACITY).0)
    }

    pub fn publish(&self, event: WorkflowEvent) {
        // No subscribers is not an error.
        let _ = self.0.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<WorkflowEvent> {
        self.0.subscribe()
    }
}

impl Default for WorkflowEventBus {
    fn default() -> Self {
        Self::new()
    }
}
