//! Webhook triggers: `/hooks/{key}` starts a run of the active workflow whose webhook key
//! it names. The run's input is `{body, headers, query, method}`.
//!
//! `respond: immediately` answers 202 with `{"runId"}` once the run is queued.
//! `respond: onCompletion` executes the run at once on this node when it can (see
//! `RunExecutor`; a run of pure steps is then one write), else queues it, and waits for
//! the run to end (up to a timeout) and answers with the
//! `respond` node's status, headers and body, or with the run's output as JSON, or 500 with
//! the error; a run still going at the timeout gets 202 with its id, so the caller can
//! follow it. With a `secret`, the request must carry `X-Signature-256: sha256=<hex
//! HMAC-SHA256 of the body>` (compared in constant time), else 401 and no run.
//!
//! Unknown keys and inactive workflows are both 404: a key is a secret, and a probe must
//! not learn which keys exist.
//!
//! Every call counts against a rate limit before anything else is done: a known key's
//! against its workflow's workspace, an unknown key's against the caller's IP. Over the
//! limit: 429 with `Retry-After`, and no run. So is a run its workspace's quotas refuse
//! (runs per month, queued runs): 429 with `Retry-After` and `"code": "QUOTA_EXCEEDED"`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use aos_domain::journal::{NewRun, RunEvent, RunOutcome, RunTrigger};
use aos_domain::ports::ExecutedRun;
use aos_domain::run::{RunId, RunStatus, StepStatus};
use aos_domain::workflow::Definition;
use aos_domain::workflow::node_types::{HttpMethod, NodeKind, NodeType, WebhookResponse};

use super::HttpState;
use super::too_many::webhook_refusal;
use crate::error::ApiError;

/// What a caller refused by a full queue is told to wait before trying again.
const QUEUE_FULL_RETRY_AFTER_SECS: i64 = 5;
/// How long `onCompletion` holds the caller's request before answering 202.
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(30);
/// Headers that carry credentials of the caller: never stored in a run's input.
const DROPPED_HEADERS: [&str; 4] = [
    "authorization",
    "cookie",
    "proxy-authorization",
    "x-signature-256",
];

pub async fn hook(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(key): Path<String>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let app = &state.app;
    let target = match app.store.webhook_target(&key).await {
        Ok(Some(target)) if target.active => target,
        Ok(_) => {
            // A key guesser spends its own address's budget, not a workspace's.
            if let Err(refusal) = app.rate_limits.check_client_ip(peer.ip()).await {
                return webhook_refusal(refusal);
            }
            return refuse(StatusCode::NOT_FOUND, "no active workflow has this webhook");
        }
        Err(error) => return internal(error),
    };
    tracing::Span::current().record("workspace_id", tracing::field::display(target.workspace_id));
    if let Err(refusal) = app.rate_limits.check_workspace(target.workspace_id).await {
        return webhook_refusal(refusal);
    }
    let Ok(definition) =
        app.definitions
            .get(target.workflow_id, target.version, &target.definition)
    else {
        return refuse(StatusCode::NOT_FOUND, "no active workflow has this webhook");
    };
    let NodeKind::WebhookTrigger(config) = definition.trigger().kind() else {
        return refuse(StatusCode::NOT_FOUND, "no active workflow has this webhook");
    };
    let Some(http_method) = HttpMethod::parse(method.as_str()) else {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "this webhook does not accept this method",
        );
    };
    if !config.accepts(http_method) {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "this webhook does not accept this method",
        );
    }
    if let Some(secret) = &config.secret
        && !signature_matches(secret.expose(), &headers, &body)
    {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "missing or wrong X-Signature-256 (sha256=<hex HMAC-SHA256 of the body>)",
        );
    }
    let input = json!({
        "body": body_value(&headers, &body),
        "headers": header_map(&headers),
        "query": query_map(query.as_deref().unwrap_or("")),
        "method": method.as_str(),
    });
    let mut run = NewRun {
        id: RunId::generate(),
        workflow_id: target.workflow_id,
        workflow_version: target.version,
        trigger: RunTrigger::Webhook,
        input,
        retry_of: None,
        reused_steps: Vec::new(),
        queued_at: chrono::Utc::now(),
    };
    let run_id = run.id;
    // Subscribed before the run exists, so its end cannot slip by unseen.
    let live = app.run_events.subscribe_run(run_id);
    if config.respond == WebhookResponse::OnCompletion
        && let Some(executor) = &app.run_now
    {
        // A run executed in place is never queued, so it is admitted here (see
        // `crate::quota_meter`); a queued run is counted when it is stored.
        let admission = match app.run_meter.admit(target.workspace_id).await {
            Ok(admission) => admission,
            Err(error) => return failed(error),
        };
        let executed = tokio::time::timeout(
            COMPLETION_TIMEOUT,
            executor.execute_now(target.workspace_id, run, Arc::clone(&definition)),
        )
        .await;
        match executed {
            Ok(Ok(ExecutedRun::Ended(outcome))) => {
                return completion_response(&definition, run_id, &outcome);
            }
            Ok(Ok(ExecutedRun::Continues)) => {
                return match await_end(app, run_id, live).await {
                    Some(outcome) => completion_response(&definition, run_id, &outcome),
                    None => accepted(run_id),
                };
            }
            Ok(Ok(ExecutedRun::Declined(declined))) => {
                // Queued instead, where it is counted again.
                if let Err(error) = app
                    .run_meter
                    .give_back(target.workspace_id, admission)
                    .await
                {
                    return failed(error);
                }
                run = *declined;
            }
            Ok(Err(error)) => return internal(error),
            // It goes on in its own task, and is stored by now (pure steps wait for a
            // write a fraction of a second at most): the caller follows it by its id.
            Err(_) => return accepted(run_id),
        }
    }
    let run = match app.store.enqueue_triggered(&target, run).await {
        Ok(run) => run,
        Err(error) => return failed(error),
    };
    app.announce_queued(&run);
    if config.respond == WebhookResponse::Immediately {
        return accepted(run_id);
    }
    match tokio::time::timeout(COMPLETION_TIMEOUT, await_end(app, run_id, live)).await {
        Ok(Some(outcome)) => completion_response(&definition, run_id, &outcome),
        _ => accepted(run_id),
    }
}

/// Waits for the end of a run executing anywhere, by its events here or, after a quiet
/// second (it may be executing on another node, whose events this one does not see), by
/// reading storage. `None` if the wait cannot go on.
async fn await_end(
    app: &crate::state::AppState,
    run_id: RunId,
    mut live: broadcast::Receiver<Arc<RunEvent>>,
) -> Option<RunOutcome> {
    loop {
        match tokio::time::timeout(Duration::from_secs(1), live.recv()).await {
            Ok(Ok(event)) if event.run_id == run_id && event.kind.is_terminal() => {}
            Ok(Ok(_)) => continue,
            Ok(Err(RecvError::Closed)) => return None,
            Ok(Err(RecvError::Lagged(_))) | Err(_) => {}
        }
        match app.store.triggered_run(run_id).await {
            Ok(Some((run, steps))) if run.status.is_terminal() => {
                return Some(RunOutcome {
                    status: run.status,
                    output: run.output,
                    error: run.error,
                    steps,
                });
            }
            Ok(_) => {}
            Err(error) => {
                let _ = ApiError::internal(&error);
                return None;
            }
        }
    }
}

fn signature_matches(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(signature) = headers
        .get("x-signature-256")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().strip_prefix("sha256="))
        .and_then(|hex_digest| hex::decode(hex_digest).ok())
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// JSON when the body is JSON, text otherwise; an empty body is `null`.
fn body_value(headers: &HeaderMap, body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.to_ascii_lowercase().contains("json"));
    if is_json && let Ok(value) = serde_json::from_slice(body) {
        return value;
    }
    Value::String(String::from_utf8_lossy(body).into_owned())
}

fn header_map(headers: &HeaderMap) -> Value {
    let mut map = Map::new();
    for (name, value) in headers {
        if DROPPED_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match map.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                map.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    Value::Object(map)
}

fn query_map(query: &str) -> Value {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let mut map: HashMap<String, String> = HashMap::new();
    for (name, value) in pairs {
        map.entry(name).or_insert(value);
    }
    json!(map)
}

fn completion_response(definition: &Definition, run_id: RunId, run: &RunOutcome) -> Response {
    match run.status {
        RunStatus::Succeeded => {
            let responded = run.steps.iter().any(|step| {
                step.status == StepStatus::Succeeded
                    && definition
                        .node(&step.node_id)
                        .is_some_and(|node| node.node_type() == NodeType::Respond)
            });
            let output = run.output.clone().unwrap_or(Value::Null);
            if responded {
                respond_node_response(&output)
            } else {
                (StatusCode::OK, axum::Json(output)).into_response()
            }
        }
        _ => {
            let error = run
                .error
                .clone()
                .unwrap_or_else(|| format!("the run ended {}", run.status));
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"error": error, "runId": run_id.to_string()})),
            )
                .into_response()
        }
    }
}

/// The `respond` node's `{status, headers, body}`: a JSON body unless it is a string.
fn respond_node_response(output: &Value) -> Response {
    let status = output["status"]
        .as_u64()
        .and_then(|status| u16::try_from(status).ok())
        .and_then(|status| StatusCode::from_u16(status).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = match &output["body"] {
        Value::String(text) => (status, text.clone()).into_response(),
        Value::Null => status.into_response(),
        body => (status, axum::Json(body.clone())).into_response(),
    };
    if let Some(headers) = output["headers"].as_object() {
        for (name, value) in headers {
            let (Ok(name), Some(Ok(value))) = (
                HeaderName::try_from(name.as_str()),
                value.as_str().map(HeaderValue::try_from),
            ) else {
                continue;
            };
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn accepted(run_id: RunId) -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"runId": run_id.to_string()})),
    )
        .into_response()
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

/// A refused run: 429 when a quota refused it (with `Retry-After`: when the month's
/// runs start again from zero, or a few seconds for a full queue, which drains), else
/// internal.
fn failed(error: aos_domain::DomainError) -> Response {
    let aos_domain::DomainError::QuotaExceeded { quota, limit } = error else {
        return internal(error);
    };
    let now = chrono::Utc::now();
    let retry_after_secs = match quota.period() {
        Some(period) => (period.resets_at(now) - now).num_seconds().max(1),
        None => QUEUE_FULL_RETRY_AFTER_SECS,
    };
    let message = aos_domain::DomainError::QuotaExceeded { quota, limit }.to_string();
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, retry_after_secs.to_string())],
        axum::Json(json!({
            "error": message,
            "code": crate::error::QUOTA_EXCEEDED,
            "quota": quota.name(),
            "limit": limit,
        })),
    )
        .into_response()
}

fn internal(error: aos_domain::DomainError) -> Response {
    let _ = ApiError::from(error);
    refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}
