//! The HTTP surface: GraphQL over HTTP and WebSocket, webhooks, the OAuth2 callback,
//! health, readiness and metrics.
//!
//! GraphQL requests are read by our own handler rather than async-graphql-axum's
//! extractor, because the extractor accepts any body size and content type. Here: the body
//! is capped (413), only `application/json` is accepted for POST so that a cross-site form
//! or `text/plain` fetch cannot reach a mutation (415), malformed JSON is a 400, batches
//! are capped, and GET runs queries only (405 otherwise).

mod graphql;
mod hooks;
mod oauth_callback;
mod ops;
mod too_many;
mod ws_route;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::Request;
use axum::routing::{any, get};
use metrics_exporter_prometheus::PrometheusHandle;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::graphql::AppSchema;
use crate::state::AppState;

#[derive(Clone)]
pub struct HttpState {
    pub app: AppState,
    pub schema: AppSchema,
    pub metrics: PrometheusHandle,
}

pub fn router(state: HttpState) -> Router {
    let max_body = state.app.config.max_body_bytes;
    let request_ids = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::x_request_id());
    Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/hooks/{key}", any(hooks::hook))
        .route(crate::oauth::CALLBACK_PATH, get(oauth_callback::callback))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/", get(ops::home))
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(request_ids)
        .with_state(state)
}

/// One span per request; every log line inside it carries the request id, which the
/// client also gets back in `x-request-id`.
///
/// The span names the route, not the path: a webhook's path is its secret key. The
/// workspace the request acts in is recorded once authorization grants a scope
/// (`crate::authz`), and a GraphQL operation's label once it is parsed.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str);
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request.id = %request_id,
        workspace_id = tracing::field::Empty,
        operation = tracing::field::Empty,
    )
}
