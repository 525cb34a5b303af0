//! The axum side: accept a WebSocket upgrade only when it offers a GraphQL subprotocol.
//!
//! When the client offers both, `graphql-transport-ws` wins (the maintained protocol). The
//! upgrade response echoes the client's own spelling of the chosen protocol, as browsers
//! reject a value they did not offer. The transport's message size limit is set to
//! `WsLimits::max_message_bytes`, so an oversized message is refused before it is buffered.

use std::{str::FromStr, sync::Arc};

use async_graphql::{Executor, http::WebSocketProtocols};
use axum::{
    extract::{
        FromRequestParts, OptionalFromRequestParts, WebSocketUpgrade,
        ws::rejection::WebSocketUpgradeRejection,
    },
    http::{HeaderValue, Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use tracing::Instrument;

use super::{ConnectionInit, WsLimits, serve};

/// Extracts a WebSocket upgrade request offering `graphql-transport-ws` or `graphql-ws`.
///
/// As `Option<GraphQLWsUpgrade>` it yields `None` for a request that is not a WebSocket
/// upgrade at all, so one `GET /graphql` handler can serve both HTTP queries and sockets.
#[derive(Debug)]
pub struct GraphQLWsUpgrade {
    upgrade: WebSocketUpgrade,
    protocol: WebSocketProtocols,
}

/// Why a request cannot become a GraphQL WebSocket.
#[derive(Debug)]
pub enum GraphQLWsRejection {
    /// Not a valid WebSocket upgrade request (axum's own rejection and status).
    NotWebSocket(WebSocketUpgradeRejection),
    /// A WebSocket upgrade offering no protocol we speak: 400.
    UnsupportedProtocol,
}

impl IntoResponse for GraphQLWsRejection {
    fn into_response(self) -> Response {
        match self {
            Self::NotWebSocket(rejection) => rejection.into_response(),
            Self::UnsupportedProtocol => (
                StatusCode::BAD_REQUEST,
                "Sec-WebSocket-Protocol must offer graphql-transport-ws or graphql-ws",
            )
                .into_response(),
        }
    }
}

impl GraphQLWsUpgrade {
    /// The negotiated protocol.
    pub fn protocol(&self) -> WebSocketProtocols {
        self.protocol
    }

    /// Completes the upgrade and serves the socket with [`serve`] in axum's upgrade task,
    /// inside the current tracing span.
    pub fn serve<E: Executor>(
        self,
        executor: E,
        init: Arc<dyn ConnectionInit>,
        limits: WsLimits,
    ) -> Response {
        let protocol = self.protocol;
        let span = tracing::Span::current();
        self.upgrade
            .max_message_size(limits.max_message_bytes)
            .max_frame_size(limits.max_message_bytes)
            .on_failed_upgrade(|error| tracing::debug!(%error, "WebSocket upgrade failed"))
            .on_upgrade(move |socket| {
                serve(socket, protocol, executor, init, limits).instrument(span)
            })
    }

    fn negotiate(mut upgrade: WebSocketUpgrade) -> Result<Self, GraphQLWsRejection> {
        let offered: Vec<(WebSocketProtocols, HeaderValue)> = upgrade
            .requested_protocols()
            .filter_map(|value| {
                let name = value.to_str().ok()?;
                let protocol = WebSocketProtocols::from_str(name).ok()?;
                Some((protocol, value.clone()))
            })
            .collect();
        let (protocol, spelling) = [
            WebSocketProtocols::GraphQLWS,
            WebSocketProtocols::SubscriptionsTransportWS,
        ]
        .into_iter()
        .find_map(|preferred| offered.iter().find(|(offer, _)| *offer == preferred))
        .cloned()
        .ok_or(GraphQLWsRejection::UnsupportedProtocol)?;
        upgrade.set_selected_protocol(spelling);
        Ok(Self { upgrade, protocol })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for GraphQLWsUpgrade {
    type Rejection = GraphQLWsRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let upgrade = WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map_err(GraphQLWsRejection::NotWebSocket)?;
        Self::negotiate(upgrade)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for GraphQLWsUpgrade {
    type Rejection = GraphQLWsRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if !attempts_websocket(parts) {
            return Ok(None);
        }
        <Self as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// An HTTP/1.1 `Upgrade: websocket` request, or an HTTP/2 extended CONNECT: a request that
/// means to open a socket, and so gets a rejection rather than an HTTP answer if malformed.
fn attempts_websocket(parts: &Parts) -> bool {
    let upgrade_websocket = parts
        .headers
        .get(header::UPGRADE)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"));
    upgrade_websocket || parts.method == Method::CONNECT
}
