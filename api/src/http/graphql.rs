//! GraphQL over HTTP.

use std::net::SocketAddr;

use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, Request};
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use aos_domain::access::Principal;

use super::HttpState;
use super::too_many::graphql_refusal;
use crate::auth::authn::{Caller, authenticate};
use crate::error::{ApiError, BAD_USER_INPUT};
use crate::graphql::RequestCtx;
use crate::limits::charge::RequestTally;

pub async fn post(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_json(&headers) {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send GraphQL requests as `Content-Type: application/json`",
        );
    }
    let batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(error) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("the body is not a GraphQL request: {error}"),
            );
        }
    };
    let max_batch = state.app.config.graphql.max_batch;
    if let BatchRequest::Batch(requests) = &batch
        && (requests.is_empty() || requests.len() > max_batch)
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            &format!("a batch holds 1 to {max_batch} operations"),
        );
    }
    let (ctx, tally) = match request_ctx(&state, &headers, peer).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let response = tally
        .scope(state.schema.execute_batch(batch.data(ctx)))
        .await;
    json_response(&response)
}

pub async fn get(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    if let Ok(upgrade) = upgrade {
        return super::ws_route::upgrade(state, peer, &headers, upgrade);
    }
    let query = query.unwrap_or_default();
    if query.is_empty() {
        return Html(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql")
                .finish(),
        )
        .into_response();
    }
    let request = match parse_get_request(&query) {
        Ok(request) => request,
        Err(error) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("the query string is not a GraphQL request: {error}"),
            );
        }
    };
    if !is_query(&request) {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "only queries may be sent with GET; send mutations and subscriptions with POST or WebSocket",
        );
    }
    let (ctx, tally) = match request_ctx(&state, &headers, peer).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let response = tally.scope(state.schema.execute(request.data(ctx))).await;
    json_response(&response)
}

/// The GraphQL-over-HTTP spec names the parameter `operationName`; async-graphql's own
/// parser only reads `operation_name`, so both are accepted here.
fn parse_get_request(query: &str) -> Result<Request, String> {
    #[derive(serde::Deserialize)]
    struct GetParams {
        #[serde(default)]
        query: String,
        #[serde(rename = "operationName", alias = "operation_name")]
        operation_name: Option<String>,
        variables: Option<String>,
        extensions: Option<String>,
    }
    let params: GetParams = serde_urlencoded::from_str(query).map_err(|error| error.to_string())?;
    let mut request = Request::new(params.query);
    if let Some(name) = params.operation_name.filter(|name| !name.is_empty()) {
        request = request.operation_name(name);
    }
    if let Some(variables) = params.variables.filter(|v| !v.is_empty()) {
        let variables = serde_json::from_str(&variables)
            .map_err(|error| format!("invalid variables: {error}"))?;
        request = request.variables(variables);
    }
    if let Some(extensions) = params.extensions.filter(|v| !v.is_empty()) {
        request.extensions = serde_json::from_str(&extensions)
            .map_err(|error| format!("invalid extensions: {error}"))?;
    }
    Ok(request)
}

/// Who sent the request, and its rate-limit tally. Counted here, before GraphQL runs (a
/// refusal is HTTP 429): an API token's request against the token's workspace, a request
/// without valid credentials against its client IP. A user's request counts later,
/// against each workspace it is authorized in.
async fn request_ctx(
    state: &HttpState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<(RequestCtx, RequestTally), Response> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match authenticate(&state.app, authorization).await {
        Ok(caller) => {
            let limits = &state.app.rate_limits;
            let tally = match &caller {
                Caller::Authenticated(Principal::ApiToken(token)) => {
                    limits
                        .check_workspace(token.workspace_id)
                        .await
                        .map_err(graphql_refusal)?;
                    RequestTally::counted(token.workspace_id)
                }
                Caller::Authenticated(Principal::User(_)) => RequestTally::default(),
                Caller::Anonymous | Caller::Rejected(_) => {
                    limits
                        .check_client_ip(peer.ip())
                        .await
                        .map_err(graphql_refusal)?;
                    RequestTally::default()
                }
            };
            let ctx = RequestCtx {
                caller,
                client_ip: peer.ip(),
            };
            Ok((ctx, tally))
        }
        Err(error) => {
            let error: async_graphql::Error = error.into();
            Err(json_response(&async_graphql::Response::from_errors(vec![
                error.into_server_error(Default::default()),
            ])))
        }
    }
}

/// GET must not change anything: a link or an image tag could otherwise run a mutation.
/// A document that does not parse is passed on, so the client gets the parse error.
fn is_query(request: &Request) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return true;
    };
    let mut operations = document.operations.iter();
    let selected = match &request.operation_name {
        Some(name) => operations.find(|(op_name, _)| op_name.is_some_and(|n| n.as_str() == name)),
        None => operations.next(),
    };
    selected.is_none_or(|(_, op)| op.node.ty == OperationType::Query)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

fn json_response(body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(error) => {
            let _ = ApiError::internal(&error);
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// A refusal before GraphQL runs, in the GraphQL error shape so clients parse it alike.
fn refuse(status: StatusCode, message: &str) -> Response {
    let code = if status.is_server_error() {
        crate::error::INTERNAL
    } else {
        BAD_USER_INPUT
    };
    let body =
        serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
