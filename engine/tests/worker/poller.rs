//! The poller against the real store and a fake connector whose service lists items:
//! the invariants of `aos_engine::poller` (a first poll starts nothing; each new item
//! starts one run, once, whatever crashes or other pollers; inactive workflows are not
//! polled; failures are recorded with backoff and without secrets).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use aos_connectors::http::{HttpClient, HttpPolicy};
use aos_connectors::{
    Connector, ConnectorContext, ConnectorError, ConnectorInfo, OperationInfo, Polled, Registry,
};
use aos_domain::connection::{
    AuthKind, Connection, ConnectionName, ConnectionStatus, ConnectionTestResult, Credentials,
    REDACTED,
};
use aos_domain::error::DomainResult;
use aos_domain::ids::{ConnectionId, WorkspaceId};
use aos_domain::journal::{Run, RunTrigger};
use aos_domain::page::PageRequest;
use aos_domain::polling::{ClaimedPoll, PollKey, PollLease, PollOutcome, PollState, PollStore};
use aos_domain::ports::{
    ConnectionSecrets, RunEventSink, RunFilter, RunStore, TriggerStore, WorkflowStore,
};
use aos_domain::run::RunStatus;
use aos_domain::workflow::{Workflow, WorkflowChange};
use aos_engine::code::CodeLimits;
use aos_engine::gate::ConnectionGate;
use aos_engine::poller::{Poller, PollerConfig};
use aos_engine::step::NodeServices;
use aos_persistence::SeaStore;

use crate::harness::{Harness, now_ms};
use crate::support::on_every_backend;

on_every_backend!(
    the_first_poll_starts_nothing_and_each_new_item_starts_one_run,
    a_crash_between_poll_and_commit_polls_again_without_duplicates,
    two_pollers_never_poll_a_node_twice_in_one_interval,
    deactivating_stops_polling_and_a_new_version_goes_on_from_the_cursor,
    a_node_that_is_no_longer_the_trigger_is_forgotten,
    a_connection_that_cannot_be_opened_is_recorded_and_retried_with_backoff,
    a_rate_limited_poll_is_due_again_when_the_service_says,
    secrets_in_items_are_redacted_before_they_become_runs,
);

const CONNECTION_ID: &str = "0190f1a2-0000-7000-8000-0000000000c1";
const TOKEN: &str = "poll-token-3f9a";
const MINUTE_MS: i64 = 60_000;
const LEASE: Duration = Duration::from_secs(5);
const LEASE_MS: i64 = 5_000;

/// A service listing items in the order they were added; its cursor is how many it has
/// shown. It answers polls as the script says, then lists.
#[derive(Clone, Default)]
struct FakeService {
    items: Arc<Mutex<Vec<Value>>>,
    errors: Arc<Mutex<Vec<ConnectorError>>>,
    polls: Arc<AtomicUsize>,
}

impl FakeService {
    fn add(&self, items: &[Value]) {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(items);
    }

    fn fail_next(&self, error: ConnectorError) {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(error);
    }

    fn polls(&self) -> usize {
        self.polls.load(Ordering::SeqCst)
    }
}

struct FakeConnector {
    info: ConnectorInfo,
    service: FakeService,
}

impl FakeConnector {
    fn new(service: FakeService) -> Self {
        let items = OperationInfo {
            key: "items",
            name: "New items",
            description: "Items added since the cursor.",
            parameters: json!({"type": "object"}),
            output: json!({"type": "object"}),
        };
        Self {
            info: ConnectorInfo {
                key: "fake",
                name: "Fake",
                description: "A listing.",
                auth_kinds: vec![AuthKind::Bearer],
                operations: Vec::new(),
                triggers: vec![items],
                settings: json!({"type": "object"}),
            },
            service,
        }
    }
}

#[async_trait]
impl Connector for FakeConnector {
    fn info(&self) -> &ConnectorInfo {
        &self.info
    }

    fn check_settings(&self, _settings: &Value) -> Result<(), String> {
        Ok(())
    }

    async fn execute(
        &self,
        _ctx: &ConnectorContext<'_>,
        operation: &str,
        _params: &Value,
    ) -> Result<Value, ConnectorError> {
        Err(ConnectorError::Unsupported(operation.to_owned()))
    }

    async fn test(&self, _ctx: &ConnectorContext<'_>) -> ConnectionTestResult {
        ConnectionTestResult {
            ok: true,
            message: "fine".to_owned(),
        }
    }

    async fn poll(
        &self,
        ctx: &ConnectorContext<'_>,
        trigger: &str,
        params: &Value,
        cursor: Option<&Value>,
    ) -> Result<Polled, ConnectorError> {
        assert_eq!(trigger, "items");
        assert_eq!(params, &json!({"list": "inbox"}));
        assert!(matches!(ctx.credentials, Credentials::Bearer { token } if token == TOKEN));
        self.service.polls.fetch_add(1, Ordering::SeqCst);
        let error = {
            let mut errors = self
                .service
                .errors
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            (!errors.is_empty()).then(|| errors.remove(0))
        };
        if let Some(error) = error {
            return Err(error);
        }
        let items = self
            .service
            .items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let shown = cursor
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok());
        Ok(Polled {
            items: shown.map_or_else(Vec::new, |n| items[n.min(items.len())..].to_vec()),
            cursor: json!(items.len()),
        })
    }
}

/// The vault: the workspace's one `fake` connection, or a refusal.
struct Secrets {
    workspace_id: WorkspaceId,
    refusal: Option<String>,
}

#[async_trait]
impl ConnectionSecrets for Secrets {
    async fn open_connection(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
    ) -> Result<(Connection, Credentials), String> {
        if let Some(refusal) = &self.refusal {
            return Err(refusal.clone());
        }
        let now = Utc::now();
        let connection = Connection {
            id,
            workspace_id,
            name: ConnectionName::parse("Inbox").expect("a name"),
            connector: "fake".to_owned(),
            auth_kind: AuthKind::Bearer,
            status: ConnectionStatus::Valid,
            settings: json!({}),
            created_at: now,
            updated_at: now,
            last_tested_at: None,
            last_test_ok: None,
        };
        if workspace_id != self.workspace_id {
            return Err(format!("connection `{id}` not found"));
        }
        Ok((
            connection,
            Credentials::Bearer {
                token: TOKEN.to_owned(),
            },
        ))
    }
}

/// The store, with `finish_poll` failing (writing nothing) while `crashes` is above 0:
/// what a process that dies between its poll and its commit leaves behind.
struct CrashingStore {
    store: SeaStore,
    crashes: AtomicUsize,
}

#[async_trait]
impl PollStore for CrashingStore {
    async fn ensure_poll_state(
        &self,
        workspace_id: WorkspaceId,
        key: &PollKey,
        first_poll_at_ms: i64,
    ) -> DomainResult<()> {
        self.store
            .ensure_poll_state(workspace_id, key, first_poll_at_ms)
            .await
    }

    async fn claim_due_poll(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> DomainResult<Option<ClaimedPoll>> {
        self.store.claim_due_poll(owner, now_ms, lease_ms).await
    }

    async fn finish_poll(
        &self,
        lease: &PollLease,
        outcome: PollOutcome,
        now: DateTime<Utc>,
    ) -> DomainResult<Option<Vec<Run>>> {
        let crashing = self
            .crashes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if crashing {
            return Err(aos_domain::DomainError::internal(std::io::Error::other(
                "the process died",
            )));
        }
        self.store.finish_poll(lease, outcome, now).await
    }

    async fn forget_poll_state(&self, lease: &PollLease) -> DomainResult<()> {
        self.store.forget_poll_state(lease).await
    }

    async fn poll_state(&self, key: &PollKey) -> DomainResult<Option<PollState>> {
        self.store.poll_state(key).await
    }
}

struct NoEvents;

impl RunEventSink for NoEvents {
    fn publish(&self, _events: &[aos_domain::journal::RunEvent]) {}
}

struct Setup {
    t: Harness,
    service: FakeService,
    workflow: Workflow,
}

impl Setup {
    /// A harness with an active workflow polling the fake service, and a new item
    /// becoming a `set` step's output.
    async fn new(store: SeaStore) -> Self {
        let t = Harness::new(store).await;
        let workflow = t.workflow(definition("poll")).await;
        let workflow = t
            .store
            .set_workflow_active(&t.scope, workflow.id, true)
            .await
            .expect("activate");
        Self {
            t,
            service: FakeService::default(),
            workflow,
        }
    }

    fn poller(&self, owner: &str) -> Poller {
        self.poller_with(owner, Arc::new(self.t.store.clone()), None)
    }

    fn poller_with(
        &self,
        owner: &str,
        polls: Arc<dyn PollStore>,
        refusal: Option<String>,
    ) -> Poller {
        let mut connectors = Registry::builtin();
        connectors.register(Arc::new(FakeConnector::new(self.service.clone())));
        let services = NodeServices {
            http: HttpClient::new(HttpPolicy::default()).expect("an HTTP client"),
            code_limits: CodeLimits::default(),
            secrets: Some(Arc::new(Secrets {
                workspace_id: self.t.scope.workspace_id(),
                refusal,
            })),
            connectors,
            gate: ConnectionGate::new(),
        };
        Poller::new(
            Arc::new(self.t.store.clone()) as Arc<dyn TriggerStore>,
            polls,
            services,
            Arc::new(NoEvents),
            Arc::new(|| {}),
            PollerConfig {
                owner: owner.to_owned(),
                lease: LEASE,
                poll_timeout: Duration::from_secs(2),
                ..PollerConfig::default()
            },
        )
    }

    async fn runs(&self) -> Vec<Run> {
        let mut runs = self
            .t
            .store
            .runs(
                &self.t.scope,
                RunFilter::default(),
                PageRequest {
                    first: 100,
                    after: None,
                },
            )
            .await
            .expect("list runs")
            .items;
        runs.reverse();
        runs
    }

    async fn inputs(&self) -> Vec<Value> {
        self.runs().await.into_iter().map(|run| run.input).collect()
    }

    async fn state(&self, node_id: &str) -> Option<PollState> {
        self.t
            .store
            .poll_state(&PollKey {
                workflow_id: self.workflow.id,
                node_id: node_id.to_owned(),
            })
            .await
            .expect("read the poll state")
    }
}

fn definition(trigger_id: &str) -> Value {
    json!({
        "nodes": [
            {"id": trigger_id, "type": "trigger.poll", "config": {"connector": "fake", "trigger": "items",
             "connectionId": CONNECTION_ID, "params": {"list": "inbox"}}},
            {"id": "greet", "type": "set", "config": {"fields": {"hello": "{{ trigger.id }}"}}}
        ],
        "edges": [{"from": trigger_id, "to": "greet"}]
    })
}

async fn the_first_poll_starts_nothing_and_each_new_item_starts_one_run(store: SeaStore) {
    let s = Setup::new(store).await;
    let mut poller = s.poller("a");
    let t0 = now_ms();
    s.service.add(&[json!({"id": 1}), json!({"id": 2})]);

    poller.refresh(t0).await;
    assert_eq!(poller.poll_due(t0).await, 1);
    assert!(s.runs().await.is_empty(), "the first poll only records");
    assert_eq!(
        s.state("poll").await.and_then(|state| state.cursor),
        Some(json!(2))
    );

    s.service.add(&[json!({"id": 3}), json!({"id": 4})]);
    assert_eq!(poller.poll_due(t0 + MINUTE_MS / 2).await, 0, "not due yet");
    assert_eq!(poller.poll_due(t0 + MINUTE_MS).await, 1);
    assert_eq!(poller.poll_due(t0 + 2 * MINUTE_MS).await, 1);

    assert_eq!(s.inputs().await, [json!({"id": 3}), json!({"id": 4})]);
    let runs = s.runs().await;
    for run in &runs {
        assert_eq!(run.trigger, RunTrigger::Poll);
        assert_eq!(run.workflow_version, s.workflow.version);
    }
    s.t.drive(runs[0].id).await;
    let run = s.t.run(runs[0].id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(
        s.t.step(runs[0].id, "poll").await.output,
        Some(json!({"id": 3}))
    );
    assert_eq!(run.output, Some(json!({"hello": 3})));
    assert_eq!(s.service.polls(), 3);
}

async fn a_crash_between_poll_and_commit_polls_again_without_duplicates(store: SeaStore) {
    let s = Setup::new(store).await;
    let crashing = Arc::new(CrashingStore {
        store: s.t.store.clone(),
        crashes: AtomicUsize::new(0),
    });
    let mut poller = s.poller_with("a", crashing.clone(), None);
    let t0 = now_ms();
    poller.refresh(t0).await;
    poller.poll_due(t0).await;
    s.service.add(&[json!({"id": 7})]);

    crashing.crashes.store(1, Ordering::SeqCst);
    assert_eq!(poller.poll_due(t0 + MINUTE_MS).await, 1);
    assert!(
        s.runs().await.is_empty(),
        "nothing of the crashed poll is kept"
    );
    assert_eq!(s.service.polls(), 2);

    // Its lease still holds the node; once it ends, the next poll starts from the old
    // cursor and finds the item again.
    let after_crash = s.poller_with("b", crashing.clone(), None);
    assert_eq!(after_crash.poll_due(t0 + MINUTE_MS + 1).await, 0);
    assert_eq!(after_crash.poll_due(t0 + MINUTE_MS + LEASE_MS).await, 1);
    assert_eq!(s.inputs().await, [json!({"id": 7})]);
    assert_eq!(after_crash.poll_due(t0 + 2 * MINUTE_MS + LEASE_MS).await, 1);
    assert_eq!(s.inputs().await, [json!({"id": 7})], "and only once");
}

async fn two_pollers_never_poll_a_node_twice_in_one_interval(store: SeaStore) {
    let s = Setup::new(store).await;
    let mut first = s.poller("a");
    let mut second = s.poller("b");
    let t0 = now_ms();
    first.refresh(t0).await;
    second.refresh(t0).await;

    let (a, b) = tokio::join!(first.poll_due(t0), second.poll_due(t0));
    assert_eq!(a + b, 1);
    s.service.add(&[json!({"id": 1})]);
    let (a, b) = tokio::join!(
        first.poll_due(t0 + MINUTE_MS / 2),
        second.poll_due(t0 + MINUTE_MS / 2)
    );
    assert_eq!(a + b, 0);
    let (a, b) = tokio::join!(
        first.poll_due(t0 + MINUTE_MS),
        second.poll_due(t0 + MINUTE_MS)
    );
    assert_eq!(a + b, 1);

    assert_eq!(s.service.polls(), 2);
    assert_eq!(s.inputs().await, [json!({"id": 1})]);
}

async fn deactivating_stops_polling_and_a_new_version_goes_on_from_the_cursor(store: SeaStore) {
    let s = Setup::new(store).await;
    let mut poller = s.poller("a");
    let t0 = now_ms();
    poller.refresh(t0).await;
    poller.poll_due(t0).await;

    s.t.store
        .set_workflow_active(&s.t.scope, s.workflow.id, false)
        .await
        .expect("deactivate");
    s.service.add(&[json!({"id": 1})]);
    poller.refresh(t0 + MINUTE_MS).await;
    assert_eq!(poller.poll_due(t0 + MINUTE_MS).await, 0);
    assert_eq!(s.service.polls(), 1);

    let mut changed = definition("poll");
    changed["nodes"][1]["config"]["fields"]["version"] = json!(2);
    let updated =
        s.t.store
            .update_workflow(
                &s.t.scope,
                s.workflow.id,
                WorkflowChange {
                    definition: Some(changed),
                    ..WorkflowChange::default()
                },
            )
            .await
            .expect("a new version");
    s.t.store
        .set_workflow_active(&s.t.scope, s.workflow.id, true)
        .await
        .expect("activate again");
    poller.refresh(t0 + 2 * MINUTE_MS).await;
    assert_eq!(poller.poll_due(t0 + 2 * MINUTE_MS).await, 1);

    let runs = s.runs().await;
    assert_eq!(
        runs.len(),
        1,
        "the item added meanwhile, not a first poll again"
    );
    assert_eq!(runs[0].input, json!({"id": 1}));
    assert_eq!(runs[0].workflow_version, updated.version);
}

async fn a_node_that_is_no_longer_the_trigger_is_forgotten(store: SeaStore) {
    let s = Setup::new(store).await;
    let mut poller = s.poller("a");
    let t0 = now_ms();
    poller.refresh(t0).await;
    poller.poll_due(t0).await;

    s.t.store
        .update_workflow(
            &s.t.scope,
            s.workflow.id,
            WorkflowChange {
                definition: Some(definition("inbox")),
                ..WorkflowChange::default()
            },
        )
        .await
        .expect("a new version with another trigger id");
    poller.refresh(t0 + MINUTE_MS).await;
    assert_eq!(poller.poll_due(t0 + MINUTE_MS).await, 2);

    assert!(
        s.state("poll").await.is_none(),
        "the old node's state is gone"
    );
    let renamed = s.state("inbox").await.expect("the new node's state");
    assert!(renamed.cursor.is_some(), "polled once, starting afresh");
    assert!(s.runs().await.is_empty());
}

async fn a_connection_that_cannot_be_opened_is_recorded_and_retried_with_backoff(store: SeaStore) {
    let s = Setup::new(store).await;
    let refusal = "connection `Inbox` needs to be authorized again".to_owned();
    let mut poller = s.poller_with("a", Arc::new(s.t.store.clone()), Some(refusal.clone()));
    let t0 = now_ms();
    poller.refresh(t0).await;

    assert_eq!(poller.poll_due(t0).await, 1);
    let state = s.state("poll").await.expect("a state");
    assert_eq!(state.failures, 1);
    assert_eq!(state.last_error.as_deref(), Some(refusal.as_str()));
    assert_eq!(state.next_poll_at_ms, t0 + MINUTE_MS);

    assert_eq!(poller.poll_due(t0 + MINUTE_MS).await, 1);
    let state = s.state("poll").await.expect("a state");
    assert_eq!(state.failures, 2);
    assert_eq!(
        state.next_poll_at_ms,
        t0 + 3 * MINUTE_MS,
        "the second failure waits twice the interval"
    );
    assert_eq!(s.service.polls(), 0);

    let recovered = s.poller("b");
    assert_eq!(recovered.poll_due(t0 + 3 * MINUTE_MS).await, 1);
    let state = s.state("poll").await.expect("a state");
    assert_eq!((state.failures, state.last_error), (0, None));
}

async fn a_rate_limited_poll_is_due_again_when_the_service_says(store: SeaStore) {
    let s = Setup::new(store).await;
    let mut poller = s.poller("a");
    let t0 = now_ms();
    poller.refresh(t0).await;
    s.service.fail_next(ConnectorError::RateLimited {
        retry_after: Some(Duration::from_secs(300)),
        message: "HTTP 429".to_owned(),
    });

    assert_eq!(poller.poll_due(t0).await, 1);

    let state = s.state("poll").await.expect("a state");
    assert_eq!(state.failures, 1);
    assert_eq!(state.next_poll_at_ms, t0 + 300_000);
    let error = state.last_error.unwrap_or_default();
    assert!(
        error.contains("rate limiting") && error.contains("300 s"),
        "{error}"
    );
    assert!(state.cursor.is_none());
}

async fn secrets_in_items_are_redacted_before_they_become_runs(store: SeaStore) {
    let s = Setup::new(store).await;
    let mut poller = s.poller("a");
    let t0 = now_ms();
    poller.refresh(t0).await;
    poller.poll_due(t0).await;
    s.service
        .add(&[json!({"id": 1, "echo": format!("Bearer {TOKEN}")})]);

    poller.poll_due(t0 + MINUTE_MS).await;

    assert_eq!(
        s.inputs().await,
        [json!({"id": 1, "echo": format!("Bearer {REDACTED}")})]
    );
}
