//! Calling a service over HTTP on a connector's behalf: the request signed with the
//! connection's credentials, and the answer sorted into what the caller does next
//! (`ConnectorError`): a refusal of the credentials, a rate limit with its `Retry-After`,
//! or another failure whose message quotes a little of the service's answer.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::http::{HttpError, HttpResponse, OutgoingRequest};
use crate::{ConnectorContext, ConnectorError};

/// How much of an error response a message quotes.
const QUOTED_BODY_CHARS: usize = 300;

/// Sends `request` signed with the connection, and fails on a status of 400 or more.
pub async fn send(
    ctx: &ConnectorContext<'_>,
    mut request: OutgoingRequest,
) -> Result<HttpResponse, ConnectorError> {
    request.sign(ctx.credentials);
    if request.idempotency_key.is_none() {
        request.idempotency_key = ctx.idempotency_key.map(str::to_owned);
    }
    let response = ctx.http.send(request).await.map_err(transport_error)?;
    check_status(response)
}

/// `response` if its status is below 400; otherwise the error it amounts to.
pub fn check_status(response: HttpResponse) -> Result<HttpResponse, ConnectorError> {
    let status = response.status;
    if status < 400 {
        return Ok(response);
    }
    let message = format!("HTTP {status}{}", quoted(&response.body));
    Err(match status {
        401 => ConnectorError::Unauthorized(message),
        429 => ConnectorError::RateLimited {
            retry_after: retry_after(&response.headers, Utc::now()),
            message,
        },
        503 if response.headers.contains_key("retry-after") => ConnectorError::RateLimited {
            retry_after: retry_after(&response.headers, Utc::now()),
            message,
        },
        _ => ConnectorError::Failed(message),
    })
}

pub fn transport_error(error: HttpError) -> ConnectorError {
    ConnectorError::Failed(error.to_string())
}

/// The wait a `Retry-After` header (lower-cased name, as [`HttpResponse`] keeps them) asks
/// for: seconds, or an HTTP date.
pub fn retry_after(headers: &Map<String, Value>, now: DateTime<Utc>) -> Option<Duration> {
    let raw = headers.get("retry-after")?.as_str()?.trim();
    if let Ok(seconds) = raw.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(raw).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

fn quoted(body: &Value) -> String {
    let text = match body {
        Value::String(text) if text.is_empty() => return String::new(),
        Value::String(text) => text.clone(),
        Value::Null => return String::new(),
        other => other.to_string(),
    };
    let mut quoted: String = text.chars().take(QUOTED_BODY_CHARS).collect();
    if quoted.len() < text.len() {
        quoted.push('…');
    }
    format!(": {quoted}")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::http::BodyEncoding;

    fn response(status: u16, headers: Value, body: Value) -> HttpResponse {
        HttpResponse {
            status,
            headers: headers.as_object().cloned().unwrap_or_default(),
            body,
            body_encoding: BodyEncoding::Json,
        }
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).single();
        let Some(now) = now else { unreachable!() };
        let seconds = json!({"retry-after": "7"});
        let date = json!({"retry-after": "Mon, 30 Nov 2026 12:00:30 GMT"});
        let past = json!({"retry-after": "Mon, 30 Nov 2026 11:00:00 GMT"});
        let junk = json!({"retry-after": "soon"});
        let of = |value: &Value| retry_after(value.as_object().unwrap_or(&Map::new()), now);
        assert_eq!(of(&seconds), Some(Duration::from_secs(7)));
        assert_eq!(of(&date), Some(Duration::from_secs(30)));
        assert_eq!(of(&past), Some(Duration::ZERO));
        assert_eq!(of(&junk), None);
        assert_eq!(of(&json!({})), None);
    }

    #[test]
    fn statuses_sort_into_what_happens_next() {
        assert!(check_status(response(200, json!({}), json!("ok"))).is_ok());
        assert!(matches!(
            check_status(response(401, json!({}), json!({"error": "invalid_auth"}))),
            Err(ConnectorError::Unauthorized(message)) if message.contains("invalid_auth")
        ));
        assert!(matches!(
            check_status(response(429, json!({"retry-after": "2"}), json!(""))),
            Err(ConnectorError::RateLimited { retry_after: Some(wait), .. }) if wait == Duration::from_secs(2)
        ));
        assert!(matches!(
            check_status(response(500, json!({}), json!("x".repeat(1000)))),
            Err(ConnectorError::Failed(message)) if message.len() < 400
        ));
    }
}
