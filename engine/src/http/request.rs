//! The request a workflow step asks for, and its translation into wire form.
//!
//! Body rule: a JSON string is sent as its text (`text/plain; charset=utf-8`), any other
//! JSON value as JSON (`application/json`). A `Content-Type` the author set wins over
//! either default. Headers that describe the connection or the framing are the client's
//! business and refused, so an author cannot desynchronise the wire format.

use std::fmt;
use std::time::Duration;

use aos_domain::workflow::node_types::HttpMethod;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use url::Url;

use super::error::HttpError;

/// Plain, already-rendered data: templates have been evaluated by the engine.
#[derive(Clone, PartialEq)]
pub struct OutgoingRequest {
    pub method: HttpMethod,
    pub url: String,
    /// Sent in order; a repeated name is sent repeatedly.
    pub headers: Vec<(String, String)>,
    /// Appended to the URL's own query, in order.
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    /// Sent as `Idempotency-Key` unless the author set that header themselves; stable
    /// across retries of a step, so a server that honours it applies the request once.
    pub idempotency_key: Option<String>,
    /// `None`: the policy's `total_timeout`.
    pub timeout: Option<Duration>,
}

impl OutgoingRequest {
    pub fn new(method: HttpMethod, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            query: Vec::new(),
            body: None,
            idempotency_key: None,
            timeout: None,
        }
    }
}

/// Header values and the URL's query and user info may hold credentials, and requests
/// end up in logs: show their shape only.
impl fmt::Debug for OutgoingRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        let query_names: Vec<&str> = self.query.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("OutgoingRequest")
            .field("method", &self.method)
            .field("url", &redacted_url(&self.url))
            .field("header_names", &header_names)
            .field("query_names", &query_names)
            .field("has_body", &self.body.is_some())
            .field("idempotency_key", &self.idempotency_key)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn redacted_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) => {
            // Both setters fail only for URLs that cannot carry user info or a query at all.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            if url.query().is_some() {
                url.set_query(Some("…"));
            }
            url.into()
        }
        Err(_) => "<not a URL>".to_owned(),
    }
}

pub(crate) fn method(method: HttpMethod) -> reqwest::Method {
    match method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
        HttpMethod::Delete => reqwest::Method::DELETE,
        HttpMethod::Head => reqwest::Method::HEAD,
        HttpMethod::Options => reqwest::Method::OPTIONS,
    }
}

pub(crate) fn url(raw: &str, query: &[(String, String)]) -> Result<Url, HttpError> {
    let mut url =
        Url::parse(raw.trim()).map_err(|error| HttpError::InvalidUrl(error.to_string()))?;
    if !query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in query {
            pairs.append_pair(name, value);
        }
    }
    Ok(url)
}

/// Headers the client manages: connection handling and message framing.
const MANAGED_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

pub(crate) fn headers(
    headers: &[(String, String)],
    idempotency_key: Option<&str>,
) -> Result<HeaderMap, HttpError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let (name, value) = header(name, value)?;
        if MANAGED_HEADERS.contains(&name.as_str()) {
            return Err(HttpError::InvalidHeader {
                name: name.as_str().to_owned(),
                reason: "this header is set by the HTTP client",
            });
        }
        map.append(name, value);
    }
    if let Some(key) = idempotency_key {
        let (name, value) = header("idempotency-key", key)?;
        map.entry(name).or_insert(value);
    }
    Ok(map)
}

fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), HttpError> {
    let parsed_name =
        HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| HttpError::InvalidHeader {
            name: name.chars().take(64).collect(),
            reason: "not a valid header name",
        })?;
    let mut parsed_value = HeaderValue::from_str(value).map_err(|_| HttpError::InvalidHeader {
        name: parsed_name.as_str().to_owned(),
        reason: "the value contains characters not allowed in a header (such as a line break)",
    })?;
    // Keeps credentials out of any Debug output of the header map.
    parsed_value.set_sensitive(true);
    Ok((parsed_name, parsed_value))
}

/// The body bytes, after setting the default content type unless the author chose one.
pub(crate) fn body(body: &Value, headers: &mut HeaderMap) -> Vec<u8> {
    let (bytes, content_type) = match body {
        Value::String(text) => (text.clone().into_bytes(), "text/plain; charset=utf-8"),
        other => (other.to_string().into_bytes(), "application/json"),
    };
    headers
        .entry(CONTENT_TYPE)
        .or_insert(HeaderValue::from_static(content_type));
    bytes
}
