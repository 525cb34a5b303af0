//! `RunQueue`: the engine's cross-tenant side of the runs, with no scope.
//!
//! Invariants:
//! - A claim is one `UPDATE` that picks the run and takes its lease, so two claimers never
//!   get the same run: on Postgres the candidate is locked `FOR UPDATE SKIP LOCKED`, and a
//!   concurrent claimer passes over it to the next one; on SQLite the statement runs under
//!   the write lock taken at `BEGIN IMMEDIATE`, one claimer after the other.
//! - Every claim bumps `fencing_token`. A journal write locks the run row and is applied
//!   only if the row still carries the lease's token and owner; otherwise it changes
//!   nothing. A worker whose lease expired may still write until another worker claims
//!   the run, since nobody else has touched it in between.
//! - The per-workspace limit counts the live leases the claim's snapshot sees. On Postgres
//!   concurrent claimers may see the same count, so a workspace can briefly exceed the
//!   limit by the number of simultaneous claims: it spreads work fairly, it does not
//!   guard a resource.

use aos_domain::error::{DomainError, DomainResult};
use aos_domain::ids::WorkspaceId;
use aos_domain::journal::{
    ClaimedRun, Journal, JournalRefusal, Lease, NewRun, NewRunEvent, RunChange,
};
use aos_domain::ports::{LeaseRenewal, QueueError, RunQueue};
use aos_domain::run::{RunId, RunStatus};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, IntoActiveModel,
    Iterable, JsonValue, ModelTrait, QuerySelect, Statement,
};

use super::run_batch::CompleteRun;
use super::runs::{append_events, insert_run_row, queued_row, steps_of, store_steps};
use crate::convert;
use crate::entities::{runs, workflow_versions};
use crate::error::{corrupt_row, internal};
use crate::store::SeaStore;
use crate::timestamps;
use crate::txn::Txn;

/// Takes the lease on the best claimable run and returns its row. `$1` the worker, `$2`
/// now (ms), `$3` the lease (ms), `$4` the per-workspace limit; `{lock}` the backend's
/// row lock for the candidate.
///
/// Claimable: available (terminal runs have no `available_at_ms`), due, and not held by a
/// live lease. Best: the workspace with the fewest live leases, then the run waiting
/// longest, then the id, so the choice is deterministic.
const CLAIM: &str = "\
WITH live AS (
    SELECT workspace_id, COUNT(*) AS leases
    FROM runs
    WHERE lease_expires_at_ms > $2
    GROUP BY workspace_id
)
UPDATE runs
SET lease_owner = $1,
    lease_expires_at_ms = $2 + $3,
    fencing_token = fencing_token + 1
WHERE id = (
    SELECT r.id
    FROM runs r
    LEFT JOIN live ON live.workspace_id = r.workspace_id
    WHERE r.available_at_ms IS NOT NULL
      AND r.available_at_ms <= $2
      AND r.lease_expires_at_ms <= $2
      AND COALESCE(live.leases, 0) < $4
    ORDER BY COALESCE(live.leases, 0), r.available_at_ms, r.id
    LIMIT 1{lock}
)
RETURNING *";

fn claim_statement(
    backend: DbBackend,
    worker: &str,
    now_ms: i64,
    lease_ms: i64,
    per_workspace_limit: u32,
) -> Statement {
    let lock = match backend {
        DbBackend::Postgres => "\n    FOR UPDATE OF r SKIP LOCKED",
        // SQLite has no row locks; the transaction holds the database's write lock.
        _ => "",
    };
    Statement::from_sql_and_values(
        backend,
        CLAIM.replace("{lock}", lock),
        [
            worker.into(),
            now_ms.into(),
            lease_ms.into(),
            i64::from(per_workspace_limit).into(),
        ],
    )
}

/// Applies a journal write that ends at `last_seq` to the run row: its start, its
/// change, and the lease extended to `lease_until_ms` while the worker keeps the run.
fn apply_journal(
    row: &mut runs::Model,
    starts: Option<DateTime<Utc>>,
    change: Option<RunChange>,
    last_seq: i64,
    now_ms: i64,
    lease_until_ms: i64,
) -> DomainResult<()> {
    row.last_seq = last_seq;
    row.lease_expires_at_ms = lease_until_ms;
    let transition = |row: &mut runs::Model, next: RunStatus| -> DomainResult<()> {
        // The engine only journals moves the lifecycle has: anything else is its bug.
        let status = convert::run_status(&row.status)?
            .transition(next)
            .map_err(DomainError::internal)?;
        row.status = status.as_str().to_owned();
        Ok(())
    };
    if let Some(at) = starts {
        transition(row, RunStatus::Running)?;
        row.started_at = Some(timestamps::stored(at));
    }
    match change {
        None => {}
        Some(RunChange::Finished {
            status,
            output,
            error,
            at,
        }) => {
            transition(row, status)?;
            row.output = output;
            row.error = error;
            row.finished_at = Some(timestamps::stored(at));
            row.available_at_ms = None;
            row.lease_owner = None;
            row.lease_expires_at_ms = 0;
        }
        Some(RunChange::SleepUntil { until_ms }) => {
            // The fencing token stays: the next claim, by whichever worker, bumps it. A
            // cancel requested before this write must not wait for the sleep to end.
            let until_ms = if row.cancel_requested {
                until_ms.min(now_ms)
            } else {
                until_ms
            };
            row.available_at_ms = Some(until_ms);
            row.lease_owner = None;
            row.lease_expires_at_ms = 0;
        }
    }
    Ok(())
}

/// `after` as an update of only the columns it changed, so a heartbeat does not rewrite
/// the run's input.
fn changed_columns(before: &runs::Model, after: runs::Model) -> runs::ActiveModel {
    let mut active = after.clone().into_active_model();
    // Always one column at least: an update that sets nothing is an error.
    active.reset(runs::Column::LeaseExpiresAtMs);
    for column in runs::Column::iter() {
        if before.get(column) != after.get(column) {
            active.reset(column);
        }
    }
    active
}

fn event_count(events: &[NewRunEvent]) -> i64 {
    i64::try_from(events.len()).unwrap_or(i64::MAX)
}

#[async_trait]
impl RunQueue for SeaStore {
    async fn claim(
        &self,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
        per_workspace_limit: u32,
    ) -> DomainResult<Option<ClaimedRun>> {
        let backend = self.db.get_database_backend();
        let txn = self.begin_unscoped_write().await?;
        let claimed = txn
            .query_one_raw(claim_statement(
                backend,
                worker,
                now_ms,
                lease_ms,
                per_workspace_limit,
            ))
            .await
            .map_err(internal("claim a run"))?;
        let Some(claimed) = claimed else {
            // End it now rather than on drop: on SQLite it holds the write lock.
            txn.rollback()
                .await
                .map_err(internal("end an empty claim"))?;
            return Ok(None);
        };
        let row =
            runs::Model::from_query_result(&claimed, "").map_err(internal("read a claimed run"))?;
        let definition =
            workflow_versions::Entity::find_by_id((row.workflow_id, row.workflow_version))
                .select_only()
                .column(workflow_versions::Column::Definition)
                .into_tuple::<JsonValue>()
                .one(&txn)
                .await
                .map_err(internal("read a claimed run's definition"))?
                .ok_or_else(|| corrupt_row("run without its workflow version"))?;
        let steps = steps_of(&txn, row.workspace_id, row.id).await?;
        txn.commit().await.map_err(internal("commit a claim"))?;
        Ok(Some(ClaimedRun {
            lease: Lease {
                run_id: RunId::from_uuid(row.id),
                workspace_id: WorkspaceId::from_uuid(row.workspace_id),
                worker: worker.to_owned(),
                fencing_token: row.fencing_token,
            },
            run: convert::run(row)?,
            definition,
            steps,
        }))
    }

    async fn journal(
        &self,
        lease: &Lease,
        journal: Journal,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<LeaseRenewal, QueueError> {
        let txn = self.begin_unscoped_write().await?;
        match journal_in(&txn, lease, journal, now_ms, lease_ms).await {
            Ok(renewal) => {
                txn.commit()
                    .await
                    .map_err(internal("commit a journal write"))?;
                Ok(renewal)
            }
            Err(refusal) => {
                // End it now, not on drop: a dropped transaction's rollback waits for the
                // connection's next use, and until then the run's row stays locked (claims
                // skip locked rows) and, on SQLite, the write lock stays taken.
                txn.rollback()
                    .await
                    .map_err(internal("end a refused journal write"))?;
                Err(refusal)
            }
        }
    }

    async fn insert_claimed(
        &self,
        workspace_id: WorkspaceId,
        run: NewRun,
        worker: &str,
        journal: Journal,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<(Lease, LeaseRenewal), QueueError> {
        // On SQLite only: Postgres commits concurrent transactions side by side, and
        // there a shared transaction measured slower, not faster.
        let ends_here =
            matches!(journal.run, Some(RunChange::Finished { .. })) && self.write_lane.is_some();
        let mut row = queued_row(workspace_id.as_uuid(), &run);
        row.lease_owner = Some(worker.to_owned());
        row.fencing_token = 1;
        apply_journal(
            &mut row,
            journal.starts,
            journal.run,
            1 + event_count(&journal.events),
            now_ms,
            now_ms + lease_ms,
        )?;
        let mut events = vec![NewRunEvent::queued(run.trigger, row.created_at)];
        events.extend(journal.events);
        let mut steps = run.reused_steps;
        steps.extend(journal.steps);
        let events = if ends_here {
            // Complete already (no lease to honour later), so it may share a transaction.
            let (id, workspace) = (row.id, row.workspace_id);
            let complete = CompleteRun {
                run: row.clone(),
                steps: steps
                    .into_iter()
                    .map(|step| convert::step_row(id, workspace, step))
                    .collect::<DomainResult<_>>()?,
                events: events
                    .into_iter()
                    .zip(1..)
                    .map(|(event, seq)| convert::event_row(id, workspace, seq, event))
                    .collect(),
            };
            let numbered = complete
                .events
                .iter()
                .cloned()
                .map(convert::run_event)
                .collect::<DomainResult<Vec<_>>>()?;
            self.run_batcher().store(complete).await?;
            numbered
        } else {
            let txn = self.begin_unscoped_write().await?;
            let events = insert_run_row(&txn, row.clone(), steps, events).await?;
            txn.commit()
                .await
                .map_err(internal("commit a run executed at once"))?;
            events
        };
        let lease = Lease {
            run_id: run.id,
            workspace_id,
            worker: worker.to_owned(),
            fencing_token: row.fencing_token,
        };
        let renewal = LeaseRenewal {
            cancel_requested: false,
            events,
        };
        Ok((lease, renewal))
    }
}

/// A journal write inside `txn`, which the caller commits or, on a refusal, rolls back.
async fn journal_in(
    txn: &Txn,
    lease: &Lease,
    journal: Journal,
    now_ms: i64,
    lease_ms: i64,
) -> Result<LeaseRenewal, QueueError> {
    let row = runs::Entity::find_by_id(lease.run_id.as_uuid())
        .lock_exclusive()
        .one(txn)
        .await
        .map_err(internal("lock a run for its journal"))?
        .ok_or(JournalRefusal::RunGone)?;
    if row.fencing_token != lease.fencing_token
        || row.lease_owner.as_deref() != Some(lease.worker.as_str())
    {
        return Err(JournalRefusal::LeaseLost.into());
    }
    let previous_seq = row.last_seq;
    let mut next = row.clone();
    apply_journal(
        &mut next,
        journal.starts,
        journal.run,
        previous_seq + event_count(&journal.events),
        now_ms,
        now_ms + lease_ms,
    )?;
    store_steps(txn, next.id, next.workspace_id, journal.steps).await?;
    let events = append_events(
        txn,
        next.id,
        next.workspace_id,
        previous_seq,
        journal.events,
    )
    .await?;
    let row = changed_columns(&row, next)
        .update(txn)
        .await
        .map_err(internal("journal a run's change"))?;
    Ok(LeaseRenewal {
        cancel_requested: row.cancel_requested,
        events,
    })
}
