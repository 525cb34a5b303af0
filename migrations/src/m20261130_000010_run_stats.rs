//! Pre-aggregated run statistics: `run_stats_daily` and `run_stats_durations`, kept by
//! triggers on `runs`, so statistics over any window read a few rows per workflow and day
//! instead of every run.
//!
//! - A run is counted once, when it becomes terminal (SUCCEEDED, FAILED or CANCELLED):
//!   by an `AFTER INSERT` trigger for a run stored already finished (a run executed in
//!   place) and an `AFTER UPDATE OF status` trigger for one that gets there later (a
//!   worker's journal, a cancellation). Triggers rather than the repositories, because a
//!   run ends through several code paths, and a path added later cannot forget one.
//! - The key is (workspace, workflow, UTC day of `finished_at`, status, shard): on Postgres
//!   a run's row is one of `SHARDS`, so concurrent run ends do not queue on one row lock;
//!   readers sum them. `day` is days
//!   since 1970-01-01, an integer that compares alike on both backends (like the `_ms`
//!   columns of `runs`). Each row holds a count, how many of those runs have a duration
//!   (`finished_at - started_at`, whole milliseconds; a run cancelled before it started
//!   has none), their sum, minimum and maximum.
//! - `run_stats_durations` is a histogram of the durations per (workspace, workflow, day),
//!   over every terminal status: one row per bucket of a fixed ladder (`BUCKETS`),
//!   holding its bounds, so a reader needs no copy of the ladder. Percentiles are
//!   estimated inside a bucket (see `aos_domain::run_stats`).
//! - Nothing fires on DELETE: retention that deletes runs, or a deleted workflow whose
//!   runs cascade away, leaves the history as it was. The aggregates go only with their
//!   workspace (foreign key, cascade); there is no key to `workflows`, so a workspace's
//!   usage keeps the runs of its deleted workflows.
//! - On Postgres the tables are under row-level security like every workspace-owned
//!   table. The trigger function runs as the writer (SECURITY INVOKER): as the tenant
//!   role in a scoped transaction (a cancellation), where the policies check that the
//!   aggregate rows are the run's own workspace's, and as the owner in the engine's
//!   unscoped writes. The tenant role needs INSERT and UPDATE for the upserts, but not
//!   DELETE, which it does not get.
//! - The triggers are created before the backfill of the runs that ended before this
//!   migration, in one transaction on both backends: on Postgres `CREATE TRIGGER` locks
//!   `runs` against writes until the commit, so a run that ends meanwhile waits for the
//!   commit and is then counted by the trigger: never twice, never not at all.
//!
//! Also a partial index of the runs queued or running, which statistics count as they are
//! now (an indexed count of the few live runs among many finished ones).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, integer, small_integer, text, uuid,
};
use sea_orm_migration::sea_orm::DbBackend;

use crate::tenancy::{TENANT_ROLE, protect_workspace_table, unprotect_workspace_table};

const DAILY: &str = "run_stats_daily";
const DURATIONS: &str = "run_stats_durations";
const FUNCTION: &str = "run_stats_count_finished_run";
const ON_INSERT: &str = "run_stats_on_insert";
const ON_FINISH: &str = "run_stats_on_finish";
const LIVE_INDEX: &str = "idx_runs_live_status";

/// Postgres only: how many rows share one (workflow, day, status) or (workflow, day,
/// bucket), picked by the run id's last (random) byte. Each run's end updates its row and
/// holds the row's lock until its transaction commits (an fsync), so with one row the
/// runs of a busy workflow would end one at a time; readers sum the shards. SQLite has one
/// writer anyway and always uses shard 0.
const SHARDS: u32 = 16;

/// Postgres only: every run that ends updates a row of each table, and a page kept half
/// empty lets the new row version stay on it (a HOT update), which writes no index entry
/// and is pruned with the page, without waiting for a vacuum.
const FILLFACTOR: u32 = 50;

/// The terminal statuses, as `aos_domain::run::RunStatus::as_str` writes them.
const TERMINAL: &str = "('SUCCEEDED', 'FAILED', 'CANCELLED')";

/// The lower bounds of the duration buckets, in milliseconds; a bucket ends where the next
/// begins, and the last is open. Every bucket is at most 1.5 times as high at its top as at
/// its bottom (1, 1.5, 2, 3, 4, 6, 8 per decade; whole milliseconds below 10), so a
/// percentile estimated inside its bucket is off by less than half its true value, and
/// exact below 4 ms. The last bucket starts at 10^8 ms (about 28 hours).
#[rustfmt::skip]
const BUCKETS: [i64; 57] = [
    0, 1, 2, 3, 4, 6, 8,
    10, 15, 20, 30, 40, 60, 80,
    100, 150, 200, 300, 400, 600, 800,
    1_000, 1_500, 2_000, 3_000, 4_000, 6_000, 8_000,
    10_000, 15_000, 20_000, 30_000, 40_000, 60_000, 80_000,
    100_000, 150_000, 200_000, 300_000, 400_000, 600_000, 800_000,
    1_000_000, 1_500_000, 2_000_000, 3_000_000, 4_000_000, 6_000_000, 8_000_000,
    10_000_000, 15_000_000, 20_000_000, 30_000_000, 40_000_000, 60_000_000, 80_000_000,
    100_000_000,
];

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// Tables, triggers and backfill succeed or fail together on SQLite too.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(daily()).await?;
        manager.create_table(durations()).await?;
        // A workspace's usage reads every workflow's rows of the window: by day first.
        for table in [DAILY, DURATIONS] {
            manager
                .create_index(
                    Index::create()
                        .name(format!("idx_{table}_workspace_day"))
                        .table(Alias::new(table))
                        .col(Stats::WorkspaceId)
                        .col(Stats::Day)
                        .to_owned(),
                )
                .await?;
        }
        let backend = manager.get_database_backend();
        let db = manager.get_connection();
        db.execute_unprepared(&format!(
            "CREATE INDEX {LIVE_INDEX} ON runs (workspace_id, workflow_id, status) \
             WHERE status IN ('QUEUED', 'RUNNING')"
        ))
        .await?;
        if backend == DbBackend::Postgres {
            for table in [DAILY, DURATIONS] {
                db.execute_unprepared(&format!(
                    "{}\nREVOKE DELETE ON {table} FROM {TENANT_ROLE};\n\
                     ALTER TABLE {table} SET (fillfactor = {FILLFACTOR});",
                    protect_workspace_table(table, "workspace_id")
                ))
                .await?;
            }
        }
        let (day, duration) = (
            day_of(backend, "finished_at", "created_at"),
            duration_of(backend, "started_at", "finished_at"),
        );
        match backend {
            DbBackend::Postgres => db.execute_unprepared(&postgres_triggers()).await?,
            _ => db.execute_unprepared(&sqlite_triggers()).await?,
        };
        db.execute_unprepared(&backfill(&day, &duration)).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let db = manager.get_connection();
        if backend == DbBackend::Postgres {
            db.execute_unprepared(&format!(
                "DROP TRIGGER IF EXISTS {ON_FINISH} ON runs;\n\
                 DROP TRIGGER IF EXISTS {ON_INSERT} ON runs;\n\
                 DROP FUNCTION IF EXISTS {FUNCTION}();\n\
                 {}\n{}",
                unprotect_workspace_table(DURATIONS),
                unprotect_workspace_table(DAILY)
            ))
            .await?;
        } else {
            db.execute_unprepared(&format!(
                "DROP TRIGGER IF EXISTS {ON_FINISH};\nDROP TRIGGER IF EXISTS {ON_INSERT};"
            ))
            .await?;
        }
        db.execute_unprepared(&format!("DROP INDEX IF EXISTS {LIVE_INDEX}"))
            .await?;
        for table in [DURATIONS, DAILY] {
            manager
                .drop_table(
                    Table::drop()
                        .table(Alias::new(table))
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

fn daily() -> TableCreateStatement {
    Table::create()
        .table(Alias::new(DAILY))
        .col(uuid(Stats::WorkspaceId))
        .col(uuid(Stats::WorkflowId))
        .col(integer(Stats::Day))
        .col(text(Stats::Status))
        .col(big_integer(Stats::RunCount))
        .col(big_integer(Stats::TimedCount))
        .col(big_integer(Stats::DurationMsSum))
        .col(big_integer_null(Stats::MinDurationMs))
        .col(big_integer_null(Stats::MaxDurationMs))
        .col(small_integer(Stats::Shard).default(0))
        .primary_key(
            Index::create()
                .col(Stats::WorkspaceId)
                .col(Stats::WorkflowId)
                .col(Stats::Day)
                .col(Stats::Status)
                .col(Stats::Shard),
        )
        .foreign_key(&mut workspace_key(DAILY))
        .to_owned()
}

fn durations() -> TableCreateStatement {
    Table::create()
        .table(Alias::new(DURATIONS))
        .col(uuid(Stats::WorkspaceId))
        .col(uuid(Stats::WorkflowId))
        .col(integer(Stats::Day))
        .col(big_integer(Stats::LowerMs))
        // NULL for the last, open bucket.
        .col(big_integer_null(Stats::UpperMs))
        .col(big_integer(Stats::RunCount))
        .col(small_integer(Stats::Shard).default(0))
        .primary_key(
            Index::create()
                .col(Stats::WorkspaceId)
                .col(Stats::WorkflowId)
                .col(Stats::Day)
                .col(Stats::LowerMs)
                .col(Stats::Shard),
        )
        .foreign_key(&mut workspace_key(DURATIONS))
        .to_owned()
}

fn workspace_key(table: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_workspace"))
        .from(Alias::new(table), Stats::WorkspaceId)
        .to(Workspaces::Table, Workspaces::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

/// The UTC day (days since 1970-01-01) a run finished on: of `finished`, or of `created`
/// for a terminal run without an end time, which no code path writes, so that such a run
/// is still counted somewhere.
fn day_of(backend: DbBackend, finished: &str, created: &str) -> String {
    match backend {
        DbBackend::Postgres => format!(
            "((COALESCE({finished}, {created}) AT TIME ZONE 'UTC')::date - DATE '1970-01-01')"
        ),
        // sea-orm stores timestamps as RFC 3339 text, which julianday() reads, in UTC.
        _ => format!("CAST(julianday(COALESCE({finished}, {created})) - 2440587.5 AS INTEGER)"),
    }
}

/// A run's duration in whole milliseconds, NULL unless it has both ends. Never negative:
/// the two ends may be written by workers whose clocks disagree.
fn duration_of(backend: DbBackend, started: &str, finished: &str) -> String {
    let elapsed = match backend {
        DbBackend::Postgres => {
            format!("ROUND(EXTRACT(EPOCH FROM ({finished} - {started})) * 1000)::bigint")
        }
        _ => format!(
            "CAST(ROUND((julianday({finished}) - julianday({started})) * 86400000.0) AS INTEGER)"
        ),
    };
    format!(
        "(CASE WHEN {started} IS NULL OR {finished} IS NULL THEN NULL \
         WHEN {elapsed} < 0 THEN 0 ELSE {elapsed} END)"
    )
}

/// The bucket of `duration`: its lower bound, or with `upper` its upper bound (NULL for
/// the last). A CASE, so SQLite needs no math functions.
fn bucket_of(duration: &str, upper: bool) -> String {
    let mut case = String::from("(CASE");
    for pair in BUCKETS.windows(2) {
        let (lower, next) = (pair[0], pair[1]);
        let bound = if upper { next } else { lower };
        case.push_str(&format!(" WHEN {duration} < {next} THEN {bound}"));
    }
    let last = if upper {
        "NULL".to_owned()
    } else {
        BUCKETS[BUCKETS.len() - 1].to_string()
    };
    case.push_str(&format!(" ELSE {last} END)"));
    case
}

/// The upserts that count one finished run, for SQLite's trigger bodies.
fn sqlite_count_run() -> String {
    let day = day_of(DbBackend::Sqlite, "NEW.finished_at", "NEW.created_at");
    let duration = duration_of(DbBackend::Sqlite, "NEW.started_at", "NEW.finished_at");
    let (lower, upper) = (
        bucket_of("f.duration", false),
        bucket_of("f.duration", true),
    );
    // `WHERE` after `FROM` is required: it tells SQLite's parser the upsert's ON CONFLICT
    // is not a join constraint.
    format!(
        "INSERT INTO {DAILY} (workspace_id, workflow_id, day, status, run_count, timed_count, \
             duration_ms_sum, min_duration_ms, max_duration_ms) \
         SELECT NEW.workspace_id, NEW.workflow_id, f.day, NEW.status, 1, \
             f.duration IS NOT NULL, COALESCE(f.duration, 0), f.duration, f.duration \
         FROM (SELECT {day} AS day, {duration} AS duration) AS f WHERE true \
         ON CONFLICT (workspace_id, workflow_id, day, status, shard) DO UPDATE SET \
             run_count = run_count + 1, \
             timed_count = timed_count + excluded.timed_count, \
             duration_ms_sum = duration_ms_sum + excluded.duration_ms_sum, \
             min_duration_ms = COALESCE(MIN(min_duration_ms, excluded.min_duration_ms), \
                 min_duration_ms, excluded.min_duration_ms), \
             max_duration_ms = COALESCE(MAX(max_duration_ms, excluded.max_duration_ms), \
                 max_duration_ms, excluded.max_duration_ms);\n\
         INSERT INTO {DURATIONS} (workspace_id, workflow_id, day, lower_ms, upper_ms, run_count) \
         SELECT NEW.workspace_id, NEW.workflow_id, f.day, {lower}, {upper}, 1 \
         FROM (SELECT {day} AS day, {duration} AS duration) AS f \
         WHERE f.duration IS NOT NULL \
         ON CONFLICT (workspace_id, workflow_id, day, lower_ms, shard) DO UPDATE SET \
             run_count = run_count + 1;"
    )
}

fn sqlite_triggers() -> String {
    let count = sqlite_count_run();
    format!(
        "CREATE TRIGGER {ON_INSERT} AFTER INSERT ON runs FOR EACH ROW \
         WHEN NEW.status IN {TERMINAL} \
         BEGIN\n{count}\nEND;\n\
         CREATE TRIGGER {ON_FINISH} AFTER UPDATE OF status ON runs FOR EACH ROW \
         WHEN NEW.status IN {TERMINAL} AND OLD.status NOT IN {TERMINAL} \
         BEGIN\n{count}\nEND;"
    )
}

/// One PL/pgSQL function for both triggers. Row triggers with a `WHEN` condition cost a
/// heartbeat or a claim (an update of a run that does not end it) nothing but the test.
fn postgres_triggers() -> String {
    let day = day_of(DbBackend::Postgres, "NEW.finished_at", "NEW.created_at");
    let duration = duration_of(DbBackend::Postgres, "NEW.started_at", "NEW.finished_at");
    let (lower, upper) = (
        bucket_of("v_duration", false),
        bucket_of("v_duration", true),
    );
    format!(
        "CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$\n\
         DECLARE\n\
             v_day integer := {day};\n\
             v_duration bigint := {duration};\n\
             v_shard smallint := get_byte(uuid_send(NEW.id), 15) % {SHARDS};\n\
         BEGIN\n\
             INSERT INTO {DAILY} AS s (workspace_id, workflow_id, day, status, run_count, \
                 timed_count, duration_ms_sum, min_duration_ms, max_duration_ms, shard)\n\
             VALUES (NEW.workspace_id, NEW.workflow_id, v_day, NEW.status, 1, \
                 CASE WHEN v_duration IS NULL THEN 0 ELSE 1 END, COALESCE(v_duration, 0), \
                 v_duration, v_duration, v_shard)\n\
             ON CONFLICT (workspace_id, workflow_id, day, status, shard) DO UPDATE SET\n\
                 run_count = s.run_count + 1,\n\
                 timed_count = s.timed_count + EXCLUDED.timed_count,\n\
                 duration_ms_sum = s.duration_ms_sum + EXCLUDED.duration_ms_sum,\n\
                 min_duration_ms = LEAST(s.min_duration_ms, EXCLUDED.min_duration_ms),\n\
                 max_duration_ms = GREATEST(s.max_duration_ms, EXCLUDED.max_duration_ms);\n\
             IF v_duration IS NOT NULL THEN\n\
                 INSERT INTO {DURATIONS} AS s (workspace_id, workflow_id, day, lower_ms, \
                     upper_ms, run_count, shard)\n\
                 VALUES (NEW.workspace_id, NEW.workflow_id, v_day, {lower}, {upper}, 1, v_shard)\n\
                 ON CONFLICT (workspace_id, workflow_id, day, lower_ms, shard) DO UPDATE SET\n\
                     run_count = s.run_count + 1;\n\
             END IF;\n\
             RETURN NULL;\n\
         END\n\
         $$;\n\
         CREATE TRIGGER {ON_INSERT} AFTER INSERT ON runs FOR EACH ROW \
         WHEN (NEW.status IN {TERMINAL}) EXECUTE FUNCTION {FUNCTION}();\n\
         CREATE TRIGGER {ON_FINISH} AFTER UPDATE OF status ON runs FOR EACH ROW \
         WHEN (NEW.status IN {TERMINAL} AND OLD.status NOT IN {TERMINAL}) \
         EXECUTE FUNCTION {FUNCTION}();"
    )
}

/// The aggregates of the runs that ended before the triggers existed: the same
/// expressions, grouped. The tables are new, so there is nothing to merge with.
fn backfill(day: &str, duration: &str) -> String {
    let (lower, upper) = (
        bucket_of("r.duration", false),
        bucket_of("r.duration", true),
    );
    let finished = format!(
        "SELECT workspace_id, workflow_id, status, {day} AS day, {duration} AS duration \
         FROM runs WHERE status IN {TERMINAL}"
    );
    format!(
        "INSERT INTO {DAILY} (workspace_id, workflow_id, day, status, run_count, timed_count, \
             duration_ms_sum, min_duration_ms, max_duration_ms) \
         SELECT r.workspace_id, r.workflow_id, r.day, r.status, COUNT(*), COUNT(r.duration), \
             COALESCE(SUM(r.duration), 0), MIN(r.duration), MAX(r.duration) \
         FROM ({finished}) AS r \
         GROUP BY r.workspace_id, r.workflow_id, r.day, r.status;\n\
         INSERT INTO {DURATIONS} (workspace_id, workflow_id, day, lower_ms, upper_ms, run_count) \
         SELECT b.workspace_id, b.workflow_id, b.day, b.lower_ms, b.upper_ms, COUNT(*) \
         FROM (SELECT r.workspace_id, r.workflow_id, r.day, {lower} AS lower_ms, \
                 {upper} AS upper_ms \
             FROM ({finished}) AS r WHERE r.duration IS NOT NULL) AS b \
         GROUP BY b.workspace_id, b.workflow_id, b.day, b.lower_ms, b.upper_ms;"
    )
}

#[derive(DeriveIden)]
enum Workspaces {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Stats {
    WorkspaceId,
    WorkflowId,
    Day,
    Status,
    RunCount,
    TimedCount,
    DurationMsSum,
    MinDurationMs,
    MaxDurationMs,
    LowerMs,
    UpperMs,
    Shard,
}
