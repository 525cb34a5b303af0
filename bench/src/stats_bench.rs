//! (f) Run statistics over many runs: what `Workflow.stats` and `Workspace.usage.runs`
//! cost when they read the daily aggregates, against the same answer computed by scanning
//! `runs`.
//!
//! A fresh database gets `--runs` finished runs (default a million) spread over
//! `--workspaces` × `--workflows` workflows and the last `--days` days, inserted in bulk
//! statements of `--chunk` runs, so the triggers aggregate every one as it is inserted;
//! then `--live-runs` queued and running runs with the same statement, whose statuses the
//! triggers skip: the difference of the two insert rates is what counting a finished run
//! costs. Each statistics read is then timed `--reads` times (after a warm-up), turning
//! through the workflows or workspaces, for a 30-day and a 365-day window, and so is the
//! scan `--scan-reads` times. Every scan's answer is compared with the aggregates': counts
//! must match exactly, and the largest error of the estimated percentiles is reported.
//!
//! The seeding SQL lives in `aos-persistence` (`SeaStore::insert_synthetic_runs`), since
//! this crate has no SQL client of its own.

use std::time::{Duration, Instant};

use anyhow::Context;
use aos_domain::access::{Action, WorkspaceScope};
use aos_domain::ids::{WorkflowId, WorkspaceId};
use aos_domain::ports::WorkflowStore;
use aos_domain::run_stats::{RunStats, RunStatsStore, StatsWindow};
use aos_domain::workflow::{NewWorkflow, WorkflowName};
use aos_persistence::SeaStore;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::database::{Backend, FreshDatabase};
use crate::stats::{micros, rate};
use crate::tenant::{bench_user, owned_workspace};

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Finished runs to insert.
    #[arg(long, default_value_t = 1_000_000)]
    runs: u64,
    /// Queued and running runs to insert after them.
    #[arg(long, default_value_t = 20_000)]
    live_runs: u64,
    #[arg(long, default_value_t = 10)]
    workspaces: usize,
    /// Workflows per workspace.
    #[arg(long, default_value_t = 10)]
    workflows: usize,
    /// The runs finished over this many days up to now.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// Runs per insert statement and transaction. On Postgres every run counted in a
    /// transaction leaves its aggregate rows' old versions behind until it commits (where
    /// the application ends one run per transaction), so big chunks bloat the aggregates.
    #[arg(long, default_value_t = 10_000)]
    chunk: u64,
    /// Timed reads of the aggregates, per query and window.
    #[arg(long, default_value_t = 200)]
    reads: usize,
    /// Timed scans of `runs`, per query and window.
    #[arg(long, default_value_t = 10)]
    scan_reads: usize,
}

pub struct StatsBench {
    pub backend: Backend,
    pub postgres_server: String,
    pub args: StatsArgs,
}

/// The windows timed: a month (the default) and a year (every run seeded).
const WINDOWS: [u64; 2] = [30, 365];

pub async fn run(bench: StatsBench) -> anyhow::Result<()> {
    let args = &bench.args;
    anyhow::ensure!(
        args.workspaces > 0 && args.workflows > 0 && args.chunk > 0,
        "--workspaces, --workflows and --chunk must be positive"
    );
    anyhow::ensure!(
        args.reads > 0 && args.scan_reads > 0,
        "--reads and --scan-reads must be positive"
    );
    println!(
        "# stats: {} finished runs over {} workspaces × {} workflows and {} days, {} live runs",
        args.runs, args.workspaces, args.workflows, args.days, args.live_runs
    );
    let database = FreshDatabase::create(bench.backend, &bench.postgres_server).await?;
    let outcome = against_store(&bench, &database).await;
    database.destroy().await;
    outcome
}

struct Fixture {
    store: SeaStore,
    /// Per workspace: its owner's scope and its workflows.
    workspaces: Vec<(WorkspaceScope, Vec<WorkflowId>)>,
    /// Every workflow as the seeding takes them: (workspace, workflow, version).
    workflows: Vec<(WorkspaceId, WorkflowId, i32)>,
}

impl Fixture {
    async fn new(store: SeaStore, args: &StatsArgs) -> anyhow::Result<Self> {
        let user = bench_user(&store).await?;
        let mut workspaces = Vec::with_capacity(args.workspaces);
        let mut workflows = Vec::new();
        for index in 0..args.workspaces {
            let (workspace, scope) = owned_workspace(
                &store,
                &user,
                &format!("Bench {index}"),
                Action::ReadWorkspace,
            )
            .await?;
            let mut ids = Vec::with_capacity(args.workflows);
            for number in 0..args.workflows {
                let workflow = store
                    .create_workflow(
                        &scope,
                        NewWorkflow {
                            name: WorkflowName::parse(&format!("Flow {number}"))
                                .map_err(|error| anyhow::anyhow!("{error:?}"))?,
                            description: None,
                            definition: json!({
                                "nodes": [{"id": "start", "type": "trigger.manual", "config": {}}],
                                "edges": []
                            }),
                            webhook_key: format!("whk_{}", uuid::Uuid::new_v4().simple()),
                        },
                    )
                    .await?;
                ids.push(workflow.id);
                workflows.push((workspace.id, workflow.id, workflow.version));
            }
            workspaces.push((scope, ids));
        }
        Ok(Self {
            store,
            workspaces,
            workflows,
        })
    }

    /// Inserts `count` runs in chunks; returns the time it took.
    async fn seed(
        &self,
        count: u64,
        chunk: u64,
        until: DateTime<Utc>,
        days: u32,
        finished: bool,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut next = 0;
        while next < count {
            let end = (next + chunk).min(count);
            self.store
                .insert_synthetic_runs(&self.workflows, next..end, until, days, finished)
                .await
                .context("insert synthetic runs")?;
            next = end;
            eprint!(
                "\r  {next}/{count} runs, {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
        eprintln!();
        Ok(started.elapsed())
    }
}

async fn against_store(bench: &StatsBench, database: &FreshDatabase) -> anyhow::Result<()> {
    let args = &bench.args;
    let backend = bench.backend.name();
    let db = aos_persistence::connect(&database.url).await?;
    aos_persistence::migrate(&db).await?;
    let fixture = Fixture::new(SeaStore::new(db.clone()), args).await?;
    let now = Utc::now();

    let seeding = fixture
        .seed(args.runs, args.chunk, now, args.days, true)
        .await?;
    let finished_rate = rate(usize::try_from(args.runs)?, seeding);
    println!(
        "[{backend}] insert {} finished runs, aggregated by the triggers: {:.1} s ({finished_rate:.0} runs/s)",
        args.runs,
        seeding.as_secs_f64()
    );
    if args.live_runs > 0 {
        let live = fixture
            .seed(args.live_runs, args.chunk, now, args.days, false)
            .await?;
        let live_rate = rate(usize::try_from(args.live_runs)?, live);
        // The same statement with statuses the triggers skip: the difference in time per
        // run estimates what counting a finished run costs, where it is not lost in noise.
        println!(
            "[{backend}] insert {} queued/running runs, which the triggers skip: {:.1} s \
             ({live_rate:.0} runs/s); per run {} finished vs {} live",
            args.live_runs,
            live.as_secs_f64(),
            micros(Duration::from_secs_f64(1.0 / finished_rate)),
            micros(Duration::from_secs_f64(1.0 / live_rate)),
        );
    }

    let mut worst_error: f64 = 0.0;
    for days in WINDOWS {
        let since = now - chrono::Duration::days(i64::try_from(days)?);
        for per_workflow in [true, false] {
            let targets: Vec<(&WorkspaceScope, Option<WorkflowId>)> = if per_workflow {
                fixture
                    .workspaces
                    .iter()
                    .flat_map(|(scope, workflows)| {
                        workflows.iter().map(move |id| (scope, Some(*id)))
                    })
                    .collect()
            } else {
                fixture
                    .workspaces
                    .iter()
                    .map(|(scope, _)| (scope, None))
                    .collect()
            };
            let what = if per_workflow {
                "Workflow.stats"
            } else {
                "Workspace.usage.runs"
            };
            // A fresh window per read, as the API makes one per request.
            let window = || StatsWindow::new(Some(since), Utc::now()).context("a window");
            let store = &fixture.store;
            let aggregated = time_reads(args.reads, &targets, |scope, workflow| async move {
                Ok(store.run_stats(scope, workflow, &window()?).await?)
            })
            .await?;
            let scanned = time_reads(args.scan_reads, &targets, |scope, workflow| async move {
                Ok(store.run_stats_by_scan(scope, workflow, &window()?).await?)
            })
            .await?;
            // Every target once, untimed: the aggregates must give the scan's answer.
            let mut finished = 0;
            for &(scope, workflow) in &targets {
                let window = window()?;
                let exact = store.run_stats_by_scan(scope, workflow, &window).await?;
                let estimate = store.run_stats(scope, workflow, &window).await?;
                worst_error = worst_error.max(compare(&exact, &estimate)?);
                finished += exact.outcomes.finished();
            }
            println!(
                "[{backend}] {what}, {days} days (≈{} finished runs each): aggregates {}; \
                 scan of runs {}; scan/aggregates ×{:.0}",
                finished / targets.len() as u64,
                aggregated.summary(),
                scanned.summary(),
                scanned.median().as_secs_f64() / aggregated.median().as_secs_f64().max(1e-9)
            );
        }
    }
    println!(
        "[{backend}] every scan agreed with the aggregates; largest percentile error {:.1} % of the exact value",
        worst_error * 100.0
    );
    drop(db.close().await);
    Ok(())
}

struct Timed {
    samples: Vec<Duration>,
}

impl Timed {
    fn median(&self) -> Duration {
        quantile(&self.samples, 0.50)
    }

    fn summary(&self) -> String {
        format!(
            "median {} p95 {} (n={})",
            micros(self.median()),
            micros(quantile(&self.samples, 0.95)),
            self.samples.len()
        )
    }
}

/// `reads` calls, turning through `targets`, after a warm-up of one call per target (at
/// most `reads`).
async fn time_reads<'a, T, F, Fut>(
    reads: usize,
    targets: &[(&'a WorkspaceScope, Option<WorkflowId>)],
    call: F,
) -> anyhow::Result<Timed>
where
    F: Fn(&'a WorkspaceScope, Option<WorkflowId>) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    for &(scope, workflow) in targets.iter().take(reads) {
        call(scope, workflow).await?;
    }
    let mut samples = Vec::with_capacity(reads);
    for index in 0..reads {
        let (scope, workflow) = targets[index % targets.len()];
        let started = Instant::now();
        call(scope, workflow).await?;
        samples.push(started.elapsed());
    }
    Ok(Timed { samples })
}

/// Nearest rank.
fn quantile(samples: &[Duration], fraction: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len().max(1)) - 1)
        .copied()
        .unwrap_or_default()
}

/// Checks that the aggregates answered what the scan did and returns the largest relative
/// error of their estimated percentiles.
fn compare(exact: &RunStats, estimate: &RunStats) -> anyhow::Result<f64> {
    anyhow::ensure!(
        exact.outcomes == estimate.outcomes
            && exact.queued == estimate.queued
            && exact.running == estimate.running
            && exact.durations.timed == estimate.durations.timed,
        "the aggregates disagree with the scan: {:?} vs {:?}",
        estimate.outcomes,
        exact.outcomes
    );
    let mut worst: f64 = 0.0;
    for (guess, truth) in [
        (estimate.durations.p50_ms, exact.durations.p50_ms),
        (estimate.durations.p95_ms, exact.durations.p95_ms),
    ] {
        if let (Some(guess), Some(truth)) = (guess, truth) {
            worst = worst.max((guess - truth).abs() / truth.max(1.0));
        }
    }
    Ok(worst)
}
