//! HTTP 429 for requests refused for their rate before any GraphQL or webhook work: the
//! wait as `Retry-After` in whole seconds (rounded up) and, in the body, in milliseconds.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::RATE_LIMITED;
use crate::limits::policy::RateLimited;

/// In the GraphQL error shape, so GraphQL clients parse it like any other error.
pub fn graphql_refusal(refusal: RateLimited) -> Response {
    let body = json!({ "errors": [{
        "message": "too many requests; try again later",
        "extensions": { "code": RATE_LIMITED, "retryAfterMs": refusal.retry_after_ms() },
    }]});
    with_retry_after(refusal, axum::Json(body).into_response())
}

/// In the webhooks' `{"error"}` shape.
pub fn webhook_refusal(refusal: RateLimited) -> Response {
    let body = json!({
        "error": "too many requests; try again later",
        "retryAfterMs": refusal.retry_after_ms(),
    });
    with_retry_after(refusal, axum::Json(body).into_response())
}

fn with_retry_after(refusal: RateLimited, mut response: Response) -> Response {
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(refusal.retry_after_secs()),
    );
    response
}
