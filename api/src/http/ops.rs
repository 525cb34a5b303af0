//! Liveness, readiness, metrics and the landing page.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};

use super::HttpState;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers; a load balancer stops sending traffic otherwise.
pub async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if (state.app.readiness)().await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
    }
}

pub async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// The web frontend will live here; until then, the API explorer.
pub async fn home() -> Redirect {
    Redirect::temporary("/graphql")
}
