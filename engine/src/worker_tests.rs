//! Making way between steps (see the module doc): with every worker busy, a run hands its
//! slot to another workspace's due run at its next step boundary and later resumes from its
//! journal without repeating a finished step; with a worker free, or for a run of its own
//! workspace, it goes on. Each test drives claims the way a worker does, one at a time, so
//! what happens at each boundary is decided by the queue's state alone, not by timing.

use std::future::Future;
use std::panic::{AssertUnwindSafe, resume_unwind};
use std::sync::Arc;

use aos_connectors::Registry;
use aos_connectors::http::{HttpClient, HttpPolicy};
use aos_domain::access::{Action, Principal, WorkspaceScope, authorize};
use aos_domain::journal::{ClaimedRun, NewRun, Run, RunEvent, RunTrigger};
use aos_domain::ports::{AccessStore, RunEventSink, RunQueue, RunStore, UserStore, WorkflowStore};
use aos_domain::run::{RunId, RunStatus, StepStatus};
use aos_domain::user::{Email, UserName};
use aos_domain::workflow::{NewWorkflow, Workflow, WorkflowName};
use aos_domain::workspace::{Role, WorkspaceName};
use aos_persistence::{SeaStore, connect, migrate};
use aos_testkit::{FreshDatabase, POSTGRES_URL_VARIABLE, postgres_admin_url};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{Engine, EngineConfig};
use crate::code::CodeLimits;
use crate::gate::ConnectionGate;
use crate::step::NodeServices;

const WORKER: &str = "test/0";
const LEASE_MS: i64 = 30_000;

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::on_backend(false, super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::on_backend(true, super::$name).await;
                }
            )*
        }
    };
}

on_every_backend!(
    a_run_makes_way_for_another_workspace_when_every_worker_is_busy,
    a_run_goes_on_while_a_worker_is_free,
    a_run_does_not_make_way_for_its_own_workspace,
);

/// Runs `test` on a fresh, migrated database, then removes it; a Postgres test without
/// `AOS_TEST_DATABASE_URL` reports that it was skipped.
async fn on_backend<F, Fut>(postgres: bool, test: F)
where
    F: FnOnce(SeaStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let fresh = if postgres {
        let Some(admin) = postgres_admin_url() else {
            eprintln!("skipped: set {POSTGRES_URL_VARIABLE} to run the Postgres tests");
            return;
        };
        FreshDatabase::postgres(&admin, "aos_t")
            .await
            .expect("create the test database")
    } else {
        FreshDatabase::sqlite("aos_t", "aos.db").expect("create a SQLite test database")
    };
    let database = connect(fresh.url()).await.expect("connect");
    migrate(&database).await.expect("migrate");
    let outcome = AssertUnwindSafe(test(SeaStore::new(database.clone())))
        .catch_unwind()
        .await;
    drop(database.close().await);
    fresh.destroy().await;
    if let Err(panic) = outcome {
        resume_unwind(panic);
    }
}

struct Discard;

impl RunEventSink for Discard {
    fn publish(&self, _events: &[RunEvent]) {}
}

fn engine(store: &SeaStore, concurrency: usize) -> Arc<Engine> {
    let services = NodeServices {
        http: HttpClient::new(HttpPolicy {
            allow_private: true,
            ..HttpPolicy::default()
        })
        .expect("an HTTP client"),
        code_limits: CodeLimits::default(),
        secrets: None,
        connectors: Registry::builtin(),
        gate: ConnectionGate::new(),
    };
    Engine::new(
        Arc::new(store.clone()) as Arc<dyn RunQueue>,
        services,
        Arc::new(Discard),
        EngineConfig {
            worker_id: "test".into(),
            concurrency,
            per_workspace_limit: 100,
            ..EngineConfig::default()
        },
    )
}

/// A workspace of its own owner, with a workflow of `definition`.
async fn workspace(store: &SeaStore, definition: Value) -> (WorkspaceScope, Workflow) {
    let unique = uuid::Uuid::new_v4().simple();
    let email = Email::parse(&format!("owner.{unique}@example.com")).expect("an e-mail");
    let user = store
        .create_user(
            &email,
            &UserName::parse("Owner").expect("a name"),
            "$argon2id$x",
        )
        .await
        .expect("create a user");
    let workspace = store
        .create_workspace(user.id, &WorkspaceName::parse("Space").expect("a name"))
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
    let workflow = store
        .create_workflow(
            &scope,
            NewWorkflow {
                name: WorkflowName::parse("Test").expect("a name"),
                description: None,
                definition,
                webhook_key: format!("whk_{}", uuid::Uuid::new_v4().simple()),
            },
        )
        .await
        .expect("create a workflow");
    (scope, workflow)
}

/// A run of `workflow` queued `seconds_ago`, so the claim order between runs is set.
async fn enqueue(
    store: &SeaStore,
    scope: &WorkspaceScope,
    workflow: &Workflow,
    seconds_ago: i64,
) -> RunId {
    let queued_at: DateTime<Utc> = Utc::now() - chrono::Duration::seconds(seconds_ago);
    let run = NewRun {
        id: RunId::generate(),
        workflow_id: workflow.id,
        workflow_version: workflow.version,
        trigger: RunTrigger::Manual,
        input: json!({}),
        retry_of: None,
        reused_steps: Vec::new(),
        queued_at,
    };
    store.enqueue_run(scope, run).await.expect("queue").id
}

async fn claim(store: &SeaStore) -> ClaimedRun {
    store
        .claim(WORKER, Utc::now().timestamp_millis(), LEASE_MS, 100)
        .await
        .expect("claim")
        .expect("a claimable run")
}

/// Claims the next run and drives it as a worker of `engine` would.
async fn work_once(engine: &Engine, store: &SeaStore, expected: RunId) {
    let claimed = claim(store).await;
    assert_eq!(claimed.run.id, expected, "claimed another run");
    let (_stop, shutdown) = watch::channel(false);
    engine.drive_claimed(claimed, WORKER, &shutdown).await;
}

async fn run(store: &SeaStore, scope: &WorkspaceScope, run_id: RunId) -> Run {
    store
        .run(scope, run_id)
        .await
        .expect("read the run")
        .expect("the run exists")
}

async fn finished_steps(store: &SeaStore, scope: &WorkspaceScope, run_id: RunId) -> Vec<String> {
    let mut steps: Vec<String> = store
        .run_steps(scope, run_id)
        .await
        .expect("read the steps")
        .into_iter()
        .filter(|step| step.status == StepStatus::Succeeded)
        .map(|step| step.node_id)
        .collect();
    steps.sort();
    steps
}

async fn described_events(store: &SeaStore, scope: &WorkspaceScope, run_id: RunId) -> Vec<String> {
    store
        .run_events(scope, run_id, 0, 1_000)
        .await
        .expect("read the events")
        .iter()
        .map(|event| match &event.node_id {
            Some(node) => format!("{} {node}", event.kind.as_str()),
            None => event.kind.as_str().to_owned(),
        })
        .collect()
}

/// `start`, then an `http.request` to `url`, then a `set`.
fn three_steps(url: &str) -> Value {
    json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual"},
            {"id": "hit", "type": "http.request", "config": {"method": "POST", "url": url}},
            {"id": "after", "type": "set", "config": {"fields": {"done": true}}}
        ],
        "edges": [{"from": "start", "to": "hit"}, {"from": "hit", "to": "after"}]
    })
}

fn two_steps() -> Value {
    json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual"},
            {"id": "note", "type": "set", "config": {"fields": {"n": 1}}},
            {"id": "more", "type": "set", "config": {"fields": {"n": 2}}}
        ],
        "edges": [{"from": "start", "to": "note"}, {"from": "note", "to": "more"}]
    })
}

async fn a_run_makes_way_for_another_workspace_when_every_worker_is_busy(store: SeaStore) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hit"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&server)
        .await;
    let engine = engine(&store, 1);
    let (in_a, a_flow) = workspace(&store, three_steps(&format!("{}/hit", server.uri()))).await;
    let (in_b, b_flow) = workspace(&store, two_steps()).await;
    let a_run = enqueue(&store, &in_a, &a_flow, 60).await;
    let b_first = enqueue(&store, &in_b, &b_flow, 30).await;

    // A's run is the oldest; after its first step it makes way for B's, which the worker
    // then drives to its end.
    work_once(&engine, &store, a_run).await;
    assert_eq!(
        run(&store, &in_b, b_first).await.status,
        RunStatus::Succeeded
    );
    assert_eq!(run(&store, &in_a, a_run).await.status, RunStatus::Running);
    assert_eq!(finished_steps(&store, &in_a, a_run).await, ["start"]);

    // Back in the queue at its creation, A's run comes before B's newer one; once its side
    // effect is done it makes way again.
    let b_second = enqueue(&store, &in_b, &b_flow, 10).await;
    work_once(&engine, &store, a_run).await;
    assert_eq!(
        run(&store, &in_b, b_second).await.status,
        RunStatus::Succeeded
    );
    assert_eq!(finished_steps(&store, &in_a, a_run).await, ["hit", "start"]);

    work_once(&engine, &store, a_run).await;
    assert_eq!(run(&store, &in_a, a_run).await.status, RunStatus::Succeeded);
    let requests = server.received_requests().await.expect("recorded requests");
    assert_eq!(requests.len(), 1, "the side effect happened once");
    assert_eq!(
        described_events(&store, &in_a, a_run).await,
        [
            "RUN_QUEUED",
            "RUN_STARTED",
            "STEP_STARTED start",
            "STEP_SUCCEEDED start",
            "STEP_STARTED hit",
            "STEP_SUCCEEDED hit",
            "STEP_STARTED after",
            "STEP_SUCCEEDED after",
            "RUN_SUCCEEDED",
        ],
        "no finished step was executed again"
    );
}

async fn a_run_goes_on_while_a_worker_is_free(store: SeaStore) {
    let engine = engine(&store, 2);
    let (in_a, a_flow) = workspace(&store, two_steps()).await;
    let (in_b, b_flow) = workspace(&store, two_steps()).await;
    let a_run = enqueue(&store, &in_a, &a_flow, 60).await;
    let b_run = enqueue(&store, &in_b, &b_flow, 30).await;

    work_once(&engine, &store, a_run).await;

    assert_eq!(run(&store, &in_a, a_run).await.status, RunStatus::Succeeded);
    assert_eq!(
        run(&store, &in_b, b_run).await.status,
        RunStatus::Queued,
        "a free worker claims B's run"
    );
}

async fn a_run_does_not_make_way_for_its_own_workspace(store: SeaStore) {
    let engine = engine(&store, 1);
    let (scope, workflow) = workspace(&store, two_steps()).await;
    let first = enqueue(&store, &scope, &workflow, 60).await;
    let second = enqueue(&store, &scope, &workflow, 30).await;

    work_once(&engine, &store, first).await;

    assert_eq!(
        run(&store, &scope, first).await.status,
        RunStatus::Succeeded
    );
    assert_eq!(run(&store, &scope, second).await.status, RunStatus::Queued);
}
