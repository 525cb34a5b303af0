//! The worker pool, as `serve` embeds it and `worker` runs it alone, and the poller that
//! `serve` runs next to it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinSet;

use aos_connectors::http::{HttpClient, HttpPolicy};
use aos_connectors::{ConnectorTester, Registry};
use aos_domain::ports::{ConnectionSecrets, RunEventSink, RunQueue};
use aos_engine::code::CodeLimits;
use aos_engine::gate::ConnectionGate;
use aos_engine::poller::{Poller, PollerConfig};
use aos_engine::step::NodeServices;
use aos_engine::worker::{Engine, EngineConfig};

use aos_api::run_events::{REDIS_CHANNEL, RunEventBus};
use aos_persistence::SeaStore;

use crate::cli::EngineArgs;

const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

pub struct Workers {
    pub engine: Arc<Engine>,
    /// What the workers' steps use (connectors, connections, the gate), for the poller.
    pub services: NodeServices,
    /// Names this process in the leases it takes.
    pub process_id: String,
    http: HttpClient,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Workers {
    pub fn start(
        args: &EngineArgs,
        in_place_limit: usize,
        queue: Arc<dyn RunQueue>,
        events: Arc<dyn RunEventSink>,
        secrets: Arc<dyn ConnectionSecrets>,
    ) -> anyhow::Result<Self> {
        let http = HttpClient::new(HttpPolicy {
            allow_private: args.http_allow_private,
            ..HttpPolicy::default()
        })
        .context("building the HTTP client of workflow steps")?;
        let services = NodeServices {
            http: http.clone(),
            code_limits: CodeLimits::default(),
            secrets: Some(secrets),
            connectors: Registry::builtin(),
            gate: ConnectionGate::new(),
        };
        let process_id = format!(
            "{}-{}",
            hostname().unwrap_or_else(|| "node".into()),
            std::process::id()
        );
        let config = EngineConfig {
            worker_id: process_id.clone(),
            concurrency: args.workers,
            lease: Duration::from_millis(args.run_lease_ms.max(1_000)),
            per_workspace_limit: args.runs_per_workspace.max(1),
            in_place_limit,
            ..EngineConfig::default()
        };
        let engine = Engine::new(queue, services.clone(), events, config);
        let (stop, stopped) = watch::channel(false);
        let tasks = if args.workers == 0 {
            JoinSet::new()
        } else {
            engine.spawn_workers(stopped)
        };
        Ok(Self {
            engine,
            services,
            process_id,
            http,
            stop,
            tasks,
        })
    }

    /// The poller of this process: it shares the steps' connectors, HTTP client and gate,
    /// so a connection's rate limits hold across its steps and its polls.
    pub fn poller(
        &self,
        store: Arc<SeaStore>,
        events: Arc<dyn RunEventSink>,
        wake_workers: Arc<dyn Fn() + Send + Sync>,
        interval_override: Option<Duration>,
    ) -> Poller {
        let config = PollerConfig {
            owner: self.process_id.clone(),
            interval_override,
            ..PollerConfig::default()
        };
        Poller::new(
            store.clone(),
            store,
            self.services.clone(),
            events,
            wake_workers,
            config,
        )
    }

    /// Tests connections with the steps' HTTP client, so the same SSRF rules apply.
    pub fn connection_tester(&self, registry: Registry) -> ConnectorTester {
        ConnectorTester {
            registry,
            http: self.http.clone(),
        }
    }

    /// Stops claiming and gives each worker a grace period to finish its current run.
    /// A run still going after it is abandoned mid-step: its lease expires and a worker
    /// (here after a restart, or on another node) resumes it from its journal.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "workers still busy after the grace period; their runs resume elsewhere"
            );
            self.tasks.abort_all();
        }
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

/// The live run-event bus: shared through Redis when a URL is given, else local.
pub fn run_event_bus(redis_url: Option<&str>) -> anyhow::Result<RunEventBus> {
    match redis_url.filter(|url| !url.trim().is_empty()) {
        Some(url) => {
            RunEventBus::with_redis(url, REDIS_CHANNEL).context("configuring Redis (--redis-url)")
        }
        None => Ok(RunEventBus::new()),
    }
}
