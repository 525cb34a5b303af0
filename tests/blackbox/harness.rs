//! The harness: starts the real binary and speaks to it as a client would.
//!
//! Policy: every `TestApp` is a separate process with its own port, data directory and
//! database, so tests run in parallel and share no state. Nothing from the developer's
//! environment (`DATABASE_URL`, `AOS_*`) reaches the server; a test states every setting
//! it depends on. When a test panics, the server's last stderr lines are printed, so a
//! failure shows the server's side of the story too.

#![allow(dead_code)] // Each test module uses a different part of the harness.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use aos_testkit::{FreshDatabase, POSTGRES_URL_VARIABLE, postgres_admin_url};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

/// The password every test user signs up with.
pub const PASSWORD: &str = "correct horse battery staple";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const READY_LINE_PREFIX: &str = "AutomationOS listening on ";
const STDERR_TAIL_LINES: usize = 200;

/// A `Command` for the binary under test with a clean environment.
pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_automationos"));
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if name_text.starts_with("AOS_")
            || matches!(
                name_text.as_ref(),
                "DATABASE_URL" | "REDIS_URL" | "OPENAI_BASE_URL" | "OPENAI_API_KEY" | "SENTRY_DSN"
            )
        {
            command.env_remove(&name);
        }
    }
    command
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct DataDir(PathBuf);

impl DataDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("aos-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("create the test data dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A database of its own on the Postgres server named by `AOS_TEST_DATABASE_URL`, dropped
/// (connections and all) on drop.
pub struct TestDatabase {
    pub url: String,
    _database: FreshDatabase,
}

impl TestDatabase {
    /// `None` when `AOS_TEST_DATABASE_URL` is unset: the server then uses its SQLite default.
    pub async fn create_if_configured() -> Option<Self> {
        let server_url = postgres_admin_url()?;
        let database = FreshDatabase::postgres(&server_url, "aos_bb")
            .await
            .unwrap_or_else(|error| {
                panic!("create a test database on {POSTGRES_URL_VARIABLE}={server_url}: {error:#}")
            });
        Some(Self {
            url: database.url().to_owned(),
            _database: database,
        })
    }
}

pub struct TestAppBuilder {
    envs: Vec<(String, String)>,
    args: Vec<String>,
    data_dir: Option<DataDir>,
    database: Option<Option<TestDatabase>>,
}

impl TestAppBuilder {
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.envs.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Serve from an existing data dir (e.g. one `automationos migrate` already ran on).
    pub fn data_dir(mut self, dir: DataDir) -> Self {
        self.data_dir = Some(dir);
        self
    }

    /// Use this database rather than creating a fresh one.
    pub fn database(mut self, database: Option<TestDatabase>) -> Self {
        self.database = Some(database);
        self
    }

    pub async fn spawn(self) -> TestApp {
        let data_dir = self.data_dir.unwrap_or_else(DataDir::new);
        let database = match self.database {
            Some(database) => database,
            None => TestDatabase::create_if_configured().await,
        };

        let mut command = binary();
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir.path());
        if let Some(database) = &database {
            command.arg("--database-url").arg(&database.url);
        }
        // Ordinary tests must not trip the brute-force or per-workspace limits; the tests
        // of those limits override these.
        command
            .env("AOS_AUTH_ATTEMPTS_PER_MINUTE", "10000")
            .env("AOS_RATE_LIMIT_RPS", "10000")
            .env("AOS_RATE_LIMIT_BURST", "10000");
        for (name, value) in &self.envs {
            command.env(name, value);
        }
        command.args(&self.args);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        let mut child = command.spawn().expect("start the automationos binary");
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        drain_stderr(
            child.stderr.take().expect("piped stderr"),
            Arc::clone(&stderr_tail),
        );
        let stdout_lines = forward_stdout(child.stdout.take().expect("piped stdout"));

        let base_url = wait_until_listening(&mut child, &stdout_lines, &stderr_tail);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("build the HTTP client");
        TestApp {
            base_url,
            http,
            child,
            stderr_tail,
            database,
            data_dir,
        }
    }
}

fn drain_stderr(stderr: impl Read + Send + 'static, tail: Arc<Mutex<VecDeque<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let mut tail = tail
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    });
}

/// Reads stdout to its end (so the child never blocks on a full pipe), forwarding lines.
fn forward_stdout(stdout: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = sender.send(line);
        }
    });
    receiver
}

fn wait_until_listening(
    child: &mut Child,
    stdout_lines: &mpsc::Receiver<String>,
    stderr_tail: &Mutex<VecDeque<String>>,
) -> String {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut stdout_seen = Vec::new();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match stdout_lines.recv_timeout(remaining.min(Duration::from_millis(200))) {
            Ok(line) => {
                if let Some(url) = line.strip_prefix(READY_LINE_PREFIX) {
                    return url.trim().trim_end_matches('/').to_owned();
                }
                stdout_seen.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // stdout closed: the server is exiting; give stderr a moment to drain.
                let status = child.wait().ok();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "automationos serve exited before listening (status {status:?})\nstdout:\n{}\nstderr tail:\n{}",
                    stdout_seen.join("\n"),
                    tail_text(stderr_tail)
                );
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "automationos serve exited before listening ({status})\nstdout:\n{}\nstderr tail:\n{}",
                stdout_seen.join("\n"),
                tail_text(stderr_tail)
            );
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!(
                "automationos serve did not print `{READY_LINE_PREFIX}...` within {STARTUP_TIMEOUT:?}\nstdout:\n{}\nstderr tail:\n{}",
                stdout_seen.join("\n"),
                tail_text(stderr_tail)
            );
        }
    }
}

fn tail_text(tail: &Mutex<VecDeque<String>>) -> String {
    let tail = tail
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    tail.iter().cloned().collect::<Vec<_>>().join("\n")
}

/// A running server. Killed (and its data dir and database removed) on drop.
pub struct TestApp {
    pub base_url: String,
    http: reqwest::Client,
    child: Child,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    // Dropped after the child is killed (fields drop after `Drop::drop`).
    database: Option<TestDatabase>,
    data_dir: DataDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- automationos stderr (last {STDERR_TAIL_LINES} lines) ----\n{}",
                tail_text(&self.stderr_tail)
            );
        }
    }
}

// ---- crashes ----

/// What a killed server leaves behind, for another server to start on: its data dir (the
/// SQLite file and `master.key`) and its database.
pub struct Remains {
    pub data_dir: DataDir,
    pub database: Option<TestDatabase>,
}

impl TestApp {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL, as a crash or the OOM killer would: no graceful
    /// shutdown, no run handed back. Its data dir and database survive for a restart
    /// (`builder().data_dir(remains.data_dir).database(remains.database)`).
    pub fn kill_hard(mut self) -> Remains {
        assert!(
            self.is_running(),
            "the server died before the test killed it\n{}",
            tail_text(&self.stderr_tail)
        );
        // On Unix `Child::kill` sends SIGKILL.
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the killed server");
        // An empty path names no directory, so this stand-in removes nothing on drop.
        let data_dir = std::mem::replace(&mut self.data_dir, DataDir(PathBuf::new()));
        Remains {
            data_dir,
            database: self.database.take(),
        }
    }
}

/// A signed-in user.
#[derive(Clone, Debug)]
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    pub user_id: String,
    pub email: String,
}

/// A freshly created API token: the secret (shown once) and its id.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub token: String,
    pub id: String,
}

pub const WORKFLOW_FIELDS: &str =
    "id workspaceId name description version definition active webhookUrl createdAt updatedAt";

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            envs: Vec::new(),
            args: Vec::new(),
            data_dir: None,
            database: None,
        }
    }

    pub async fn spawn() -> Self {
        Self::builder().spawn().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn ws_url(&self) -> String {
        let rest = self
            .base_url
            .strip_prefix("http://")
            .unwrap_or(&self.base_url);
        format!("ws://{rest}/graphql")
    }

    /// Where the server keeps its local state (the SQLite file, `master.key`).
    pub fn data_path(&self) -> &Path {
        self.data_dir.path()
    }

    /// The Postgres database the server uses, if it does not use its SQLite default.
    pub fn database_url(&self) -> Option<&str> {
        self.database.as_ref().map(|database| database.url.as_str())
    }

    /// The server's most recent log lines (stderr), oldest first.
    pub fn log_lines(&self) -> Vec<String> {
        self.stderr_tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub async fn assert_healthy(&mut self) {
        assert!(
            self.is_running(),
            "the server process died\n{}",
            tail_text(&self.stderr_tail)
        );
        let response = self
            .http
            .get(self.url("/healthz"))
            .send()
            .await
            .expect("GET /healthz");
        assert_eq!(response.status(), 200, "GET /healthz");
    }

    /// Sends `head` (request line and headers, without the blank line) and `body` over a
    /// fresh connection with `Connection: close`, writing concurrently with reading, because
    /// a server may answer and close before it has read everything (as it should for an
    /// oversized body). Returns the status code and the raw response text.
    pub async fn raw_http(&self, head: &str, body: Vec<u8>) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let address = self
            .base_url
            .strip_prefix("http://")
            .unwrap_or(&self.base_url);
        let stream = TcpStream::connect(address)
            .await
            .expect("connect to the server");
        let (mut reader, mut writer) = stream.into_split();
        let mut request =
            format!("{head}\r\nHost: {address}\r\nConnection: close\r\n\r\n").into_bytes();
        request.extend(body);
        let writing = tokio::spawn(async move {
            // The server may stop reading early; a failed write is then expected.
            let _ = writer.write_all(&request).await;
            let _ = writer.shutdown().await;
        });
        let mut response = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut response)).await;
        writing.abort();
        let text = String::from_utf8_lossy(&response).into_owned();
        assert!(read.is_ok() || !text.is_empty(), "no response within 10 s");
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
        (status, text)
    }

    // ---- GraphQL over HTTP ----

    /// POSTs any JSON body to /graphql, with a bearer token if given.
    pub async fn post_graphql(&self, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.http.post(self.url("/graphql")).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("POST /graphql")
    }

    /// An anonymous operation; returns the whole response body.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.gql_with(None, query, variables).await
    }

    /// An operation with `Authorization: Bearer <token>`; returns the whole response body.
    pub async fn gql_as(&self, token: &str, query: &str, variables: Value) -> Value {
        self.gql_with(Some(token), query, variables).await
    }

    async fn gql_with(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let response = self
            .post_graphql(token, &json!({"query": query, "variables": variables}))
            .await;
        let status = response.status();
        let text = response.text().await.expect("read the GraphQL response");
        serde_json::from_str(&text).unwrap_or_else(|error| {
            panic!("GraphQL response is not JSON ({status}, {error}): {text}")
        })
    }

    // ---- fixtures through the public API ----

    pub async fn sign_up(&self, email: &str, name: &str) -> Session {
        let response = self
            .gql(
                "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken refreshToken user { id email name } } }",
                json!({"input": {"email": email, "password": PASSWORD, "name": name}}),
            )
            .await;
        session_from(&data(&response)["signUp"], email)
    }

    pub async fn log_in(&self, email: &str, password: &str) -> Value {
        self.gql(
            "mutation($input: LogInInput!) { logIn(input: $input) { accessToken refreshToken user { id email name } } }",
            json!({"input": {"email": email, "password": password}}),
        )
        .await
    }

    pub async fn create_workspace(&self, token: &str, name: &str) -> String {
        let response = self
            .gql_as(
                token,
                "mutation($input: CreateWorkspaceInput!) { createWorkspace(input: $input) { id name viewerRole } }",
                json!({"input": {"name": name}}),
            )
            .await;
        string_at(&data(&response)["createWorkspace"]["id"])
    }

    /// Adds a member and returns the `Member` object.
    pub async fn add_member(
        &self,
        token: &str,
        workspace_id: &str,
        email: &str,
        role: &str,
    ) -> Value {
        let response = self
            .gql_as(
                token,
                "mutation($input: AddMemberInput!) { addMember(input: $input) { role user { id email name } } }",
                json!({"input": {"workspaceId": workspace_id, "email": email, "role": role}}),
            )
            .await;
        data(&response)["addMember"].clone()
    }

    /// Signs a new user up and makes them a member of the workspace with this role.
    pub async fn member(
        &self,
        owner_token: &str,
        workspace_id: &str,
        email: &str,
        role: &str,
    ) -> Session {
        let session = self.sign_up(email, role).await;
        self.add_member(owner_token, workspace_id, email, role)
            .await;
        session
    }

    pub async fn create_token(&self, token: &str, workspace_id: &str, scopes: &[&str]) -> NewToken {
        self.create_token_expiring(token, workspace_id, scopes, None)
            .await
    }

    pub async fn create_token_expiring(
        &self,
        token: &str,
        workspace_id: &str,
        scopes: &[&str],
        expires_at: Option<&str>,
    ) -> NewToken {
        let response = self
            .gql_as(
                token,
                "mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { token apiToken { id name scopes } } }",
                json!({"input": {"workspaceId": workspace_id, "name": format!("token {}", scopes.join("+")), "scopes": scopes, "expiresAt": expires_at}}),
            )
            .await;
        let created = &data(&response)["createApiToken"];
        NewToken {
            token: string_at(&created["token"]),
            id: string_at(&created["apiToken"]["id"]),
        }
    }

    /// Creates a workflow and returns it with `WORKFLOW_FIELDS`.
    pub async fn create_workflow(
        &self,
        token: &str,
        workspace_id: &str,
        name: &str,
        definition: Value,
    ) -> Value {
        let response = self
            .try_create_workflow(token, workspace_id, name, definition)
            .await;
        data(&response)["createWorkflow"].clone()
    }

    /// Same as `create_workflow`, returning the whole response for tests that expect errors.
    pub async fn try_create_workflow(
        &self,
        token: &str,
        workspace_id: &str,
        name: &str,
        definition: Value,
    ) -> Value {
        self.gql_as(
            token,
            &format!("mutation($input: CreateWorkflowInput!) {{ createWorkflow(input: $input) {{ {WORKFLOW_FIELDS} }} }}"),
            json!({"input": {"workspaceId": workspace_id, "name": name, "description": "made by a test", "definition": definition}}),
        )
        .await
    }

    // ---- WebSocket ----

    /// Opens a WebSocket to /graphql offering the `graphql-transport-ws` subprotocol.
    pub async fn ws_connect(&self) -> WsClient {
        self.ws_connect_with("graphql-transport-ws").await
    }

    /// Opens a WebSocket to /graphql offering this subprotocol.
    pub async fn ws_connect_with(&self, protocol: &str) -> WsClient {
        let mut request = self
            .ws_url()
            .into_client_request()
            .expect("a WebSocket request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            protocol.parse().expect("a header value"),
        );
        let (socket, response) = tokio_tungstenite::connect_async(request)
            .await
            .unwrap_or_else(|error| {
                panic!("WebSocket upgrade of {} failed: {error}", self.ws_url())
            });
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        WsClient { socket, protocol }
    }
}

fn session_from(payload: &Value, email: &str) -> Session {
    Session {
        access_token: string_at(&payload["accessToken"]),
        refresh_token: string_at(&payload["refreshToken"]),
        user_id: string_at(&payload["user"]["id"]),
        email: email.to_owned(),
    }
}

// ---- assertions on GraphQL responses ----

#[track_caller]
pub fn string_at(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
        .to_owned()
}

/// The `data` of a response that must have no errors.
#[track_caller]
pub fn data(response: &Value) -> &Value {
    let errors = response.get("errors").and_then(Value::as_array);
    assert!(
        errors.is_none_or(Vec::is_empty),
        "expected no errors, got {}",
        pretty(response)
    );
    let data = response.get("data").unwrap_or(&Value::Null);
    assert!(!data.is_null(), "expected data, got {}", pretty(response));
    data
}

pub fn errors(response: &Value) -> Vec<Value> {
    response
        .get("errors")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// `extensions.code` of every error, in order (`<none>` for an error without one).
pub fn error_codes(response: &Value) -> Vec<String> {
    errors(response)
        .iter()
        .map(|error| {
            error["extensions"]["code"]
                .as_str()
                .unwrap_or("<none>")
                .to_owned()
        })
        .collect()
}

/// The response has at least one error, and every error carries this code.
#[track_caller]
pub fn assert_error_code(response: &Value, code: &str) {
    let codes = error_codes(response);
    assert!(
        !codes.is_empty() && codes.iter().all(|c| c == code),
        "expected every error to have code {code}, got {codes:?} in {}",
        pretty(response)
    );
}

/// The first error (the test already knows there is one).
#[track_caller]
pub fn first_error(response: &Value) -> Value {
    errors(response)
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("expected an error, got {}", pretty(response)))
}

pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// The codes of a subscription's failure, whether the server sent it as an `error`
/// message or as a `next` carrying errors (both are allowed by graphql-transport-ws).
pub fn subscription_error_codes(message: &Value) -> Vec<String> {
    let errors = match message["type"].as_str() {
        Some("error") => message["payload"].clone(),
        Some("next") => message["payload"]["errors"].clone(),
        _ => Value::Null,
    };
    errors
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or("<none>")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---- workflow definitions ----

pub mod definitions {
    use serde_json::{Value, json};

    /// The smallest useful workflow: a manual trigger and one `set`.
    pub fn manual() -> Value {
        json!({
            "nodes": [
                {"id": "start", "type": "trigger.manual", "config": {}},
                {"id": "greet", "type": "set", "config": {"fields": {"message": "hello"}}}
            ],
            "edges": [{"from": "start", "to": "greet"}]
        })
    }

    /// A webhook-triggered workflow (it has a `webhookUrl`).
    pub fn webhook() -> Value {
        json!({
            "nodes": [
                {"id": "hook", "type": "trigger.webhook", "config": {"respond": "immediately"}},
                {"id": "greet", "type": "set", "config": {"fields": {"message": "Hello {{ trigger.body.name }}"}}}
            ],
            "edges": [{"from": "hook", "to": "greet"}]
        })
    }

    /// The example definition of CONTRACT.md, verbatim.
    pub fn contract_example() -> Value {
        json!({
          "nodes": [
            {"id": "hook", "type": "trigger.webhook", "config": {"respond": "onCompletion"}},
            {"id": "greet", "type": "set", "config": {"fields": {"message": "Hello {{ trigger.body.name }}", "n": "{{ trigger.body.n * 2 }}"}}},
            {"id": "big", "type": "if", "config": {"condition": "{{ steps.greet.n > 10 }}"}},
            {"id": "call", "type": "http.request", "config": {"method": "POST", "url": "https://example.com/x", "body": {"m": "{{ steps.greet.message }}"}},
             "retry": {"maxAttempts": 3, "initialIntervalMs": 200, "backoffMultiplier": 2}},
            {"id": "reply", "type": "respond", "config": {"status": 200, "body": {"message": "{{ steps.greet.message }}"}}}
          ],
          "edges": [
            {"from": "hook", "to": "greet"},
            {"from": "greet", "to": "big"},
            {"from": "big", "to": "call", "branch": "true"},
            {"from": "big", "to": "reply", "branch": "false"},
            {"from": "call", "to": "reply"}
          ]
        })
    }

    /// A manual trigger, a `delay` of `ms`, then a `set` of `{"done": true}`: a run that
    /// stays unfinished for a while, so it can be watched live or cancelled.
    pub fn delayed(ms: u64) -> Value {
        json!({
            "nodes": [
                {"id": "start", "type": "trigger.manual", "config": {}},
                {"id": "wait", "type": "delay", "config": {"ms": ms}},
                {"id": "done", "type": "set", "config": {"fields": {"done": true}}}
            ],
            "edges": [{"from": "start", "to": "wait"}, {"from": "wait", "to": "done"}]
        })
    }
}

// ---- runs ----

/// Every field of a run, with its steps and all its events.
pub const RUN_FIELDS: &str = "id workspaceId workflowId workflowVersion status trigger input output error retryOf retryFromNode cancelRequested createdAt startedAt finishedAt steps { nodeId status attempt input output error branch startedAt finishedAt } events { runId seq at kind nodeId message data }";

pub const RUN_EVENTS_SUBSCRIPTION: &str = "subscription($runId: ID!, $afterSeq: Int) { runEvents(runId: $runId, afterSeq: $afterSeq) { runId seq at kind nodeId message data } }";

pub const WORKSPACE_RUNS_SUBSCRIPTION: &str = "subscription($workspaceId: ID!) { workspaceRuns(workspaceId: $workspaceId) { id workspaceId workflowId status } }";

/// A hang guard for waiting on a run, not a speed requirement: generous enough for a
/// loaded CI machine.
const RUN_DEADLINE: Duration = Duration::from_secs(90);
const RUN_POLL_INTERVAL: Duration = Duration::from_millis(50);

pub fn is_terminal_status(status: &Value) -> bool {
    matches!(status.as_str(), Some("SUCCEEDED" | "FAILED" | "CANCELLED"))
}

impl TestApp {
    /// `runWorkflow`, returning the whole response (the run with `RUN_FIELDS`).
    pub async fn try_run_workflow(&self, token: &str, workflow_id: &str, input: Value) -> Value {
        self.gql_as(
            token,
            &format!("mutation($input: RunWorkflowInput!) {{ runWorkflow(input: $input) {{ {RUN_FIELDS} }} }}"),
            json!({"input": {"id": workflow_id, "input": input}}),
        )
        .await
    }

    /// Queues a run and returns it with `RUN_FIELDS`.
    pub async fn run_workflow(&self, token: &str, workflow_id: &str, input: Value) -> Value {
        let response = self.try_run_workflow(token, workflow_id, input).await;
        data(&response)["runWorkflow"].clone()
    }

    /// `run(id)` with `RUN_FIELDS`, returning the whole response.
    pub async fn query_run(&self, token: &str, run_id: &str) -> Value {
        self.gql_as(
            token,
            &format!("query($id: ID!) {{ run(id: $id) {{ {RUN_FIELDS} }} }}"),
            json!({"id": run_id}),
        )
        .await
    }

    /// Waits for the run to finish (polling `run(id) { status }`) and returns it with
    /// `RUN_FIELDS`.
    pub async fn wait_for_run(&self, token: &str, run_id: &str) -> Value {
        let deadline = Instant::now() + RUN_DEADLINE;
        loop {
            let response = self
                .gql_as(
                    token,
                    "query($id: ID!) { run(id: $id) { status } }",
                    json!({"id": run_id}),
                )
                .await;
            let status = data(&response)["run"]["status"].clone();
            if is_terminal_status(&status) {
                break;
            }
            if Instant::now() >= deadline {
                let run = self.query_run(token, run_id).await;
                panic!(
                    "run {run_id} did not finish within {RUN_DEADLINE:?}; last seen:\n{}",
                    pretty(&run)
                );
            }
            tokio::time::sleep(RUN_POLL_INTERVAL).await;
        }
        let response = self.query_run(token, run_id).await;
        data(&response)["run"].clone()
    }

    /// Polls the run (with `RUN_FIELDS`) until `done` holds and returns it; panics with the
    /// run's last state if that takes longer than a hang guard.
    pub async fn wait_for_run_until(
        &self,
        token: &str,
        run_id: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + RUN_DEADLINE;
        loop {
            let response = self.query_run(token, run_id).await;
            let run = data(&response)["run"].clone();
            if done(&run) {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {run_id} did not get {what} within {RUN_DEADLINE:?}; last seen:\n{}",
                pretty(&run)
            );
            tokio::time::sleep(RUN_POLL_INTERVAL).await;
        }
    }
}

/// The step of `run` for this node (panics if it has none).
#[track_caller]
pub fn step<'r>(run: &'r Value, node_id: &str) -> &'r Value {
    run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|step| step["nodeId"] == node_id))
        .unwrap_or_else(|| panic!("run has no step `{node_id}`: {}", pretty(run)))
}

/// Asserts `events` are `run_id`'s events with `seq` 1, 2, ... n: none missing, none twice.
#[track_caller]
pub fn assert_contiguous_events(run_id: &str, events: &[Value]) {
    let seqs: Vec<i64> = events
        .iter()
        .map(|event| event["seq"].as_i64().unwrap_or(-1))
        .collect();
    let expected: Vec<i64> = (1..=i64::try_from(events.len()).unwrap_or(i64::MAX)).collect();
    assert_eq!(seqs, expected, "seq counts from 1 without gaps or repeats");
    for event in events {
        assert_eq!(event["runId"], run_id, "an event of another run: {event}");
    }
}

/// `kind` of each event of `run`, in order.
pub fn event_kinds(run: &Value) -> Vec<String> {
    run["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|event| event["kind"].as_str().unwrap_or("<none>").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

// ---- WebSocket client (graphql-transport-ws) ----

pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The subprotocol the server chose.
    pub protocol: Option<String>,
}

#[derive(Debug)]
pub enum WsEvent {
    Message(Value),
    Closed { code: Option<u16>, reason: String },
}

pub const WORKFLOW_EVENTS_SUBSCRIPTION: &str = "subscription($workspaceId: ID!) { workflowEvents(workspaceId: $workspaceId) { kind workflowId version workflow { id name } } }";

impl WsClient {
    pub async fn send(&mut self, message: Value) {
        self.send_text(&message.to_string()).await;
    }

    /// Sends any text frame, JSON or not.
    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::text(text.to_owned()))
            .await
            .expect("send a WebSocket message");
    }

    /// Sends `connection_init` with `{"Authorization": "Bearer <token>"}` (or no payload).
    pub async fn init(&mut self, token: Option<&str>) {
        let message = match token {
            Some(token) => {
                json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}})
            }
            None => json!({"type": "connection_init"}),
        };
        self.send(message).await;
    }

    /// Initialises and asserts the server acknowledges.
    pub async fn init_ok(&mut self, token: &str) {
        self.init(Some(token)).await;
        match self.next_event(Duration::from_secs(10)).await {
            Some(WsEvent::Message(message)) if message["type"] == "connection_ack" => {}
            other => panic!("expected connection_ack, got {other:?}"),
        }
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({"type": "subscribe", "id": id, "payload": {"query": query, "variables": variables}}))
            .await;
    }

    /// The next protocol message or the close, skipping transport pings (and answering
    /// protocol `ping`s); `None` if nothing arrives in time.
    pub async fn next_event(&mut self, within: Duration) -> Option<WsEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()?;
            match frame {
                None => {
                    return Some(WsEvent::Closed {
                        code: None,
                        reason: "stream ended".into(),
                    });
                }
                Some(Err(error)) => {
                    return Some(WsEvent::Closed {
                        code: None,
                        reason: error.to_string(),
                    });
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(WsEvent::Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    });
                }
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|error| panic!("server sent non-JSON ({error}): {text}"));
                    if message["type"] == "ping" {
                        self.send(json!({"type": "pong"})).await;
                        continue;
                    }
                    return Some(WsEvent::Message(message));
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Waits for the server to close the socket and returns the close code.
    pub async fn expect_close(&mut self, within: Duration) -> Option<u16> {
        let deadline = Instant::now() + within;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.next_event(remaining).await {
                Some(WsEvent::Closed { code, .. }) => return code,
                Some(WsEvent::Message(_)) => {}
                None => panic!("the server did not close the socket within {within:?}"),
            }
        }
    }

    /// The next message for subscription `id` (`next`, `error` or `complete`), skipping
    /// others; panics on close or timeout.
    pub async fn next_for(&mut self, id: &str, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.next_event(remaining).await {
                Some(WsEvent::Message(message)) if message["id"] == id => return Some(message),
                Some(WsEvent::Message(_)) => {}
                Some(WsEvent::Closed { code, reason }) => {
                    panic!("socket closed ({code:?} {reason}) while waiting for subscription {id}")
                }
                None => return None,
            }
        }
    }
}
