//! Crashes: servers killed with SIGKILL while runs are in flight, restarted on the same
//! database, or replaced by another server on it.
//!
//! Invariants protected here: a run survives any number of crashes and ends SUCCEEDED;
//! a completed step is never lost (its output stays) nor repeated (one STEP_STARTED and
//! one STEP_SUCCEEDED per node, events 1..n); every request of a step carries the same
//! `Idempotency-Key` `{runId}:{nodeId}`; a step is requested again only after a crash
//! interrupted it (never twice by one server's lifetime, never after its result was
//! journaled); and a request a crash cut off is always sent again and seen through. When
//! two servers share a database, the survivor finishes the runs the killed one held once
//! their leases expire, and either server's API shows runs queued on the other.
//!
//! The kill points are random: each test prints its seed, and `AOS_CRASH_SEED=<seed>`
//! replays the same choices (the timing of the processes still varies).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::harness::{
    Remains, Session, TestApp, TestAppBuilder, TestDatabase, assert_contiguous_events, data,
    pretty, string_at,
};

/// The sequential `http.request` steps of the workflow under test, after its trigger.
const HTTP_STEPS: [&str; 5] = ["s1", "s2", "s3", "s4", "s5"];
const TRIGGER: &str = "start";
/// The recorder answers each request after a random pause up to this long, so a kill
/// often finds requests in flight.
const MAX_ANSWER_DELAY_MS: u64 = 30;
/// A lease short enough that runs held by a killed server are resumed soon.
const LEASE_MS: &str = "1000";
/// A request a killed server sent just before it died may reach the recorder's handler
/// after the death, when its sender can no longer be looked up; it is the victim's of the
/// kill nearest in time, which must be at most this far.
const DYING_SENDER_SLACK_MS: i64 = 1000;
/// The clocks compared are the same machine's, but a stored timestamp may be truncated.
const CLOCK_SLACK_MS: i64 = 20;
/// Hang guards, not speed requirements.
const PROGRESS_DEADLINE: Duration = Duration::from_secs(60);

// ---- the recorder: the receiving end of every step ----

/// One request the recorder received.
#[derive(Clone, Debug)]
struct Hit {
    run_id: String,
    node_id: String,
    idempotency_key: Option<String>,
    /// The server process that sent it; `None` when it died before the recorder looked.
    sender: Option<u32>,
    received_at: DateTime<Utc>,
    fate: Fate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    InFlight,
    Answered,
    /// The sender hung up (it was killed) before the answer.
    Abandoned,
}

#[derive(Default)]
struct RecorderState {
    hits: Vec<Hit>,
    /// While frozen no request is answered, so a kill cuts off every unanswered one.
    frozen: bool,
}

struct Shared {
    port: u16,
    state: Mutex<RecorderState>,
    /// Bumped on every thaw, to wake the requests held while frozen.
    thaws: watch::Sender<u64>,
    delays: Mutex<StdRng>,
}

/// An HTTP server that records every request of `GET /hit/{runId}/{nodeId}` and answers
/// `{"run": runId, "node": nodeId}` after a random pause.
struct Recorder {
    base_url: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Recorder {
    /// Serves on a runtime of its own: the test's runtime blocks while a server starts,
    /// and requests must be seen (and their senders looked up) as they arrive.
    fn start(seed: u64) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the recorder");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking recorder socket");
        let address = listener.local_addr().expect("the recorder's address");
        let shared = Arc::new(Shared {
            port: address.port(),
            state: Mutex::new(RecorderState::default()),
            thaws: watch::Sender::new(0),
            delays: Mutex::new(StdRng::seed_from_u64(seed)),
        });
        let routes = axum::Router::new()
            .route("/hit/{run_id}/{node_id}", get(record))
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the recorder's runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("the recorder's listener");
                tokio::spawn(async move {
                    let _ = axum::serve(
                        listener,
                        routes.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .await;
                });
                let _ = stopped.await;
            });
            // Dropping the runtime here ends every connection still open.
        });
        Self {
            base_url: format!("http://{address}"),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn hit_count(&self) -> usize {
        lock(&self.shared.state).hits.len()
    }

    /// How many distinct steps have been requested (repeats count once).
    fn steps_requested(&self) -> usize {
        let state = lock(&self.shared.state);
        let steps: BTreeSet<(&str, &str)> = state
            .hits
            .iter()
            .map(|hit| (hit.run_id.as_str(), hit.node_id.as_str()))
            .collect();
        steps.len()
    }

    fn hits(&self) -> Vec<Hit> {
        lock(&self.shared.state).hits.clone()
    }

    /// Stops answering and returns `sender`'s requests not yet answered: until `thaw`,
    /// none of them (nor any arriving meanwhile) gets a response.
    fn freeze(&self, sender: u32) -> Vec<Hit> {
        let mut state = lock(&self.shared.state);
        state.frozen = true;
        state
            .hits
            .iter()
            .filter(|hit| hit.fate == Fate::InFlight && hit.sender == Some(sender))
            .cloned()
            .collect()
    }

    fn thaw(&self) {
        lock(&self.shared.state).frozen = false;
        self.shared.thaws.send_modify(|thaws| *thaws += 1);
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

async fn record(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((run_id, node_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Json<Value> {
    let received_at = Utc::now();
    // /proc/net/tcp is read in pieces and may skip a line while connections come and go,
    // so a miss is looked up again; a dead sender's connection stays missing.
    let sender = (0..3).find_map(|_| sender_of(peer.port(), shared.port));
    let index = {
        let mut state = lock(&shared.state);
        state.hits.push(Hit {
            run_id: run_id.clone(),
            node_id: node_id.clone(),
            idempotency_key: headers
                .get("idempotency-key")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            sender,
            received_at,
            fate: Fate::InFlight,
        });
        state.hits.len() - 1
    };
    // The server drops this handler when the sender's connection dies.
    let abandoned = AbandonedUnlessAnswered {
        shared: Arc::clone(&shared),
        index,
    };
    let delay = lock(&shared.delays).gen_range(0..=MAX_ANSWER_DELAY_MS);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    loop {
        // Subscribed before the check, so a thaw after it is not missed.
        let mut thaws = shared.thaws.subscribe();
        {
            let mut state = lock(&shared.state);
            if !state.frozen {
                state.hits[index].fate = Fate::Answered;
                break;
            }
        }
        let _ = thaws.changed().await;
    }
    drop(abandoned);
    Json(json!({"run": run_id, "node": node_id}))
}

struct AbandonedUnlessAnswered {
    shared: Arc<Shared>,
    index: usize,
}

impl Drop for AbandonedUnlessAnswered {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        let hit = &mut state.hits[self.index];
        if hit.fate == Fate::InFlight {
            hit.fate = Fate::Abandoned;
        }
    }
}

// ---- which process sent a request ----

/// The child process of this test binary (a server) that holds the TCP connection from
/// local port `local_port` to the recorder's `recorder_port`: Linux's /proc/net/tcp names
/// the connection's socket inode, and /proc/<pid>/fd shows who holds it.
fn sender_of(local_port: u16, recorder_port: u16) -> Option<u32> {
    let socket = format!("socket:[{}]", socket_inode(local_port, recorder_port)?);
    child_pids().into_iter().find(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.flatten().any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == socket.as_str())
            })
        })
    })
}

fn socket_inode(local_port: u16, remote_port: u16) -> Option<String> {
    let port_of = |address: &str| {
        address
            .rsplit(':')
            .next()
            .and_then(|hex| u16::from_str_radix(hex, 16).ok())
    };
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let (local, remote, inode) = (fields.get(1)?, fields.get(2)?, fields.get(9)?);
                    (port_of(local) == Some(local_port)
                        && port_of(remote) == Some(remote_port)
                        && *inode != "0")
                        .then(|| (*inode).to_owned())
                })
                .collect::<Vec<_>>()
        })
        .next()
}

/// Every thread of this process lists the children it spawned.
fn child_pids() -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| {
            children
                .split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

// ---- the scenario's pieces ----

fn seed() -> u64 {
    std::env::var("AOS_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.trim().parse().ok())
        .unwrap_or_else(rand::random)
}

/// `start` → `s1` → ... → `s5`, each step a GET of the recorder naming its run and node.
fn chain_of_requests(recorder_url: &str) -> Value {
    let mut nodes = vec![json!({"id": TRIGGER, "type": "trigger.manual", "config": {}})];
    let mut edges = Vec::new();
    let mut previous = TRIGGER;
    for node in HTTP_STEPS {
        nodes.push(json!({
            "id": node,
            "type": "http.request",
            "config": {"method": "GET", "url": format!("{recorder_url}/hit/{{{{ run.id }}}}/{node}")}
        }));
        edges.push(json!({"from": previous, "to": node}));
        previous = node;
    }
    json!({"nodes": nodes, "edges": edges})
}

/// A server that reaches the recorder, loses a killed peer's runs after a second, and
/// runs every queued run of the one workspace at once.
fn crashable_server(workers: usize) -> TestAppBuilder {
    TestApp::builder()
        .arg("--http-allow-private")
        .arg("--run-lease-ms")
        .arg(LEASE_MS)
        .arg("--workers")
        .arg(&workers.to_string())
        .arg("--runs-per-workspace")
        .arg("100")
}

/// A workspace owner and a workflow of `chain_of_requests`.
async fn owner_and_workflow(app: &TestApp, recorder: &Recorder) -> (Session, String) {
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let workspace_id = app.create_workspace(&owner.access_token, "Acme").await;
    let workflow = app
        .create_workflow(
            &owner.access_token,
            &workspace_id,
            "chain",
            chain_of_requests(&recorder.base_url),
        )
        .await;
    (owner, string_at(&workflow["id"]))
}

/// Queues the runs all at once, so the busy window that follows is mostly execution.
async fn queue_runs(
    app: &TestApp,
    token: &str,
    workflow_id: &str,
    numbers: std::ops::Range<usize>,
) -> Vec<String> {
    let queued = numbers.map(|n| app.run_workflow(token, workflow_id, json!({"n": n})));
    futures::future::join_all(queued)
        .await
        .iter()
        .map(|run| string_at(&run["id"]))
        .collect()
}

/// One kill of one server.
struct Crash {
    victim: u32,
    killed_at: DateTime<Utc>,
    /// The victim's requests that were unanswered when it died.
    interrupted: Vec<Hit>,
    /// How many requests the recorder had seen when the victim died.
    requests_before: usize,
}

/// Waits until `target` distinct steps have been requested; the server must stay up.
async fn wait_for_steps(recorder: &Recorder, target: usize, app: &mut TestApp, context: &str) {
    let deadline = Instant::now() + PROGRESS_DEADLINE;
    while recorder.steps_requested() < target {
        assert!(
            app.is_running(),
            "{context}: the server died on its own\n{}",
            app.log_lines().join("\n")
        );
        assert!(
            Instant::now() < deadline,
            "{context}: only {} of {target} steps requested within {PROGRESS_DEADLINE:?}; the runs are stuck",
            recorder.steps_requested()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// SIGKILLs `app` right now, cutting off every request it has unanswered.
async fn kill_now(app: TestApp, recorder: &Recorder) -> (Remains, Crash) {
    let victim = app.pid();
    let interrupted = recorder.freeze(victim);
    kill(app, victim, interrupted, recorder).await
}

/// SIGKILLs `app` at the first moment it has a request in flight at the recorder (found
/// by polling at random short intervals), so the kill surely interrupts one of its steps.
async fn kill_mid_step(
    app: TestApp,
    recorder: &Recorder,
    rng: &mut StdRng,
    context: &str,
) -> (Remains, Crash) {
    let deadline = Instant::now() + PROGRESS_DEADLINE;
    let victim = app.pid();
    loop {
        let interrupted = recorder.freeze(victim);
        if !interrupted.is_empty() {
            return kill(app, victim, interrupted, recorder).await;
        }
        recorder.thaw();
        assert!(
            Instant::now() < deadline,
            "{context}: the server to be killed (pid {victim}) had no step in flight within {PROGRESS_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(rng.gen_range(1..=5))).await;
    }
}

/// Kills `app` while the recorder is frozen, so `interrupted` stays unanswered.
async fn kill(
    app: TestApp,
    victim: u32,
    interrupted: Vec<Hit>,
    recorder: &Recorder,
) -> (Remains, Crash) {
    let killed_at = Utc::now();
    let remains = app.kill_hard();
    let requests_before = recorder.hit_count();
    recorder.thaw();
    let crash = Crash {
        victim,
        killed_at,
        interrupted,
        requests_before,
    };
    (remains, crash)
}

/// A count of requested steps somewhere in the busy window ahead: at most `1 / parts` of
/// the way from the steps requested so far to all `expected` steps of the runs queued, so
/// that it is surely reached and work is left after it for later kills.
fn kill_point(recorder: &Recorder, expected: usize, parts: usize, rng: &mut StdRng) -> usize {
    let requested = recorder.steps_requested();
    let span = expected.saturating_sub(requested) / parts;
    requested + rng.gen_range(span.min(1)..=span)
}

/// The recorder told the servers apart: every request it attributed came from one of
/// `servers`, and more than one of them sent requests.
#[track_caller]
fn assert_senders_known(hits: &[Hit], servers: &[u32], context: &str) {
    let senders: BTreeSet<u32> = hits.iter().filter_map(|hit| hit.sender).collect();
    assert!(
        senders.len() > 1 && senders.iter().all(|sender| servers.contains(sender)),
        "{context}: requests came from {senders:?}, the servers were {servers:?}"
    );
}

/// Waits for every run to end and returns each with `RUN_FIELDS`.
async fn finished_runs(app: &TestApp, token: &str, run_ids: &[String]) -> Vec<Value> {
    let mut runs = Vec::new();
    for run_id in run_ids {
        runs.push(app.wait_for_run(token, run_id).await);
    }
    runs
}

// ---- the checks ----

/// How much the crashes made the receivers do twice.
#[derive(Debug, Default)]
struct Repeats {
    /// Steps requested more than once (each time with the same key).
    steps_requested_again: usize,
    /// Requests beyond the first of their step.
    extra_requests: usize,
}

fn parse_time(value: &Value, what: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&string_at(value))
        .unwrap_or_else(|error| panic!("{what} is not RFC 3339 ({error}): {value}"))
        .with_timezone(&Utc)
}

fn node_event_kinds(run: &Value, node_id: &str) -> Vec<String> {
    run["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|event| event["nodeId"] == node_id)
        .map(|event| string_at(&event["kind"]))
        .collect()
}

fn run_event_kinds(run: &Value) -> Vec<String> {
    run["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|event| event["nodeId"].is_null())
        .map(|event| string_at(&event["kind"]))
        .collect()
}

/// Which server sent `hit`: the one the recorder saw, or else the one dying when it
/// arrived.
#[track_caller]
fn sender(hit: &Hit, crashes: &[Crash], context: &str) -> u32 {
    let distance = |crash: &Crash| (hit.received_at - crash.killed_at).num_milliseconds().abs();
    hit.sender
        .or_else(|| {
            crashes
                .iter()
                .min_by_key(|crash| distance(crash))
                .filter(|crash| distance(crash) <= DYING_SENDER_SLACK_MS)
                .map(|crash| crash.victim)
        })
        .unwrap_or_else(|| panic!("{context}: a request from no server of this test: {hit:?}"))
}

/// Every run succeeded with all its steps, each started and journaled once. Every step
/// was requested at least once, always with its own key, never after its result was
/// journaled, at most once by each server, and again only after the server of the
/// earlier request was killed; every request a kill cut off was sent again by another
/// server.
#[track_caller]
fn assert_exactly_once(runs: &[Value], hits: &[Hit], crashes: &[Crash], context: &str) -> Repeats {
    let mut by_step: BTreeMap<(&str, &str), Vec<&Hit>> = BTreeMap::new();
    for hit in hits {
        by_step
            .entry((hit.run_id.as_str(), hit.node_id.as_str()))
            .or_default()
            .push(hit);
    }
    let known: BTreeSet<(String, String)> = runs
        .iter()
        .flat_map(|run| {
            let run_id = string_at(&run["id"]);
            HTTP_STEPS
                .iter()
                .map(move |node| (run_id.clone(), (*node).to_owned()))
        })
        .collect();
    for hit in hits {
        assert!(
            known.contains(&(hit.run_id.clone(), hit.node_id.clone())),
            "{context}: a request for no step of these runs: {hit:?}"
        );
        sender(hit, crashes, context);
    }
    let killed_at: BTreeMap<u32, DateTime<Utc>> = crashes
        .iter()
        .map(|crash| (crash.victim, crash.killed_at))
        .collect();

    let mut repeats = Repeats::default();
    for run in runs {
        let run_id = string_at(&run["id"]);
        let run_context = format!("{context}, run {run_id}: {}", pretty(run));
        assert_eq!(run["status"], "SUCCEEDED", "{run_context}");
        assert_eq!(run["error"], Value::Null, "{run_context}");

        let events = run["events"].as_array().cloned().unwrap_or_default();
        assert_contiguous_events(&run_id, &events);
        assert_eq!(
            run_event_kinds(run),
            ["RUN_QUEUED", "RUN_STARTED", "RUN_SUCCEEDED"],
            "{run_context}"
        );

        let steps = run["steps"].as_array().cloned().unwrap_or_default();
        let nodes: BTreeSet<String> = steps.iter().map(|s| string_at(&s["nodeId"])).collect();
        let expected: BTreeSet<String> = std::iter::once(TRIGGER)
            .chain(HTTP_STEPS)
            .map(str::to_owned)
            .collect();
        assert_eq!(nodes, expected, "one step per node: {run_context}");
        for step in &steps {
            let node = string_at(&step["nodeId"]);
            assert_eq!(step["status"], "SUCCEEDED", "{node}: {run_context}");
            assert_eq!(step["attempt"], 1, "{node}: {run_context}");
            assert_eq!(
                node_event_kinds(run, &node),
                ["STEP_STARTED", "STEP_SUCCEEDED"],
                "{node} started and succeeded once: {run_context}"
            );
            if node == TRIGGER {
                assert_eq!(step["output"], run["input"], "{run_context}");
                continue;
            }
            assert_eq!(step["output"]["status"], 200, "{node}: {run_context}");
            assert_eq!(
                step["output"]["body"],
                json!({"run": run_id, "node": node}),
                "{node}: {run_context}"
            );

            let finished_at = parse_time(&step["finishedAt"], "finishedAt");
            let step_hits = by_step
                .get(&(run_id.as_str(), node.as_str()))
                .cloned()
                .unwrap_or_default();
            let step_context = format!("{context}, run {run_id}, step {node}: {step_hits:#?}");
            assert!(!step_hits.is_empty(), "{step_context}: never requested");
            let key = format!("{run_id}:{node}");
            for hit in &step_hits {
                assert_eq!(
                    hit.idempotency_key.as_deref(),
                    Some(key.as_str()),
                    "{step_context}: every request of a step carries its key"
                );
                assert!(
                    hit.received_at <= finished_at + chrono::Duration::milliseconds(CLOCK_SLACK_MS),
                    "{step_context}: requested at {} after its result was journaled at {finished_at}",
                    hit.received_at
                );
            }
            for pair in step_hits.windows(2) {
                let (earlier, later) = (
                    sender(pair[0], crashes, context),
                    sender(pair[1], crashes, context),
                );
                assert_ne!(
                    earlier, later,
                    "{step_context}: one server requested the step twice"
                );
                let earlier_died = killed_at.get(&earlier).copied().unwrap_or_else(|| {
                    panic!("{step_context}: requested again though server {earlier}, which requested it first, was never killed")
                });
                assert!(
                    earlier_died < pair[1].received_at,
                    "{step_context}: server {later} requested it again while server {earlier}, which requested it first, was still alive (killed at {earlier_died})"
                );
            }
            if step_hits.len() > 1 {
                repeats.steps_requested_again += 1;
                repeats.extra_requests += step_hits.len() - 1;
            }
        }
        assert_eq!(
            run["output"],
            steps
                .iter()
                .find(|step| step["nodeId"] == "s5")
                .map(|step| step["output"].clone())
                .unwrap_or_default(),
            "the last step's output is the run's: {run_context}"
        );
    }

    for crash in crashes {
        for cut_off in &crash.interrupted {
            let step_hits = by_step
                .get(&(cut_off.run_id.as_str(), cut_off.node_id.as_str()))
                .cloned()
                .unwrap_or_default();
            assert!(
                step_hits.iter().any(|hit| hit.received_at > crash.killed_at
                    && sender(hit, crashes, context) != crash.victim),
                "{context}: a request the kill of server {} cut off was never sent again: {cut_off:?}\nits step's requests: {step_hits:#?}",
                crash.victim
            );
        }
    }
    repeats
}

// ---- the tests ----

const RUNS_PER_SCENARIO: usize = 20;
const KILL_ROUNDS: usize = 4;

/// One server, killed `KILL_ROUNDS` times at random moments while its runs are in flight
/// and restarted on the same data dir and database each time.
async fn kill_and_restart_one_server(seed: u64) -> Repeats {
    let context = format!("seed {seed} (AOS_CRASH_SEED={seed})");
    println!("crash scenario: {context}");
    let mut rng = StdRng::seed_from_u64(seed);
    let recorder = Recorder::start(rng.r#gen());
    let mut app = crashable_server(8).spawn().await;
    let (owner, workflow_id) = owner_and_workflow(&app, &recorder).await;
    let token = owner.access_token.as_str();
    let half = RUNS_PER_SCENARIO / 2;
    let total_steps = RUNS_PER_SCENARIO * HTTP_STEPS.len();

    let mut run_ids = queue_runs(&app, token, &workflow_id, 0..half).await;
    let mut servers = vec![app.pid()];
    let mut crashes = Vec::new();
    for round in 0..KILL_ROUNDS {
        // Round 0 sees only the first half of the runs; the rest share the whole.
        let (expected, parts) = if round == 0 {
            (half * HTTP_STEPS.len(), 2)
        } else {
            (total_steps, KILL_ROUNDS - round + 1)
        };
        let target = kill_point(&recorder, expected, parts, &mut rng);
        let round_context = format!("{context}, round {round}");
        wait_for_steps(&recorder, target, &mut app, &round_context).await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..=15))).await;
        let (remains, crash) = kill_now(app, &recorder).await;
        println!(
            "{round_context}: killed after {} requests, {} in flight",
            crash.requests_before,
            crash.interrupted.len()
        );
        crashes.push(crash);
        // Sometimes the runs' leases have expired by the restart, sometimes not.
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..=300))).await;
        app = crashable_server(8)
            .data_dir(remains.data_dir)
            .database(remains.database)
            .spawn()
            .await;
        servers.push(app.pid());
        if round == 0 {
            run_ids.extend(queue_runs(&app, token, &workflow_id, half..RUNS_PER_SCENARIO).await);
        }
    }

    let runs = finished_runs(&app, token, &run_ids).await;
    let hits = recorder.hits();
    assert_senders_known(&hits, &servers, &context);
    let repeats = assert_exactly_once(&runs, &hits, &crashes, &context);
    println!("{context}: {KILL_ROUNDS} kills, {repeats:?}");
    repeats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_run_resumes_every_run_without_losing_or_repeating_a_step() {
    let seed = seed();
    kill_and_restart_one_server(seed).await;
    kill_and_restart_one_server(seed.wrapping_add(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_database_finishes_the_runs_of_a_killed_one() {
    let Some(database) = TestDatabase::create_if_configured().await else {
        eprintln!(
            "skipped: two servers need a shared Postgres database; set AOS_TEST_DATABASE_URL"
        );
        return;
    };
    let seed = seed();
    let context = format!("seed {seed} (AOS_CRASH_SEED={seed})");
    println!("two-server crash scenario: {context}");
    let mut rng = StdRng::seed_from_u64(seed);
    let recorder = Recorder::start(rng.r#gen());
    // One master key for both, so a token signed by one verifies on the other.
    let master_key = base64::engine::general_purpose::STANDARD.encode(rng.r#gen::<[u8; 32]>());
    let server = || {
        crashable_server(3)
            .env("AOS_MASTER_KEY", &master_key)
            .database(None)
            .arg("--database-url")
            .arg(&database.url)
    };
    let mut a = server().spawn().await;
    let mut b = server().spawn().await;
    let mut servers = vec![a.pid(), b.pid()];
    let (owner, workflow_id) = owner_and_workflow(&a, &recorder).await;
    let token = owner.access_token.as_str();
    let total_steps = RUNS_PER_SCENARIO * HTTP_STEPS.len();

    // Both servers work; A takes the runs through its API. B is killed mid-step, and A
    // finishes what B held once B's leases expire.
    let first = queue_runs(&a, token, &workflow_id, 0..RUNS_PER_SCENARIO).await;
    let target = kill_point(&recorder, total_steps, 2, &mut rng);
    wait_for_steps(&recorder, target, &mut b, &context).await;
    let (b_remains, b_crash) = kill_mid_step(b, &recorder, &mut rng, &context).await;
    println!(
        "{context}: killed B after {} requests, cutting off {}",
        b_crash.requests_before,
        b_crash.interrupted.len()
    );
    let runs = finished_runs(&a, token, &first).await;
    let first_repeats = assert_exactly_once(
        &runs,
        &recorder.hits(),
        std::slice::from_ref(&b_crash),
        &context,
    );
    println!("{context}: after B's crash, {first_repeats:?}");

    // B comes back. A takes new runs through its API and is killed mid-step; B finishes
    // them and shows every run, though all were queued on A.
    let b = server().data_dir(b_remains.data_dir).spawn().await;
    servers.push(b.pid());
    let second = queue_runs(
        &a,
        token,
        &workflow_id,
        RUNS_PER_SCENARIO..2 * RUNS_PER_SCENARIO,
    )
    .await;
    let target = kill_point(&recorder, 2 * total_steps, 2, &mut rng);
    wait_for_steps(&recorder, target, &mut a, &context).await;
    let (_a_remains, a_crash) = kill_mid_step(a, &recorder, &mut rng, &context).await;
    println!(
        "{context}: killed A after {} requests, cutting off {}",
        a_crash.requests_before,
        a_crash.interrupted.len()
    );
    let on_b = data(
        &b.gql_as(token, "query { viewer { user { email } } }", json!({}))
            .await,
    )["viewer"]["user"]["email"]
        .clone();
    assert_eq!(on_b, "owner@example.com", "A's token works on B");
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    let runs = finished_runs(&b, token, &all).await;
    let crashes = [b_crash, a_crash];
    let hits = recorder.hits();
    assert_senders_known(&hits, &servers, &context);
    let repeats = assert_exactly_once(&runs, &hits, &crashes, &context);
    println!("{context}: 2 kills, {repeats:?}");
}

// ---- the check itself ----

/// A run as the API returns it when every step succeeded once, each finishing at `at`
/// plus its position in seconds.
fn journaled_run(run_id: &str, at: DateTime<Utc>) -> Value {
    let nodes: Vec<&str> = std::iter::once(TRIGGER).chain(HTTP_STEPS).collect();
    let output = |node: &str| {
        if node == TRIGGER {
            json!({})
        } else {
            json!({"status": 200, "headers": {}, "body": {"run": run_id, "node": node}})
        }
    };
    let steps: Vec<Value> = nodes
        .iter()
        .zip(1..)
        .map(|(node, position)| {
            json!({
                "nodeId": node, "status": "SUCCEEDED", "attempt": 1, "output": output(node),
                "finishedAt": (at + chrono::Duration::seconds(position)).to_rfc3339(),
            })
        })
        .collect();
    let mut kinds = vec![(None, "RUN_QUEUED"), (None, "RUN_STARTED")];
    for node in &nodes {
        kinds.push((Some(*node), "STEP_STARTED"));
        kinds.push((Some(*node), "STEP_SUCCEEDED"));
    }
    kinds.push((None, "RUN_SUCCEEDED"));
    let events: Vec<Value> = kinds
        .into_iter()
        .zip(1..)
        .map(|((node, kind), seq)| json!({"runId": run_id, "seq": seq, "kind": kind, "nodeId": node}))
        .collect();
    json!({
        "id": run_id, "status": "SUCCEEDED", "error": null, "input": {},
        "output": output("s5"), "steps": steps, "events": events,
    })
}

#[test]
fn the_exactly_once_check_accepts_retries_across_kills_and_rejects_every_other_repeat() {
    let run_id = "run-1";
    let t0 = Utc::now();
    let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
    let run = journaled_run(run_id, t0);
    // s1 finishes at t0 + 2 s, s2 at t0 + 3 s, ...; each is first requested 500 ms before.
    let hit = |node: &str, sender: u32, ms: i64| Hit {
        run_id: run_id.into(),
        node_id: node.into(),
        idempotency_key: Some(format!("{run_id}:{node}")),
        sender: Some(sender),
        received_at: at(ms),
        fate: Fate::Answered,
    };
    let once_each = || -> Vec<Hit> {
        HTTP_STEPS
            .iter()
            .zip(1..)
            .map(|(node, position)| hit(node, 100, position * 1000 + 500))
            .collect()
    };
    let crash = |victim: u32, ms: i64, interrupted: Vec<Hit>| Crash {
        victim,
        killed_at: at(ms),
        interrupted,
        requests_before: 0,
    };
    let with = |extra: Vec<Hit>| -> Vec<Hit> { once_each().into_iter().chain(extra).collect() };
    // Every step once, and s1 as given.
    let with_s1 = |s1: Vec<Hit>| -> Vec<Hit> {
        s1.into_iter()
            .chain(once_each().into_iter().filter(|hit| hit.node_id != "s1"))
            .collect()
    };
    let unseen = |hit: Hit| Hit {
        sender: None,
        ..hit
    };

    struct Case {
        name: &'static str,
        hits: Vec<Hit>,
        crashes: Vec<Crash>,
        /// `None`: accepted; else part of the check's complaint.
        rejected_for: Option<&'static str>,
    }
    let cut_off = hit("s1", 100, 1500);
    let cases = [
        Case {
            name: "one request per step",
            hits: once_each(),
            crashes: vec![],
            rejected_for: None,
        },
        Case {
            name: "a cut-off request sent again by the next server",
            hits: with(vec![hit("s1", 200, 1800)]),
            crashes: vec![crash(100, 1600, vec![cut_off.clone()])],
            rejected_for: None,
        },
        Case {
            name: "a dying server's request, seen after its death",
            hits: with_s1(vec![unseen(hit("s1", 100, 1610)), hit("s1", 200, 1800)]),
            crashes: vec![crash(100, 1600, vec![])],
            rejected_for: None,
        },
        Case {
            name: "a request whose sender is unknown though no server died",
            hits: with_s1(vec![unseen(hit("s1", 100, 1500))]),
            crashes: vec![],
            rejected_for: Some("from no server"),
        },
        Case {
            name: "one server requests a step twice",
            hits: with(vec![hit("s1", 100, 1800)]),
            crashes: vec![],
            rejected_for: Some("requested the step twice"),
        },
        Case {
            name: "a repeat though the first sender was never killed",
            hits: with(vec![hit("s1", 200, 1800)]),
            crashes: vec![],
            rejected_for: Some("was never killed"),
        },
        Case {
            name: "a repeat while the first sender was still alive",
            hits: with(vec![hit("s1", 200, 1800)]),
            crashes: vec![crash(100, 1900, vec![])],
            rejected_for: Some("was still alive"),
        },
        Case {
            name: "a request after the step's result was journaled",
            hits: with(vec![hit("s1", 200, 2100)]),
            crashes: vec![crash(100, 1600, vec![])],
            rejected_for: Some("after its result was journaled"),
        },
        Case {
            name: "a cut-off request never sent again",
            hits: once_each(),
            crashes: vec![crash(100, 1600, vec![cut_off])],
            rejected_for: Some("was never sent again"),
        },
        Case {
            name: "a step never requested",
            hits: once_each()
                .into_iter()
                .filter(|hit| hit.node_id != "s3")
                .collect(),
            crashes: vec![],
            rejected_for: Some("never requested"),
        },
        Case {
            name: "a request with another step's key",
            hits: once_each()
                .into_iter()
                .map(|mut hit| {
                    if hit.node_id == "s2" {
                        hit.idempotency_key = Some(format!("{run_id}:s1"));
                    }
                    hit
                })
                .collect(),
            crashes: vec![],
            rejected_for: Some("carries its key"),
        },
    ];

    for case in cases {
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert_exactly_once(
                std::slice::from_ref(&run),
                &case.hits,
                &case.crashes,
                case.name,
            )
        }));
        let complaint = checked.err().map(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
                .unwrap_or_default()
        });
        match (case.rejected_for, complaint) {
            (None, None) => {}
            (Some(reason), Some(complaint)) => assert!(
                complaint.contains(reason),
                "{}: rejected, but not for {reason:?}: {complaint}",
                case.name
            ),
            (expected, complaint) => {
                panic!("{}: expected {expected:?}, got {complaint:?}", case.name)
            }
        }
    }
}
