//! The request a workflow step asks for, and its translation into wire form.
//!
//! Body rule: a JSON string is sent as its text (`text/plain; charset=utf-8`), any other
//! JSON value as JSON (`application/json`). A `Content-Type` the author set wins over
//! either default. Headers that describe the connection or the framing are the client's
//! business and refused, so an author cannot desynchronise the wire format.
//!
//! Signing rule: a request signed with a connection's credentials ([`OutgoingRequest::sign`])
//! carries the connection's value alone under each name it sets. The author's header of
//! that name (compared case-insensitively) or query parameter of that name (in `query` or
//! in the URL's own query) is removed, so the server never has two credentials to choose
//! from and a workflow cannot shadow the connection it names.

use std::fmt;
use std::time::Duration;

use aos_domain::connection::{Credentials, KeyPlacement};
use aos_domain::workflow::node_types::HttpMethod;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use url::Url;

use super::error::HttpError;
use super::response::base64;

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

    /// Adds the credentials where their kind says they travel: `Authorization: Bearer`,
    /// the API key's header or query parameter, `Authorization: Basic`, or an OAuth2
    /// access token as `Authorization: Bearer`. See the
    /// module's signing rule for what happens to the author's values of the same name.
    pub fn sign(&mut self, credentials: &Credentials) {
        match credentials {
            Credentials::Bearer { token } => {
                self.replace_header(AUTHORIZATION.as_str(), format!("Bearer {token}"));
            }
            Credentials::ApiKey {
                placement: KeyPlacement::Header,
                name,
                value,
            } => self.replace_header(name, value.clone()),
            Credentials::ApiKey {
                placement: KeyPlacement::Query,
                name,
                value,
            } => self.replace_query(name, value.clone()),
            Credentials::Basic { username, password } => {
                let pair = base64(format!("{username}:{password}").as_bytes());
                self.replace_header(AUTHORIZATION.as_str(), format!("Basic {pair}"));
            }
            // Whatever `token_type` the server named: every OAuth2 server in use issues
            // bearer tokens (RFC 6750), and the MAC draft never shipped.
            Credentials::OAuth2(oauth2) => {
                self.replace_header(
                    AUTHORIZATION.as_str(),
                    format!("Bearer {}", oauth2.access_token),
                );
            }
        }
    }

    fn replace_header(&mut self, name: &str, value: String) {
        let name = name.trim();
        self.headers
            .retain(|(existing, _)| !existing.trim().eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value));
    }

    fn replace_query(&mut self, name: &str, value: String) {
        self.query.retain(|(existing, _)| existing != name);
        // A URL that does not parse is left alone: sending it fails anyway.
        if let Ok(mut url) = Url::parse(self.url.trim())
            && url.query_pairs().any(|(existing, _)| existing == name)
        {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(existing, _)| existing != name)
                .map(|(existing, value)| (existing.into_owned(), value.into_owned()))
                .collect();
            if kept.is_empty() {
                url.set_query(None);
            } else {
                url.query_pairs_mut().clear().extend_pairs(kept);
            }
            self.url = url.into();
        }
        self.query.push((name.to_owned(), value));
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
