//! Group commit of whole runs on SQLite: a run executed in place that ended before its
//! first write (a webhook's run of pure steps) is stored complete, and such runs arriving
//! together share one transaction of three multi-row inserts. With one writer at a time,
//! the transaction per run, not the rows, was what capped webhook throughput.
//!
//! A run waits only for the batch being written when it arrives, never for a timer: a run
//! alone is written at once. When a batch fails (a workflow deleted meanwhile, a storage
//! error), each of its runs is written again on its own, so a run fails only for a
//! reason of its own, with its own error.

use std::collections::BTreeSet;

use aos_domain::error::{DomainError, DomainResult};
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::entities::{run_events, run_steps, runs, workflow_versions};
use crate::error::{internal, missing_or_conflict};
use crate::store::SeaStore;

/// Most runs in one transaction: the multi-row inserts stay well under SQLite's limit of
/// bound parameters.
const MAX_BATCH: usize = 64;
/// Runs waiting for the batch after the one being written; beyond it, callers wait.
const BACKLOG: usize = 1024;

/// A run, its steps and its events, as rows ready to insert.
pub(crate) struct CompleteRun {
    pub(crate) run: runs::Model,
    pub(crate) steps: Vec<run_steps::Model>,
    pub(crate) events: Vec<run_events::Model>,
}

type Job = (CompleteRun, oneshot::Sender<DomainResult<()>>);

/// The queue of complete runs to store, and the task that stores them.
#[derive(Debug)]
pub(crate) struct RunBatcher {
    jobs: mpsc::Sender<Job>,
}

impl RunBatcher {
    /// Starts the writing task on `store`, which must not hold a batcher itself (or the
    /// task would keep its own queue open, and never end).
    pub(crate) fn start(store: SeaStore) -> Self {
        let (jobs, queued) = mpsc::channel(BACKLOG);
        tokio::spawn(write_batches(store, queued));
        Self { jobs }
    }

    pub(crate) async fn store(&self, run: CompleteRun) -> DomainResult<()> {
        let (reply, stored) = oneshot::channel();
        self.jobs
            .send((run, reply))
            .await
            .map_err(|_| DomainError::internal("the run batcher stopped"))?;
        stored
            .await
            .map_err(|_| DomainError::internal("the run batcher dropped a run"))?
    }
}

async fn write_batches(store: SeaStore, mut queued: mpsc::Receiver<Job>) {
    while let Some(first) = queued.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queued.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (runs, replies): (Vec<CompleteRun>, Vec<_>) = batch.into_iter().unzip();
        match insert(&store, &runs).await {
            Ok(()) => {
                for reply in replies {
                    // A caller that stopped waiting (its request ended) needs no answer.
                    let _ = reply.send(Ok(()));
                }
            }
            Err(error) if runs.len() == 1 => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(error));
                }
            }
            Err(_) => {
                for (run, reply) in runs.into_iter().zip(replies) {
                    let _ = reply.send(insert(&store, std::slice::from_ref(&run)).await);
                }
            }
        }
    }
}

/// Stores `runs` in one transaction. `NotFound("workflow")` when a run's pinned version
/// is not in its workspace.
async fn insert(store: &SeaStore, runs: &[CompleteRun]) -> DomainResult<()> {
    let txn = store.begin_unscoped_write().await?;
    let pinned: BTreeSet<(Uuid, i32, Uuid)> = runs
        .iter()
        .map(|run| {
            (
                run.run.workflow_id,
                run.run.workflow_version,
                run.run.workspace_id,
            )
        })
        .collect();
    for (workflow_id, version, workspace_id) in pinned {
        let found = workflow_versions::Entity::find_by_id((workflow_id, version))
            .filter(workflow_versions::Column::WorkspaceId.eq(workspace_id))
            .select_only()
            .column(workflow_versions::Column::Version)
            .into_tuple::<i32>()
            .one(&txn)
            .await
            .map_err(internal("find a run's workflow version"))?;
        if found.is_none() {
            return Err(DomainError::NotFound("workflow"));
        }
    }
    runs::Entity::insert_many(runs.iter().map(|run| run.run.clone().into_active_model()))
        .exec_without_returning(&txn)
        .await
        .map_err(missing_or_conflict(
            "store runs executed in place",
            "workflow",
            "a run with this id exists already",
        ))?;
    let steps = runs.iter().flat_map(|run| {
        run.steps
            .iter()
            .cloned()
            .map(IntoActiveModel::into_active_model)
    });
    run_steps::Entity::insert_many(steps)
        .exec_without_returning(&txn)
        .await
        .map_err(internal("store the steps of runs executed in place"))?;
    let events = runs.iter().flat_map(|run| {
        run.events
            .iter()
            .cloned()
            .map(IntoActiveModel::into_active_model)
    });
    run_events::Entity::insert_many(events)
        .exec_without_returning(&txn)
        .await
        .map_err(internal("store the events of runs executed in place"))?;
    txn.commit()
        .await
        .map_err(internal("commit runs executed in place"))
}
