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
//! source returns.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use aos_domain::expr::render_value;
use aos_domain::run::{IdempotencyKey, IfBranch, StepOutcome};
use aos_domain::workflow::definition::Node;
use aos_domain::workflow::node_types::{
    DelayConfig, Dynamic, HttpRequestConfig, NodeKind, RespondConfig,
};

use crate::code::{CodeInput, CodeLimits, run_code};
use crate::http::{HttpClient, OutgoingRequest};

/// What an attempt needs to know about where it runs.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    /// The expression scope: an object with `trigger`, `steps`, `vars` and `run`.
    pub scope: &'a Value,
    /// The output of the node this one follows (for `if` and `delay`, which pass it on).
    pub input: &'a Value,
    pub idempotency_key: &'a IdempotencyKey,
    /// When the step first started: a delay counts from then, across restarts.
    pub started_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// The outside world a node may touch.
#[derive(Clone)]
pub struct NodeServices {
    pub http: HttpClient,
    pub code_limits: CodeLimits,
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

pub async fn execute(node: &Node, attempt: Attempt<'_>, services: &NodeServices) -> AttemptResult {
    match node.kind() {
        NodeKind::ManualTrigger(_) | NodeKind::WebhookTrigger(_) | NodeKind::ScheduleTrigger(_) => {
            StepOutcome::Succeeded(attempt.scope["trigger"].clone()).into()
        }
        NodeKind::Set(config) => finish(render_fields(&config.fields, attempt.scope)),
        NodeKind::If(config) => finish(
            render_dynamic(&config.condition, attempt.scope, "condition", |value| {
                Some(is_truthy(value))
            })
            .map(|truthy| StepOutcome::Branched {
                output: attempt.input.clone(),
                branch: IfBranch::of(truthy),
            }),
        ),
        NodeKind::Respond(config) => finish(respond(config, attempt.scope)),
        NodeKind::Fail(config) => match render_text(&config.message, attempt.scope) {
            Ok(message) => StepOutcome::Failed(message).into(),
            Err(error) => StepOutcome::Failed(error).into(),
        },
        NodeKind::Delay(config) => delay(config, &attempt),
        NodeKind::HttpRequest(config) => finish(http_request(config, &attempt, services).await),
        NodeKind::Code(config) => {
            let input = CodeInput {
                trigger: attempt.scope["trigger"].clone(),
                steps: attempt.scope["steps"].clone(),
                vars: attempt.scope["vars"].clone(),
                run: attempt.scope["run"].clone(),
            };
            finish(
                run_code(&config.source, input, &services.code_limits)
                    .await
                    .map(StepOutcome::Succeeded)
                    .map_err(|error| error.to_string()),
            )
        }
    }
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

fn render_fields(fields: &Map<String, Value>, scope: &Value) -> Result<StepOutcome, String> {
    render_value(&Value::Object(fields.clone()), scope)
        .map(StepOutcome::Succeeded)
        .map_err(|error| error.message)
}

fn render_text(template: &str, scope: &Value) -> Result<String, String> {
    match render_value(&Value::String(template.to_owned()), scope) {
        Ok(Value::String(text)) => Ok(text),
        Ok(other) => Ok(other.to_string()),
        Err(error) => Err(error.message),
    }
}

/// A config value given in the definition or computed by its template; `convert` says
/// whether the template's result has the type and range the field needs.
fn render_dynamic<T: Clone>(
    dynamic: &Dynamic<T>,
    scope: &Value,
    field: &str,
    convert: impl Fn(&Value) -> Option<T>,
) -> Result<T, String> {
    match dynamic {
        Dynamic::Fixed(value) => Ok(value.clone()),
        Dynamic::Template(template) => {
            let value = render_value(&Value::String(template.clone()), scope)
                .map_err(|error| format!("{field}: {}", error.message))?;
            convert(&value).ok_or_else(|| format!("{field}: {value} is not a valid value here"))
        }
    }
}

fn render_headers(
    headers: &BTreeMap<String, String>,
    scope: &Value,
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

fn respond(config: &RespondConfig, scope: &Value) -> Result<StepOutcome, String> {
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
        Some(body) => {
            render_value(body, scope).map_err(|error| format!("body: {}", error.message))?
        }
        None => Value::Null,
    };
    Ok(StepOutcome::Succeeded(
        json!({"status": status, "headers": headers, "body": body}),
    ))
}

fn delay(config: &DelayConfig, attempt: &Attempt<'_>) -> AttemptResult {
    let ms = render_dynamic(&config.ms, attempt.scope, "ms", |value| {
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
    attempt: &Attempt<'_>,
    services: &NodeServices,
) -> Result<StepOutcome, String> {
    let scope = attempt.scope;
    let url = render_text(&config.url, scope).map_err(|error| format!("url: {error}"))?;
    let mut request = OutgoingRequest::new(config.method, url);
    request.headers = render_headers(&config.headers, scope)?;
    let query = render_value(&Value::Object(config.query.clone()), scope)
        .map_err(|error| format!("query: {}", error.message))?;
    request.query = query
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.clone(), query_text(value)))
        .collect();
    request.body = match &config.body {
        Some(body) => {
            Some(render_value(body, scope).map_err(|error| format!("body: {}", error.message))?)
        }
        None => None,
    };
    request.idempotency_key = Some(attempt.idempotency_key.to_string());
    request.timeout = config
        .timeout_ms
        .map(|ms| Duration::from_millis(ms.min(HttpRequestConfig::MAX_TIMEOUT_MS)));
    let response = services
        .http
        .send(request)
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status;
    if status >= 400 {
        return Err(format!("the server answered HTTP {status}"));
    }
    Ok(StepOutcome::Succeeded(response.into_output()))
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
