//! Executes one attempt of one node: renders its config against the run's expression
//! scope and does what the node type does. Journaling, retries and scheduling are the
//! worker's; this module only answers "what did this attempt produce".
//!
//! Node semantics (the contract's "Workflow definition"): a trigger outputs what started
//! the run (the run's input); `set` outputs exactly its rendered `fields`; `if` outputs its
//! input unchanged and picks a branch by the truthiness of its condition (falsy: `null`,
//! `false`, `0`, `""`, like the expression language); `respond` outputs `{status, headers,
//! body}`; `fail` fails with its rendered message; `delay` waits, then passes its input
//! on; `http.request` outputs `{status, headers, body}` and fails on a status of 400 or
//! more, so that retries and error edges apply to server errors; `code` outputs what its
//! source returns; `merge` outputs the outputs of the predecessors whose edge into it was
//! taken, as its `mode` says; `loop` runs its body once per item (see [`crate::loop_node`]).
//!
//! Connections: an `http.request` naming a `connectionId` is signed with that connection's
//! credentials, and a `connector` step hands them to its connector (see
//! [`crate::connector_node`]); either way they are opened for the run's workspace only
//! (through [`ConnectionSecrets`], so a run cannot reach another workspace's connection)
//! and only for the one attempt, and every request passes the connection's gate
//! ([`crate::gate`]). An `http.request` the service answers 401 is sent once more with
//! renewed credentials (an OAuth2 refresh) when they can be renewed. Every form of those
//! secrets (the renewed ones too) is replaced by `[REDACTED]` in the step's output and
//! error before they leave this module, so neither the journal, the events nor the logs
//! ever hold one. A trigger node (`trigger.poll` included) outputs what started the run:
//! for a poll, the new item.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use aos_domain::connection::{Credentials, Redactor};
use aos_domain::expr::{EvalError, Roots, render_value_with};
use aos_domain::ids::{ConnectionId, WorkspaceId};
use aos_domain::ports::ConnectionSecrets;
use aos_domain::run::{IdempotencyKey, IfBranch, StepOutcome};
use aos_domain::workflow::definition::Node;
use aos_domain::workflow::node_types::{
    CodeConfig, DelayConfig, Dynamic, FailConfig, HttpRequestConfig, MergeConfig, MergeMode,
    NodeKind, RespondConfig,
};

use crate::code::{CodeInput, CodeLimits, run_code};
use crate::connector_call::{Patience, open_connection, shown_wait};
use crate::connector_node;
use crate::gate::ConnectionGate;
use crate::loop_node::{self, LoopProgress};
use crate::observe::StepAttempt;
use aos_connectors::Registry;
use aos_connectors::call::retry_after;
use aos_connectors::http::{HttpClient, OutgoingRequest};

/// What an attempt needs to know about where it runs.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    /// The run's workspace: the only one whose connections its steps may use.
    pub workspace_id: WorkspaceId,
    /// The expression scope: an object with `trigger`, `steps`, `vars` and `run`.
    pub scope: &'a Value,
    /// The output of the node this one follows (for `if` and `delay`, which pass it on).
    pub input: &'a Value,
    /// The predecessors whose edge into this node was taken, with their outputs, in the
    /// definition's edge order, each once (for `merge`).
    pub inputs: &'a [(&'a str, &'a Value)],
    pub idempotency_key: &'a IdempotencyKey,
    /// When the step first started: a delay counts from then, across restarts.
    pub started_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// For a `loop`: iterations already journaled, and where to report new ones.
    pub loop_progress: LoopProgress<'a>,
}

/// The outside world a node may touch.
#[derive(Clone)]
pub struct NodeServices {
    pub http: HttpClient,
    pub code_limits: CodeLimits,
    /// Opens the connections `http.request` and `connector` steps use. `None` in a
    /// process without the vault: a step that names a connection then fails, and one
    /// that names none runs.
    pub secrets: Option<Arc<dyn ConnectionSecrets>>,
    /// The connectors `connector` steps and polls call.
    pub connectors: Registry,
    /// This process's per-connection rate limits, shared by all its steps and polls.
    pub gate: ConnectionGate,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AttemptResult {
    Finished(StepOutcome),
    /// A `delay` that has not elapsed: come back at this time.
    WaitUntil(DateTime<Utc>),
}

impl From<StepOutcome> for AttemptResult {
    fn from(outcome: StepOutcome) -> Self {
        AttemptResult::Finished(outcome)
    }
}

/// Executes one attempt of `node`, timed and counted by its node type (an attempt the
/// worker drops, having lost its lease, is counted as abandoned).
pub async fn execute(node: &Node, attempt: Attempt<'_>, services: &NodeServices) -> AttemptResult {
    let observed = StepAttempt::start(node);
    let result = execute_node(node, attempt, services).await;
    observed.returned(&result);
    result
}

async fn execute_node(node: &Node, attempt: Attempt<'_>, services: &NodeServices) -> AttemptResult {
    let scope = Scope::workflow(attempt.scope);
    match node.kind() {
        NodeKind::ManualTrigger(_)
        | NodeKind::WebhookTrigger(_)
        | NodeKind::ScheduleTrigger(_)
        | NodeKind::PollTrigger(_) => {
            StepOutcome::Succeeded(attempt.scope["trigger"].clone()).into()
        }
        NodeKind::Set(config) => finish(render_fields(&config.fields, scope)),
        NodeKind::If(config) => finish(
            render_dynamic(&config.condition, scope, "condition", |value| {
                Some(is_truthy(value))
            })
            .map(|truthy| StepOutcome::Branched {
                output: attempt.input.clone(),
                branch: IfBranch::of(truthy),
            }),
        ),
        NodeKind::Respond(config) => finish(respond(config, scope)),
        NodeKind::Fail(config) => fail(config, scope).into(),
        NodeKind::Delay(config) => delay(config, &attempt),
        NodeKind::HttpRequest(config) => finish(
            http_request(
                config,
                scope,
                attempt.workspace_id,
                attempt.idempotency_key,
                services,
            )
            .await,
        ),
        NodeKind::Connector(config) => finish(
            connector_node::execute(
                config,
                scope,
                attempt.workspace_id,
                attempt.idempotency_key,
                services,
            )
            .await,
        ),
        NodeKind::Code(config) => finish(code(config, scope, services).await),
        NodeKind::Merge(config) => merge(config, attempt.inputs).into(),
        NodeKind::Loop(config) => loop_node::execute(config, &attempt, services).await.into(),
    }
}

/// One attempt of a step of a loop body, whose types are those that finish within the
/// attempt and pick no branch (`NodeType::runs_in_loop_body`).
pub(crate) async fn execute_body_step(
    kind: &NodeKind,
    scope: Scope<'_>,
    workspace_id: WorkspaceId,
    idempotency_key: &IdempotencyKey,
    services: &NodeServices,
) -> StepOutcome {
    let result = match kind {
        NodeKind::Set(config) => render_fields(&config.fields, scope),
        NodeKind::Fail(config) => Ok(fail(config, scope)),
        NodeKind::HttpRequest(config) => {
            http_request(config, scope, workspace_id, idempotency_key, services).await
        }
        NodeKind::Connector(config) => {
            connector_node::execute(config, scope, workspace_id, idempotency_key, services).await
        }
        NodeKind::Code(config) => code(config, scope, services).await,
        // The validator keeps every other type out of loop bodies.
        other => Err(format!(
            "a `{}` step cannot run in a loop body",
            other.node_type()
        )),
    };
    result.unwrap_or_else(StepOutcome::Failed)
}

/// The values templates are rendered against, and which names they may use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    values: &'a Value,
    roots: Roots,
}

impl<'a> Scope<'a> {
    pub(crate) fn workflow(values: &'a Value) -> Self {
        Self {
            values,
            roots: Roots::Workflow,
        }
    }

    /// `values` also carries `item` and `index`.
    pub(crate) fn loop_body(values: &'a Value) -> Self {
        Self {
            values,
            roots: Roots::LoopBody,
        }
    }

    pub(crate) fn render(self, value: &Value) -> Result<Value, EvalError> {
        render_value_with(value, self.values, self.roots)
    }

    fn get(self, name: &str) -> Value {
        self.values.get(name).cloned().unwrap_or(Value::Null)
    }
}

fn fail(config: &FailConfig, scope: Scope<'_>) -> StepOutcome {
    match render_text(&config.message, scope) {
        Ok(message) => StepOutcome::Failed(message),
        Err(error) => StepOutcome::Failed(error),
    }
}

async fn code(
    config: &CodeConfig,
    scope: Scope<'_>,
    services: &NodeServices,
) -> Result<StepOutcome, String> {
    let input = CodeInput {
        trigger: scope.get("trigger"),
        steps: scope.get("steps"),
        vars: scope.get("vars"),
        run: scope.get("run"),
        item: scope.get("item"),
        index: scope.get("index"),
    };
    run_code(&config.source, input, &services.code_limits)
        .await
        .map(StepOutcome::Succeeded)
        .map_err(|error| error.to_string())
}

/// The taken predecessors' outputs, shaped by `mode`.
fn merge(config: &MergeConfig, inputs: &[(&str, &Value)]) -> StepOutcome {
    let output = match config.mode {
        MergeMode::Object => Value::Object(
            inputs
                .iter()
                .map(|(id, output)| ((*id).to_owned(), (*output).clone()))
                .collect(),
        ),
        MergeMode::Array => {
            Value::Array(inputs.iter().map(|(_, output)| (*output).clone()).collect())
        }
        // A merge runs only when at least one edge into it was taken, so `null` is only
        // for an attempt that was handed no inputs at all.
        MergeMode::First => inputs
            .first()
            .map_or(Value::Null, |(_, output)| (*output).clone()),
    };
    StepOutcome::Succeeded(output)
}

fn finish(result: Result<StepOutcome, String>) -> AttemptResult {
    result.unwrap_or_else(StepOutcome::Failed).into()
}

/// The expression language's truthiness, so `if` agrees with `&&`, `||` and `!`.
pub fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

fn render_fields(fields: &Map<String, Value>, scope: Scope<'_>) -> Result<StepOutcome, String> {
    scope
        .render(&Value::Object(fields.clone()))
        .map(StepOutcome::Succeeded)
        .map_err(|error| error.message)
}

pub(crate) fn render_text(template: &str, scope: Scope<'_>) -> Result<String, String> {
    match scope.render(&Value::String(template.to_owned())) {
        Ok(Value::String(text)) => Ok(text),
        Ok(other) => Ok(other.to_string()),
        Err(error) => Err(error.message),
    }
}

/// A config value given in the definition or computed by its template; `convert` says
/// whether the template's result has the type and range the field needs.
fn render_dynamic<T: Clone>(
    dynamic: &Dynamic<T>,
    scope: Scope<'_>,
    field: &str,
    convert: impl Fn(&Value) -> Option<T>,
) -> Result<T, String> {
    match dynamic {
        Dynamic::Fixed(value) => Ok(value.clone()),
        Dynamic::Template(template) => {
            let value = scope
                .render(&Value::String(template.clone()))
                .map_err(|error| format!("{field}: {}", error.message))?;
            convert(&value).ok_or_else(|| format!("{field}: {value} is not a valid value here"))
        }
    }
}

fn render_headers(
    headers: &BTreeMap<String, String>,
    scope: Scope<'_>,
) -> Result<Vec<(String, String)>, String> {
    headers
        .iter()
        .map(|(name, template)| {
            render_text(template, scope)
                .map(|value| (name.clone(), value))
                .map_err(|error| format!("header {name}: {error}"))
        })
        .collect()
}

fn respond(config: &RespondConfig, scope: Scope<'_>) -> Result<StepOutcome, String> {
    let status = render_dynamic(&config.status, scope, "status", |value| {
        value
            .as_u64()
            .filter(|status| (100..=599).contains(status))
            .and_then(|status| u16::try_from(status).ok())
    })?;
    let headers: Map<String, Value> = render_headers(&config.headers, scope)?
        .into_iter()
        .map(|(name, value)| (name, Value::String(value)))
        .collect();
    let body = match &config.body {
        Some(body) => scope
            .render(body)
            .map_err(|error| format!("body: {}", error.message))?,
        None => Value::Null,
    };
    Ok(StepOutcome::Succeeded(
        json!({"status": status, "headers": headers, "body": body}),
    ))
}

fn delay(config: &DelayConfig, attempt: &Attempt<'_>) -> AttemptResult {
    let ms = render_dynamic(&config.ms, Scope::workflow(attempt.scope), "ms", |value| {
        value.as_u64().filter(|ms| *ms <= DelayConfig::MAX_MS)
    });
    let ms = match ms {
        Ok(ms) => ms,
        Err(error) => return StepOutcome::Failed(error).into(),
    };
    let wake_at =
        attempt.started_at + chrono::Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX));
    if attempt.now >= wake_at {
        StepOutcome::Succeeded(attempt.input.clone()).into()
    } else {
        AttemptResult::WaitUntil(wake_at)
    }
}

async fn http_request(
    config: &HttpRequestConfig,
    scope: Scope<'_>,
    workspace_id: WorkspaceId,
    idempotency_key: &IdempotencyKey,
    services: &NodeServices,
) -> Result<StepOutcome, String> {
    let url = render_text(&config.url, scope).map_err(|error| format!("url: {error}"))?;
    let mut request = OutgoingRequest::new(config.method, url);
    request.headers = render_headers(&config.headers, scope)?;
    let query = scope
        .render(&Value::Object(config.query.clone()))
        .map_err(|error| format!("query: {}", error.message))?;
    request.query = query
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.clone(), query_text(value)))
        .collect();
    request.body = match &config.body {
        Some(body) => Some(
            scope
                .render(body)
                .map_err(|error| format!("body: {}", error.message))?,
        ),
        None => None,
    };
    request.idempotency_key = Some(idempotency_key.to_string());
    request.timeout = config
        .timeout_ms
        .map(|ms| Duration::from_millis(ms.min(HttpRequestConfig::MAX_TIMEOUT_MS)));
    let Some(connection_id) = &config.connection_id else {
        return send(request, services, None).await;
    };
    // Opened last, once everything else rendered: a template error never opens them.
    let id = connection_id_of(connection_id, scope)?;
    let mut opened = open_connection(services, workspace_id, id).await?;
    if let Err(wait) = services
        .gate
        .enter(&opened.connection, Patience::STEP.max_wait)
        .await
    {
        return Err(format!(
            "the service asked to wait {} before the next request of connection `{}`, longer than a step waits ({})",
            shown_wait(wait),
            opened.connection.name.as_str(),
            shown_wait(Patience::STEP.max_wait)
        ));
    }
    request.sign(&opened.credentials);
    let mut result = send(request.clone(), services, Some(id)).await;
    if result
        .as_ref()
        .is_err_and(|message| *message == http_failure(401))
    {
        // The token may have expired or been revoked since it was opened: renewed (an
        // OAuth2 refresh, one process at a time), the request is sent once more.
        result = match renew_refused(services, workspace_id, id, &opened.credentials).await {
            Ok(credentials) => {
                opened.redactor.add(&credentials);
                request.sign(&credentials);
                send(request, services, Some(id)).await
            }
            Err(message) => Err(format!("{}: {message}", http_failure(401))),
        };
    }
    let redactor = opened.redactor;
    drop(opened.credentials);
    redact(result, &redactor)
}

/// New credentials for connection `id` after the service refused `refused`.
async fn renew_refused(
    services: &NodeServices,
    workspace_id: WorkspaceId,
    id: ConnectionId,
    refused: &Credentials,
) -> Result<Credentials, String> {
    let Some(secrets) = &services.secrets else {
        return Err("the service refused the connection's credentials".to_owned());
    };
    let (connection, credentials) = secrets.renew_refused(workspace_id, id, refused).await?;
    // As when opening: never sign with another tenant's secrets.
    if connection.workspace_id != workspace_id || connection.id != id {
        tracing::error!(connection.id = %id, "the connection port renewed another connection");
        return Err(format!("connection `{id}` not found"));
    }
    Ok(credentials)
}

/// How `send` reports a status of 400 or more.
fn http_failure(status: u16) -> String {
    format!("the server answered HTTP {status}")
}

/// Sends the request; a status of 400 or more fails the step. A 429 with a `Retry-After`
/// closes the connection it was signed with, if any, for as long as the server asked.
async fn send(
    request: OutgoingRequest,
    services: &NodeServices,
    connection: Option<ConnectionId>,
) -> Result<StepOutcome, String> {
    let response = services
        .http
        .send(request)
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status;
    if status == 429
        && let Some(connection) = connection
        && let Some(wait) = retry_after(&response.headers, Utc::now())
    {
        services.gate.close_for(connection, wait);
    }
    if status >= 400 {
        return Err(http_failure(status));
    }
    Ok(StepOutcome::Succeeded(response.into_output()))
}

/// The id of the connection `template` names. An id that cannot exist is not found, like
/// the id of another workspace's connection.
pub(crate) fn connection_id_of(template: &str, scope: Scope<'_>) -> Result<ConnectionId, String> {
    let rendered =
        render_text(template, scope).map_err(|error| format!("connectionId: {error}"))?;
    let rendered = rendered.trim();
    rendered
        .parse()
        .map_err(|_| format!("connection `{rendered}` not found"))
}

/// Replaces every secret form of the connection's credentials in the step's output
/// (status, headers, body) or error: a server may echo them, and an error may quote the
/// request.
pub(crate) fn redact(
    result: Result<StepOutcome, String>,
    redactor: &Redactor,
) -> Result<StepOutcome, String> {
    match result {
        Ok(StepOutcome::Succeeded(mut output)) => {
            redactor.redact_value(&mut output);
            Ok(StepOutcome::Succeeded(output))
        }
        Ok(StepOutcome::Branched { mut output, branch }) => {
            redactor.redact_value(&mut output);
            Ok(StepOutcome::Branched { output, branch })
        }
        Ok(StepOutcome::Failed(message)) => Ok(StepOutcome::Failed(
            redactor.redact_text(&message).into_owned(),
        )),
        Err(message) => Err(redactor.redact_text(&message).into_owned()),
    }
}

/// Query values as text: strings as they are, anything else as JSON.
fn query_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[path = "step_tests.rs"]
mod tests;
