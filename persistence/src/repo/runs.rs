//! `RunStore`: runs as the API sees them, always through a scope; and the step and event
//! writes that `queue` shares.
//!
//! Invariants: every query filters by `scope.workspace_id()` inside
//! `SeaStore::begin_scoped`. A run is stored with its `RUN_QUEUED` event in one
//! transaction. Every later write that appends events (a cancellation here, a worker's
//! journal in `queue`) first locks the run row (`FOR UPDATE` on Postgres; the write lock
//! taken at `BEGIN IMMEDIATE` on SQLite), numbers the events from the row's `last_seq` and
//! stores the new `last_seq` in the same transaction, so the numbers stay contiguous
//! whoever writes concurrently.

use aos_domain::access::WorkspaceScope;
use aos_domain::error::{DomainError, DomainResult};
use aos_domain::journal::{NewRun, NewRunEvent, Run, RunEvent, RunEventKind, StepRecord};
use aos_domain::page::{Page, PageRequest};
use aos_domain::ports::{CancelOutcome, RunFilter, RunStore};
use aos_domain::quota::QuotaLimits;
use aos_domain::run::{RunId, RunStatus};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{NullOrdering, OnConflict};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel,
    Order, QueryFilter, QueryOrder, QuerySelect, Select,
};
use uuid::Uuid;

use super::quotas::charge_queued_run;
use crate::convert;
use crate::entities::{run_events, run_steps, runs, workflow_versions};
use crate::error::{internal, missing_or_conflict};
use crate::scoped::Intent;
use crate::store::SeaStore;
use crate::timestamps;
use crate::txn::Txn;

/// Stores `steps` of a run, replacing the stored state of any step journaled before.
pub(super) async fn store_steps(
    db: &impl ConnectionTrait,
    run_id: Uuid,
    workspace_id: Uuid,
    steps: Vec<StepRecord>,
) -> DomainResult<()> {
    let rows = steps
        .into_iter()
        .map(|step| {
            convert::step_row(run_id, workspace_id, step).map(IntoActiveModel::into_active_model)
        })
        .collect::<DomainResult<Vec<_>>>()?;
    let replace = OnConflict::columns([run_steps::Column::RunId, run_steps::Column::NodeId])
        .update_columns([
            run_steps::Column::Status,
            run_steps::Column::Attempt,
            run_steps::Column::Input,
            run_steps::Column::Output,
            run_steps::Column::Error,
            run_steps::Column::Branch,
            run_steps::Column::FinishOrder,
            run_steps::Column::StartedAt,
            run_steps::Column::FinishedAt,
        ])
        .to_owned();
    run_steps::Entity::insert_many(rows)
        .on_conflict(replace)
        .exec_without_returning(db)
        .await
        .map_err(internal("store run steps"))?;
    Ok(())
}

/// Stores `events` numbered after `last_seq` and returns them numbered. The caller holds
/// the run row locked and stores the new `last_seq` (the last event's) in the same
/// transaction.
pub(super) async fn append_events(
    db: &impl ConnectionTrait,
    run_id: Uuid,
    workspace_id: Uuid,
    last_seq: i64,
    events: Vec<NewRunEvent>,
) -> DomainResult<Vec<RunEvent>> {
    let rows: Vec<run_events::Model> = events
        .into_iter()
        .zip(last_seq + 1..)
        .map(|(event, seq)| convert::event_row(run_id, workspace_id, seq, event))
        .collect();
    run_events::Entity::insert_many(rows.iter().cloned().map(IntoActiveModel::into_active_model))
        .exec_without_returning(db)
        .await
        .map_err(internal("append run events"))?;
    rows.into_iter().map(convert::run_event).collect()
}

/// A run's steps in the order they started; steps that never started (skipped) come last
/// on both backends, and `node_id` breaks ties so the order is stable.
pub(super) async fn steps_of(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    run_id: Uuid,
) -> DomainResult<Vec<StepRecord>> {
    run_steps::Entity::find()
        .filter(run_steps::Column::RunId.eq(run_id))
        .filter(run_steps::Column::WorkspaceId.eq(workspace_id))
        .order_by_with_nulls(run_steps::Column::StartedAt, Order::Asc, NullOrdering::Last)
        .order_by_asc(run_steps::Column::NodeId)
        .all(db)
        .await
        .map_err(internal("read run steps"))?
        .into_iter()
        .map(convert::step)
        .collect()
}

fn in_workspace(workspace_id: Uuid) -> Select<runs::Entity> {
    runs::Entity::find().filter(runs::Column::WorkspaceId.eq(workspace_id))
}

async fn commit(txn: Txn) -> DomainResult<()> {
    txn.commit().await.map_err(internal("commit a run change"))
}

/// The row of `run` as it is queued: its `RUN_QUEUED` event (seq 1) counted, claimable
/// from the time it was queued.
pub(super) fn queued_row(workspace_id: Uuid, run: &NewRun) -> runs::Model {
    let queued_at = timestamps::stored(run.queued_at);
    let (retry_of, retry_from_node) = match &run.retry_of {
        Some((id, node)) => (Some(id.as_uuid()), Some(node.clone())),
        None => (None, None),
    };
    runs::Model {
        id: run.id.as_uuid(),
        workspace_id,
        workflow_id: run.workflow_id.as_uuid(),
        workflow_version: run.workflow_version,
        status: RunStatus::Queued.as_str().to_owned(),
        trigger_kind: run.trigger.as_str().to_owned(),
        input: run.input.clone(),
        output: None,
        error: None,
        retry_of,
        retry_from_node,
        cancel_requested: false,
        last_seq: 1,
        available_at_ms: Some(queued_at.timestamp_millis()),
        lease_owner: None,
        lease_expires_at_ms: 0,
        fencing_token: 0,
        created_at: queued_at,
        started_at: None,
        finished_at: None,
    }
}

/// Inserts a run row with its steps and its events (numbered from 1), in the caller's
/// transaction, and returns the events numbered. `NotFound("workflow")` when the pinned
/// version is not in the run's workspace.
pub(super) async fn insert_run_row(
    txn: &Txn,
    row: runs::Model,
    steps: Vec<StepRecord>,
    events: Vec<NewRunEvent>,
) -> DomainResult<Vec<RunEvent>> {
    let pinned = workflow_versions::Entity::find_by_id((row.workflow_id, row.workflow_version))
        .filter(workflow_versions::Column::WorkspaceId.eq(row.workspace_id))
        .select_only()
        .column(workflow_versions::Column::Version)
        .into_tuple::<i32>()
        .one(txn)
        .await
        .map_err(internal("find a run's workflow version"))?;
    if pinned.is_none() {
        return Err(DomainError::NotFound("workflow"));
    }
    let (id, workspace_id) = (row.id, row.workspace_id);
    // The foreign keys catch a workflow deleted since the check above.
    runs::Entity::insert(row.into_active_model())
        .exec_without_returning(txn)
        .await
        .map_err(missing_or_conflict(
            "queue a run",
            "workflow",
            "a run with this id exists already",
        ))?;
    store_steps(txn, id, workspace_id, steps).await?;
    append_events(txn, id, workspace_id, 0, events).await
}

/// Inserts a queued run with its reused steps and its `RUN_QUEUED` event (seq 1), in the
/// caller's transaction, and counts it against the workspace's quotas.
/// `NotFound("workflow")` when the pinned version is not in the workspace;
/// `QuotaExceeded` when the run would pass the month's runs or the queued runs, and then
/// the caller must not commit.
pub(crate) async fn insert_run(
    txn: &Txn,
    quotas: &QuotaLimits,
    workspace_id: Uuid,
    run: NewRun,
) -> DomainResult<Run> {
    let row = queued_row(workspace_id, &run);
    let queued = NewRunEvent::queued(run.trigger, row.created_at);
    insert_run_row(txn, row.clone(), run.reused_steps, vec![queued]).await?;
    charge_queued_run(txn, quotas, workspace_id, row.created_at).await?;
    convert::run(row)
}

#[async_trait]
impl RunStore for SeaStore {
    async fn enqueue_run(&self, scope: &WorkspaceScope, run: NewRun) -> DomainResult<Run> {
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        let run = insert_run(
            &txn,
            &self.quota_defaults,
            scope.workspace_id().as_uuid(),
            run,
        )
        .await?;
        commit(txn).await?;
        Ok(run)
    }

    async fn run(&self, scope: &WorkspaceScope, id: RunId) -> DomainResult<Option<Run>> {
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        let row = in_workspace(scope.workspace_id().as_uuid())
            .filter(runs::Column::Id.eq(id.as_uuid()))
            .one(&txn)
            .await
            .map_err(internal("read a run"))?;
        commit(txn).await?;
        row.map(convert::run).transpose()
    }

    async fn runs(
        &self,
        scope: &WorkspaceScope,
        filter: RunFilter,
        page: PageRequest<RunId>,
    ) -> DomainResult<Page<Run>> {
        let mut query = in_workspace(scope.workspace_id().as_uuid());
        if let Some(status) = filter.status {
            query = query.filter(runs::Column::Status.eq(status.as_str()));
        }
        if let Some(workflow_id) = filter.workflow_id {
            query = query.filter(runs::Column::WorkflowId.eq(workflow_id.as_uuid()));
        }
        if let Some(after) = page.after {
            // Newest first, and UUIDv7 ids grow with time: "after" means "older than".
            query = query.filter(runs::Column::Id.lt(after.as_uuid()));
        }
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        // One extra row tells whether another page follows.
        let rows = query
            .order_by_desc(runs::Column::Id)
            .limit(page.first.saturating_add(1))
            .all(&txn)
            .await
            .map_err(internal("list runs"))?;
        commit(txn).await?;
        super::page_from(rows, page.first, convert::run)
    }

    async fn run_steps(&self, scope: &WorkspaceScope, id: RunId) -> DomainResult<Vec<StepRecord>> {
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        let steps = steps_of(&txn, scope.workspace_id().as_uuid(), id.as_uuid()).await?;
        commit(txn).await?;
        Ok(steps)
    }

    async fn run_events(
        &self,
        scope: &WorkspaceScope,
        id: RunId,
        after_seq: i64,
        limit: u64,
    ) -> DomainResult<Vec<RunEvent>> {
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        let rows = run_events::Entity::find()
            .filter(run_events::Column::RunId.eq(id.as_uuid()))
            .filter(run_events::Column::WorkspaceId.eq(scope.workspace_id().as_uuid()))
            .filter(run_events::Column::Seq.gt(after_seq))
            .order_by_asc(run_events::Column::Seq)
            .limit(limit)
            .all(&txn)
            .await
            .map_err(internal("read run events"))?;
        commit(txn).await?;
        rows.into_iter().map(convert::run_event).collect()
    }

    async fn request_cancel(
        &self,
        scope: &WorkspaceScope,
        id: RunId,
        now: DateTime<Utc>,
    ) -> DomainResult<CancelOutcome> {
        let now = timestamps::stored(now);
        let now_ms = now.timestamp_millis();
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        let row = in_workspace(scope.workspace_id().as_uuid())
            .filter(runs::Column::Id.eq(id.as_uuid()))
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(internal("lock a run"))?
            .ok_or(DomainError::NotFound("run"))?;
        let status = convert::run_status(&row.status)?;
        if status.is_terminal() {
            return Err(DomainError::Conflict("the run has already finished".into()));
        }
        let unheld = row.lease_expires_at_ms <= now_ms;
        let mut change = runs::ActiveModel {
            id: ActiveValue::Unchanged(row.id),
            cancel_requested: ActiveValue::Set(true),
            ..Default::default()
        };
        if status == RunStatus::Queued && unheld {
            let cancelled = NewRunEvent {
                kind: RunEventKind::RunCancelled,
                node_id: None,
                message: "cancelled before it started".to_owned(),
                data: None,
                at: now,
            };
            let events = append_events(
                &txn,
                row.id,
                row.workspace_id,
                row.last_seq,
                vec![cancelled],
            )
            .await?;
            change.status = ActiveValue::Set(RunStatus::Cancelled.as_str().to_owned());
            change.finished_at = ActiveValue::Set(Some(now));
            change.available_at_ms = ActiveValue::Set(None);
            change.last_seq = ActiveValue::Set(row.last_seq + 1);
            let row = change
                .update(&txn)
                .await
                .map_err(internal("cancel a queued run"))?;
            commit(txn).await?;
            return Ok(CancelOutcome::Cancelled {
                run: convert::run(row)?,
                events,
            });
        }
        // Wake a sleeping run (a delay, a retry backoff): the next worker to claim it sees
        // the request and cancels it, instead of waiting out the sleep.
        let wake_at = row.available_at_ms.map_or(now_ms, |at| at.min(now_ms));
        change.available_at_ms = ActiveValue::Set(Some(wake_at));
        let row = change
            .update(&txn)
            .await
            .map_err(internal("request a run's cancellation"))?;
        commit(txn).await?;
        Ok(CancelOutcome::Requested(convert::run(row)?))
    }
}
