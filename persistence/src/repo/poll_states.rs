//! `PollStore`: the state of polling triggers, unscoped like `TriggerStore` (polls start
//! runs on behalf of no caller), and keyed on (workflow, node).
//!
//! Invariants:
//! - a claim is one `UPDATE` that picks a due row of an active workflow and takes its
//!   lease, bumping `fencing_token`: on Postgres the candidate is locked `FOR UPDATE SKIP
//!   LOCKED`, so a concurrent claimer passes over it; on SQLite the statement runs under
//!   the write lock taken at `BEGIN IMMEDIATE`;
//! - finishing a poll locks the row and writes only if it still carries the lease's owner
//!   and token; the runs, the cursor and the lease's release are one transaction.

use aos_domain::error::DomainResult;
use aos_domain::ids::{WorkflowId, WorkspaceId};
use aos_domain::journal::Run;
use aos_domain::polling::{ClaimedPoll, PollKey, PollLease, PollOutcome, PollState, PollStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult,
    IntoActiveModel, JoinType, QueryFilter, QuerySelect, Set, Statement,
};

use super::runs::insert_run;
use super::triggers::target;
use super::workflows::current_version;
use crate::entities::{poll_states, workflow_versions, workflows};
use crate::error::{corrupt_row, internal};
use crate::store::SeaStore;
use crate::timestamps;
use crate::txn::Txn;

/// Takes the lease on the due row that fell due first. `$1` the owner, `$2` now (ms),
/// `$3` the lease (ms), `$4` `true` (an active workflow); `{lock}` the backend's row lock.
const CLAIM: &str = "\
UPDATE poll_states
SET lease_owner = $1,
    lease_expires_at_ms = $2 + $3,
    fencing_token = fencing_token + 1
WHERE (workflow_id, node_id) = (
    SELECT p.workflow_id, p.node_id
    FROM poll_states p
    JOIN workflows w ON w.id = p.workflow_id AND w.workspace_id = p.workspace_id
    WHERE w.active = $4
      AND p.next_poll_at_ms <= $2
      AND p.lease_expires_at_ms <= $2
    ORDER BY p.next_poll_at_ms, p.workflow_id, p.node_id
    LIMIT 1{lock}
)
RETURNING *";

fn claim_statement(backend: DbBackend, owner: &str, now_ms: i64, lease_ms: i64) -> Statement {
    let lock = match backend {
        DbBackend::Postgres => "\n    FOR UPDATE OF p SKIP LOCKED",
        // SQLite has no row locks; the transaction holds the database's write lock.
        _ => "",
    };
    Statement::from_sql_and_values(
        backend,
        CLAIM.replace("{lock}", lock),
        [owner.into(), now_ms.into(), lease_ms.into(), true.into()],
    )
}

#[async_trait]
impl PollStore for SeaStore {
    async fn ensure_poll_state(
        &self,
        workspace_id: WorkspaceId,
        key: &PollKey,
        first_poll_at_ms: i64,
    ) -> DomainResult<()> {
        let now = timestamps::now();
        let row = poll_states::Model {
            workflow_id: key.workflow_id.as_uuid(),
            node_id: key.node_id.clone(),
            workspace_id: workspace_id.as_uuid(),
            cursor: None,
            next_poll_at_ms: first_poll_at_ms,
            lease_owner: None,
            lease_expires_at_ms: 0,
            fencing_token: 0,
            failures: 0,
            last_error: None,
            last_polled_at: None,
            created_at: now,
            updated_at: now,
        };
        let txn = self.begin_unscoped_write().await?;
        // The primary key settles races between pollers: the first insert wins, and a
        // node that has a state keeps it (and its cursor).
        poll_states::Entity::insert(row.into_active_model())
            .on_conflict(
                OnConflict::columns([poll_states::Column::WorkflowId, poll_states::Column::NodeId])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(internal("start a poll state"))?;
        txn.commit()
            .await
            .map_err(internal("commit a new poll state"))
    }

    async fn claim_due_poll(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> DomainResult<Option<ClaimedPoll>> {
        let backend = self.db.get_database_backend();
        let txn = self.begin_unscoped_write().await?;
        let claimed = txn
            .query_one_raw(claim_statement(backend, owner, now_ms, lease_ms))
            .await
            .map_err(internal("claim a poll"))?;
        let Some(claimed) = claimed else {
            // End it now rather than on drop: on SQLite it holds the write lock.
            txn.rollback()
                .await
                .map_err(internal("end an empty poll claim"))?;
            return Ok(None);
        };
        let row = poll_states::Model::from_query_result(&claimed, "")
            .map_err(internal("read a claimed poll"))?;
        let (workflow, version) = workflows::Entity::find_by_id(row.workflow_id)
            .select_also(workflow_versions::Entity)
            .join(JoinType::InnerJoin, current_version())
            .one(&txn)
            .await
            .map_err(internal("read a polled workflow"))?
            .ok_or_else(|| corrupt_row("poll state without its workflow"))?;
        let version = version.ok_or_else(|| corrupt_row("workflow without its current version"))?;
        txn.commit()
            .await
            .map_err(internal("commit a poll claim"))?;
        Ok(Some(ClaimedPoll {
            lease: PollLease {
                key: key_of(&row),
                owner: owner.to_owned(),
                token: row.fencing_token,
            },
            state: state(row)?,
            target: target(workflow, version),
        }))
    }

    async fn finish_poll(
        &self,
        lease: &PollLease,
        outcome: PollOutcome,
        now: DateTime<Utc>,
    ) -> DomainResult<Option<Vec<Run>>> {
        let txn = self.begin_unscoped_write().await?;
        let Some(row) = leased_row(&txn, lease).await? else {
            txn.rollback()
                .await
                .map_err(internal("end a refused poll write"))?;
            return Ok(None);
        };
        let workspace_id = row.workspace_id;
        let failures = row.failures;
        let mut next = row.into_active_model();
        let runs = match outcome {
            PollOutcome::Polled {
                cursor,
                runs,
                next_poll_at_ms,
            } => {
                let mut queued = Vec::with_capacity(runs.len());
                for run in runs {
                    queued.push(insert_run(&txn, &self.quota_defaults, workspace_id, run).await?);
                }
                next.cursor = Set(Some(cursor));
                next.next_poll_at_ms = Set(next_poll_at_ms);
                next.failures = Set(0);
                next.last_error = Set(None);
                queued
            }
            PollOutcome::Failed {
                error,
                next_poll_at_ms,
            } => {
                next.failures = Set(failures.saturating_add(1));
                next.last_error = Set(Some(error));
                next.next_poll_at_ms = Set(next_poll_at_ms);
                Vec::new()
            }
        };
        let now = timestamps::stored(now);
        next.last_polled_at = Set(Some(now));
        next.updated_at = Set(now);
        next.lease_owner = Set(None);
        next.lease_expires_at_ms = Set(0);
        next.update(&*txn)
            .await
            .map_err(internal("record a poll"))?;
        txn.commit().await.map_err(internal("commit a poll"))?;
        Ok(Some(runs))
    }

    async fn forget_poll_state(&self, lease: &PollLease) -> DomainResult<()> {
        let txn = self.begin_unscoped_write().await?;
        if leased_row(&txn, lease).await?.is_some() {
            poll_states::Entity::delete_by_id((
                lease.key.workflow_id.as_uuid(),
                lease.key.node_id.clone(),
            ))
            .exec(&*txn)
            .await
            .map_err(internal("forget a poll state"))?;
        }
        txn.commit()
            .await
            .map_err(internal("commit forgetting a poll state"))
    }

    async fn poll_state(&self, key: &PollKey) -> DomainResult<Option<PollState>> {
        poll_states::Entity::find_by_id((key.workflow_id.as_uuid(), key.node_id.clone()))
            .one(&self.db)
            .await
            .map_err(internal("read a poll state"))?
            .map(state)
            .transpose()
    }
}

/// The row `lease` holds, locked; `None` when another claim has taken it since (or the
/// workflow is gone).
async fn leased_row(txn: &Txn, lease: &PollLease) -> DomainResult<Option<poll_states::Model>> {
    let row = poll_states::Entity::find()
        .filter(poll_states::Column::WorkflowId.eq(lease.key.workflow_id.as_uuid()))
        .filter(poll_states::Column::NodeId.eq(lease.key.node_id.as_str()))
        .lock_exclusive()
        .one(txn)
        .await
        .map_err(internal("lock a poll state"))?;
    Ok(row.filter(|row| {
        row.fencing_token == lease.token && row.lease_owner.as_deref() == Some(lease.owner.as_str())
    }))
}

fn key_of(row: &poll_states::Model) -> PollKey {
    PollKey {
        workflow_id: WorkflowId::from_uuid(row.workflow_id),
        node_id: row.node_id.clone(),
    }
}

fn state(row: poll_states::Model) -> DomainResult<PollState> {
    let failures =
        u32::try_from(row.failures).map_err(|_| corrupt_row("negative poll failure count"))?;
    Ok(PollState {
        workspace_id: WorkspaceId::from_uuid(row.workspace_id),
        key: key_of(&row),
        cursor: row.cursor,
        next_poll_at_ms: row.next_poll_at_ms,
        failures,
        last_error: row.last_error,
        last_polled_at: row.last_polled_at,
    })
}
