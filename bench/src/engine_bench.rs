//! (a) The engine against the real queue: a 10-node linear workflow (a manual trigger and
//! nine `set` nodes) queued N times and drained by a worker pool, with every queue call
//! timed; the cost of one bare journal write (a heartbeat: one transaction that locks the
//! run row, checks the lease and extends it); and the engine's own cost per step, driven
//! against a queue with no storage.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use aos_connectors::Registry;
use aos_connectors::http::{HttpClient, HttpPolicy};
use aos_domain::access::{Action, WorkspaceScope};
use aos_domain::journal::{Journal, NewRun, RunEvent, RunTrigger};
use aos_domain::ports::{RunEventSink, RunQueue, RunStore, WorkflowStore};
use aos_domain::run::RunId;
use aos_domain::workflow::{NewWorkflow, Workflow, WorkflowName};
use aos_engine::code::CodeLimits;
use aos_engine::gate::ConnectionGate;
use aos_engine::step::NodeServices;
use aos_engine::worker::{Engine, EngineConfig};
use aos_persistence::SeaStore;
use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use crate::database::{Backend, FreshDatabase};
use crate::null_queue::NullQueue;
use crate::stats::{Samples, micros, rate};
use crate::tenant::{bench_user, owned_workspace};
use crate::timed_queue::TimedQueue;

pub struct EngineBench {
    pub backend: Backend,
    pub postgres_server: String,
    pub runs: usize,
    pub concurrency: Vec<usize>,
    pub heartbeats: usize,
    pub in_memory_runs: usize,
}

/// Nodes in the benchmark workflow, each one step of every run.
const NODES: usize = 10;
const LEASE: Duration = Duration::from_secs(30);

/// `start` (manual trigger), then `s1` … `s9`, each adding one to the previous value.
pub fn linear_definition() -> Value {
    let mut nodes = vec![json!({"id": "start", "type": "trigger.manual", "config": {}})];
    let mut edges = Vec::new();
    let mut previous = "start".to_owned();
    for index in 1..NODES {
        let id = format!("s{index}");
        let expression = if index == 1 {
            "{{ trigger.n + 1 }}".to_owned()
        } else {
            format!("{{{{ steps.{previous}.v + 1 }}}}")
        };
        nodes.push(json!({"id": id, "type": "set", "config": {"fields": {"v": expression}}}));
        edges.push(json!({"from": previous, "to": id}));
        previous = id;
    }
    json!({"nodes": nodes, "edges": edges})
}

fn services() -> anyhow::Result<NodeServices> {
    Ok(NodeServices {
        http: HttpClient::new(HttpPolicy::default()).context("an HTTP client")?,
        code_limits: CodeLimits::default(),
        // The benchmarked workflows name no connection.
        secrets: None,
        connectors: Registry::builtin(),
        gate: ConnectionGate::new(),
    })
}

/// Counts finished runs and wakes whoever waits for a number of them.
#[derive(Default)]
struct FinishedRuns {
    finished: AtomicUsize,
    events: AtomicUsize,
    changed: Notify,
}

impl FinishedRuns {
    async fn wait_for(&self, count: usize) {
        loop {
            let notified = self.changed.notified();
            if self.finished.load(Ordering::Acquire) >= count {
                return;
            }
            notified.await;
        }
    }
}

impl RunEventSink for FinishedRuns {
    fn publish(&self, events: &[RunEvent]) {
        self.events.fetch_add(events.len(), Ordering::Relaxed);
        let ended = events
            .iter()
            .filter(|event| event.kind.is_terminal())
            .count();
        if ended > 0 {
            self.finished.fetch_add(ended, Ordering::AcqRel);
            self.changed.notify_waiters();
        }
    }
}

pub async fn run(bench: EngineBench) -> anyhow::Result<()> {
    println!(
        "# engine: {} runs of a {NODES}-node linear workflow",
        bench.runs
    );
    in_memory(bench.in_memory_runs).await?;
    let database = FreshDatabase::create(bench.backend, &bench.postgres_server).await?;
    let outcome = against_store(&bench, &database).await;
    database.destroy().await;
    outcome
}

/// The engine's own time per step: no storage, no claims, one run after the other.
async fn in_memory(runs: usize) -> anyhow::Result<()> {
    let definition = linear_definition();
    let sink = Arc::new(FinishedRuns::default());
    let engine = Engine::new(
        Arc::new(NullQueue::default()),
        services()?,
        Arc::clone(&sink) as Arc<dyn RunEventSink>,
        EngineConfig::default(),
    );
    let warm_up = (runs / 10).max(1);
    let mut per_run = Samples::with_capacity(runs);
    for index in 0..warm_up + runs {
        let claimed = NullQueue::claimed(&definition, json!({"n": 1}));
        let started = Instant::now();
        engine.drive(claimed).await.context("drive in memory")?;
        if index >= warm_up {
            per_run.push(started.elapsed());
        }
    }
    let summary = per_run.summary();
    println!(
        "in-memory (no storage): per run {summary}; per step mean {}",
        micros(summary.mean / NODES as u32)
    );
    Ok(())
}

struct Fixture {
    store: SeaStore,
    scope: WorkspaceScope,
    workflow: Workflow,
}

impl Fixture {
    async fn new(store: SeaStore) -> anyhow::Result<Self> {
        let user = bench_user(&store).await?;
        let (_workspace, scope) =
            owned_workspace(&store, &user, "Bench", Action::ReadWorkspace).await?;
        let workflow = store
            .create_workflow(
                &scope,
                NewWorkflow {
                    name: WorkflowName::parse("Linear")
                        .map_err(|error| anyhow::anyhow!("{error:?}"))?,
                    description: None,
                    definition: linear_definition(),
                    webhook_key: format!("whk_{}", uuid::Uuid::new_v4().simple()),
                },
            )
            .await?;
        Ok(Self {
            store,
            scope,
            workflow,
        })
    }

    async fn enqueue(&self, runs: usize) -> anyhow::Result<Samples> {
        let mut times = Samples::with_capacity(runs);
        for index in 0..runs {
            let run = NewRun {
                id: RunId::generate(),
                workflow_id: self.workflow.id,
                workflow_version: self.workflow.version,
                trigger: RunTrigger::Manual,
                input: json!({"n": index}),
                retry_of: None,
                reused_steps: Vec::new(),
                queued_at: Utc::now(),
            };
            let started = Instant::now();
            self.store.enqueue_run(&self.scope, run).await?;
            times.push(started.elapsed());
        }
        Ok(times)
    }
}

async fn against_store(bench: &EngineBench, database: &FreshDatabase) -> anyhow::Result<()> {
    let db = aos_persistence::connect(&database.url).await?;
    aos_persistence::migrate(&db).await?;
    let fixture = Fixture::new(SeaStore::new(db.clone())).await?;
    let backend = bench.backend.name();

    let heartbeat = heartbeats(&fixture, bench.heartbeats).await?;
    println!("[{backend}] bare journal write (heartbeat): {heartbeat}");

    for &concurrency in &bench.concurrency {
        let enqueued = fixture.enqueue(bench.runs).await?;
        println!(
            "[{backend}] enqueue (one transaction each, sequential): {} => {:.0} runs/s",
            enqueued.summary(),
            rate(enqueued.len(), enqueued.total())
        );
        drain(&fixture, bench.runs, concurrency, backend, heartbeat.mean).await?;
    }
    drop(db.close().await);
    Ok(())
}

/// One run claimed, then `count` empty journal writes under its lease, one after the other.
async fn heartbeats(fixture: &Fixture, count: usize) -> anyhow::Result<crate::stats::Summary> {
    fixture.enqueue(1).await?;
    let claimed = fixture
        .store
        .claim(
            "bench-heartbeat",
            Utc::now().timestamp_millis(),
            60_000,
            1_000,
        )
        .await?
        .context("the run just queued is claimable")?;
    let mut times = Samples::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        fixture
            .store
            .journal(
                &claimed.lease,
                Journal::default(),
                Utc::now().timestamp_millis(),
                60_000,
            )
            .await
            .map_err(|error| anyhow::anyhow!("heartbeat: {error}"))?;
        times.push(started.elapsed());
    }
    // Finish it, so it is not claimed by the pool later: the same path a run's end takes.
    let sink = Arc::new(FinishedRuns::default());
    let engine = Engine::new(
        Arc::new(fixture.store.clone()),
        services()?,
        sink as Arc<dyn RunEventSink>,
        EngineConfig::default(),
    );
    engine
        .drive(claimed)
        .await
        .map_err(|error| anyhow::anyhow!("finish the heartbeat run: {error}"))?;
    Ok(times.summary())
}

async fn drain(
    fixture: &Fixture,
    runs: usize,
    concurrency: usize,
    backend: &str,
    bare_write: Duration,
) -> anyhow::Result<()> {
    let queue = Arc::new(TimedQueue::new(Arc::new(fixture.store.clone())));
    let sink = Arc::new(FinishedRuns::default());
    let engine = Engine::new(
        Arc::clone(&queue) as Arc<dyn RunQueue>,
        services()?,
        Arc::clone(&sink) as Arc<dyn RunEventSink>,
        EngineConfig {
            worker_id: "bench".into(),
            concurrency,
            lease: LEASE,
            // The product's default; it only matters once the queue is empty.
            poll_interval: Duration::from_millis(250),
            // All runs are in one workspace; the product default (4) would cap the pool.
            per_workspace_limit: 10_000,
            in_place_limit: 0,
        },
    );
    let (stop, stopped) = watch::channel(false);
    let started = Instant::now();
    let workers = engine.spawn_workers(stopped);
    sink.wait_for(runs).await;
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    workers.join_all().await;

    let times = queue.take();
    let steps = runs * NODES;
    let claims = times.claims.summary();
    let writes = times.writes.summary();
    let storage = times.claims.total() + times.writes.total() + times.empty_claims.total();
    let busy = elapsed * u32::try_from(concurrency).unwrap_or(u32::MAX);
    let engine_time = busy.saturating_sub(storage);
    println!(
        "[{backend}] drain c={concurrency}: {runs} runs in {:.2}s => {:.0} runs/s, {:.0} steps/s, wall per step {}",
        elapsed.as_secs_f64(),
        rate(runs, elapsed),
        rate(steps, elapsed),
        micros(elapsed / u32::try_from(steps).unwrap_or(u32::MAX)),
    );
    println!("    claims (found a run): {claims}");
    println!(
        "    empty claims: {} (total {})",
        times.empty_claims.len(),
        micros(times.empty_claims.total())
    );
    println!(
        "    journal writes: {writes}; {:.1} per run",
        times.writes.len() as f64 / runs as f64
    );
    println!(
        "    heartbeats during the drain: {}",
        times.heartbeats.len()
    );
    println!(
        "    per run, summed over workers: claim {} + writes {} + engine/other {} (worker-time {})",
        micros(times.claims.total() / u32::try_from(runs).unwrap_or(u32::MAX)),
        micros(times.writes.total() / u32::try_from(runs).unwrap_or(u32::MAX)),
        micros(engine_time / u32::try_from(runs).unwrap_or(u32::MAX)),
        micros(busy / u32::try_from(runs).unwrap_or(u32::MAX)),
    );
    println!(
        "    journaled step write mean / bare write mean = {:.2}; wall per step / bare write = {:.2}",
        writes.mean.as_secs_f64() / bare_write.as_secs_f64(),
        (busy / u32::try_from(steps).unwrap_or(u32::MAX)).as_secs_f64() / bare_write.as_secs_f64(),
    );
    println!(
        "    events published: {}",
        sink.events.load(Ordering::Relaxed)
    );
    Ok(())
}
