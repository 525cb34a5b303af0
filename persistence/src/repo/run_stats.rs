//! `RunStatsStore` for `SeaStore`: reads of the daily aggregates that the triggers of
//! migration `m20261130_000010_run_stats` keep as runs end (`run_stats_daily`,
//! `run_stats_durations`), plus an indexed count of the runs queued or running now.
//!
//! Invariants: every query filters by the scope's workspace, inside
//! `SeaStore::begin_scoped` (row-level security on Postgres). Nothing here writes an
//! aggregate: only the triggers do, so no code path that ends a run can skip them. A read
//! touches at most workflows × days × (statuses + duration buckets) aggregate rows,
//! however many runs there were, through the primary keys (a workflow's) or the
//! `(workspace_id, day)` indexes (a workspace's).
//!
//! Raw SQL, not entities: the aggregates are read summed over workflows, never as rows.
//!
//! Two more methods, which are no ports and which the application never calls, serve the
//! tests and `aos-bench stats`, which has no SQL of its own:
//! [`SeaStore::run_stats_by_scan`], the same statistics computed from the runs themselves
//! (the reference the aggregates are checked and measured against), and
//! [`SeaStore::insert_synthetic_runs`], bulk runs for the benchmark.

use std::ops::Range;

use aos_domain::access::WorkspaceScope;
use aos_domain::error::DomainResult;
use aos_domain::ids::{WorkflowId, WorkspaceId};
use aos_domain::run::RunStatus;
use aos_domain::run_stats::{
    DailyBucket, DailyOutcomes, DurationBucket, FinishedRun, LiveRuns, RunStats, RunStatsStore,
    StatsWindow,
};
use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};

use crate::error::{corrupt_row, internal};
use crate::scoped::Intent;
use crate::store::SeaStore;
use crate::txn::Txn;

/// `NaiveDate::num_days_from_ce` of 1970-01-01: the aggregates' days count from there.
const EPOCH_FROM_CE: i32 = 719_163;

const TERMINAL: &str = "('SUCCEEDED', 'FAILED', 'CANCELLED')";

/// Exactly the predicate of the partial index `idx_runs_live_status`: SQLite uses a partial
/// index only for a query that repeats its condition word for word.
const LIVE: &str = "status IN ('QUEUED', 'RUNNING')";

/// What a read covers: a workspace, or one workflow of it, over a window's days.
struct Filter {
    workspace_id: uuid::Uuid,
    workflow_id: Option<uuid::Uuid>,
    first_day: i32,
    last_day: i32,
}

impl Filter {
    fn new(scope: &WorkspaceScope, workflow: Option<WorkflowId>, window: &StatsWindow) -> Self {
        Self {
            workspace_id: scope.workspace_id().as_uuid(),
            workflow_id: workflow.map(|id| id.as_uuid()),
            first_day: epoch_day(window.first_day()),
            last_day: epoch_day(window.last_day()),
        }
    }

    /// `workspace_id = $1 AND day BETWEEN $2 AND $3 [AND workflow_id = $4]` and the
    /// values to bind.
    fn days(&self) -> (String, Vec<Value>) {
        let mut values = vec![
            self.workspace_id.into(),
            self.first_day.into(),
            self.last_day.into(),
        ];
        let mut condition = String::from("workspace_id = $1 AND day BETWEEN $2 AND $3");
        if let Some(workflow_id) = self.workflow_id {
            condition.push_str(" AND workflow_id = $4");
            values.push(workflow_id.into());
        }
        (condition, values)
    }
}

fn epoch_day(day: NaiveDate) -> i32 {
    day.num_days_from_ce() - EPOCH_FROM_CE
}

fn date_of(day: i32) -> DomainResult<NaiveDate> {
    day.checked_add(EPOCH_FROM_CE)
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .ok_or_else(|| corrupt_row("run statistics of a day outside the calendar"))
}

fn count(row: &QueryResult, column: &str) -> DomainResult<u64> {
    let value: i64 = row
        .try_get("", column)
        .map_err(internal("read a run statistic"))?;
    u64::try_from(value).map_err(|_| corrupt_row("a negative run statistic"))
}

fn optional_count(row: &QueryResult, column: &str) -> DomainResult<Option<u64>> {
    let value: Option<i64> = row
        .try_get("", column)
        .map_err(internal("read a run statistic"))?;
    value
        .map(|value| u64::try_from(value).map_err(|_| corrupt_row("a negative run duration")))
        .transpose()
}

fn status(row: &QueryResult) -> DomainResult<RunStatus> {
    let name: String = row
        .try_get("", "status")
        .map_err(internal("read a run status"))?;
    RunStatus::parse(&name).ok_or_else(|| corrupt_row("an unknown run status"))
}

fn day(row: &QueryResult) -> DomainResult<NaiveDate> {
    let day: i32 = row
        .try_get("", "day")
        .map_err(internal("read a statistics day"))?;
    date_of(day)
}

async fn daily_outcomes(txn: &Txn, filter: &Filter) -> DomainResult<Vec<DailyOutcomes>> {
    let (condition, values) = filter.days();
    // SUM is NUMERIC on Postgres: cast back to the column's type.
    let sql = format!(
        "SELECT day, status, CAST(SUM(run_count) AS BIGINT) AS runs, \
             CAST(SUM(timed_count) AS BIGINT) AS timed, \
             CAST(SUM(duration_ms_sum) AS BIGINT) AS duration_ms_sum, \
             MIN(min_duration_ms) AS min_ms, MAX(max_duration_ms) AS max_ms \
         FROM run_stats_daily WHERE {condition} GROUP BY day, status"
    );
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            txn.get_database_backend(),
            sql,
            values,
        ))
        .await
        .map_err(internal("read daily run statistics"))?;
    rows.iter()
        .map(|row| {
            Ok(DailyOutcomes {
                day: day(row)?,
                status: status(row)?,
                runs: count(row, "runs")?,
                timed: count(row, "timed")?,
                duration_ms_sum: count(row, "duration_ms_sum")?,
                min_ms: optional_count(row, "min_ms")?,
                max_ms: optional_count(row, "max_ms")?,
            })
        })
        .collect()
}

async fn daily_buckets(txn: &Txn, filter: &Filter) -> DomainResult<Vec<DailyBucket>> {
    let (condition, values) = filter.days();
    let sql = format!(
        "SELECT day, lower_ms, upper_ms, CAST(SUM(run_count) AS BIGINT) AS runs \
         FROM run_stats_durations WHERE {condition} GROUP BY day, lower_ms, upper_ms"
    );
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            txn.get_database_backend(),
            sql,
            values,
        ))
        .await
        .map_err(internal("read run durations"))?;
    rows.iter()
        .map(|row| {
            Ok(DailyBucket {
                day: day(row)?,
                bucket: DurationBucket {
                    lower_ms: count(row, "lower_ms")?,
                    upper_ms: optional_count(row, "upper_ms")?,
                },
                runs: count(row, "runs")?,
            })
        })
        .collect()
}

/// Runs queued and running now, counted in the small partial index of live runs.
async fn live_runs(txn: &Txn, filter: &Filter) -> DomainResult<LiveRuns> {
    let mut values: Vec<Value> = vec![filter.workspace_id.into()];
    let mut condition = String::from("workspace_id = $1");
    if let Some(workflow_id) = filter.workflow_id {
        condition.push_str(" AND workflow_id = $2");
        values.push(workflow_id.into());
    }
    let sql = format!(
        "SELECT status, COUNT(*) AS runs FROM runs WHERE {condition} AND {LIVE} GROUP BY status"
    );
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            txn.get_database_backend(),
            sql,
            values,
        ))
        .await
        .map_err(internal("count live runs"))?;
    let mut live = LiveRuns::default();
    for row in &rows {
        let runs = count(row, "runs")?;
        match status(row)? {
            RunStatus::Queued => live.queued = runs,
            RunStatus::Running => live.running = runs,
            _ => return Err(corrupt_row("a finished run counted as live")),
        }
    }
    Ok(live)
}

#[async_trait]
impl RunStatsStore for SeaStore {
    async fn run_stats(
        &self,
        scope: &WorkspaceScope,
        workflow: Option<WorkflowId>,
        window: &StatsWindow,
    ) -> DomainResult<RunStats> {
        let filter = Filter::new(scope, workflow, window);
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        let outcomes = daily_outcomes(&txn, &filter).await?;
        let buckets = daily_buckets(&txn, &filter).await?;
        let live = live_runs(&txn, &filter).await?;
        txn.commit()
            .await
            .map_err(internal("end a run statistics read"))?;
        RunStats::from_aggregates(*window, live, &outcomes, &buckets)
    }
}

/// The UTC day (since 1970-01-01) a run finished on, as the migration's triggers compute
/// it.
fn day_of(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => {
            "((COALESCE(finished_at, created_at) AT TIME ZONE 'UTC')::date - DATE '1970-01-01')"
        }
        _ => "CAST(julianday(COALESCE(finished_at, created_at)) - 2440587.5 AS INTEGER)",
    }
}

/// A run's duration in whole milliseconds, as the migration's triggers compute it.
fn duration_of(backend: DbBackend) -> String {
    let elapsed = match backend {
        DbBackend::Postgres => {
            "ROUND(EXTRACT(EPOCH FROM (finished_at - started_at)) * 1000)::bigint"
        }
        _ => {
            "CAST(ROUND((julianday(finished_at) - julianday(started_at)) * 86400000.0) AS INTEGER)"
        }
    };
    format!(
        "(CASE WHEN started_at IS NULL OR finished_at IS NULL THEN NULL \
         WHEN {elapsed} < 0 THEN 0 ELSE {elapsed} END)"
    )
}

/// The timestamp `ms` (epoch milliseconds) as each backend stores it: on SQLite the RFC
/// 3339 text sea-orm writes.
fn timestamp(backend: DbBackend, ms: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("to_timestamp(({ms}) / 1000.0)"),
        _ => format!("strftime('%Y-%m-%dT%H:%M:%f+00:00', ({ms}) / 1000.0, 'unixepoch')"),
    }
}

/// Bulk synthetic runs (see [`SeaStore::insert_synthetic_runs`]): `$1..$2` the sequence
/// numbers, `$3` the newest time (epoch ms), `$4` the days they spread over, then each
/// workflow's workspace, id and version.
fn synthetic_runs_sql(backend: DbBackend, workflows: usize, finished: bool) -> String {
    let sequence = match backend {
        DbBackend::Postgres => "seq(i) AS (SELECT generate_series($1::bigint, $2::bigint - 1))",
        _ => "seq(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < $2)",
    };
    let (id, input) = match backend {
        DbBackend::Postgres => ("gen_random_uuid()", "'{}'::jsonb"),
        _ => ("randomblob(16)", "'{}'"),
    };
    let listed: Vec<String> = (0..workflows)
        .map(|n| format!("({n}, ${}, ${}, ${})", 5 + 3 * n, 6 + 3 * n, 7 + 3 * n))
        .collect();
    let listed = listed.join(", ");
    // A multiplicative hash of the sequence number spreads times, statuses and durations
    // evenly without a random function both backends share. The day is its own hash with
    // a prime step, so every day of the spread gets as many runs.
    let mixed = "SELECT i, (i * 2654435761) % 4294967296 AS h, \
                 ((i * 104729) % $4) * 86400000 AS day_offset FROM seq";
    let ts = |ms: &str| timestamp(backend, ms);
    let (status, available, created, started, ended) = if finished {
        (
            "CASE WHEN t.s < 85 THEN 'SUCCEEDED' WHEN t.s < 97 THEN 'FAILED' \
             ELSE 'CANCELLED' END"
                .to_owned(),
            "NULL".to_owned(),
            ts("t.finished_ms - t.duration_ms - t.h % 1000"),
            format!(
                "CASE WHEN t.s >= 99 THEN NULL ELSE {} END",
                ts("t.finished_ms - t.duration_ms")
            ),
            ts("t.finished_ms"),
        )
    } else {
        (
            "CASE WHEN t.i % 2 = 0 THEN 'QUEUED' ELSE 'RUNNING' END".to_owned(),
            "$3 - t.h % 3600000".to_owned(),
            ts("$3 - t.h % 3600000"),
            format!(
                "CASE WHEN t.i % 2 = 0 THEN NULL ELSE {} END",
                ts("$3 - t.h % 3600000")
            ),
            "NULL".to_owned(),
        )
    };
    format!(
        "WITH RECURSIVE {sequence}, \
         w(n, workspace_id, workflow_id, version) AS (VALUES {listed}), \
         t AS (SELECT r.i, r.h, r.s, \
                 $3 - r.day_offset - r.h % 86400000 AS finished_ms, \
                 ((r.h / 1000) % 3000) * ((r.h / 1000) % 3000) / 100 + r.h % 50 AS duration_ms \
             FROM (SELECT m.*, (m.h / 128) % 100 AS s FROM ({mixed}) AS m) AS r) \
         INSERT INTO runs (id, workspace_id, workflow_id, workflow_version, status, \
             trigger_kind, input, available_at_ms, created_at, started_at, finished_at) \
         SELECT {id}, w.workspace_id, w.workflow_id, w.version, {status}, 'MANUAL', {input}, \
             {available}, {created}, {started}, {ended} \
         FROM t JOIN w ON w.n = t.i % {workflows}"
    )
}

impl SeaStore {
    /// The statistics of [`RunStatsStore::run_stats`] computed from the runs themselves,
    /// with exact percentiles: the reference the aggregates are tested against and the
    /// baseline `aos-bench stats` measures them against. Not a port: it reads every run
    /// that finished in the window, which is what the aggregates exist to avoid.
    pub async fn run_stats_by_scan(
        &self,
        scope: &WorkspaceScope,
        workflow: Option<WorkflowId>,
        window: &StatsWindow,
    ) -> DomainResult<RunStats> {
        let filter = Filter::new(scope, workflow, window);
        let backend = self.db.get_database_backend();
        let (condition, values) = filter.days();
        let sql = format!(
            "SELECT day, status, duration FROM (\
                 SELECT workspace_id, workflow_id, status, {} AS day, {} AS duration \
                 FROM runs WHERE workspace_id = $1 AND status IN {TERMINAL}) AS finished \
             WHERE {condition}",
            day_of(backend),
            duration_of(backend)
        );
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        let rows = txn
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .map_err(internal("scan finished runs"))?;
        let live = live_runs(&txn, &filter).await?;
        txn.commit()
            .await
            .map_err(internal("end a scan of finished runs"))?;
        let runs = rows
            .iter()
            .map(|row| {
                Ok(FinishedRun {
                    day: day(row)?,
                    status: status(row)?,
                    duration_ms: optional_count(row, "duration")?,
                })
            })
            .collect::<DomainResult<Vec<_>>>()?;
        RunStats::from_runs(*window, live, &runs)
    }

    /// Benchmark support, not a port: inserts one synthetic run per number of `sequence`,
    /// spread over the workflows (`(workspace, workflow, version)`, taken in turn), in one
    /// statement and one transaction, as the tables' owner.
    ///
    /// `finished`: runs that ended within `spread_days` days before `until`, spread evenly
    /// over the days (85 % SUCCEEDED, 12 % FAILED, 3 % CANCELLED, a third of those before
    /// they started) with durations from 0 to 90 s, skewed short. Otherwise runs queued or
    /// running since the last hour, in turn. The same sequence numbers give the same
    /// runs, but for their ids.
    pub async fn insert_synthetic_runs(
        &self,
        workflows: &[(WorkspaceId, WorkflowId, i32)],
        sequence: Range<u64>,
        until: DateTime<Utc>,
        spread_days: u32,
        finished: bool,
    ) -> DomainResult<()> {
        if workflows.is_empty() || sequence.is_empty() {
            return Ok(());
        }
        let number = |n: u64| {
            i64::try_from(n).map_err(|_| aos_domain::DomainError::invalid("too many runs"))
        };
        let mut values: Vec<Value> = vec![
            number(sequence.start)?.into(),
            number(sequence.end)?.into(),
            until.timestamp_millis().into(),
            i64::from(spread_days.max(1)).into(),
        ];
        for (workspace_id, workflow_id, version) in workflows {
            values.push(workspace_id.as_uuid().into());
            values.push(workflow_id.as_uuid().into());
            values.push((*version).into());
        }
        let backend = self.db.get_database_backend();
        let sql = synthetic_runs_sql(backend, workflows.len(), finished);
        let txn = self.begin_unscoped_write().await?;
        txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .map_err(internal("insert synthetic runs"))?;
        txn.commit()
            .await
            .map_err(internal("commit synthetic runs"))
    }
}
