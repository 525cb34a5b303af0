//! Subscriptions over WebSocket on `GET /graphql`. The socket authenticates once, in
//! `connection_init` (browsers cannot set headers on a WebSocket), and every operation on
//! it runs as that caller.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_graphql::Data;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::HttpState;
use crate::auth::authn::{Caller, authenticate};
use crate::graphql::RequestCtx;
use crate::state::AppState;
use crate::ws::{ConnectionInit, WebSocketProtocols, WsLimits};

pub fn upgrade(
    state: HttpState,
    peer: SocketAddr,
    headers: &HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let offered = headers
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some((name, protocol)) = offered
        .split(',')
        .map(str::trim)
        .find_map(|name| match name {
            "graphql-transport-ws" => Some((name.to_owned(), WebSocketProtocols::GraphQLWS)),
            "graphql-ws" => Some((
                name.to_owned(),
                WebSocketProtocols::SubscriptionsTransportWS,
            )),
            _ => None,
        })
    else {
        return (
            StatusCode::BAD_REQUEST,
            "offer the `graphql-transport-ws` (or legacy `graphql-ws`) subprotocol",
        )
            .into_response();
    };
    let limits = WsLimits {
        init_timeout: state.app.config.ws_init_timeout,
        max_subscriptions: state.app.config.ws_max_subscriptions,
        idle_timeout: state.app.config.ws_idle_timeout,
        max_message_bytes: state.app.config.max_body_bytes,
    };
    let init: Arc<dyn ConnectionInit> = Arc::new(SocketAuth {
        app: state.app.clone(),
        client_ip: peer.ip(),
    });
    upgrade
        .protocols([name])
        .max_message_size(limits.max_message_bytes)
        .on_upgrade(move |socket| crate::ws::serve(socket, protocol, state.schema, init, limits))
}

struct SocketAuth {
    app: AppState,
    client_ip: IpAddr,
}

#[async_trait::async_trait]
impl ConnectionInit for SocketAuth {
    async fn init(&self, payload: serde_json::Value) -> Result<Data, String> {
        let authorization = payload
            .as_object()
            .and_then(|fields| {
                fields
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case("authorization"))
            })
            .and_then(|(_, value)| value.as_str());
        let caller = authenticate(&self.app, authorization)
            .await
            .map_err(|_| "authentication failed".to_owned())?;
        match caller {
            Caller::Authenticated(_) => {
                let mut data = Data::default();
                data.insert(RequestCtx {
                    caller,
                    client_ip: self.client_ip,
                });
                Ok(data)
            }
            Caller::Anonymous => {
                Err("send `{\"Authorization\": \"Bearer <token>\"}` in connection_init".into())
            }
            Caller::Rejected(reason) => Err(reason.into()),
        }
    }
}
