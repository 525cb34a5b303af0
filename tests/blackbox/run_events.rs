//! Run subscriptions over WebSocket (`graphql-transport-ws`): `runEvents` and
//! `workspaceRuns`.
//!
//! Invariants protected here: `runEvents` delivers a run's events in `seq` order with no
//! gap and no duplicate, whether they were stored before the subscription started or
//! arrive live, exactly as `Run.events` stores them, and completes after the terminal
//! event; `afterSeq` skips exactly the events up to it; another workspace's run does not
//! exist for the subscriber; `workspaceRuns` reports each status change of its own
//! workspace's runs and nothing of another workspace's.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::harness::{
    RUN_EVENTS_SUBSCRIPTION, Session, TestApp, TestDatabase, WORKSPACE_RUNS_SUBSCRIPTION, WsClient,
    assert_contiguous_events, assert_error_code, definitions, pretty, string_at,
    subscription_error_codes,
};

/// A hang guard for one message, not a speed requirement.
const HANG_GUARD: Duration = Duration::from_secs(60);

async fn owner_with_workspace(app: &TestApp, email: &str) -> (Session, String) {
    let owner = app.sign_up(email, "Owner").await;
    let workspace_id = app.create_workspace(&owner.access_token, "Acme").await;
    (owner, workspace_id)
}

async fn new_workflow(app: &TestApp, token: &str, workspace_id: &str, definition: Value) -> String {
    let created = app
        .create_workflow(token, workspace_id, "under test", definition)
        .await;
    string_at(&created["id"])
}

async fn start_run(app: &TestApp, token: &str, workflow_id: &str) -> String {
    let run = app.run_workflow(token, workflow_id, json!({})).await;
    string_at(&run["id"])
}

async fn connected(app: &TestApp, token: &str) -> WsClient {
    let mut socket = app.ws_connect().await;
    socket.init_ok(token).await;
    socket
}

async fn subscribe_to_run(socket: &mut WsClient, id: &str, run_id: &str, after_seq: Option<i64>) {
    socket
        .subscribe(
            id,
            RUN_EVENTS_SUBSCRIPTION,
            json!({"runId": run_id, "afterSeq": after_seq}),
        )
        .await;
}

/// The events subscription `id` delivers until it completes; panics on an error, or if it
/// neither delivers nor completes within the hang guard.
async fn events_until_complete(socket: &mut WsClient, id: &str) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let Some(message) = socket.next_for(id, HANG_GUARD).await else {
            panic!(
                "subscription {id} neither delivered nor completed within {HANG_GUARD:?}; so far:\n{}",
                pretty(&Value::Array(events))
            );
        };
        match message["type"].as_str() {
            Some("next") if message["payload"]["errors"].is_null() => {
                events.push(message["payload"]["data"]["runEvents"].clone());
            }
            Some("complete") => return events,
            _ => panic!("subscription {id}: unexpected {}", pretty(&message)),
        }
    }
}

fn events_of(run: &Value) -> Vec<Value> {
    run["events"].as_array().cloned().unwrap_or_default()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["kind"].as_str().unwrap_or("<none>"))
        .collect()
}

#[tokio::test]
async fn a_live_subscriber_gets_every_event_once_and_then_complete() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app, "owner@example.com").await;
    let workflow_id = new_workflow(
        &app,
        &owner.access_token,
        &workspace_id,
        definitions::delayed(300),
    )
    .await;
    let mut socket = connected(&app, &owner.access_token).await;

    let run_id = start_run(&app, &owner.access_token, &workflow_id).await;
    subscribe_to_run(&mut socket, "events", &run_id, None).await;
    let delivered = events_until_complete(&mut socket, "events").await;

    assert_contiguous_events(&run_id, &delivered);
    let delivered_kinds = kinds(&delivered);
    assert_eq!(
        delivered_kinds.first().copied(),
        Some("RUN_QUEUED"),
        "{delivered_kinds:?}"
    );
    assert_eq!(
        delivered_kinds.last().copied(),
        Some("RUN_SUCCEEDED"),
        "{delivered_kinds:?}"
    );
    let run = app.wait_for_run(&owner.access_token, &run_id).await;
    assert_eq!(
        delivered,
        events_of(&run),
        "the subscription delivers what the run stores"
    );
}

/// Two nodes on one Postgres and one Redis: B runs no workers, so every event of the run
/// comes from A's worker, and B's subscriber must see all of them, live and in order.
#[tokio::test]
async fn a_subscriber_on_another_node_sees_a_run_executed_on_the_first() {
    let (Some(database), Ok(redis_url)) = (
        TestDatabase::create_if_configured().await,
        std::env::var("AOS_TEST_REDIS_URL"),
    ) else {
        eprintln!("skipped: two nodes need AOS_TEST_DATABASE_URL and AOS_TEST_REDIS_URL");
        return;
    };
    let master_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let node = |workers: &str| {
        TestApp::builder()
            .env("AOS_MASTER_KEY", master_key)
            .env("REDIS_URL", &redis_url)
            .database(None)
            .arg("--database-url")
            .arg(&database.url)
            .arg("--workers")
            .arg(workers)
    };
    let executor = node("4").spawn().await;
    let watcher = node("0").spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&executor, "owner@example.com").await;
    let workflow_id = new_workflow(
        &executor,
        &owner.access_token,
        &workspace_id,
        definitions::delayed(300),
    )
    .await;
    let mut socket = connected(&watcher, &owner.access_token).await;

    let run_id = start_run(&watcher, &owner.access_token, &workflow_id).await;
    subscribe_to_run(&mut socket, "events", &run_id, None).await;
    let delivered = events_until_complete(&mut socket, "events").await;

    assert_contiguous_events(&run_id, &delivered);
    assert_eq!(
        kinds(&delivered).last().copied(),
        Some("RUN_SUCCEEDED"),
        "{:?}",
        kinds(&delivered)
    );
    let run = executor.wait_for_run(&owner.access_token, &run_id).await;
    assert_eq!(delivered, events_of(&run));
}

#[tokio::test]
async fn a_subscriber_after_seq_k_gets_exactly_the_events_after_k() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app, "owner@example.com").await;
    let workflow_id = new_workflow(
        &app,
        &owner.access_token,
        &workspace_id,
        definitions::delayed(300),
    )
    .await;
    let mut socket = connected(&app, &owner.access_token).await;

    // While the run is live...
    let run_id = start_run(&app, &owner.access_token, &workflow_id).await;
    subscribe_to_run(&mut socket, "live", &run_id, Some(2)).await;
    let live = events_until_complete(&mut socket, "live").await;
    let run = app.wait_for_run(&owner.access_token, &run_id).await;
    let stored = events_of(&run);
    assert!(stored.len() > 4, "{}", pretty(&run));
    assert_eq!(live, stored[2..], "afterSeq 2 while the run is live");

    // ...and once it has finished.
    let k = stored.len() - 2;
    let k_seq = i64::try_from(k).expect("a small count");
    subscribe_to_run(&mut socket, "late", &run_id, Some(k_seq)).await;
    let late = events_until_complete(&mut socket, "late").await;
    assert_eq!(late, stored[k..], "afterSeq {k} of a finished run");
}

#[tokio::test]
async fn subscribing_to_a_finished_run_replays_everything_and_completes() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app, "owner@example.com").await;
    let workflow_id = new_workflow(
        &app,
        &owner.access_token,
        &workspace_id,
        definitions::manual(),
    )
    .await;
    let run_id = start_run(&app, &owner.access_token, &workflow_id).await;
    let run = app.wait_for_run(&owner.access_token, &run_id).await;
    assert_eq!(run["status"], "SUCCEEDED", "{}", pretty(&run));
    let mut socket = connected(&app, &owner.access_token).await;

    subscribe_to_run(&mut socket, "replay", &run_id, None).await;
    let replayed = events_until_complete(&mut socket, "replay").await;

    assert_contiguous_events(&run_id, &replayed);
    assert_eq!(replayed, events_of(&run));
}

#[tokio::test]
async fn a_subscriber_already_past_the_terminal_event_is_completed() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app, "owner@example.com").await;
    let workflow_id = new_workflow(
        &app,
        &owner.access_token,
        &workspace_id,
        definitions::manual(),
    )
    .await;
    let run_id = start_run(&app, &owner.access_token, &workflow_id).await;
    let run = app.wait_for_run(&owner.access_token, &run_id).await;
    let last_seq = events_of(&run).len();
    let mut socket = connected(&app, &owner.access_token).await;

    subscribe_to_run(
        &mut socket,
        "past",
        &run_id,
        Some(i64::try_from(last_seq).expect("a small count")),
    )
    .await;
    let delivered = events_until_complete(&mut socket, "past").await;

    assert_eq!(delivered, Vec::<Value>::new());
}

#[tokio::test]
async fn another_workspace_cannot_subscribe_to_a_run() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app, "owner@example.com").await;
    let (outsider, outsider_workspace) = owner_with_workspace(&app, "outsider@example.com").await;
    let outsider_token = app
        .create_token(
            &outsider.access_token,
            &outsider_workspace,
            &["RUNS_READ", "RUNS_WRITE"],
        )
        .await;
    let workflow_id = new_workflow(
        &app,
        &owner.access_token,
        &workspace_id,
        definitions::manual(),
    )
    .await;
    let run_id = start_run(&app, &owner.access_token, &workflow_id).await;
    app.wait_for_run(&owner.access_token, &run_id).await;
    let cases = [
        (
            "another workspace's owner",
            outsider.access_token.as_str(),
            run_id.as_str(),
        ),
        (
            "another workspace's token",
            outsider_token.token.as_str(),
            run_id.as_str(),
        ),
        (
            "the owner, with a garbage id",
            owner.access_token.as_str(),
            "garbage",
        ),
        (
            "the owner, with a workflow id",
            owner.access_token.as_str(),
            workflow_id.as_str(),
        ),
    ];

    for (caller, token, target) in cases {
        let mut socket = connected(&app, token).await;
        subscribe_to_run(&mut socket, "theirs", target, None).await;
        let message = socket
            .next_for("theirs", HANG_GUARD)
            .await
            .unwrap_or_else(|| panic!("{caller}: no answer to the subscription"));
        assert_eq!(
            subscription_error_codes(&message),
            ["NOT_FOUND"],
            "{caller}: {}",
            pretty(&message)
        );
        assert!(
            !message.to_string().contains("RUN_QUEUED"),
            "{caller} saw an event: {}",
            pretty(&message)
        );
    }
}

/// An HTTP endpoint that holds every request until the test releases it, so a run can be
/// kept in an `http.request` step (holding its worker and its workspace's run slot) for
/// exactly as long as the test needs.
struct Gate {
    url: String,
    arrivals: mpsc::UnboundedReceiver<()>,
    releases: Arc<Semaphore>,
    server: JoinHandle<()>,
}

impl Gate {
    async fn open() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the gate");
        let url = format!(
            "http://{}/gate",
            listener.local_addr().expect("the gate's address")
        );
        let (arrived, arrivals) = mpsc::unbounded_channel();
        let releases = Arc::new(Semaphore::new(0));
        let server = tokio::spawn({
            let releases = Arc::clone(&releases);
            async move {
                while let Ok((socket, _)) = listener.accept().await {
                    tokio::spawn(hold(socket, arrived.clone(), Arc::clone(&releases)));
                }
            }
        });
        Self {
            url,
            arrivals,
            releases,
            server,
        }
    }

    /// Waits until a request has arrived (and is being held).
    async fn wait_for_request(&mut self) {
        tokio::time::timeout(HANG_GUARD, self.arrivals.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no request reached the gate within {HANG_GUARD:?}"));
    }

    /// Lets the longest-held request through.
    fn release_one(&self) {
        self.releases.add_permits(1);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn hold(
    mut socket: tokio::net::TcpStream,
    arrived: mpsc::UnboundedSender<()>,
    releases: Arc<Semaphore>,
) {
    let mut head = Vec::new();
    let mut chunk = [0_u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&chunk[..read]),
        }
    }
    let _ = arrived.send(());
    match releases.acquire().await {
        Ok(permit) => permit.forget(),
        Err(_) => return,
    }
    let body = r#"{"released":true}"#;
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = socket.write_all(response.as_bytes()).await;
    let _ = socket.shutdown().await;
}

/// A manual trigger and one GET to the gate.
fn gated(url: &str) -> Value {
    json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual", "config": {}},
            {"id": "call", "type": "http.request", "config": {"method": "GET", "url": url, "timeoutMs": 120_000}}
        ],
        "edges": [{"from": "start", "to": "call"}]
    })
}

/// The next run subscription `id` delivers; panics on anything else.
async fn next_run(socket: &mut WsClient, id: &str) -> Value {
    let message = socket
        .next_for(id, HANG_GUARD)
        .await
        .unwrap_or_else(|| panic!("subscription {id} delivered nothing within {HANG_GUARD:?}"));
    assert!(
        message["type"] == "next" && message["payload"]["errors"].is_null(),
        "subscription {id}: unexpected {}",
        pretty(&message)
    );
    message["payload"]["data"]["workspaceRuns"].clone()
}

/// The protocol has no acknowledgement of `subscribe`: start runs (at most 3) until the
/// subscription delivers one, after which it is certainly live. Returns the runs started
/// and every run message seen.
async fn go_live(
    app: &TestApp,
    socket: &mut WsClient,
    id: &str,
    token: &str,
    workflow_id: &str,
) -> (Vec<String>, Vec<Value>) {
    let mut started = Vec::new();
    for _ in 0..3 {
        started.push(start_run(app, token, workflow_id).await);
        if let Some(message) = socket.next_for(id, Duration::from_secs(2)).await {
            assert_eq!(message["type"], "next", "{}", pretty(&message));
            return (
                started,
                vec![message["payload"]["data"]["workspaceRuns"].clone()],
            );
        }
    }
    panic!("subscription {id} delivered nothing after 3 runs were started");
}

/// Run messages of subscription `id` until one shows `run_id` in `status`; returns every
/// message read, that one last.
async fn runs_until(socket: &mut WsClient, id: &str, run_id: &str, status: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let run = next_run(socket, id).await;
        let done = run["id"] == run_id && run["status"] == status;
        seen.push(run);
        if done {
            return seen;
        }
    }
}

#[tokio::test]
async fn workspace_runs_reports_each_status_change_of_its_own_workspace_only() {
    let mut gate = Gate::open().await;
    // One run at a time per workspace, so a run held at the gate keeps the next one queued.
    let app = TestApp::builder()
        .arg("--http-allow-private")
        .arg("--runs-per-workspace")
        .arg("1")
        .spawn()
        .await;
    let (owner, workspace_id) = owner_with_workspace(&app, "owner@example.com").await;
    let (other, other_workspace) = owner_with_workspace(&app, "other@example.com").await;
    let token = owner.access_token.as_str();
    let quick = new_workflow(&app, token, &workspace_id, definitions::manual()).await;
    let held = new_workflow(&app, token, &workspace_id, gated(&gate.url)).await;
    let other_quick = new_workflow(
        &app,
        &other.access_token,
        &other_workspace,
        definitions::manual(),
    )
    .await;
    let mut mine = connected(&app, token).await;
    let mut theirs = connected(&app, &other.access_token).await;
    mine.subscribe(
        "runs",
        WORKSPACE_RUNS_SUBSCRIPTION,
        json!({"workspaceId": workspace_id}),
    )
    .await;
    theirs
        .subscribe(
            "runs",
            WORKSPACE_RUNS_SUBSCRIPTION,
            json!({"workspaceId": other_workspace}),
        )
        .await;
    let (warm_ups, mut seen) = go_live(&app, &mut mine, "runs", token, &quick).await;
    let (mut other_runs, mut other_seen) =
        go_live(&app, &mut theirs, "runs", &other.access_token, &other_quick).await;
    for run_id in &warm_ups {
        app.wait_for_run(token, run_id).await;
    }

    // A blocker holds the workspace's only run slot at the gate...
    let blocker = start_run(&app, token, &held).await;
    gate.wait_for_request().await;
    // ...so the run under test stays queued until it is let through.
    let target = start_run(&app, token, &held).await;
    seen.extend(runs_until(&mut mine, "runs", &target, "QUEUED").await);
    gate.release_one();
    gate.wait_for_request().await;
    seen.extend(runs_until(&mut mine, "runs", &target, "RUNNING").await);
    gate.release_one();
    seen.extend(runs_until(&mut mine, "runs", &target, "SUCCEEDED").await);

    let target_statuses: Vec<&Value> = seen
        .iter()
        .filter(|run| run["id"] == target.as_str())
        .map(|run| &run["status"])
        .collect();
    assert_eq!(
        target_statuses,
        [&json!("QUEUED"), &json!("RUNNING"), &json!("SUCCEEDED")],
        "{}",
        pretty(&Value::Array(seen.clone()))
    );
    for run in &seen {
        assert_eq!(run["workspaceId"], workspace_id.as_str(), "{run}");
    }
    assert!(seen.iter().any(|run| run["id"] == blocker.as_str()));
    assert!(
        seen.iter()
            .filter(|run| run["id"] == target.as_str())
            .all(|run| run["workflowId"] == held.as_str())
    );

    // The other workspace's subscriber saw none of it: everything it receives up to its
    // own next run's end is its own.
    let marker = start_run(&app, &other.access_token, &other_quick).await;
    other_runs.push(marker.clone());
    other_seen.extend(runs_until(&mut theirs, "runs", &marker, "SUCCEEDED").await);
    for run in &other_seen {
        assert_eq!(run["workspaceId"], other_workspace.as_str(), "{run}");
        assert!(
            other_runs.iter().any(|id| run["id"] == id.as_str()),
            "a run the other workspace did not start: {run}"
        );
    }
    let blocker = app.wait_for_run(token, &blocker).await;
    assert_eq!(blocker["status"], "SUCCEEDED", "{}", pretty(&blocker));
    let other_run = app.query_run(token, &marker).await;
    assert_error_code(&other_run, "NOT_FOUND");
}
