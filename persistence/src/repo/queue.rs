//! `RunQueue`: the engine's cross-tenant side of the runs, with no scope.
//!
//! Fair claiming: a claim serves workspaces before runs. Among the workspaces with a due
//! run and fewer live leases than their running limit (`workspace_quotas.running_runs`,
//! else the instance's), it takes the one with the fewest live leases per unit of
//! `workspace_quotas.scheduling_weight` (default 1), then the one whose oldest due run has
//! waited longest, then the lowest id; and from it, its oldest due run. So workspaces hold
//! slots in proportion to their weights (weighted round-robin as slots free up), and a
//! workspace's flood of runs waits behind its own runs, not in front of everyone else's.
//!
//! Cost: neither step reads the runs waiting in the queue. The workspaces with queued work
//! are found by skipping from one workspace id to the next through
//! `idx_runs_workspace_due` (one index probe per workspace); each one's live leases are a
//! range of `idx_runs_workspace_lease`, and its oldest due run the first entry of its range
//! of `idx_runs_workspace_due` past its leased runs. A claim costs a few probes per
//! workspace with queued work (due, sleeping or leased), however many runs each has queued.
//! `another_workspace_waiting`, which a worker asks before making way between two steps,
//! reads the same way.
//!
//! Invariants:
//! - A claim is one `UPDATE` that picks the run and takes its lease, so two claimers never
//!   get the same run: on Postgres the candidate is locked `FOR UPDATE SKIP LOCKED`, and a
//!   concurrent claimer passes over it to the workspace's next run (or, when the workspace
//!   has none left, to the next workspaces in the fair order: three are tried); on SQLite
//!   the statement runs under the write lock taken at `BEGIN IMMEDIATE`, one claimer after
//!   the other.
//! - Every claim bumps `fencing_token`. A journal write locks the run row and is applied
//!   only if the row still carries the lease's token and owner; otherwise it changes
//!   nothing. A worker whose lease expired may still write until another worker claims
//!   the run, since nobody else has touched it in between.
//! - The per-workspace limit counts the live leases the claim's snapshot sees. On Postgres
//!   concurrent claimers may see the same count, so a workspace can briefly exceed the
//!   limit by the number of simultaneous claims: it spreads work fairly, it does not
//!   guard a resource.

use std::sync::LazyLock;

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

/// The workspaces with runs in the queue (due, sleeping or leased), one index probe each:
/// the next workspace id after the previous one. Ends with a NULL row.
const SPACES: &str = "\
spaces(id) AS (
    SELECT (
        SELECT r.workspace_id FROM runs r
        WHERE r.available_at_ms IS NOT NULL
        ORDER BY r.workspace_id
        LIMIT 1
    )
    UNION ALL
    SELECT (
        SELECT r.workspace_id FROM runs r
        WHERE r.available_at_ms IS NOT NULL AND r.workspace_id > spaces.id
        ORDER BY r.workspace_id
        LIMIT 1
    )
    FROM spaces
    WHERE spaces.id IS NOT NULL
)";

/// Each workspace of `spaces` with its live leases (`{now}` is the current time's
/// parameter), its weight and its running limit (`{limit}`: the instance's, when the
/// workspace has no override).
const CANDIDATES: &str = "\
candidates AS (
    SELECT s.id,
           (SELECT COUNT(*) FROM runs l
            WHERE l.workspace_id = s.id AND l.lease_expires_at_ms > {now}) AS leases,
           COALESCE(q.scheduling_weight, 1) AS weight,
           COALESCE(q.running_runs, {limit}) AS running_limit
    FROM spaces s
    LEFT JOIN workspace_quotas q ON q.workspace_id = s.id
    WHERE s.id IS NOT NULL
)";

/// A run of `{space}` that a claim may take now: due, and held by no live lease. Written
/// out in full (`IS NOT NULL` too) so both databases match it to the partial index.
const DUE: &str = "\
{in_space}
      AND r.available_at_ms IS NOT NULL
      AND r.available_at_ms <= {now}
      AND r.lease_expires_at_ms <= {now}";

/// The order of one workspace's due runs: the oldest first, then by id. By the workspace
/// too, so that only `idx_runs_workspace_due` yields it without a sort (see [`in_space`]).
const OLDEST_FIRST: &str = "ORDER BY r.workspace_id, r.available_at_ms, r.id";

/// `r` belongs to the workspace `space`. On Postgres as `= ANY(ARRAY[..])`: a plain `=`
/// takes the workspace out of the sort order (it is fixed), and the planner may then walk
/// `idx_runs_available_at_ms` instead, passing over every other workspace's queued runs to
/// find this one's; against an array, the index scan still stops at the first run past
/// now, but the order by workspace stays, which only `idx_runs_workspace_due` gives.
fn in_space(backend: DbBackend, space: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("r.workspace_id = ANY(ARRAY[{space}])"),
        _ => format!("r.workspace_id = {space}"),
    }
}

fn due(backend: DbBackend, space: &str) -> String {
    DUE.replace("{in_space}", &in_space(backend, space))
}

/// Takes the lease on the fair order's next run and returns its row. `$1` the worker, `$2`
/// now (ms), `$3` the lease (ms), `$4` the instance's per-workspace limit; `{pick}` the
/// run: a [`PICK`], or the first of several that finds one.
const CLAIM: &str = "\
WITH RECURSIVE {spaces},
{candidates},
ranked AS (
    SELECT e.id,
           ROW_NUMBER() OVER (ORDER BY e.leases * 1.0 / e.weight, e.oldest, e.id) AS place
    FROM (
        SELECT c.id, c.leases, c.weight,
               (SELECT r.available_at_ms FROM runs r
                WHERE {due_of_c}
                {oldest_first}
                LIMIT 1) AS oldest
        FROM candidates c
        WHERE c.leases < c.running_limit
    ) e
    WHERE e.oldest IS NOT NULL
)
UPDATE runs
SET lease_owner = $1,
    lease_expires_at_ms = $2 + $3,
    fencing_token = fencing_token + 1
WHERE id = {pick}
RETURNING *";

/// The oldest due run of the workspace in `{place}` of the fair order. `{lock}` is the
/// backend's row lock: a run a concurrent claimer holds is passed over for the next.
const PICK: &str = "(
    SELECT r.id FROM runs r
    WHERE {due_of_place}
    {oldest_first}
    LIMIT 1{lock}
)";

/// Whether a workspace other than `$1` has a due run that the fair order would serve before
/// `$1`'s if one of `$1`'s runs made way: the other holds no lease, or holds fewer than its
/// weighted share even after `$1` gave one up (so two workspaces never trade a slot back and
/// forth over a difference of one). `$2` now (ms), `$3` the instance's per-workspace limit.
const ANOTHER_WAITING: &str = "\
WITH RECURSIVE {spaces},
{candidates},
mine AS (
    SELECT (SELECT COUNT(*) FROM runs l
            WHERE l.workspace_id = $1 AND l.lease_expires_at_ms > $2) AS leases,
           COALESCE(
               (SELECT q.scheduling_weight FROM workspace_quotas q WHERE q.workspace_id = $1),
               1
           ) AS weight
)
SELECT 1 AS waiting
FROM candidates c
CROSS JOIN mine m
WHERE c.id <> $1
  AND c.leases < c.running_limit
  AND (c.leases = 0 OR c.leases * m.weight < (m.leases - 1) * c.weight)
  AND EXISTS (SELECT 1 FROM runs r WHERE {due_of_c})
LIMIT 1";

/// How many workspaces, in the fair order, a claim tries before it gives up: more than one
/// only where concurrent claimers can hold a workspace's last due runs locked (Postgres).
fn picks(backend: DbBackend) -> usize {
    match backend {
        DbBackend::Postgres => 3,
        _ => 1,
    }
}

/// `template` with the shared fragments filled in; `now` and `limit` name the parameters.
fn with_fragments(template: &str, backend: DbBackend, now: &str, limit: &str) -> String {
    template
        .replace("{spaces}", SPACES)
        .replace("{candidates}", CANDIDATES)
        .replace("{due_of_c}", &due(backend, "c.id"))
        .replace("{oldest_first}", OLDEST_FIRST)
        .replace("{now}", now)
        .replace("{limit}", limit)
}

/// The claim's SQL for `backend`, built once.
fn claim_sql(backend: DbBackend) -> &'static str {
    static POSTGRES: LazyLock<String> = LazyLock::new(|| build_claim_sql(DbBackend::Postgres));
    static SQLITE: LazyLock<String> = LazyLock::new(|| build_claim_sql(DbBackend::Sqlite));
    match backend {
        DbBackend::Postgres => &POSTGRES,
        _ => &SQLITE,
    }
}

fn build_claim_sql(backend: DbBackend) -> String {
    let lock = match backend {
        DbBackend::Postgres => "\n    FOR UPDATE OF r SKIP LOCKED",
        // SQLite has no row locks; the transaction holds the database's write lock.
        _ => "",
    };
    let picks: Vec<String> = (1..=picks(backend))
        .map(|place| {
            let space = format!("(SELECT ranked.id FROM ranked WHERE ranked.place = {place})");
            PICK.replace("{due_of_place}", &due(backend, &space))
                .replace("{lock}", lock)
        })
        .collect();
    let pick = match picks.as_slice() {
        [only] => only.clone(),
        several => format!("COALESCE({})", several.join(", ")),
    };
    with_fragments(&CLAIM.replace("{pick}", &pick), backend, "$2", "$4")
}

fn claim_statement(
    backend: DbBackend,
    worker: &str,
    now_ms: i64,
    lease_ms: i64,
    per_workspace_limit: u32,
) -> Statement {
    Statement::from_sql_and_values(
        backend,
        claim_sql(backend),
        [
            worker.into(),
            now_ms.into(),
            lease_ms.into(),
            i64::from(per_workspace_limit).into(),
        ],
    )
}

fn another_waiting_statement(
    backend: DbBackend,
    workspace_id: WorkspaceId,
    now_ms: i64,
    per_workspace_limit: u32,
) -> Statement {
    static POSTGRES: LazyLock<String> =
        LazyLock::new(|| with_fragments(ANOTHER_WAITING, DbBackend::Postgres, "$2", "$3"));
    static SQLITE: LazyLock<String> =
        LazyLock::new(|| with_fragments(ANOTHER_WAITING, DbBackend::Sqlite, "$2", "$3"));
    let sql: &str = match backend {
        DbBackend::Postgres => &POSTGRES,
        _ => &SQLITE,
    };
    Statement::from_sql_and_values(
        backend,
        sql,
        [
            workspace_id.as_uuid().into(),
            now_ms.into(),
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

    async fn another_workspace_waiting(
        &self,
        workspace_id: WorkspaceId,
        now_ms: i64,
        per_workspace_limit: u32,
    ) -> DomainResult<bool> {
        let backend = self.db.get_database_backend();
        let waiting = self
            .db
            .query_one_raw(another_waiting_statement(
                backend,
                workspace_id,
                now_ms,
                per_workspace_limit,
            ))
            .await
            .map_err(internal("look for another workspace's due run"))?;
        Ok(waiting.is_some())
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
