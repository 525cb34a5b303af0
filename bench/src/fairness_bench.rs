//! (e) Fair claiming: what a flood of one workspace's runs costs another workspace.
//!
//! 1. The claim, in process against the store: workspace A with `--claim-queue` runs in
//!    the queue (100,000 by default) and B with one. Each claim is timed, and the claimed
//!    run ends at once, as a pool of workers would go through them, with A holding seven
//!    more leases throughout (a pool of eight); so is the question a worker asks before
//!    making way (`another_workspace_waiting`), with B waiting and with nobody waiting.
//! 2. The release binary, once per `--runs-per-workspace` limit: B's runs one after the
//!    other, each timed from creation to start (its wait in the queue) and to its end, by
//!    the server's clock; first with the queue to itself, then after A has queued
//!    `--flood-runs` runs of the same workflow. Every step is an `http.request` to the
//!    bench's delay server, so a step takes a known time. A's throughput is counted while
//!    B's runs are timed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aos_domain::access::{Action, WorkspaceScope};
use aos_domain::ids::WorkspaceId;
use aos_domain::journal::{ClaimedRun, Journal, NewRun, RunChange, RunTrigger};
use aos_domain::ports::{RunQueue, RunStore, WorkflowStore};
use aos_domain::run::{RunId, RunStatus};
use aos_domain::workflow::{NewWorkflow, WorkflowName};
use aos_persistence::SeaStore;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::database::{Backend, FreshDatabase};
use crate::server::{Owner, Server, string_at};
use crate::stats::{micros, rate};
use crate::tenant::{bench_user, owned_workspace};

#[derive(Debug, clap::Args)]
pub struct FairnessArgs {
    /// Runs workspace A queues before B's runs are timed.
    #[arg(long, default_value_t = 10_000)]
    pub flood_runs: usize,
    /// Clients queueing A's runs at once.
    #[arg(long, default_value_t = 8)]
    pub flood_clients: usize,
    /// B's runs timed in each phase, one after the other (after 3 of warm-up).
    #[arg(long, default_value_t = 30)]
    pub b_runs: usize,
    /// `http.request` steps of every run, after its trigger.
    #[arg(long, default_value_t = 4)]
    pub steps: usize,
    /// How long the delay server takes to answer a step.
    #[arg(long, default_value_t = 25)]
    pub step_ms: u64,
    /// Per-workspace running limits (`AOS_RUNS_PER_WORKSPACE`) to measure with; the server
    /// has 8 workers.
    #[arg(long, value_delimiter = ',', default_value = "4,64")]
    pub runs_per_workspace: Vec<u32>,
    /// A's queued runs for the claim timing (part 1).
    #[arg(long, default_value_t = 100_000)]
    pub claim_queue: u64,
    /// Claims timed in part 1 (and as many questions of each kind).
    #[arg(long, default_value_t = 2_000)]
    pub claims: usize,
}

pub struct FairnessBench {
    pub backend: Backend,
    pub postgres_server: String,
    pub binary: std::path::PathBuf,
    pub server_env: Vec<(String, String)>,
    pub args: FairnessArgs,
}

/// The server's worker pool (its default `AOS_WORKERS`), which part 1 imitates.
const WORKERS: usize = 8;
const LEASE_MS: i64 = 30_000;

pub async fn run(bench: FairnessBench) -> anyhow::Result<()> {
    let backend = bench.backend.name();
    println!(
        "# fairness [{backend}]: {} steps of {} ms per run, {} runs of A flooding",
        bench.args.steps, bench.args.step_ms, bench.args.flood_runs
    );
    let database = FreshDatabase::create(bench.backend, &bench.postgres_server).await?;
    let outcome = claim_cost(&bench, &database).await;
    database.destroy().await;
    outcome?;
    for &limit in &bench.args.runs_per_workspace {
        let database = FreshDatabase::create(bench.backend, &bench.postgres_server).await?;
        let outcome = end_to_end(&bench, &database, limit).await;
        database.destroy().await;
        outcome?;
    }
    Ok(())
}

/// p50, p95 and the maximum, nearest rank.
fn percentiles(samples: &[Duration]) -> String {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let at = |fraction: f64| -> Duration {
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = (fraction * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    };
    format!(
        "n={} p50={} p95={} max={}",
        sorted.len(),
        micros(at(0.50)),
        micros(at(0.95)),
        micros(sorted.last().copied().unwrap_or_default())
    )
}

// ---------------------------------------------------------------------------------------
// 1. The claim against the store.

/// A workspace of the claim timing, with a workflow its runs are pinned to.
struct Tenant {
    id: WorkspaceId,
    scope: WorkspaceScope,
    workflow: aos_domain::workflow::Workflow,
}

impl Tenant {
    async fn create(store: &SeaStore, name: &str) -> anyhow::Result<Self> {
        let user = bench_user(store).await?;
        let (workspace, scope) = owned_workspace(store, &user, name, Action::ReadWorkspace).await?;
        let workflow = store
            .create_workflow(
                &scope,
                NewWorkflow {
                    name: WorkflowName::parse(name)
                        .map_err(|error| anyhow::anyhow!("{error:?}"))?,
                    description: None,
                    definition: json!({
                        "nodes": [{"id": "start", "type": "trigger.manual"}],
                        "edges": []
                    }),
                    webhook_key: format!("whk_{}", uuid::Uuid::new_v4().simple()),
                },
            )
            .await?;
        Ok(Self {
            id: workspace.id,
            scope,
            workflow,
        })
    }

    async fn enqueue(&self, store: &SeaStore) -> anyhow::Result<RunId> {
        let run = NewRun {
            id: RunId::generate(),
            workflow_id: self.workflow.id,
            workflow_version: self.workflow.version,
            trigger: RunTrigger::Manual,
            input: json!({}),
            retry_of: None,
            reused_steps: Vec::new(),
            queued_at: Utc::now(),
        };
        Ok(store.enqueue_run(&self.scope, run).await?.id)
    }
}

async fn claim(store: &SeaStore, limit: u32) -> anyhow::Result<ClaimedRun> {
    store
        .claim("bench", Utc::now().timestamp_millis(), LEASE_MS, limit)
        .await?
        .context("the queue ran dry")
}

/// Ends a claimed run at once, which frees its slot.
async fn finish(store: &SeaStore, claimed: &ClaimedRun) -> anyhow::Result<()> {
    let now = Utc::now();
    let journal = Journal {
        starts: (claimed.run.status == RunStatus::Queued).then_some(now),
        run: Some(RunChange::Finished {
            status: RunStatus::Succeeded,
            output: None,
            error: None,
            at: now,
        }),
        ..Journal::default()
    };
    store
        .journal(&claimed.lease, journal, now.timestamp_millis(), LEASE_MS)
        .await?;
    Ok(())
}

async fn claim_cost(bench: &FairnessBench, database: &FreshDatabase) -> anyhow::Result<()> {
    let backend = bench.backend.name();
    let args = &bench.args;
    let db = aos_persistence::connect(&database.url).await?;
    aos_persistence::migrate(&db).await?;
    let store = SeaStore::new(db.clone());
    let a = Tenant::create(&store, "A").await?;
    let b = Tenant::create(&store, "B").await?;

    let started = Instant::now();
    const CHUNK: u64 = 10_000;
    let workflows = [(a.id, a.workflow.id, a.workflow.version)];
    let mut next = 0;
    while next < args.claim_queue {
        let end = (next + CHUNK).min(args.claim_queue);
        // Queued (or left running by a lost worker) within the last hour: all due.
        store
            .insert_synthetic_runs(&workflows, next..end, Utc::now(), 1, false)
            .await
            .context("queue A's runs")?;
        next = end;
    }
    println!(
        "[{backend}] claim: {} runs of A queued in {:.1} s",
        args.claim_queue,
        started.elapsed().as_secs_f64()
    );
    // A pool of eight: seven of A's runs stay leased while the eighth worker claims.
    let limit = u32::try_from(WORKERS * 2)?;
    let mut held = Vec::new();
    for _ in 1..WORKERS {
        held.push(claim(&store, limit).await?);
    }
    let b_run = b.enqueue(&store).await?;

    let mut times = Vec::with_capacity(args.claims);
    let mut b_claimed_at = None;
    for index in 0..args.claims {
        let started = Instant::now();
        let claimed = claim(&store, limit).await?;
        times.push(started.elapsed());
        if claimed.run.id == b_run {
            b_claimed_at = Some(index + 1);
        }
        finish(&store, &claimed).await?;
    }
    println!(
        "[{backend}] claim with {} of A's runs queued, 7 leased, and B's one: {}; B's run was claim #{}",
        args.claim_queue,
        percentiles(&times),
        b_claimed_at.map_or_else(|| "never".to_owned(), |at| at.to_string())
    );

    let ask = |store: SeaStore| async move {
        let started = Instant::now();
        let waiting = store
            .another_workspace_waiting(a.id, Utc::now().timestamp_millis(), limit)
            .await?;
        anyhow::Ok((started.elapsed(), waiting))
    };
    for (label, b_waiting) in [("nobody else waiting", false), ("B waiting", true)] {
        if b_waiting {
            b.enqueue(&store).await?;
        }
        let mut times = Vec::with_capacity(args.claims);
        for _ in 0..args.claims {
            let (took, waiting) = ask(store.clone()).await?;
            if waiting != b_waiting {
                bail!("another_workspace_waiting said {waiting} with {label}");
            }
            times.push(took);
        }
        println!(
            "[{backend}] make-way question with {} of A's runs queued, {label}: {}",
            args.claim_queue,
            percentiles(&times)
        );
    }
    for claimed in &held {
        finish(&store, claimed).await?;
    }
    drop(db.close().await);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 2. The release binary.

/// Answers every request after `delay`: the step whose time the benchmark knows.
struct DelayServer {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl DelayServer {
    async fn start(delay: Duration) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("listen on loopback")?;
        let url = format!("http://{}/step", listener.local_addr()?);
        let app = axum::Router::new().route(
            "/step",
            axum::routing::get(move || async move {
                tokio::time::sleep(delay).await;
                axum::Json(json!({"ok": true}))
            }),
        );
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("the delay server stopped: {error}");
            }
        });
        Ok(Self { url, task })
    }
}

impl Drop for DelayServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A manual trigger, then `steps` requests to the delay server, one after the other.
fn definition(url: &str, steps: usize) -> Value {
    let mut nodes = vec![json!({"id": "start", "type": "trigger.manual"})];
    let mut edges = Vec::new();
    let mut previous = "start".to_owned();
    for index in 1..=steps {
        let id = format!("s{index}");
        nodes.push(
            json!({"id": id, "type": "http.request", "config": {"method": "GET", "url": url}}),
        );
        edges.push(json!({"from": previous, "to": id}));
        previous = id;
    }
    json!({"nodes": nodes, "edges": edges})
}

/// One of B's runs, by the server's clock.
struct Timed {
    /// Created → started: its wait in the queue.
    wait: Duration,
    /// Created → finished.
    latency: Duration,
    /// Each step's own time.
    steps: Vec<Duration>,
}

fn instant(value: &Value) -> anyhow::Result<DateTime<Utc>> {
    let text = string_at(value)?;
    Ok(DateTime::parse_from_rfc3339(&text)
        .with_context(|| format!("a timestamp: {text}"))?
        .with_timezone(&Utc))
}

fn between(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

/// Queues one run of `workflow` and waits for its end; its times as the server recorded
/// them, so how often the bench polls does not show in them.
async fn timed_run(owner: &Owner, workflow: &str) -> anyhow::Result<Timed> {
    let id = owner.run_workflow(workflow, json!({})).await?;
    let run = loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let data = owner
            .gql(
                "query($id: ID!) { run(id: $id) { status createdAt startedAt finishedAt \
                 steps { nodeId startedAt finishedAt } } }",
                json!({"id": id}),
            )
            .await?;
        let run = data["run"].clone();
        match run["status"].as_str() {
            Some("SUCCEEDED") => break run,
            Some("FAILED" | "CANCELLED") => bail!("B's run ended badly: {run}"),
            _ => {}
        }
    };
    let created = instant(&run["createdAt"])?;
    let mut steps = Vec::new();
    for step in run["steps"].as_array().context("the steps")? {
        if step["nodeId"] != "start" {
            steps.push(between(
                instant(&step["startedAt"])?,
                instant(&step["finishedAt"])?,
            ));
        }
    }
    Ok(Timed {
        wait: between(created, instant(&run["startedAt"])?),
        latency: between(created, instant(&run["finishedAt"])?),
        steps,
    })
}

async fn timed_runs(owner: &Owner, workflow: &str, count: usize) -> anyhow::Result<Vec<Timed>> {
    let mut timed = Vec::with_capacity(count);
    for _ in 0..count {
        timed.push(timed_run(owner, workflow).await?);
    }
    Ok(timed)
}

fn report(backend: &str, label: &str, timed: &[Timed]) {
    let waits: Vec<Duration> = timed.iter().map(|run| run.wait).collect();
    let latencies: Vec<Duration> = timed.iter().map(|run| run.latency).collect();
    let steps: Vec<Duration> = timed.iter().flat_map(|run| run.steps.clone()).collect();
    println!(
        "[{backend}] {label}: B's latency {}",
        percentiles(&latencies)
    );
    println!(
        "[{backend}] {label}: B's wait in the queue {}",
        percentiles(&waits)
    );
    println!("[{backend}] {label}: B's step time {}", percentiles(&steps));
}

/// How many of `workflow`'s runs have succeeded, counted a page at a time through the API.
async fn succeeded(owner: &Owner, workflow: &str) -> anyhow::Result<usize> {
    let mut count = 0;
    let mut after: Option<String> = None;
    loop {
        let data = owner
            .gql(
                "query($id: ID!, $workflow: ID!, $after: String) { workspace(id: $id) { \
                 runs(first: 100, after: $after, status: SUCCEEDED, workflowId: $workflow) { \
                 nodes { id } pageInfo { hasNextPage endCursor } } } }",
                json!({"id": owner.workspace_id, "workflow": workflow, "after": after}),
            )
            .await?;
        let runs = &data["workspace"]["runs"];
        count += runs["nodes"].as_array().context("a page of runs")?.len();
        if runs["pageInfo"]["hasNextPage"] != true {
            return Ok(count);
        }
        after = Some(string_at(&runs["pageInfo"]["endCursor"])?);
    }
}

/// Queues `count` runs of A's workflow through the API, `clients` at a time.
async fn flood(
    owner: &Arc<Owner>,
    workflow: &str,
    count: usize,
    clients: usize,
) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(clients.max(1)));
    let mut queued = tokio::task::JoinSet::new();
    for _ in 0..count {
        let permit = Arc::clone(&slots).acquire_owned().await?;
        let owner = Arc::clone(owner);
        let workflow = workflow.to_owned();
        queued.spawn(async move {
            let queued = owner.run_workflow(&workflow, json!({})).await;
            drop(permit);
            queued.map(drop)
        });
        while let Some(done) = queued.try_join_next() {
            done??;
        }
    }
    while let Some(done) = queued.join_next().await {
        done??;
    }
    Ok(())
}

async fn end_to_end(
    bench: &FairnessBench,
    database: &FreshDatabase,
    limit: u32,
) -> anyhow::Result<()> {
    let args = &bench.args;
    let backend = bench.backend.name();
    let delay = DelayServer::start(Duration::from_millis(args.step_ms)).await?;
    // Settings given with `--server-env` come later, so they win.
    let mut envs = vec![
        ("AOS_HTTP_ALLOW_PRIVATE".to_owned(), "true".to_owned()),
        ("AOS_QUOTA_QUEUED_RUNS".to_owned(), "1000000".to_owned()),
        ("AOS_RUNS_PER_WORKSPACE".to_owned(), limit.to_string()),
    ];
    envs.extend(bench.server_env.iter().cloned());
    let server = Server::start(&bench.binary, database, &envs)?;
    let a = Arc::new(Owner::sign_up(&server).await?);
    let b = Owner::sign_up(&server).await?;
    let steps = definition(&delay.url, args.steps);
    let (a_workflow, _) = a.active_workflow(steps.clone()).await?;
    let (b_workflow, _) = b.active_workflow(steps).await?;
    let label = format!("runs per workspace {limit}");

    timed_runs(&b, &b_workflow, 3).await?;
    let quiet = timed_runs(&b, &b_workflow, args.b_runs).await?;
    report(backend, &format!("{label}, queue to itself"), &quiet);

    let started = Instant::now();
    flood(&a, &a_workflow, args.flood_runs, args.flood_clients).await?;
    let queueing = started.elapsed();
    let before = succeeded(&a, &a_workflow).await?;
    println!(
        "[{backend}] {label}: A queued {} runs in {:.1} s ({:.0} runs/s); {before} of them finished meanwhile",
        args.flood_runs,
        queueing.as_secs_f64(),
        rate(args.flood_runs, queueing)
    );
    let window = Instant::now();
    let flooded = timed_runs(&b, &b_workflow, args.b_runs).await?;
    let elapsed = window.elapsed();
    let after = succeeded(&a, &a_workflow).await?;
    report(backend, &format!("{label}, A flooding"), &flooded);
    let finished = after.saturating_sub(before);
    println!(
        "[{backend}] {label}: A finished {finished} runs while B's were timed ({:.1} runs/s); {} of A's still to go",
        rate(finished, elapsed),
        args.flood_runs.saturating_sub(after)
    );
    if after >= args.flood_runs {
        bail!("A's flood drained before B's runs were timed: queue more (--flood-runs)");
    }
    drop(server);
    Ok(())
}
