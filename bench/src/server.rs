//! The real `automationos serve`, started as a child process on a free port with a fresh
//! database, and the few GraphQL calls the benchmarks need to set up a workflow.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::database::FreshDatabase;

const READY_LINE_PREFIX: &str = "AutomationOS listening on ";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Server {
    pub base_url: String,
    child: Child,
}

impl Server {
    /// Starts `binary serve` on `database`; the log (stderr) goes to `server.log` in the
    /// data dir, as it would to a file in production. `envs` are extra settings.
    pub fn start(
        binary: &Path,
        database: &FreshDatabase,
        envs: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(binary);
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy().into_owned();
            if name.starts_with("AOS_") || name == "DATABASE_URL" || name == "SENTRY_DSN" {
                command.env_remove(&name);
            }
        }
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&database.data_dir)
            .env("AOS_AUTH_ATTEMPTS_PER_MINUTE", "10000")
            // The benchmarks measure the engine and the API, not the per-workspace request
            // limit (whose default would refuse them); `--server-env` can turn it back on
            // to measure what it costs.
            .env("AOS_RATE_LIMIT_RPS", "0");
        if let Some(url) = database.server_database_url() {
            command.arg("--database-url").arg(url);
        }
        for (name, value) in envs {
            command.env(name, value);
        }
        let log = File::create(database.data_dir.join("server.log")).context("the server log")?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            match received.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix(READY_LINE_PREFIX) {
                        let base_url = url.trim().trim_end_matches('/').to_owned();
                        return Ok(Self { base_url, child });
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.wait();
                    bail!("the server exited before listening; see its log in the data dir");
                }
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                bail!("the server did not listen within {STARTUP_TIMEOUT:?}");
            }
        }
    }

    pub fn ws_url(&self) -> String {
        let rest = self
            .base_url
            .strip_prefix("http://")
            .unwrap_or(&self.base_url);
        format!("ws://{rest}/graphql")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A signed-up owner of one workspace, speaking GraphQL over HTTP.
pub struct Owner {
    pub http: reqwest::Client,
    pub graphql_url: String,
    pub token: String,
    pub workspace_id: String,
}

impl Owner {
    pub async fn sign_up(server: &Server) -> anyhow::Result<Self> {
        let http = reqwest::Client::new();
        let graphql_url = format!("{}/graphql", server.base_url);
        let mut owner = Self {
            http,
            graphql_url,
            token: String::new(),
            workspace_id: String::new(),
        };
        let email = format!("bench.{}@example.com", uuid::Uuid::new_v4().simple());
        let signed_up = owner
            .gql(
                "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken } }",
                json!({"input": {"email": email, "password": "correct horse battery staple", "name": "Bench"}}),
            )
            .await?;
        owner.token = string_at(&signed_up["signUp"]["accessToken"])?;
        let workspace = owner
            .gql(
                "mutation($input: CreateWorkspaceInput!) { createWorkspace(input: $input) { id } }",
                json!({"input": {"name": "Bench"}}),
            )
            .await?;
        owner.workspace_id = string_at(&workspace["createWorkspace"]["id"])?;
        Ok(owner)
    }

    /// The operation's `data`; any GraphQL error is an error here.
    pub async fn gql(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .post(&self.graphql_url)
            .json(&json!({"query": query, "variables": variables}));
        if !self.token.is_empty() {
            request = request.bearer_auth(&self.token);
        }
        let response: Value = request.send().await?.json().await?;
        if let Some(errors) = response.get("errors").and_then(Value::as_array)
            && !errors.is_empty()
        {
            bail!("GraphQL errors: {response}");
        }
        Ok(response["data"].clone())
    }

    /// Creates and activates a workflow; returns its id and webhook URL (if it has one).
    pub async fn active_workflow(
        &self,
        definition: Value,
    ) -> anyhow::Result<(String, Option<String>)> {
        let created = self
            .gql(
                "mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) { id webhookUrl } }",
                json!({"input": {"workspaceId": self.workspace_id, "name": "bench", "definition": definition}}),
            )
            .await?;
        let id = string_at(&created["createWorkflow"]["id"])?;
        self.gql(
            "mutation($input: SetWorkflowActiveInput!) { setWorkflowActive(input: $input) { active } }",
            json!({"input": {"id": id, "active": true}}),
        )
        .await?;
        let url = created["createWorkflow"]["webhookUrl"]
            .as_str()
            .map(str::to_owned);
        Ok((id, url))
    }

    /// Queues a run through `runWorkflow`; returns its id.
    pub async fn run_workflow(&self, workflow_id: &str, input: Value) -> anyhow::Result<String> {
        let run = self
            .gql(
                "mutation($input: RunWorkflowInput!) { runWorkflow(input: $input) { id } }",
                json!({"input": {"id": workflow_id, "input": input}}),
            )
            .await?;
        string_at(&run["runWorkflow"]["id"])
    }
}

pub fn string_at(value: &Value) -> anyhow::Result<String> {
    value
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("expected a string, got {value}"))
}

/// The server's resident memory, for the record.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}
