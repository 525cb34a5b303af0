//! A workspace, an engine over the real store and a recording event sink, with helpers
//! to queue runs, drive them one claim at a time and read back what they journaled.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aos_connectors::Registry;
use aos_connectors::http::{HttpClient, HttpPolicy};
use aos_domain::access::{Action, Principal, WorkspaceScope, authorize};
use aos_domain::error::DomainResult;
use aos_domain::ids::WorkspaceId;
use aos_domain::journal::{
    ClaimedRun, Journal, Lease, NewRun, Run, RunEvent, RunTrigger, StepRecord,
};
use aos_domain::ports::{
    AccessStore, LeaseRenewal, QueueError, RunEventSink, RunQueue, RunStore, UserStore,
    WorkflowStore,
};
use aos_domain::run::RunId;
use aos_domain::user::{Email, UserName};
use aos_domain::workflow::{NewWorkflow, Workflow, WorkflowName, validate_definition};
use aos_domain::workspace::{Role, WorkspaceName};
use aos_engine::code::CodeLimits;
use aos_engine::gate::ConnectionGate;
use aos_engine::step::NodeServices;
use aos_engine::worker::{Engine, EngineConfig};
use aos_persistence::SeaStore;
use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;

/// The lease the engine extends on every write: long enough that no test outlives it
/// by accident.
pub const LEASE: Duration = Duration::from_secs(30);
pub const LEASE_MS: i64 = 30_000;
/// Later than any short wait a test sets up (retry backoffs of a few ms, small delays).
pub const LATER_MS: i64 = 1_000;

/// Records every event the engine publishes, in order.
#[derive(Default)]
pub struct RecordingSink(Mutex<Vec<RunEvent>>);

impl RecordingSink {
    pub fn of(&self, run_id: RunId) -> Vec<RunEvent> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|event| event.run_id == run_id)
            .cloned()
            .collect()
    }
}

impl RunEventSink for RecordingSink {
    fn publish(&self, events: &[RunEvent]) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(events);
    }
}

pub fn config() -> EngineConfig {
    EngineConfig {
        worker_id: "test".into(),
        concurrency: 1,
        lease: LEASE,
        poll_interval: Duration::from_millis(20),
        per_workspace_limit: 100,
        in_place_limit: 4,
    }
}

/// The real store, counting the engine's writes: what a test of batching asserts.
pub struct CountingQueue {
    store: SeaStore,
    writes: AtomicUsize,
}

impl CountingQueue {
    /// Journal writes and runs stored in place so far; heartbeats do not count.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl RunQueue for CountingQueue {
    async fn another_workspace_waiting(
        &self,
        workspace_id: WorkspaceId,
        now_ms: i64,
        per_workspace_limit: u32,
    ) -> DomainResult<bool> {
        self.store
            .another_workspace_waiting(workspace_id, now_ms, per_workspace_limit)
            .await
    }

    async fn claim(
        &self,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
        per_workspace_limit: u32,
    ) -> DomainResult<Option<ClaimedRun>> {
        self.store
            .claim(worker, now_ms, lease_ms, per_workspace_limit)
            .await
    }

    async fn journal(
        &self,
        lease: &Lease,
        journal: Journal,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<LeaseRenewal, QueueError> {
        if !journal.is_empty() {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        self.store.journal(lease, journal, now_ms, lease_ms).await
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
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.store
            .insert_claimed(workspace_id, run, worker, journal, now_ms, lease_ms)
            .await
    }
}

pub fn services(code_limits: CodeLimits) -> NodeServices {
    let policy = HttpPolicy {
        allow_private: true,
        ..HttpPolicy::default()
    };
    NodeServices {
        http: HttpClient::new(policy).expect("an HTTP client"),
        code_limits,
        secrets: None,
        connectors: Registry::builtin(),
        gate: ConnectionGate::new(),
    }
}

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub struct Harness {
    pub store: SeaStore,
    pub scope: WorkspaceScope,
    pub sink: Arc<RecordingSink>,
    pub queue: Arc<CountingQueue>,
    pub engine: Arc<Engine>,
}

impl Harness {
    pub async fn new(store: SeaStore) -> Self {
        Self::with(store, config(), CodeLimits::default()).await
    }

    pub async fn with(store: SeaStore, config: EngineConfig, code_limits: CodeLimits) -> Self {
        let unique = uuid::Uuid::new_v4().simple();
        let email = Email::parse(&format!("ada.{unique}@example.com")).expect("an e-mail");
        let user = store
            .create_user(
                &email,
                &UserName::parse("Ada").expect("a name"),
                "$argon2id$x",
            )
            .await
            .expect("create a user");
        let workspace = store
            .create_workspace(user.id, &WorkspaceName::parse("Acme").expect("a name"))
            .await
            .expect("create a workspace");
        let scope = authorize(
            &Principal::User(user.id),
            workspace.id,
            Some(Role::Owner),
            Action::ReadWorkspace,
            "workspace",
        )
        .expect("an owner reads the workspace");
        let sink = Arc::new(RecordingSink::default());
        let queue = Arc::new(CountingQueue {
            store: store.clone(),
            writes: AtomicUsize::new(0),
        });
        let engine = Engine::new(
            Arc::clone(&queue) as Arc<dyn RunQueue>,
            services(code_limits),
            Arc::clone(&sink) as Arc<dyn RunEventSink>,
            config,
        );
        Self {
            store,
            scope,
            sink,
            queue,
            engine,
        }
    }

    /// Saves a workflow whose definition validates, as the API would.
    pub async fn workflow(&self, definition: Value) -> Workflow {
        if let Err(problems) = validate_definition(&definition) {
            panic!("the test's definition does not validate: {problems:?}");
        }
        self.store
            .create_workflow(
                &self.scope,
                NewWorkflow {
                    name: WorkflowName::parse("Test").expect("a name"),
                    description: None,
                    definition,
                    webhook_key: format!("whk_{}", uuid::Uuid::new_v4().simple()),
                },
            )
            .await
            .expect("create a workflow")
    }

    pub async fn enqueue(&self, workflow: &Workflow, input: Value) -> RunId {
        let run = new_run(workflow, input);
        self.store
            .enqueue_run(&self.scope, run)
            .await
            .expect("queue a run")
            .id
    }

    /// Queues a run of a new workflow with `definition`.
    pub async fn start(&self, definition: Value, input: Value) -> RunId {
        let workflow = self.workflow(definition).await;
        self.enqueue(&workflow, input).await
    }

    pub async fn claim_at(&self, worker: &str, now_ms: i64) -> Option<ClaimedRun> {
        self.claim_with_lease(worker, now_ms, LEASE_MS).await
    }

    pub async fn claim_with_lease(
        &self,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Option<ClaimedRun> {
        self.store
            .claim(worker, now_ms, lease_ms, 100)
            .await
            .expect("claim")
    }

    /// Claims `run_id` a little in the future, past any short wait.
    pub async fn claim(&self, run_id: RunId) -> ClaimedRun {
        let claimed = self
            .claim_at("w1", now_ms() + LATER_MS)
            .await
            .expect("a claimable run");
        assert_eq!(claimed.run.id, run_id, "claimed another run");
        claimed
    }

    /// One claim and one drive of `run_id`, which must not lose its lease.
    pub async fn drive(&self, run_id: RunId) {
        let claimed = self.claim(run_id).await;
        self.engine.drive(claimed).await.expect("drive the run");
    }

    /// Drives `run_id` `times` times in a row.
    pub async fn drive_times(&self, run_id: RunId, times: usize) {
        for _ in 0..times {
            self.drive(run_id).await;
        }
    }

    pub async fn run(&self, run_id: RunId) -> Run {
        self.store
            .run(&self.scope, run_id)
            .await
            .expect("read the run")
            .expect("the run exists")
    }

    pub async fn steps(&self, run_id: RunId) -> Vec<StepRecord> {
        self.store
            .run_steps(&self.scope, run_id)
            .await
            .expect("read the steps")
    }

    pub async fn step(&self, run_id: RunId, node_id: &str) -> StepRecord {
        self.steps(run_id)
            .await
            .into_iter()
            .find(|step| step.node_id == node_id)
            .unwrap_or_else(|| panic!("no step {node_id}"))
    }

    pub async fn events(&self, run_id: RunId) -> Vec<RunEvent> {
        self.store
            .run_events(&self.scope, run_id, 0, 10_000)
            .await
            .expect("read the events")
    }

    /// Asserts that the stored events are numbered 1, 2, … without gaps, read as
    /// `expected` (`"KIND"` or `"KIND node"`), and that the sink received exactly the
    /// ones after `RUN_QUEUED`, which the store wrote itself. Returns them.
    pub async fn assert_events(&self, run_id: RunId, expected: &[&str]) -> Vec<RunEvent> {
        let stored = self.assert_stored_events(run_id, expected).await;
        assert_eq!(
            self.sink.of(run_id),
            stored[1..],
            "the published events are the stored ones after RUN_QUEUED"
        );
        stored
    }
}

impl Harness {
    /// Asserts that the stored events are numbered 1, 2, … without gaps and read as
    /// `expected`. Returns them.
    pub async fn assert_stored_events(&self, run_id: RunId, expected: &[&str]) -> Vec<RunEvent> {
        let stored = self.events(run_id).await;
        let seqs: Vec<i64> = stored.iter().map(|event| event.seq).collect();
        let contiguous: Vec<i64> = (1..=i64::try_from(stored.len()).expect("few")).collect();
        assert_eq!(seqs, contiguous, "event numbers");
        let described: Vec<String> = stored.iter().map(describe).collect();
        assert_eq!(described, expected, "events");
        stored
    }
}

fn describe(event: &RunEvent) -> String {
    match &event.node_id {
        Some(node) => format!("{} {node}", event.kind.as_str()),
        None => event.kind.as_str().to_owned(),
    }
}

/// A manual run of `workflow`'s current version, not stored yet.
pub fn new_run(workflow: &Workflow, input: Value) -> NewRun {
    NewRun {
        id: RunId::generate(),
        workflow_id: workflow.id,
        workflow_version: workflow.version,
        trigger: RunTrigger::Manual,
        input,
        retry_of: None,
        reused_steps: Vec::new(),
        queued_at: Utc::now(),
    }
}

/// The steps as `(node, status, attempt)`, sorted by node.
pub fn statuses(steps: &[StepRecord]) -> Vec<(String, &'static str, u32)> {
    let mut statuses: Vec<_> = steps
        .iter()
        .map(|step| (step.node_id.clone(), step.status.as_str(), step.attempt))
        .collect();
    statuses.sort();
    statuses
}
