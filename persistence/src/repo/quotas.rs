//! `QuotaStore`, and the checks other repositories make inside the transactions that add
//! what a quota counts.
//!
//! Invariants:
//! - A counted quota (active workflows, connections, members, queued runs) is checked in
//!   the adding transaction, after the addition, under a per-workspace, per-quota lock
//!   (a transaction-scoped advisory lock on Postgres, or for queued runs the month's
//!   counter row; SQLite's writers already go one at a time), so two concurrent additions
//!   at `limit - 1` cannot both pass.
//! - A metered quota is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE used < limit
//!   RETURNING used` on its period's counter: no row back means refused, and the counter
//!   is only ever changed together with what it counts (same transaction).
//! - Nothing is counted when a quota is unlimited, except the metered ones, whose usage
//!   `Workspace.usage` reports either way.
//! - Overrides are instance-level: read and written as the connecting role, like
//!   rate-limit overrides; usage is read through a scope.

use aos_domain::access::WorkspaceScope;
use aos_domain::error::{DomainError, DomainResult};
use aos_domain::ids::WorkspaceId;
use aos_domain::quota::{
    Limit, Period, Quota, QuotaLimits, QuotaOverride, QuotaStore, QuotaUsage, Retention,
    STORED_UNLIMITED, Setting, exceeded,
};
use aos_domain::run::RunStatus;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use uuid::Uuid;

use super::{Retained, purge_by_retention};
use crate::entities::{runs, workspace_quotas};
use crate::error::{corrupt_row, internal, missing_or_conflict};
use crate::scoped::Intent;
use crate::store::SeaStore;
use crate::timestamps;
use crate::txn::Txn;

/// The limits that hold for `workspace` inside `txn`: `defaults` with its override over
/// them.
pub(crate) async fn limits_in(
    txn: &Txn,
    defaults: &QuotaLimits,
    workspace: Uuid,
) -> DomainResult<QuotaLimits> {
    let row = workspace_quotas::Entity::find_by_id(workspace)
        .one(txn)
        .await
        .map_err(internal("read a workspace's quotas"))?;
    Ok(match row {
        Some(row) => defaults.with(&override_of(&row)?),
        None => defaults.clone(),
    })
}

/// Refuses what `txn` has just added to a counted `quota` of `workspace` (a member, a
/// connection, an activation) when the workspace now holds more than its limit; the caller
/// must then roll back. Checking after the addition lets the addition's own errors (a
/// duplicate) come first, and makes re-adding what is already counted (activating an
/// active workflow) pass at the limit.
pub(crate) async fn refuse_past_limit(
    txn: &Txn,
    defaults: &QuotaLimits,
    workspace: Uuid,
    quota: Quota,
) -> DomainResult<()> {
    let Some(limit) = limits_in(txn, defaults, workspace).await?.get(quota) else {
        return Ok(());
    };
    // Taken before counting: a concurrent adder waits here until this transaction ends,
    // and its count then sees this one's addition.
    lock(txn, workspace, quota).await?;
    let held = count(txn, workspace, quota, Some(limit + 1)).await?;
    if held > limit {
        return Err(exceeded(quota, limit));
    }
    Ok(())
}

/// Counts a run queued by `txn` (already inserted) against the month's runs and the
/// queued runs, refusing it when either passes its limit: the caller's transaction must
/// then roll back. Last in the transaction, so the counter's row lock is held briefly.
pub(crate) async fn charge_queued_run(
    txn: &Txn,
    defaults: &QuotaLimits,
    workspace: Uuid,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let limits = limits_in(txn, defaults, workspace).await?;
    consume(
        txn,
        workspace,
        Quota::RunsPerMonth,
        limits.runs_per_month,
        now,
    )
    .await?;
    if let Some(limit) = limits.queued_runs {
        // Concurrent queuers of this workspace wait on the month's counter row above, so
        // this count sees every run they committed.
        let queued = count(txn, workspace, Quota::QueuedRuns, Some(limit + 1)).await?;
        if queued > limit {
            return Err(exceeded(Quota::QueuedRuns, limit));
        }
    }
    Ok(())
}

/// Counts one use of a metered `quota` in its current period, or refuses it.
async fn consume(
    txn: &Txn,
    workspace: Uuid,
    quota: Quota,
    limit: Limit,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let period = quota
        .period()
        .ok_or_else(|| DomainError::invalid(format!("{quota} is not a metered quota")))?;
    let ceiling = limit.map_or(i64::MAX, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
    let statement = Statement::from_sql_and_values(
        txn.get_database_backend(),
        "INSERT INTO usage_counters (workspace_id, metric, period, used) VALUES ($1, $2, $3, 1) \
         ON CONFLICT (workspace_id, metric, period) DO UPDATE SET used = usage_counters.used + 1 \
         WHERE usage_counters.used < $4 \
         RETURNING used",
        [
            workspace.into(),
            quota.name().into(),
            period.key(now).into(),
            ceiling.into(),
        ],
    );
    let counted = txn
        .query_one_raw(statement)
        .await
        .map_err(internal("count a metered use"))?;
    match (counted, limit) {
        (Some(_), _) => Ok(()),
        (None, Some(limit)) => Err(exceeded(quota, limit)),
        (None, None) => Err(corrupt_row("usage counter at its maximum")),
    }
}

/// Gives back one use of a metered `quota` in its current period.
async fn unconsume(
    txn: &Txn,
    workspace: Uuid,
    quota: Quota,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let Some(period) = quota.period() else {
        return Ok(());
    };
    let statement = Statement::from_sql_and_values(
        txn.get_database_backend(),
        "UPDATE usage_counters SET used = used - 1 \
         WHERE workspace_id = $1 AND metric = $2 AND period = $3 AND used > 0",
        [
            workspace.into(),
            quota.name().into(),
            period.key(now).into(),
        ],
    );
    txn.execute_raw(statement)
        .await
        .map_err(internal("give back a metered use"))?;
    Ok(())
}

/// Serializes the checks of `quota` in `workspace` until the transaction ends.
async fn lock(txn: &Txn, workspace: Uuid, quota: Quota) -> DomainResult<()> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1)",
        [lock_key(workspace, quota).into()],
    );
    txn.execute_raw(statement)
        .await
        .map_err(internal("lock a workspace's quota"))?;
    Ok(())
}

/// A stable 64-bit key per (workspace, quota). A collision only makes two unrelated
/// checks wait for each other, never admits anything.
fn lock_key(workspace: Uuid, quota: Quota) -> i64 {
    let bytes = workspace.as_bytes();
    let mut key = [0u8; 8];
    for (index, byte) in bytes.iter().enumerate() {
        key[index % 8] ^= byte;
    }
    i64::from_be_bytes(key) ^ (quota as i64).rotate_left(56)
}

/// How much of a counted `quota` `workspace` holds now; counting stops at `up_to`, which
/// is all a check needs (a workspace far over a lowered limit costs no more than one at it).
async fn count(txn: &Txn, workspace: Uuid, quota: Quota, up_to: Limit) -> DomainResult<u64> {
    let of_workspace = match quota {
        Quota::ActiveWorkflows => {
            "SELECT 1 FROM workflows WHERE workspace_id = $1 AND active = TRUE"
        }
        Quota::Connections => "SELECT 1 FROM connections WHERE workspace_id = $1",
        Quota::Members => "SELECT 1 FROM members WHERE workspace_id = $1",
        Quota::QueuedRuns => "SELECT 1 FROM runs WHERE workspace_id = $1 AND status = 'QUEUED'",
        Quota::RunsPerMonth | Quota::RetentionDays | Quota::AiGenerationsPerDay => {
            return Err(DomainError::invalid(format!(
                "{quota} is not a counted quota"
            )));
        }
    };
    let up_to = up_to.map_or(i64::MAX, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
    let statement = Statement::from_sql_and_values(
        txn.get_database_backend(),
        format!("SELECT COUNT(*) AS used FROM ({of_workspace} LIMIT $2) counted"),
        [workspace.into(), up_to.into()],
    );
    let row = txn
        .query_one_raw(statement)
        .await
        .map_err(internal("count a quota's usage"))?
        .ok_or_else(|| corrupt_row("a count without a row"))?;
    let used: i64 = row
        .try_get("", "used")
        .map_err(internal("read a quota's usage"))?;
    u64::try_from(used).map_err(|_| corrupt_row("negative count"))
}

async fn metered_used(
    txn: &Txn,
    workspace: Uuid,
    quota: Quota,
    now: DateTime<Utc>,
) -> DomainResult<u64> {
    let Some(period) = quota.period() else {
        return Ok(0);
    };
    let statement = Statement::from_sql_and_values(
        txn.get_database_backend(),
        "SELECT used FROM usage_counters WHERE workspace_id = $1 AND metric = $2 AND period = $3",
        [
            workspace.into(),
            quota.name().into(),
            period.key(now).into(),
        ],
    );
    let Some(row) = txn
        .query_one_raw(statement)
        .await
        .map_err(internal("read a metered usage"))?
    else {
        return Ok(0);
    };
    let used: i64 = row
        .try_get("", "used")
        .map_err(internal("read a metered usage"))?;
    u64::try_from(used).map_err(|_| corrupt_row("negative usage"))
}

/// Whole days since the workspace's oldest stored run was created (0 without runs). Run
/// ids are UUIDv7, so the oldest is the smallest id, one step down an index.
async fn oldest_run_age_days(txn: &Txn, workspace: Uuid, now: DateTime<Utc>) -> DomainResult<u64> {
    let statement = Statement::from_sql_and_values(
        txn.get_database_backend(),
        "SELECT id FROM runs WHERE workspace_id = $1 ORDER BY id LIMIT 1",
        [workspace.into()],
    );
    let Some(row) = txn
        .query_one_raw(statement)
        .await
        .map_err(internal("find the oldest run"))?
    else {
        return Ok(0);
    };
    let id: Uuid = row.try_get("", "id").map_err(internal("read a run id"))?;
    let Some((seconds, _)) = id.get_timestamp().map(|stamp| stamp.to_unix()) else {
        return Ok(0);
    };
    let age = now.timestamp() - i64::try_from(seconds).unwrap_or(i64::MAX);
    Ok(u64::try_from(age / 86_400).unwrap_or(0))
}

fn setting(column: Option<i64>) -> DomainResult<Option<Setting>> {
    column
        .map(|value| match u64::try_from(value) {
            Ok(STORED_UNLIMITED) => Ok(Setting::Unlimited),
            Ok(limit) if limit > 0 => Ok(Setting::Limited(limit)),
            _ => Err(corrupt_row("a non-positive quota")),
        })
        .transpose()
}

fn stored(setting: Option<Setting>) -> Option<i64> {
    setting.map(|setting| match setting {
        Setting::Limited(limit) => i64::try_from(limit).unwrap_or(i64::MAX),
        Setting::Unlimited => i64::MAX,
    })
}

fn override_of(row: &workspace_quotas::Model) -> DomainResult<QuotaOverride> {
    let columns = [
        (Quota::ActiveWorkflows, row.active_workflows),
        (Quota::RunsPerMonth, row.runs_per_month),
        (Quota::RetentionDays, row.retention_days),
        (Quota::Connections, row.connections),
        (Quota::Members, row.members),
        (Quota::AiGenerationsPerDay, row.ai_generations_per_day),
        (Quota::QueuedRuns, row.queued_runs),
    ];
    let mut limits = Vec::new();
    for (quota, column) in columns {
        if let Some(setting) = setting(column)? {
            limits.push((quota, setting));
        }
    }
    let positive = |value: i64| u32::try_from(value).ok().filter(|&value| value > 0);
    Ok(QuotaOverride {
        limits,
        running_runs: row.running_runs.and_then(positive),
        scheduling_weight: row.scheduling_weight.map(i64::from).and_then(positive),
    })
}

fn row_of(workspace: Uuid, settings: &QuotaOverride) -> workspace_quotas::ActiveModel {
    let of = |quota: Quota| {
        stored(
            settings
                .limits
                .iter()
                .find(|(set, _)| *set == quota)
                .map(|(_, setting)| *setting),
        )
    };
    workspace_quotas::ActiveModel {
        workspace_id: sea_orm::Set(workspace),
        active_workflows: sea_orm::Set(of(Quota::ActiveWorkflows)),
        runs_per_month: sea_orm::Set(of(Quota::RunsPerMonth)),
        retention_days: sea_orm::Set(of(Quota::RetentionDays)),
        connections: sea_orm::Set(of(Quota::Connections)),
        members: sea_orm::Set(of(Quota::Members)),
        ai_generations_per_day: sea_orm::Set(of(Quota::AiGenerationsPerDay)),
        queued_runs: sea_orm::Set(of(Quota::QueuedRuns)),
        running_runs: sea_orm::Set(settings.running_runs.map(i64::from)),
        scheduling_weight: sea_orm::Set(
            settings
                .scheduling_weight
                .map(|weight| i32::try_from(weight).unwrap_or(i32::MAX)),
        ),
        updated_at: sea_orm::Set(timestamps::now()),
    }
}

/// The smallest UUIDv7 of a run created at `at` or later: run ids are time-ordered, so
/// "created before `at`" is "id below this", a walk along the primary key.
fn id_floor(at: DateTime<Utc>) -> Uuid {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6] = 0x70;
    bytes[8] = 0x80;
    Uuid::from_bytes(bytes)
}

/// Deletes up to `limit` of the oldest finished runs matching `expired` (their steps and
/// events go with them through cascading foreign keys), in one short transaction.
async fn delete_oldest_runs(store: &SeaStore, expired: Condition, limit: u64) -> DomainResult<u64> {
    let finished = [
        RunStatus::Succeeded.as_str(),
        RunStatus::Failed.as_str(),
        RunStatus::Cancelled.as_str(),
    ];
    let txn = store.begin_unscoped_write().await?;
    let ids: Vec<Uuid> = runs::Entity::find()
        .select_only()
        .column(runs::Column::Id)
        .filter(expired.add(runs::Column::Status.is_in(finished)))
        .order_by_asc(runs::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(&txn)
        .await
        .map_err(internal("find expired runs"))?;
    if ids.is_empty() {
        txn.rollback()
            .await
            .map_err(internal("end an empty retention batch"))?;
        return Ok(0);
    }
    let result = runs::Entity::delete_many()
        .filter(runs::Column::Id.is_in(ids))
        .exec(&txn)
        .await
        .map_err(internal("delete expired runs"))?;
    commit(txn, "commit a run retention batch").await?;
    Ok(result.rows_affected)
}

async fn commit(txn: Txn, doing: &'static str) -> DomainResult<()> {
    txn.commit().await.map_err(internal(doing))
}

#[async_trait]
impl QuotaStore for SeaStore {
    async fn quota_limits(&self, workspace_id: WorkspaceId) -> DomainResult<QuotaLimits> {
        let row = workspace_quotas::Entity::find_by_id(workspace_id.as_uuid())
            .one(&self.db)
            .await
            .map_err(internal("read a workspace's quotas"))?;
        Ok(match row {
            Some(row) => self.quota_defaults.with(&override_of(&row)?),
            None => (*self.quota_defaults).clone(),
        })
    }

    async fn quota_usage(
        &self,
        scope: &WorkspaceScope,
        now: DateTime<Utc>,
    ) -> DomainResult<Vec<QuotaUsage>> {
        let workspace = scope.workspace_id().as_uuid();
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        let limits = limits_in(&txn, &self.quota_defaults, workspace).await?;
        let mut usage = Vec::with_capacity(Quota::ALL.len());
        for quota in Quota::ALL {
            let used = match quota {
                Quota::RunsPerMonth | Quota::AiGenerationsPerDay => {
                    metered_used(&txn, workspace, quota, now).await?
                }
                Quota::RetentionDays => oldest_run_age_days(&txn, workspace, now).await?,
                _ => count(&txn, workspace, quota, None).await?,
            };
            usage.push(QuotaUsage {
                quota,
                used,
                limit: limits.get(quota),
                resets_at: quota.period().map(|period| period.resets_at(now)),
            });
        }
        commit(txn, "end a usage read").await?;
        Ok(usage)
    }

    async fn consume_quota(
        &self,
        scope: &WorkspaceScope,
        quota: Quota,
        now: DateTime<Utc>,
    ) -> DomainResult<()> {
        let workspace = scope.workspace_id().as_uuid();
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        let limit = limits_in(&txn, &self.quota_defaults, workspace)
            .await?
            .get(quota);
        consume(&txn, workspace, quota, limit, now).await?;
        commit(txn, "commit a metered use").await
    }

    async fn admit_run_now(
        &self,
        workspace_id: WorkspaceId,
        now: DateTime<Utc>,
    ) -> DomainResult<()> {
        let workspace = workspace_id.as_uuid();
        let txn = self.begin_unscoped_write().await?;
        let limit = limits_in(&txn, &self.quota_defaults, workspace)
            .await?
            .runs_per_month;
        consume(&txn, workspace, Quota::RunsPerMonth, limit, now).await?;
        commit(txn, "commit a run's admission").await
    }

    async fn refund_run_now(
        &self,
        workspace_id: WorkspaceId,
        now: DateTime<Utc>,
    ) -> DomainResult<()> {
        let txn = self.begin_unscoped_write().await?;
        unconsume(&txn, workspace_id.as_uuid(), Quota::RunsPerMonth, now).await?;
        commit(txn, "commit a run's refund").await
    }

    async fn count_runs_now(
        &self,
        counts: &[(WorkspaceId, u64)],
        now: DateTime<Utc>,
    ) -> DomainResult<()> {
        let period = Period::Month.key(now);
        let txn = self.begin_unscoped_write().await?;
        for (workspace_id, count) in counts {
            let statement = Statement::from_sql_and_values(
                txn.get_database_backend(),
                // A workspace deleted meanwhile is skipped: its counts went with it.
                "INSERT INTO usage_counters (workspace_id, metric, period, used) \
                 SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM workspaces WHERE id = $1) \
                 ON CONFLICT (workspace_id, metric, period) DO UPDATE SET used = usage_counters.used + $4",
                [
                    workspace_id.as_uuid().into(),
                    Quota::RunsPerMonth.name().into(),
                    period.clone().into(),
                    i64::try_from(*count).unwrap_or(i64::MAX).into(),
                ],
            );
            txn.execute_raw(statement)
                .await
                .map_err(internal("add to the month's run counts"))?;
        }
        commit(txn, "commit the month's run counts").await
    }

    async fn quota_override(&self, workspace_id: WorkspaceId) -> DomainResult<QuotaOverride> {
        let row = workspace_quotas::Entity::find_by_id(workspace_id.as_uuid())
            .one(&self.db)
            .await
            .map_err(internal("read a quota override"))?;
        row.as_ref()
            .map(override_of)
            .transpose()
            .map(Option::unwrap_or_default)
    }

    async fn set_quota_override(
        &self,
        workspace_id: WorkspaceId,
        settings: QuotaOverride,
    ) -> DomainResult<QuotaOverride> {
        let workspace = workspace_id.as_uuid();
        let txn = self.begin_unscoped_write().await?;
        let old = workspace_quotas::Entity::find_by_id(workspace)
            .one(&txn)
            .await
            .map_err(internal("read a quota override"))?
            .as_ref()
            .map(override_of)
            .transpose()?
            .unwrap_or_default();
        let merged = old.merged(settings);
        workspace_quotas::Entity::insert(row_of(workspace, &merged))
            .on_conflict(
                OnConflict::column(workspace_quotas::Column::WorkspaceId)
                    .update_columns([
                        workspace_quotas::Column::ActiveWorkflows,
                        workspace_quotas::Column::RunsPerMonth,
                        workspace_quotas::Column::RetentionDays,
                        workspace_quotas::Column::Connections,
                        workspace_quotas::Column::Members,
                        workspace_quotas::Column::AiGenerationsPerDay,
                        workspace_quotas::Column::QueuedRuns,
                        workspace_quotas::Column::RunningRuns,
                        workspace_quotas::Column::SchedulingWeight,
                        workspace_quotas::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(missing_or_conflict(
                "set a quota override",
                "workspace",
                "the override changed meanwhile",
            ))?;
        commit(txn, "commit a quota override").await?;
        Ok(merged)
    }

    async fn clear_quota_override(&self, workspace_id: WorkspaceId) -> DomainResult<bool> {
        let deleted = workspace_quotas::Entity::delete_by_id(workspace_id.as_uuid())
            .exec(&self.db)
            .await
            .map_err(internal("clear a quota override"))?;
        Ok(deleted.rows_affected > 0)
    }

    async fn purge_expired_runs(
        &self,
        retention: &Retention,
        now: DateTime<Utc>,
        batch: u64,
    ) -> DomainResult<u64> {
        purge_by_retention(retention, now, batch, |which, cutoff, limit| {
            let workspaces = match which {
                Retained::Only(workspace) => runs::Column::WorkspaceId.eq(workspace),
                Retained::AllBut(others) => runs::Column::WorkspaceId.is_not_in(others),
            };
            let expired = Condition::all()
                .add(workspaces)
                .add(runs::Column::Id.lt(id_floor(cutoff)));
            delete_oldest_runs(self, expired, limit)
        })
        .await
    }

    async fn quota_overrides(&self) -> DomainResult<Vec<(WorkspaceId, QuotaOverride)>> {
        let rows = workspace_quotas::Entity::find()
            .order_by_asc(workspace_quotas::Column::WorkspaceId)
            .all(&self.db)
            .await
            .map_err(internal("list quota overrides"))?;
        rows.iter()
            .map(|row| Ok((WorkspaceId::from_uuid(row.workspace_id), override_of(row)?)))
            .collect()
    }
}
