//! `testConnection` for the generic `http` connector: a GET to the connection's
//! `settings.testUrl`, signed exactly as an `http.request` step signs with it
//! ([`OutgoingRequest::sign`]), so a passing test means steps will get through too.
//!
//! Invariants:
//! - the request goes through the workflow [`HttpClient`], so the SSRF rules hold as for
//!   any step: a test cannot make the server reach an address a workflow could not;
//! - the message never holds a secret: it shows the URL without user info, query or
//!   fragment (where keys travel), and is passed through the credentials' [`Redactor`]
//!   besides, since a path or an error could still quote one.

use std::time::Duration;

use serde_json::Value;
use url::Url;

use aos_domain::connection::{Connection, ConnectionTestResult, Credentials, Redactor};
use aos_domain::workflow::node_types::HttpMethod;

use crate::http::{HttpClient, OutgoingRequest};

/// A test is answered to someone waiting on the API: shorter than a step's default.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings key of the URL the test calls.
pub const TEST_URL_SETTING: &str = "testUrl";

/// Checks `credentials` against `connection.settings.testUrl` when it is set; without it
/// only their shape can be vouched for, which parsing them already did.
pub async fn test_connection(
    http: &HttpClient,
    connection: &Connection,
    credentials: &Credentials,
) -> ConnectionTestResult {
    let test_url = match connection.settings.get(TEST_URL_SETTING) {
        None | Some(Value::Null) => {
            return ConnectionTestResult {
                ok: true,
                message: format!(
                    "the credentials are well-formed; set settings.{TEST_URL_SETTING} to check them against a server"
                ),
            };
        }
        Some(Value::String(url)) => url.as_str(),
        Some(_) => {
            return ConnectionTestResult {
                ok: false,
                message: format!("settings.{TEST_URL_SETTING} must be a URL string"),
            };
        }
    };
    let mut request = OutgoingRequest::new(HttpMethod::Get, test_url);
    request.timeout = Some(TEST_TIMEOUT);
    request.sign(credentials);
    let shown = shown_url(test_url);
    let (ok, message) = match http.send(request).await {
        Ok(response) if matches!(response.status, 401 | 403) => (
            false,
            format!(
                "GET {shown} answered HTTP {}: the server refused the credentials",
                response.status
            ),
        ),
        Ok(response) => (
            response.status < 400,
            format!("GET {shown} answered HTTP {}", response.status),
        ),
        Err(error) => (false, format!("GET {shown} failed: {error}")),
    };
    let redactor = Redactor::for_credentials(credentials);
    ConnectionTestResult {
        ok,
        message: redactor.redact_text(&message).into_owned(),
    }
}

/// The URL as a message may show it: scheme, host, port and path only.
fn shown_url(raw: &str) -> String {
    match Url::parse(raw.trim()) {
        Ok(mut url) => {
            // Both setters fail only for URLs that cannot carry user info at all.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.into()
        }
        Err(_) => "the test URL".to_owned(),
    }
}

#[cfg(test)]
#[path = "http_check_tests.rs"]
mod tests;
