//! A `RunQueue` with no storage behind it: every journal write succeeds at once. Driving a
//! run against it measures the engine's own cost per step (scheduling, expression scope,
//! node execution, building step records and events), with storage taken out.

use std::sync::atomic::{AtomicI64, Ordering};

use aos_domain::DomainError;
use aos_domain::ids::{WorkflowId, WorkspaceId};
use aos_domain::journal::{
    ClaimedRun, Journal, Lease, NewRun, NewRunEvent, Run, RunEvent, RunTrigger,
};
use aos_domain::ports::{LeaseRenewal, QueueError, RunQueue};
use aos_domain::run::{RunId, RunStatus};
use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;

#[derive(Default)]
pub struct NullQueue {
    last_seq: AtomicI64,
}

impl NullQueue {
    /// A freshly queued run of `definition`, as a claim would hand it over.
    pub fn claimed(definition: &Value, input: Value) -> ClaimedRun {
        let run_id = RunId::generate();
        let workspace_id = WorkspaceId::generate();
        ClaimedRun {
            lease: Lease {
                run_id,
                workspace_id,
                worker: "bench".into(),
                fencing_token: 1,
            },
            run: Run {
                id: run_id,
                workspace_id,
                workflow_id: WorkflowId::generate(),
                workflow_version: 1,
                status: RunStatus::Queued,
                trigger: RunTrigger::Manual,
                input,
                output: None,
                error: None,
                retry_of: None,
                retry_from_node: None,
                cancel_requested: false,
                last_seq: 1,
                created_at: Utc::now(),
                started_at: None,
                finished_at: None,
            },
            definition: definition.clone(),
            steps: Vec::new(),
        }
    }
}

#[async_trait]
impl RunQueue for NullQueue {
    async fn claim(
        &self,
        _worker: &str,
        _now_ms: i64,
        _lease_ms: i64,
        _per_workspace_limit: u32,
    ) -> Result<Option<ClaimedRun>, DomainError> {
        Ok(None)
    }

    async fn journal(
        &self,
        lease: &Lease,
        journal: Journal,
        _now_ms: i64,
        _lease_ms: i64,
    ) -> Result<LeaseRenewal, QueueError> {
        Ok(LeaseRenewal {
            cancel_requested: false,
            events: self.numbered(lease, journal.events),
        })
    }

    async fn insert_claimed(
        &self,
        workspace_id: WorkspaceId,
        run: NewRun,
        worker: &str,
        journal: Journal,
        _now_ms: i64,
        _lease_ms: i64,
    ) -> Result<(Lease, LeaseRenewal), QueueError> {
        let lease = Lease {
            run_id: run.id,
            workspace_id,
            worker: worker.to_owned(),
            fencing_token: 1,
        };
        let mut events = vec![NewRunEvent::queued(run.trigger, run.queued_at)];
        events.extend(journal.events);
        let renewal = LeaseRenewal {
            cancel_requested: false,
            events: self.numbered(&lease, events),
        };
        Ok((lease, renewal))
    }
}

impl NullQueue {
    /// Numbered as storage would, so publishing costs what it costs for real.
    fn numbered(&self, lease: &Lease, events: Vec<NewRunEvent>) -> Vec<RunEvent> {
        events
            .into_iter()
            .map(|event| RunEvent {
                run_id: lease.run_id,
                workspace_id: lease.workspace_id,
                seq: self.last_seq.fetch_add(1, Ordering::Relaxed) + 1,
                at: event.at,
                kind: event.kind,
                node_id: event.node_id,
                message: event.message,
                data: event.data,
            })
            .collect()
    }
}
