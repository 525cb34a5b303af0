//! Observability, against the real binary: the engine's Prometheus metrics, error reports
//! to Sentry, and JSON logs with the ids of the request, run and step they are about.
//!
//! Invariants protected: runs and steps are counted once each, by status and node type,
//! with no run, node or workspace id as a label; the queue's gauges are published; rate
//! limit refusals are counted per workspace; an error reaches Sentry without the request,
//! the user or any secret the server handled; every log line is JSON, a run's lines carry
//! its `run_id` and `workspace_id`, a step's its `node_id` and `node_type`, a run executed
//! in place for a webhook is inside that request's span, and a webhook's key (its path)
//! is never logged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

use crate::harness::{PASSWORD, TestApp, data, definitions, string_at};

/// A hang guard for what the server does in the background, not a speed requirement.
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);
const ACTIVATE: &str =
    "mutation($input: SetWorkflowActiveInput!) { setWorkflowActive(input: $input) { active } }";

// ---- metrics ----

/// One sample of the Prometheus text format: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    Some((key.to_owned(), value.trim_matches('"').to_owned()))
                })
                .collect();
            Some(Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().ok()?,
            })
        })
        .collect()
}

struct Metrics {
    text: String,
    samples: Vec<Sample>,
}

impl Metrics {
    /// The value of the series with exactly these labels, if it exists.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|sample| sample.name == name && sample.labels == wanted)
            .map(|sample| sample.value)
    }

    /// Like `get`, 0 for a series not created yet (a counter that never counted).
    fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    #[track_caller]
    fn assert_value(&self, name: &str, labels: &[(&str, &str)], expected: f64) {
        assert_eq!(
            self.get(name, labels),
            Some(expected),
            "{name}{labels:?} in:\n{}",
            self.text
        );
    }
}

async fn scrape(app: &TestApp) -> Metrics {
    let response = app
        .http()
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("the metrics");
    Metrics {
        samples: parse_samples(&text),
        text,
    }
}

/// Scrapes until `done` holds: counters move right after the write they count commits,
/// and the queue's gauges every few seconds.
async fn scrape_until(app: &TestApp, what: &str, done: impl Fn(&Metrics) -> bool) -> Metrics {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let metrics = scrape(app).await;
        if done(&metrics) {
            return metrics;
        }
        assert!(
            Instant::now() < deadline,
            "the metrics never showed {what}:\n{}",
            metrics.text
        );
        tokio::time::sleep(POLL).await;
    }
}

fn manual_then(id: &str, node: Value) -> Value {
    let mut node = node;
    node["id"] = json!(id);
    json!({
        "nodes": [{"id": "start", "type": "trigger.manual", "config": {}}, node],
        "edges": [{"from": "start", "to": id}]
    })
}

#[tokio::test]
async fn runs_and_steps_are_counted_by_status_and_node_type() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace_id = app.create_workspace(token, "Acme").await;
    let greets = app
        .create_workflow(token, &workspace_id, "greets", definitions::manual())
        .await;
    let fails = app
        .create_workflow(
            token,
            &workspace_id,
            "fails",
            manual_then(
                "refuse",
                json!({"type": "fail", "config": {"message": "no luck"}}),
            ),
        )
        .await;
    let waits = app
        .create_workflow(token, &workspace_id, "waits", definitions::delayed(600_000))
        .await;

    let mut ended = Vec::new();
    for workflow in [&greets, &greets, &fails] {
        let run = app
            .run_workflow(token, &string_at(&workflow["id"]), json!({}))
            .await;
        ended.push(app.wait_for_run(token, &string_at(&run["id"])).await);
    }
    let statuses: Vec<&Value> = ended.iter().map(|run| &run["status"]).collect();
    assert_eq!(
        statuses,
        [&json!("SUCCEEDED"), &json!("SUCCEEDED"), &json!("FAILED")]
    );
    app.run_workflow(token, &string_at(&waits["id"]), json!({}))
        .await;

    let metrics = scrape_until(&app, "four runs started and one asleep", |m| {
        m.count("aos_runs_started_total", &[]) >= 4.0
            && m.get("aos_queue_runs", &[("state", "delayed")]) == Some(1.0)
    })
    .await;

    metrics.assert_value("aos_runs_started_total", &[], 4.0);
    metrics.assert_value("aos_runs_finished_total", &[("status", "succeeded")], 2.0);
    metrics.assert_value("aos_runs_finished_total", &[("status", "failed")], 1.0);
    assert_eq!(
        metrics.get("aos_runs_finished_total", &[("status", "cancelled")]),
        None
    );
    metrics.assert_value(
        "aos_run_duration_seconds_count",
        &[("status", "succeeded")],
        2.0,
    );
    metrics.assert_value(
        "aos_run_duration_seconds_count",
        &[("status", "failed")],
        1.0,
    );
    for (node_type, outcome, attempts) in [
        ("trigger.manual", "succeeded", 4.0),
        ("set", "succeeded", 2.0),
        ("fail", "failed", 1.0),
        ("delay", "waiting", 1.0),
    ] {
        metrics.assert_value(
            "aos_step_attempts_total",
            &[("node_type", node_type), ("outcome", outcome)],
            attempts,
        );
        metrics.assert_value(
            "aos_step_duration_seconds_count",
            &[("node_type", node_type)],
            attempts,
        );
    }
    assert_eq!(
        metrics.count("aos_step_retries_total", &[("node_type", "fail")]),
        0.0,
        "a node without a retry policy is not retried"
    );
    metrics.assert_value("aos_queue_runs", &[("state", "due")], 0.0);
    metrics.assert_value("aos_queue_runs", &[("state", "leased")], 0.0);
    metrics.assert_value("aos_queue_runs_lease_expired", &[], 0.0);
    metrics.assert_value("aos_queue_oldest_due_age_seconds", &[], 0.0);
    // Bounded labels only: nothing names a run, a node or a workspace.
    let run_ids: Vec<String> = ended.iter().map(|run| string_at(&run["id"])).collect();
    for sample in metrics
        .samples
        .iter()
        .filter(|s| s.name.starts_with("aos_run") || s.name.starts_with("aos_step"))
    {
        for value in sample.labels.values() {
            assert!(
                !run_ids.contains(value)
                    && *value != workspace_id
                    && !["start", "greet", "refuse", "wait", "done"].contains(&value.as_str()),
                "an unbounded label on {sample:?}"
            );
        }
    }
}

/// Refusals are counted under the refused workspace's id (the issue asks for it; a
/// workspace's series only exists once it has been refused).
#[tokio::test]
async fn rate_limit_refusals_are_counted_per_workspace() {
    let app = TestApp::builder()
        .env("AOS_RATE_LIMIT_RPS", "1")
        .env("AOS_RATE_LIMIT_BURST", "2")
        .spawn()
        .await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let busy = app.create_workspace(token, "Busy").await;
    let quiet = app.create_workspace(token, "Quiet").await;

    let mut refused = 0.0;
    for _ in 0..8 {
        let response = app
            .gql_as(
                token,
                "query($id: ID!) { workspace(id: $id) { id } }",
                json!({"id": busy}),
            )
            .await;
        if response["errors"][0]["extensions"]["code"] == "RATE_LIMITED" {
            refused += 1.0;
        }
    }

    assert!(refused >= 1.0, "a burst of two cannot admit eight requests");
    let metrics = scrape(&app).await;
    metrics.assert_value("aos_rate_limited_total", &[("workspace", &busy)], refused);
    assert_eq!(
        metrics.get("aos_rate_limited_total", &[("workspace", &quiet)]),
        None
    );
}

// ---- Sentry ----

/// A stand-in for Sentry's ingestion endpoint on loopback: keeps every envelope posted.
struct FakeSentry {
    dsn: String,
    envelopes: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeSentry {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Sentry");
        let address = listener.local_addr().expect("its address");
        let envelopes = Arc::new(Mutex::new(Vec::new()));
        let routes = axum::Router::new()
            .route("/api/{project}/envelope/", post(receive))
            .with_state(Arc::clone(&envelopes));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, routes).await;
        });
        Self {
            dsn: format!("http://public@{address}/1"),
            envelopes,
            server,
        }
    }

    fn envelopes(&self) -> Vec<String> {
        self.envelopes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The first event whose envelope contains `text`, with that whole envelope.
    async fn event_containing(&self, text: &str) -> (Value, String) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            for envelope in self.envelopes() {
                if !envelope.contains(text) {
                    continue;
                }
                if let Some(event) = event_of(&envelope) {
                    return (event, envelope);
                }
            }
            assert!(
                Instant::now() < deadline,
                "no Sentry event containing `{text}`; received:\n{}",
                self.envelopes().join("\n----\n")
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for FakeSentry {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(State(envelopes): State<Arc<Mutex<Vec<String>>>>, body: Bytes) -> &'static str {
    envelopes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(String::from_utf8_lossy(&body).into_owned());
    "{}"
}

/// The event item of an envelope: JSON lines, an item's header (`"type": "event"`)
/// followed by its payload.
fn event_of(envelope: &str) -> Option<Value> {
    let mut lines = envelope.lines();
    while let Some(line) = lines.next() {
        let header: Value = serde_json::from_str(line).ok()?;
        if header["type"] == "event" {
            return serde_json::from_str(lines.next()?).ok();
        }
    }
    None
}

/// By design no server log carries a secret, so there is no honest way to make one reach
/// Sentry from outside: what is checked here is that a real error's report, and the
/// breadcrumbs it brings, hold nothing secret of what the server handled around it (the
/// shapes the scrubber removes are unit-tested in `telemetry::scrub`). The error: the
/// master key file turns unreadable while the server runs, and a workspace's first
/// connection makes the vault re-read it.
#[tokio::test]
async fn an_error_reaches_sentry_without_request_user_or_secrets() {
    let sentry = FakeSentry::start().await;
    let app = TestApp::builder()
        .env("SENTRY_DSN", &sentry.dsn)
        .spawn()
        .await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.clone();
    let workspace_id = app.create_workspace(&token, "Acme").await;
    let api_token = app
        .create_token(&token, &workspace_id, &["WORKFLOWS_READ"])
        .await;
    let key_file = app.data_path().join("master.key");
    let master_key = std::fs::read_to_string(&key_file).expect("read master.key");
    let broken_key = "not base64: Zq8t1m0Hh3Qx91aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC";
    std::fs::write(&key_file, broken_key).expect("break master.key");
    let connection_secret = "hdr-key-7Hh3-Zq8t1m0-sentry-secret";

    let created = app
        .gql_as(
            &token,
            "mutation($input: CreateConnectionInput!) { createConnection(input: $input) { id } }",
            json!({"input": {"workspaceId": workspace_id, "connector": "http", "name": "crm",
                "credentials": {"kind": "apiKey", "in": "header", "name": "X-Api-Key", "value": connection_secret}}}),
        )
        .await;

    data(&created);
    let (event, envelope) = sentry
        .event_containing("re-reading the master keys failed")
        .await;
    // Sentry leaves out the level when it is the default, `error`.
    assert!(
        event.get("level").is_none_or(|level| level == "error"),
        "{event}"
    );
    assert_eq!(
        event["contexts"]["Rust Tracing Fields"]["error"]
            .as_str()
            .map(|error| error
                .ends_with("master.key holds an invalid key: Invalid symbol 32, offset 3.")),
        Some(true),
        "the error's detail is kept: {event}"
    );
    assert!(event.get("request").is_none(), "no request data: {event}");
    assert!(event.get("user").is_none(), "no user data: {event}");
    for secret in [
        PASSWORD,
        token.as_str(),
        owner.refresh_token.as_str(),
        api_token.token.as_str(),
        connection_secret,
        master_key.trim(),
        broken_key,
        "Zq8t1m0Hh3Qx91aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC",
    ] {
        assert!(
            !envelope.contains(secret),
            "`{secret}` reached Sentry:\n{envelope}"
        );
    }
}

// ---- logs ----

/// The server's stderr as JSON lines; every line must be one.
fn json_lines(app: &TestApp) -> Vec<Value> {
    app.log_lines()
        .iter()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("a log line is not JSON ({error}): {line}"))
        })
        .collect()
}

/// The span named `name` among a line's spans (outermost first), if it is inside one.
fn span<'l>(line: &'l Value, name: &str) -> Option<&'l Value> {
    line["spans"]
        .as_array()?
        .iter()
        .find(|span| span["name"] == name)
}

/// Waits for a log line for which `wanted` holds, and returns it.
async fn logged(app: &TestApp, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(line) = json_lines(app).into_iter().find(|line| wanted(line)) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "never logged {what}:\n{}",
            app.log_lines().join("\n")
        );
        tokio::time::sleep(POLL).await;
    }
}

fn is_message(line: &Value, message: &str) -> bool {
    line["fields"]["message"] == message
}

#[tokio::test]
async fn log_lines_are_json_with_the_ids_of_their_request_run_and_step() {
    let app = TestApp::builder()
        .env("RUST_LOG", "info,aos_engine=debug")
        .spawn()
        .await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace_id = app.create_workspace(token, "Acme").await;
    let queued = app
        .create_workflow(token, &workspace_id, "queued", definitions::manual())
        .await;
    let hook = app
        .create_workflow(
            token,
            &workspace_id,
            "hook",
            json!({
                "nodes": [
                    {"id": "hook", "type": "trigger.webhook", "config": {"respond": "onCompletion"}},
                    {"id": "greet", "type": "set", "config": {"fields": {"message": "hi"}}}
                ],
                "edges": [{"from": "hook", "to": "greet"}]
            }),
        )
        .await;
    data(
        &app.gql_as(
            token,
            ACTIVATE,
            json!({"input": {"id": string_at(&hook["id"]), "active": true}}),
        )
        .await,
    );
    let hook_url = string_at(&hook["webhookUrl"]);
    let hook_key = hook_url
        .rsplit('/')
        .next()
        .expect("a key at the end of the URL")
        .to_owned();

    let run = app
        .run_workflow(token, &string_at(&queued["id"]), json!({}))
        .await;
    let run_id = string_at(&run["id"]);
    app.wait_for_run(token, &run_id).await;
    let answered = app
        .http()
        .post(&hook_url)
        .json(&json!({"name": "Ada"}))
        .send()
        .await
        .expect("POST the webhook");
    assert_eq!(answered.status(), 200);

    // A queued run: its lines carry the run's ids, its step lines the step's.
    let finished = logged(&app, "the queued run's end", |line| {
        is_message(line, "run finished")
            && span(line, "run").is_some_and(|run| run["run_id"] == run_id.as_str())
    })
    .await;
    let run_span = span(&finished, "run").expect("inside the run's span");
    assert_eq!(
        run_span["workspace_id"],
        workspace_id.as_str(),
        "{finished}"
    );
    assert_eq!(finished["fields"]["status"], "succeeded", "{finished}");
    assert!(finished["fields"]["duration_ms"].is_u64(), "{finished}");
    assert!(
        span(&finished, "request").is_none(),
        "a worker's run: {finished}"
    );
    let step = logged(&app, "the queued run's `greet` step", |line| {
        is_message(line, "step attempt returned")
            && span(line, "run").is_some_and(|run| run["run_id"] == run_id.as_str())
            && span(line, "step").is_some_and(|step| step["node_id"] == "greet")
    })
    .await;
    let step_span = span(&step, "step").expect("inside the step's span");
    assert_eq!(step_span["node_type"], "set", "{step}");
    assert_eq!(step["fields"]["outcome"], "succeeded", "{step}");

    // A run executed in place for a webhook: inside the request that brought it.
    let in_place = logged(&app, "the webhook run's end", |line| {
        is_message(line, "run finished") && span(line, "request").is_some()
    })
    .await;
    let request = span(&in_place, "request").expect("inside the request's span");
    assert_eq!(request["route"], "/hooks/{key}", "{in_place}");
    let run_span = span(&in_place, "run").expect("and inside the run's span");
    assert_eq!(
        run_span["workspace_id"],
        workspace_id.as_str(),
        "{in_place}"
    );
    assert!(run_span["run_id"].is_string(), "{in_place}");

    assert_eq!(request["workspace_id"], workspace_id.as_str(), "{in_place}");

    // A GraphQL request's line names its operation, and the workspace it acted in once
    // authorized.
    let graphql = logged(&app, "the runWorkflow request", |line| {
        line["span"]["name"] == "request" && line["span"]["operation"] == "mutation.runWorkflow"
    })
    .await;
    assert_eq!(graphql["span"]["route"], "/graphql", "{graphql}");
    assert_eq!(
        graphql["span"]["workspace_id"],
        workspace_id.as_str(),
        "{graphql}"
    );
    assert!(graphql["span"]["request.id"].is_string(), "{graphql}");

    let logs = app.log_lines().join("\n");
    assert!(
        !logs.contains(&hook_key),
        "the webhook key is logged:\n{logs}"
    );
}

// ---- a worker process's metrics ----

/// A `worker` process, killed when dropped.
struct WorkerProcess(std::process::Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_worker_process_exports_its_runs_on_its_metrics_listener() {
    let Some(database) = crate::harness::TestDatabase::create_if_configured().await else {
        eprintln!("skipped: a worker beside a server needs AOS_TEST_DATABASE_URL");
        return;
    };
    const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    // The API node executes nothing: every run is the worker's.
    let app = TestApp::builder()
        .env("AOS_MASTER_KEY", MASTER_KEY)
        .database(None)
        .arg("--database-url")
        .arg(&database.url)
        .arg("--workers")
        .arg("0")
        .spawn()
        .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let worker_dir = crate::harness::DataDir::new();
    let _worker = WorkerProcess(
        crate::harness::binary()
            .arg("worker")
            .arg("--database-url")
            .arg(&database.url)
            .arg("--data-dir")
            .arg(worker_dir.path())
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("AOS_MASTER_KEY", MASTER_KEY)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start a worker"),
    );
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace = app.create_workspace(token, "Acme").await;
    let workflow = app
        .create_workflow(token, &workspace, "manual", definitions::manual())
        .await;
    let run = app
        .run_workflow(token, &string_at(&workflow["id"]), json!({}))
        .await;
    let finished = app.wait_for_run(token, &string_at(&run["id"])).await;
    assert_eq!(finished["status"], "SUCCEEDED", "{finished}");

    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = match app.http().get(&url).send().await {
            Ok(response) if response.status() == 200 => response.text().await.unwrap_or_default(),
            _ => String::new(),
        };
        let metrics = Metrics {
            samples: parse_samples(&text),
            text,
        };
        if metrics.count("aos_runs_finished_total", &[("status", "succeeded")]) >= 1.0 {
            assert!(
                metrics.count("aos_runs_started_total", &[]) >= 1.0,
                "{}",
                metrics.text
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker's metrics never showed its run:\n{}",
            metrics.text
        );
        tokio::time::sleep(POLL).await;
    }
    let health = app
        .http()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(health.status(), 200);
}
