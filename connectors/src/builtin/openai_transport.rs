//! How async-openai's requests reach the server: the connector's own tower service in
//! place of the library's default executor.
//!
//! Why not the default: it retries 429s and 5xxs up to three times, sleeping as long as
//! `Retry-After` says, inside one step. That holds a worker, spends money on repeated
//! completions, and hides the wait from the engine, whose retry policy and
//! `RateLimited` handling exist for exactly this. It also reads bodies without a cap.
//!
//! Invariants:
//! - requests go through the guarded reqwest client of [`crate::http::HttpClient`]: names
//!   are resolved and redirects followed only to addresses the SSRF rules allow (the
//!   caller vets an IP-literal base URL with `check_url` first, which the resolver cannot);
//! - exactly one attempt per call;
//! - a body is read up to [`MAX_RESPONSE_BYTES`] and abandoned past it;
//! - a status other than 2xx becomes the [`ConnectorError`] it amounts to, boxed in
//!   `OpenAIError::Boxed` for the connector to unbox: 401 `Unauthorized`, 429
//!   `RateLimited` with `retry-after-ms` or `Retry-After` (but an exhausted quota,
//!   `insufficient_quota`, is `Failed`: waiting will not refill it), 503 with a wait
//!   `RateLimited`, anything else `Failed`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use chrono::Utc;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::{Map, Value};

use crate::http::HttpError;
use crate::{ConnectorError, call};

/// Far more than any chat completion; a server sending more is not one.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// How much of an error's text a message quotes.
const QUOTED_CHARS: usize = 300;

/// OpenAI's error code for a spent quota, which it sends with HTTP 429.
const INSUFFICIENT_QUOTA: &str = "insufficient_quota";

#[derive(Clone)]
pub struct GuardedTransport {
    client: reqwest::Client,
}

impl GuardedTransport {
    pub fn new(client: reqwest::Client) -> Self {
        Self { client }
    }
}

impl tower::Service<HttpRequestFactory> for GuardedTransport {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let client = self.client.clone();
        Box::pin(async move {
            exchange(client, factory)
                .await
                .map_err(|error| OpenAIError::Boxed(Box::new(error)))
        })
    }
}

async fn exchange(
    client: reqwest::Client,
    factory: HttpRequestFactory,
) -> Result<reqwest::Response, ConnectorError> {
    let request = factory
        .build()
        .await
        .map_err(|error| ConnectorError::Failed(format!("could not build the request: {error}")))?;
    let response = client
        .execute(request)
        .await
        .map_err(|error| call::transport_error(HttpError::from_reqwest(error)))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = read_capped(response).await?;
    if !status.is_success() {
        return Err(refusal(status.as_u16(), &headers, &body));
    }
    // async-openai reads the body of the response it gets; give it the bytes already read.
    let mut rebuilt = http::Response::new(body);
    *rebuilt.status_mut() = status;
    *rebuilt.headers_mut() = headers;
    Ok(reqwest::Response::from(rebuilt))
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, ConnectorError> {
    let too_large = || {
        call::transport_error(HttpError::TooLarge {
            limit: MAX_RESPONSE_BYTES,
        })
    };
    if response
        .content_length()
        .is_some_and(|length| length > MAX_RESPONSE_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| call::transport_error(HttpError::from_reqwest(error)))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What an answer with a status other than 2xx amounts to (see the module's invariants).
pub fn refusal(status: u16, headers: &HeaderMap, body: &[u8]) -> ConnectorError {
    let (code, text) = explanation(body);
    let mut message = format!("the server answered HTTP {status}");
    if let Some(code) = &code {
        message.push_str(&format!(" ({code})"));
    }
    if !text.is_empty() {
        message.push_str(&format!(": {text}"));
    }
    let wait = retry_after(headers);
    match status {
        401 => ConnectorError::Unauthorized(message),
        429 if code.as_deref() == Some(INSUFFICIENT_QUOTA) => ConnectorError::Failed(message),
        429 => ConnectorError::RateLimited {
            retry_after: wait,
            message,
        },
        503 if wait.is_some() => ConnectorError::RateLimited {
            retry_after: wait,
            message,
        },
        _ => ConnectorError::Failed(message),
    }
}

/// The error's code and message from OpenAI's `{"error": {...}}` body, or a little of
/// whatever else the body is.
fn explanation(body: &[u8]) -> (Option<String>, String) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|value| value.get("error"));
    let field = |name: &str| {
        error
            .and_then(|error| error.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let code = field("code").or_else(|| field("type"));
    let text = field("message").unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let mut quoted: String = text.trim().chars().take(QUOTED_CHARS).collect();
    if quoted.len() < text.trim().len() {
        quoted.push('…');
    }
    (code, quoted)
}

/// `retry-after-ms` (sent by OpenAI and Azure, more precise) or `Retry-After`.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(ms) = text("retry-after-ms").and_then(|raw| raw.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let raw = text(RETRY_AFTER.as_str())?;
    let mut as_json = Map::new();
    as_json.insert("retry-after".to_owned(), Value::String(raw.to_owned()));
    call::retry_after(&as_json, Utc::now())
}
