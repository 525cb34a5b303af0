//! Stalls: a server that stops making progress while staying alive (frozen with SIGSTOP
//! mid-step, as a long pause, a starved VM or a debugger would freeze it) and wakes up
//! after its run lease has expired.
//!
//! Invariants protected here: a run held by a stalled worker is taken over by another
//! server once the lease expires, and the request the stall interrupted is sent again
//! with the same `Idempotency-Key` `{runId}:{nodeId}`; the stalled worker, woken with its
//! answer waiting, writes nothing (its lease is refused as lost), so the run ends
//! SUCCEEDED once, with one record per step, contiguous events and each step started and
//! succeeded once, keeping the answer the new holder got; and the woken server stays up
//! and serving.
//!
//! A crashed server cannot write late; a stalled one can try, which is what the fencing
//! token is for. `crash.rs` covers the crashes.

use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::harness::{
    TestApp, TestAppBuilder, TestDatabase, assert_contiguous_events, data, pretty, step, string_at,
};

/// Short, so the stall outlasts the lease soon; the heartbeats (a third of it) keep a
/// live worker's lease comfortably.
const LEASE_MS: &str = "1500";
/// One key for both servers, so a token signed by one verifies on the other.
const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// What a worker logs when a journal write (its result or a heartbeat) is refused, and
/// the refusal of a write under a lease another worker has since taken.
const STOPPED_DRIVING: &str = "stopped driving a run";
const LEASE_LOST: &str = "the lease on this run was lost to another worker";
const TRIGGER: &str = "start";
const CALL: &str = "call";
const SET: &str = "done";
/// A hang guard for each thing the test waits for, not a speed requirement.
const HANG_GUARD: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(20);

// ---- the recorder: the receiving end of the step ----

/// One request the recorder received.
#[derive(Clone, Debug)]
pub(crate) struct Delivery {
    pub(crate) idempotency_key: Option<String>,
    pub(crate) body: Value,
}

struct Shared {
    deliveries: Mutex<Vec<Delivery>>,
    /// The first delivery is answered only once this turns true, so its sender is surely
    /// mid-step until the test says otherwise.
    first_released: watch::Sender<bool>,
}

/// An HTTP server that records every `POST /deliveries` and answers `{"delivery": n}`,
/// `n` counting requests from 1; the answer to the first waits for `release_first`.
/// (`in_place.rs` uses it too.)
pub(crate) struct Recorder {
    pub(crate) url: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Recorder {
    /// Serves on a runtime of its own: the test's runtime blocks while a server starts,
    /// and a request must be seen as it arrives.
    pub(crate) fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the recorder");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking recorder socket");
        let address = listener.local_addr().expect("the recorder's address");
        let shared = Arc::new(Shared {
            deliveries: Mutex::new(Vec::new()),
            first_released: watch::Sender::new(false),
        });
        let routes = axum::Router::new()
            .route("/deliveries", post(deliver))
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("the recorder's runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("the recorder's listener");
                tokio::spawn(async move {
                    let _ = axum::serve(listener, routes).await;
                });
                let _ = stopped.await;
            });
            // Dropping the runtime here ends every connection still open, a held one too.
        });
        Self {
            url: format!("http://{address}"),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub(crate) fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.shared.deliveries).clone()
    }

    pub(crate) fn release_first(&self) {
        self.shared.first_released.send_replace(true);
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn deliver(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Json<Value> {
    let ordinal = {
        let mut deliveries = lock(&shared.deliveries);
        deliveries.push(Delivery {
            idempotency_key: headers
                .get("idempotency-key")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            // Kept even when it is not JSON, so an assertion shows what arrived.
            body: serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
        });
        deliveries.len()
    };
    if ordinal == 1 {
        let mut released = shared.first_released.subscribe();
        let _ = released.wait_for(|released| *released).await;
    }
    Json(json!({"delivery": ordinal}))
}

// ---- freezing a server ----

/// Sends `signal` (`-STOP`, `-CONT`) to `pid`; whether `kill` succeeded.
fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .status()
        .is_ok_and(|status| status.success())
}

/// The state letter (`R`, `S`, `T` for stopped, ...) of every thread of `pid`.
fn thread_states(pid: u32) -> Vec<char> {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    threads
        .flatten()
        .filter_map(|thread| std::fs::read_to_string(thread.path().join("stat")).ok())
        // The state follows the command name, which is in parentheses and may hold any
        // character, a parenthesis too.
        .filter_map(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
        })
        .collect()
}

fn every_thread_stopped(pid: u32) -> bool {
    let states = thread_states(pid);
    !states.is_empty() && states.iter().all(|state| *state == 'T')
}

/// A server stopped with SIGSTOP: alive, holding its sockets and database connections,
/// executing nothing. Dropped without `thaw` (a failing test), it is continued before
/// the harness kills it, so no stopped process outlives the test.
struct FrozenServer {
    app: Option<TestApp>,
}

impl FrozenServer {
    /// Returns once every thread of the server has stopped.
    async fn freeze(mut app: TestApp) -> Self {
        let pid = app.pid();
        assert!(
            app.is_running(),
            "the server to be frozen (pid {pid}) died on its own\n{}",
            app.log_lines().join("\n")
        );
        // Guarded before the signal, so a failure from here on still continues it.
        let frozen = Self { app: Some(app) };
        assert!(signal(pid, "-STOP"), "SIGSTOP server {pid}");
        wait_until(&format!("every thread of server {pid} stops"), || {
            every_thread_stopped(pid)
        })
        .await;
        frozen
    }

    fn thaw(mut self) -> TestApp {
        let app = self.app.take().expect("a frozen server");
        assert!(signal(app.pid(), "-CONT"), "SIGCONT server {}", app.pid());
        app
    }
}

impl Drop for FrozenServer {
    fn drop(&mut self) {
        if let Some(app) = &self.app {
            let _ = signal(app.pid(), "-CONT");
        }
    }
}

// ---- the scenario's pieces ----

/// Polls `done` until it holds; panics naming `what` if it does not within the guard.
pub(crate) async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {HANG_GUARD:?}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A server on the shared database that runs workflows, may call the loopback recorder,
/// and loses a run it stops renewing soon.
fn server_on(database: &TestDatabase) -> TestAppBuilder {
    TestApp::builder()
        .env("AOS_MASTER_KEY", MASTER_KEY)
        .database(None)
        .arg("--database-url")
        .arg(&database.url)
        .arg("--http-allow-private")
        .arg("--run-lease-ms")
        .arg(LEASE_MS)
        .arg("--workers")
        .arg("2")
}

/// `start` → `call` (a POST to the recorder naming the run) → `done` (a `set` of the
/// answer's `delivery`, so the run's output shows which answer the run kept).
fn post_then_set(recorder_url: &str) -> Value {
    json!({
        "nodes": [
            {"id": TRIGGER, "type": "trigger.manual", "config": {}},
            // A stopped process's clocks keep running: the timeout must outlast the
            // freeze, so that what the woken worker finds is its answer.
            {"id": CALL, "type": "http.request", "config": {
                "method": "POST", "url": format!("{recorder_url}/deliveries"),
                "body": {"run": "{{ run.id }}"}, "timeoutMs": 120_000}},
            {"id": SET, "type": "set", "config": {"fields": {"delivery": "{{ steps.call.body.delivery }}"}}}
        ],
        "edges": [{"from": TRIGGER, "to": CALL}, {"from": CALL, "to": SET}]
    })
}

/// Whether `app` logged that it stopped driving `run_id` because another worker took the
/// run's lease (the logs are JSON lines).
fn logged_lease_lost(app: &TestApp, run_id: &str) -> bool {
    app.log_lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .any(|entry| {
            let fields = &entry["fields"];
            fields["message"] == STOPPED_DRIVING
                && fields["refusal"] == LEASE_LOST
                && fields["run_id"] == run_id
        })
}

fn node_event_kinds(run: &Value, node_id: Option<&str>) -> Vec<String> {
    run["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|event| event["nodeId"].as_str() == node_id)
        .map(|event| string_at(&event["kind"]))
        .collect()
}

/// The run succeeded once: contiguous events, started and ended once, every step one
/// record that succeeded on its first attempt, started and succeeded once.
#[track_caller]
pub(crate) fn assert_succeeded_once(run: &Value, run_id: &str) {
    let context = pretty(run);
    assert_eq!(run["status"], "SUCCEEDED", "{context}");
    assert_eq!(run["error"], Value::Null, "{context}");
    let events = run["events"].as_array().cloned().unwrap_or_default();
    assert_contiguous_events(run_id, &events);
    assert_eq!(
        node_event_kinds(run, None),
        ["RUN_QUEUED", "RUN_STARTED", "RUN_SUCCEEDED"],
        "{context}"
    );
    let steps = run["steps"].as_array().cloned().unwrap_or_default();
    let nodes: Vec<String> = steps
        .iter()
        .map(|step| string_at(&step["nodeId"]))
        .collect();
    assert_eq!(
        nodes,
        [TRIGGER, CALL, SET],
        "one record per node: {context}"
    );
    for node in [TRIGGER, CALL, SET] {
        let record = step(run, node);
        assert_eq!(record["status"], "SUCCEEDED", "{node}: {context}");
        assert_eq!(record["attempt"], 1, "{node}: {context}");
        assert_eq!(
            node_event_kinds(run, Some(node)),
            ["STEP_STARTED", "STEP_SUCCEEDED"],
            "{node} started and succeeded once: {context}"
        );
    }
}

// ---- the test ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stalled_past_its_lease_loses_the_run_and_its_late_result_is_refused() {
    let Some(database) = TestDatabase::create_if_configured().await else {
        eprintln!(
            "skipped: two servers need a shared Postgres database; set AOS_TEST_DATABASE_URL"
        );
        return;
    };
    let recorder = Recorder::start();
    // B starts only once A is frozen: A is then surely the server that claimed the run,
    // and B, the only one able to act, surely the one that takes it over.
    let a = server_on(&database).spawn().await;
    let owner = a.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace_id = a.create_workspace(token, "Acme").await;
    let workflow = a
        .create_workflow(
            token,
            &workspace_id,
            "post then set",
            post_then_set(&recorder.url),
        )
        .await;
    let run = a
        .run_workflow(token, &string_at(&workflow["id"]), json!({}))
        .await;
    let run_id = string_at(&run["id"]);
    let key = format!("{run_id}:{CALL}");

    wait_until("A's request reaches the recorder", || {
        recorder.deliveries().len() == 1
    })
    .await;
    let mid_step = data(&a.query_run(token, &run_id).await)["run"].clone();
    assert_eq!(
        step(&mid_step, CALL)["status"],
        "RUNNING",
        "the step is journaled before its request is sent: {}",
        pretty(&mid_step)
    );

    let a = FrozenServer::freeze(a).await;
    let b = server_on(&database).spawn().await;
    wait_until(
        "B takes the run over and sends the interrupted request again",
        || recorder.deliveries().len() == 2,
    )
    .await;
    let finished = b.wait_for_run(token, &run_id).await;
    assert_succeeded_once(&finished, &run_id);

    // A wakes with its answer let go: the result of a step B has already journaled. Its
    // first write on waking, that result or an overdue heartbeat (which one is up to
    // A's scheduler), must be refused for the lease B took.
    recorder.release_first();
    let mut a = a.thaw();
    wait_until("A logs that it lost the run's lease", || {
        logged_lease_lost(&a, &run_id)
    })
    .await;
    a.assert_healthy().await;
    let states = thread_states(a.pid());
    assert!(
        !states.is_empty() && !states.contains(&'T'),
        "A's threads are not stopped any more: {states:?}"
    );

    let run = data(&a.query_run(token, &run_id).await)["run"].clone();
    assert_eq!(
        run, finished,
        "A's late result changed nothing of the run B finished"
    );
    assert_succeeded_once(&run, &run_id);
    assert_eq!(
        step(&run, CALL)["output"]["body"],
        json!({"delivery": 2}),
        "the step keeps B's answer, not A's late one: {}",
        pretty(&run)
    );
    assert_eq!(
        run["output"]["delivery"],
        2,
        "the run went on from B's answer: {}",
        pretty(&run)
    );

    let deliveries = recorder.deliveries();
    assert_eq!(
        deliveries.len(),
        2,
        "A's interrupted request and B's repeat of it, nothing after A woke: {deliveries:#?}"
    );
    for delivery in &deliveries {
        assert_eq!(
            delivery.idempotency_key.as_deref(),
            Some(key.as_str()),
            "every request of the step carries its key: {deliveries:#?}"
        );
        assert_eq!(delivery.body, json!({"run": run_id}), "{deliveries:#?}");
    }

    // Healthy means working too: with B gone, A's workers alone must run the next run.
    drop(b);
    let next = a
        .run_workflow(token, &string_at(&workflow["id"]), json!({}))
        .await;
    let next_id = string_at(&next["id"]);
    let next = a.wait_for_run(token, &next_id).await;
    assert_succeeded_once(&next, &next_id);
}
