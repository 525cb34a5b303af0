//! Run statistics read from the aggregates that triggers on `runs` keep.
//!
//! Invariants protected: a run is counted once, on the UTC day it finished, whichever
//! path ended it (a worker's journal, a run stored already finished, a cancellation by
//! the API), and never again when its row changes or goes away (retention, a deleted
//! workflow); runs cancelled before they started are counted but not timed; the
//! aggregates agree with a scan of the runs (counts and means exactly, percentiles within
//! the documented bound), also for runs that ended before the migration (its backfill);
//! another workspace sees none of them, and on Postgres the tenant role reads only its
//! own aggregate rows and cannot delete them, while the triggers work for it and for the
//! owner alike.

use aos_domain::access::WorkspaceScope;
use aos_domain::ids::WorkflowId;
use aos_domain::journal::{ClaimedRun, Journal, NewRunEvent, RunChange, RunEventKind};
use aos_domain::ports::{CancelOutcome, RunQueue, RunStore, WorkflowStore};
use aos_domain::run::{RunId, RunStatus};
use aos_domain::run_stats::{Durations, LiveRuns, Outcomes, RunStats, RunStatsStore, StatsWindow};
use aos_domain::workflow::Workflow;
use aos_migrations::Migrator;
use aos_persistence::{Intent, SeaStore};
use aos_testkit::{FreshDatabase, postgres_admin_url};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::MigratorTrait;
use serde_json::json;

use crate::runs::{T0, at, new_run};
use crate::support::{Backend, Ctx, on_every_backend, on_postgres, run};
use crate::workflows;

on_every_backend!(
    runs_are_counted_once_whichever_path_ends_them,
    percentiles_are_estimated_within_their_bucket,
    runs_count_on_the_utc_day_they_finished,
    queued_and_running_runs_are_counted_as_they_are_now,
    another_workspace_sees_none_of_the_runs,
    deleting_or_rewriting_runs_leaves_the_aggregates_alone,
);

mod tenant_role {
    use super::*;

    on_postgres!(the_tenant_role_reads_only_its_own_aggregates_and_cannot_delete_them);
}

/// The engine's writes run as the connecting role that owns the tables; on a managed
/// server that role is no superuser, and the triggers must work for it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_superuser_owner_keeps_the_aggregates() {
    run(
        Backend::PostgresAsOwner,
        runs_are_counted_once_whichever_path_ends_them,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_migration_counts_runs_that_ended_before_it() {
    the_migration_counts_runs_that_ended_before_it(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_migration_counts_runs_that_ended_before_it() {
    the_migration_counts_runs_that_ended_before_it(Backend::Postgres).await;
}

const LEASE_MS: i64 = 60_000;
const NO_LIMIT: u32 = 100;

fn instant(text: &str) -> DateTime<Utc> {
    text.parse().expect("an RFC 3339 instant")
}

fn ms(text: &str) -> i64 {
    instant(text).timestamp_millis()
}

fn date(text: &str) -> NaiveDate {
    text.parse().expect("a date")
}

fn window(since: &str, now: &str) -> StatsWindow {
    StatsWindow::new(Some(instant(since)), instant(now)).expect("a valid window")
}

fn event(kind: RunEventKind, at_ms: i64) -> NewRunEvent {
    NewRunEvent {
        kind,
        node_id: None,
        message: kind.as_str().to_lowercase(),
        data: None,
        at: at(at_ms),
    }
}

fn ended(status: RunStatus) -> RunEventKind {
    match status {
        RunStatus::Succeeded => RunEventKind::RunSucceeded,
        RunStatus::Failed => RunEventKind::RunFailed,
        _ => RunEventKind::RunCancelled,
    }
}

fn start(at_ms: i64) -> Journal {
    Journal {
        starts: Some(at(at_ms)),
        events: vec![event(RunEventKind::RunStarted, at_ms)],
        ..Journal::default()
    }
}

fn finish(status: RunStatus, at_ms: i64) -> Journal {
    Journal {
        events: vec![event(ended(status), at_ms)],
        run: Some(RunChange::Finished {
            status,
            output: Some(json!({ "done": true })),
            error: (status == RunStatus::Failed).then(|| "it broke".to_owned()),
            at: at(at_ms),
        }),
        ..Journal::default()
    }
}

/// Queues a run and claims it: the only claimable run, as every test queues one at a time.
async fn queue_and_claim(
    t: &Ctx,
    scope: &WorkspaceScope,
    workflow: &Workflow,
    at_ms: i64,
) -> ClaimedRun {
    let run = t
        .store
        .enqueue_run(scope, new_run(workflow, at_ms))
        .await
        .expect("queue a run");
    let claimed = t
        .store
        .claim("w1", at_ms, LEASE_MS, NO_LIMIT)
        .await
        .expect("claim")
        .expect("the run just queued");
    assert_eq!(claimed.run.id, run.id);
    claimed
}

/// A run of `workflow` that a worker starts and, in a later write, ends with `status`.
async fn worker_run(
    t: &Ctx,
    scope: &WorkspaceScope,
    workflow: &Workflow,
    started_ms: i64,
    finished_ms: i64,
    status: RunStatus,
) -> RunId {
    let claimed = queue_and_claim(t, scope, workflow, started_ms).await;
    for (journal, now_ms) in [
        (start(started_ms), started_ms),
        (finish(status, finished_ms), finished_ms),
    ] {
        t.store
            .journal(&claimed.lease, journal, now_ms, LEASE_MS)
            .await
            .expect("journal");
    }
    claimed.run.id
}

async fn stats(
    t: &Ctx,
    scope: &WorkspaceScope,
    workflow: Option<WorkflowId>,
    window: &StatsWindow,
) -> RunStats {
    t.store
        .run_stats(scope, workflow, window)
        .await
        .expect("read run statistics")
}

/// The aggregates' answer, checked against the scan of the runs: equal but for the
/// percentiles, which must be within the documented bound of the exact ones.
async fn checked_stats(
    t: &Ctx,
    scope: &WorkspaceScope,
    workflow: Option<WorkflowId>,
    window: &StatsWindow,
) -> RunStats {
    let aggregated = stats(t, scope, workflow, window).await;
    let scanned = t
        .store
        .run_stats_by_scan(scope, workflow, window)
        .await
        .expect("scan the runs");
    assert_agree(&aggregated, &scanned);
    aggregated
}

#[track_caller]
fn assert_agree(aggregated: &RunStats, scanned: &RunStats) {
    let without_percentiles = |stats: &RunStats| {
        let strip = |durations: Durations| Durations {
            p50_ms: None,
            p95_ms: None,
            ..durations
        };
        let mut stats = stats.clone();
        stats.durations = strip(stats.durations);
        for day in &mut stats.days {
            day.durations = strip(day.durations);
        }
        stats
    };
    assert_eq!(
        without_percentiles(aggregated),
        without_percentiles(scanned)
    );
    let pairs = std::iter::once((aggregated.durations, scanned.durations)).chain(
        aggregated
            .days
            .iter()
            .zip(&scanned.days)
            .map(|(a, s)| (a.durations, s.durations)),
    );
    for (estimated, exact) in pairs {
        for (guess, truth) in [
            (estimated.p50_ms, exact.p50_ms),
            (estimated.p95_ms, exact.p95_ms),
        ] {
            match (guess, truth) {
                (Some(guess), Some(truth)) => assert!(
                    (guess - truth).abs() <= truth / 2.0,
                    "estimate {guess} too far from {truth}"
                ),
                (guess, truth) => assert_eq!(guess, truth),
            }
        }
    }
}

async fn runs_are_counted_once_whichever_path_ends_them(t: Ctx) {
    let ada = t.user("ada").await;
    let (workspace, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Paths").await;
    let base = T0;

    // A worker's journal: started in one write, ended in the next.
    worker_run(
        &t,
        &scope,
        &workflow,
        base,
        base + 1_000,
        RunStatus::Succeeded,
    )
    .await;
    worker_run(
        &t,
        &scope,
        &workflow,
        base + 2_000,
        base + 2_500,
        RunStatus::Failed,
    )
    .await;
    worker_run(
        &t,
        &scope,
        &workflow,
        base + 3_000,
        base + 3_200,
        RunStatus::Cancelled,
    )
    .await;
    // Started and ended in one write: QUEUED to SUCCEEDED in one update.
    let claimed = queue_and_claim(&t, &scope, &workflow, base + 4_000).await;
    let mut whole = finish(RunStatus::Succeeded, base + 4_300);
    whole.starts = Some(at(base + 4_000));
    t.store
        .journal(&claimed.lease, whole, base + 4_300, LEASE_MS)
        .await
        .expect("journal a whole run");
    // Cancelled by the API before it started: counted, not timed.
    let queued = t
        .store
        .enqueue_run(&scope, new_run(&workflow, base + 5_000))
        .await
        .expect("queue");
    let cancelled = t
        .store
        .request_cancel(&scope, queued.id, at(base + 5_100))
        .await
        .expect("cancel");
    assert!(matches!(cancelled, CancelOutcome::Cancelled { .. }));
    // Executed in place and stored already finished: the insert path.
    let mut in_place = start(base + 6_000);
    in_place.run = finish(RunStatus::Succeeded, base + 6_050).run;
    t.store
        .insert_claimed(
            workspace.id,
            new_run(&workflow, base + 6_000),
            "in-place",
            in_place,
            base + 6_050,
            LEASE_MS,
        )
        .await
        .expect("store a run executed in place");
    // Executed in place, stored running, then ended by a journal write.
    let (lease, _) = t
        .store
        .insert_claimed(
            workspace.id,
            new_run(&workflow, base + 7_000),
            "in-place",
            start(base + 7_000),
            base + 7_000,
            LEASE_MS,
        )
        .await
        .expect("store a run executed in place");
    t.store
        .journal(
            &lease,
            finish(RunStatus::Failed, base + 7_400),
            base + 7_400,
            LEASE_MS,
        )
        .await
        .expect("end it");

    let now = at(base + 60_000);
    let window = StatsWindow::new(None, now).expect("a window");
    let workspace_stats = checked_stats(&t, &scope, None, &window).await;
    let workflow_stats = checked_stats(&t, &scope, Some(workflow.id), &window).await;

    assert_eq!(
        workspace_stats, workflow_stats,
        "one workflow is all there is"
    );
    assert_eq!(
        workspace_stats.outcomes,
        Outcomes {
            succeeded: 3,
            failed: 2,
            cancelled: 2
        }
    );
    assert_eq!(
        workspace_stats.durations.timed, 6,
        "all but the run cancelled at once"
    );
    assert_eq!(
        workspace_stats.durations.mean_ms,
        Some((1_000 + 500 + 200 + 300 + 50 + 400) as f64 / 6.0)
    );
    assert_eq!(workspace_stats.outcomes.success_rate(), Some(3.0 / 5.0));
    assert_eq!((workspace_stats.queued, workspace_stats.running), (0, 0));
    let today = &workspace_stats.days[workspace_stats.days.len() - 1];
    assert_eq!(today.day, now.date_naive());
    assert_eq!(today.outcomes, workspace_stats.outcomes);
}

async fn percentiles_are_estimated_within_their_bucket(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let spread = workflows::create(&t, &scope, "Spread").await;
    let steady = workflows::create(&t, &scope, "Steady").await;
    // 10, 20, ... 200 ms: exactly, p50 (the 10th) is 100 and p95 (the 19th) 190.
    for n in 1..=20 {
        let started = T0 + n * 10_000;
        worker_run(
            &t,
            &scope,
            &spread,
            started,
            started + n * 10,
            RunStatus::Succeeded,
        )
        .await;
    }
    // Five runs of 7 ms: a bucket of its own, narrowed to exactly 7.
    for n in 0..5 {
        let started = T0 + 500_000 + n * 10_000;
        worker_run(
            &t,
            &scope,
            &steady,
            started,
            started + 7,
            RunStatus::Succeeded,
        )
        .await;
    }
    let window = StatsWindow::new(None, at(T0 + 3_600_000)).expect("a window");

    let spread_stats = checked_stats(&t, &scope, Some(spread.id), &window).await;
    let exact = t
        .store
        .run_stats_by_scan(&scope, Some(spread.id), &window)
        .await
        .expect("scan");
    let steady_stats = checked_stats(&t, &scope, Some(steady.id), &window).await;

    assert_eq!(
        (exact.durations.p50_ms, exact.durations.p95_ms),
        (Some(100.0), Some(190.0))
    );
    // Inside [100, 150): the 1st of its 5 runs; inside [150, 200): the 5th of 5.
    assert_eq!(
        (spread_stats.durations.p50_ms, spread_stats.durations.p95_ms),
        (Some(105.0), Some(194.0))
    );
    assert_eq!(spread_stats.durations.mean_ms, Some(105.0), "exact");
    assert_eq!(
        (steady_stats.durations.p50_ms, steady_stats.durations.p95_ms),
        (Some(7.0), Some(7.0))
    );
}

async fn runs_count_on_the_utc_day_they_finished(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let workflow = workflows::create(&t, &scope, "Nightly").await;
    let runs = [
        (
            "2030-03-16T12:00:00Z",
            "2030-03-16T12:00:02Z",
            RunStatus::Succeeded,
        ),
        (
            "2030-03-17T23:59:59Z",
            "2030-03-17T23:59:59.999Z",
            RunStatus::Succeeded,
        ),
        // Started on the 17th, counted on the 18th.
        (
            "2030-03-17T23:59:59.500Z",
            "2030-03-18T00:00:00Z",
            RunStatus::Failed,
        ),
        (
            "2030-03-18T09:00:00Z",
            "2030-03-18T09:00:00.250Z",
            RunStatus::Succeeded,
        ),
    ];
    for (started, finished, status) in runs {
        worker_run(&t, &scope, &workflow, ms(started), ms(finished), status).await;
    }

    let stats = checked_stats(
        &t,
        &scope,
        Some(workflow.id),
        &window("2030-03-17T08:00:00Z", "2030-03-18T10:00:00Z"),
    )
    .await;

    assert_eq!(stats.window.since(), instant("2030-03-17T00:00:00Z"));
    let days: Vec<(NaiveDate, Outcomes)> = stats
        .days
        .iter()
        .map(|day| (day.day, day.outcomes))
        .collect();
    assert_eq!(
        days,
        [
            (
                date("2030-03-17"),
                Outcomes {
                    succeeded: 1,
                    ..Outcomes::default()
                }
            ),
            (
                date("2030-03-18"),
                Outcomes {
                    succeeded: 1,
                    failed: 1,
                    cancelled: 0
                }
            ),
        ]
    );
    assert_eq!(stats.days[0].durations.p95_ms, Some(999.0));
    assert_eq!(stats.days[1].durations.timed, 2);
    assert_eq!(
        stats.outcomes.finished(),
        3,
        "the 16th is before the window"
    );

    let wider = checked_stats(
        &t,
        &scope,
        Some(workflow.id),
        &window("2030-03-16T23:00:00Z", "2030-03-18T10:00:00Z"),
    )
    .await;
    assert_eq!(wider.outcomes.finished(), 4);
    assert_eq!(wider.days[0].durations.mean_ms, Some(2_000.0));
}

async fn queued_and_running_runs_are_counted_as_they_are_now(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let busy = workflow_pair(&t, &scope).await;
    let claimed = queue_and_claim(&t, &scope, &busy.0, T0).await;
    t.store
        .journal(&claimed.lease, start(T0 + 10), T0 + 10, LEASE_MS)
        .await
        .expect("start");
    for n in 0..2 {
        // Due only later, so the claim above took the first run.
        t.store
            .enqueue_run(&scope, new_run(&busy.0, T0 + 1_000 + n))
            .await
            .expect("queue");
    }
    t.store
        .enqueue_run(&scope, new_run(&busy.1, T0 + 2_000))
        .await
        .expect("queue");
    // Long ago: the window's days do not matter to runs that are live now.
    let window = window("2030-03-20T00:00:00Z", "2030-03-20T12:00:00Z");

    let first = checked_stats(&t, &scope, Some(busy.0.id), &window).await;
    let second = checked_stats(&t, &scope, Some(busy.1.id), &window).await;
    let all = checked_stats(&t, &scope, None, &window).await;

    let live = |stats: &RunStats| LiveRuns {
        queued: stats.queued,
        running: stats.running,
    };
    assert_eq!(
        live(&first),
        LiveRuns {
            queued: 2,
            running: 1
        }
    );
    assert_eq!(
        live(&second),
        LiveRuns {
            queued: 1,
            running: 0
        }
    );
    assert_eq!(
        live(&all),
        LiveRuns {
            queued: 3,
            running: 1
        }
    );
    assert_eq!((all.total(), all.outcomes.finished()), (4, 0));
}

async fn workflow_pair(t: &Ctx, scope: &WorkspaceScope) -> (Workflow, Workflow) {
    (
        workflows::create(t, scope, "First").await,
        workflows::create(t, scope, "Second").await,
    )
}

async fn another_workspace_sees_none_of_the_runs(t: Ctx) {
    let ada = t.user("ada").await;
    let bob = t.user("bob").await;
    let (_, a) = t.workspace(&ada, "A").await;
    let (_, b) = t.workspace(&bob, "B").await;
    let workflow = workflows::create(&t, &a, "Mine").await;
    worker_run(&t, &a, &workflow, T0, T0 + 100, RunStatus::Succeeded).await;
    t.store
        .enqueue_run(&a, new_run(&workflow, T0 + 1_000))
        .await
        .expect("queue");
    let window = StatsWindow::new(None, at(T0 + 60_000)).expect("a window");

    let theirs = stats(&t, &b, None, &window).await;
    let probed = stats(&t, &b, Some(workflow.id), &window).await;
    let mine = stats(&t, &a, None, &window).await;

    for other in [theirs, probed] {
        assert_eq!(other.total(), 0);
        assert_eq!(other.durations, Durations::default());
        assert!(other.days.iter().all(|day| day.outcomes.finished() == 0));
    }
    assert_eq!((mine.outcomes.succeeded, mine.queued), (1, 1));
}

async fn deleting_or_rewriting_runs_leaves_the_aggregates_alone(t: Ctx) {
    let ada = t.user("ada").await;
    let (_, scope) = t.workspace(&ada, "Acme").await;
    let (kept, doomed) = workflow_pair(&t, &scope).await;
    let old = worker_run(&t, &scope, &kept, T0, T0 + 100, RunStatus::Succeeded).await;
    worker_run(&t, &scope, &kept, T0 + 1_000, T0 + 1_300, RunStatus::Failed).await;
    worker_run(
        &t,
        &scope,
        &doomed,
        T0 + 2_000,
        T0 + 2_050,
        RunStatus::Succeeded,
    )
    .await;
    let window = StatsWindow::new(None, at(T0 + 60_000)).expect("a window");
    let before = checked_stats(&t, &scope, None, &window).await;
    let workflow_before = stats(&t, &scope, Some(doomed.id), &window).await;

    let txn = t
        .store
        .begin_scoped(&scope, Intent::Write)
        .await
        .expect("scoped transaction");
    let backend = txn.get_database_backend();
    // A write that names the status without changing it (finished runs never change).
    txn.execute_unprepared("UPDATE runs SET status = status")
        .await
        .expect("rewrite the statuses");
    // Retention: the oldest run goes.
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        "DELETE FROM runs WHERE id = $1",
        [old.as_uuid().into()],
    ))
    .await
    .expect("delete a run");
    txn.commit().await.expect("commit");
    t.store
        .delete_workflow(&scope, doomed.id)
        .await
        .expect("delete a workflow and its runs");

    assert_eq!(stats(&t, &scope, None, &window).await, before);
    assert_eq!(
        stats(&t, &scope, Some(doomed.id), &window).await,
        workflow_before,
        "a deleted workflow's history stays in its workspace's usage"
    );
}

/// Raw SQL as the tenant role, in a scoped transaction of workspace A.
async fn the_tenant_role_reads_only_its_own_aggregates_and_cannot_delete_them(t: Ctx) {
    let ada = t.user("ada").await;
    let bob = t.user("bob").await;
    let (_, a) = t.workspace(&ada, "A").await;
    let (b_workspace, b) = t.workspace(&bob, "B").await;
    let mine = workflows::create(&t, &a, "Mine").await;
    let theirs = workflows::create(&t, &b, "Theirs").await;
    worker_run(&t, &a, &mine, T0, T0 + 100, RunStatus::Succeeded).await;
    worker_run(&t, &b, &theirs, T0, T0 + 100, RunStatus::Failed).await;
    let queued = t
        .store
        .enqueue_run(&a, new_run(&mine, T0 + 1_000))
        .await
        .expect("queue");

    let txn = t
        .store
        .begin_scoped(&a, Intent::Write)
        .await
        .expect("scoped transaction");
    for table in ["run_stats_daily", "run_stats_durations"] {
        let sql = format!("SELECT count(*) AS rows FROM {table}");
        let visible: i64 = txn
            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .expect("count")
            .expect("a row")
            .try_get("", "rows")
            .expect("a count");
        assert_eq!(visible, 1, "only A's row of {table}");
    }
    // The trigger, run as the tenant role: A's run ends by a raw update.
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE runs SET status = 'SUCCEEDED', started_at = $2, finished_at = $3, \
         available_at_ms = NULL WHERE id = $1",
        [
            queued.id.as_uuid().into(),
            at(T0 + 1_000).into(),
            at(T0 + 1_400).into(),
        ],
    ))
    .await
    .expect("the tenant's trigger counts its run");
    txn.commit().await.expect("commit");

    let txn = t
        .store
        .begin_scoped(&a, Intent::Write)
        .await
        .expect("scoped transaction");
    let delete = txn.execute_unprepared("DELETE FROM run_stats_daily").await;
    assert!(
        delete
            .as_ref()
            .is_err_and(|error| error.to_string().contains("permission denied")),
        "the tenant role may not delete aggregates: {delete:?}"
    );
    drop(txn);

    let txn = t
        .store
        .begin_scoped(&a, Intent::Write)
        .await
        .expect("scoped transaction");
    let forged = txn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO run_stats_daily (workspace_id, workflow_id, day, status, run_count, \
             timed_count, duration_ms_sum) VALUES ($1, $2, 0, 'FAILED', 1000, 0, 0)",
            [b_workspace.id.as_uuid().into(), theirs.id.as_uuid().into()],
        ))
        .await;
    assert!(
        forged
            .as_ref()
            .is_err_and(|error| error.to_string().contains("row-level security")),
        "the tenant role may not write another workspace's aggregates: {forged:?}"
    );
    drop(txn);

    let window = StatsWindow::new(None, at(T0 + 60_000)).expect("a window");
    let a_stats = checked_stats(&t, &a, None, &window).await;
    let b_stats = checked_stats(&t, &b, None, &window).await;
    assert_eq!(a_stats.outcomes.succeeded, 2);
    assert_eq!(a_stats.durations.mean_ms, Some(250.0));
    assert_eq!(
        b_stats.outcomes,
        Outcomes {
            failed: 1,
            ..Outcomes::default()
        }
    );
}

/// Runs that ended before the migration are counted by its backfill like those that end
/// after it by the triggers. The database is migrated in two steps here, so the fixture of
/// `support` (which migrates at once) does not serve.
async fn the_migration_counts_runs_that_ended_before_it(backend: Backend) {
    let fresh = match backend {
        Backend::Sqlite => FreshDatabase::sqlite("aos_t", "aos.db").expect("a SQLite database"),
        _ => {
            let Some(admin) = postgres_admin_url() else {
                eprintln!("skipped: no Postgres server configured");
                return;
            };
            FreshDatabase::postgres(&admin, "aos_t")
                .await
                .expect("a Postgres database")
        }
    };
    let raw = sea_orm::Database::connect(fresh.url())
        .await
        .expect("connect for the migrations");
    let before_stats = Migrator::migrations()
        .iter()
        .position(|migration| migration.name() == "m20261130_000010_run_stats")
        .expect("the run statistics migration");
    Migrator::up(
        &raw,
        Some(u32::try_from(before_stats).expect("few migrations")),
    )
    .await
    .expect("migrate up to the run statistics");
    let database = aos_persistence::connect(fresh.url())
        .await
        .expect("connect");
    let t = Ctx {
        store: SeaStore::new(database.clone()),
        database: database.clone(),
    };
    let ada = t.user("ada").await;
    let (workspace, scope) = t.workspace(&ada, "Acme").await;
    let (first, second) = workflow_pair(&t, &scope).await;
    let workflows = [
        (workspace.id, first.id, first.version),
        (workspace.id, second.id, second.version),
    ];
    let now = Utc::now();
    t.store
        .insert_synthetic_runs(&workflows, 0..600, now, 20, true)
        .await
        .expect("runs that ended before the migration");
    t.store
        .insert_synthetic_runs(&workflows, 0..6, now, 1, false)
        .await
        .expect("live runs");

    aos_persistence::migrate(&database)
        .await
        .expect("migrate the rest");
    let window = StatsWindow::new(Some(now - Duration::days(25)), now).expect("a window");
    let backfilled = checked_stats(&t, &scope, None, &window).await;
    let of_first = checked_stats(&t, &scope, Some(first.id), &window).await;
    t.store
        .insert_synthetic_runs(&workflows, 600..1_200, now, 20, true)
        .await
        .expect("runs that end after the migration");
    let both = checked_stats(&t, &scope, None, &window).await;

    assert_eq!(backfilled.outcomes.finished(), 600);
    assert_eq!(of_first.outcomes.finished(), 300);
    assert_eq!((backfilled.queued, backfilled.running), (3, 3));
    assert_eq!(both.outcomes.finished(), 1_200);
    assert!(
        both.outcomes.succeeded > both.outcomes.failed
            && both.outcomes.failed > both.outcomes.cancelled
            && both.outcomes.cancelled > 0,
        "the synthetic mix: {:?}",
        both.outcomes
    );
    assert!(
        both.durations.timed < 1_200,
        "some were cancelled before they started"
    );
    drop(raw.close().await);
    drop(database.close().await);
    fresh.destroy().await;
}
