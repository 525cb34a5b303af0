//! GraphQL over WebSocket: `graphql-transport-ws` and the legacy `graphql-ws`
//! (subscriptions-transport-ws), chosen from the `Sec-WebSocket-Protocol` header.
//!
//! Invariants of every socket served here:
//! - One task per socket reads client messages, polls every active operation and writes
//!   replies; nothing is spawned per message, and a socket holds at most
//!   `max_subscriptions` operation streams and one outgoing message at a time.
//! - The socket is acknowledged within `init_timeout` of opening (the client's
//!   `connection_init` *and* the [`ConnectionInit`] check), or it is closed with 4408.
//! - An acknowledged socket that holds no operation for `idle_timeout` (from the
//!   acknowledgement, or from its last operation's end) is closed with 4410; pings do not
//!   count as activity.
//! - No operation runs before the acknowledgement, and every operation sees the
//!   [`async_graphql::Data`] that [`ConnectionInit`] returned for this socket.
//! - Whatever ends the socket (client close, protocol violation, network error), every
//!   operation stream is dropped with it.
//! - Client faults close the socket with the protocol's 44xx codes and never panic the
//!   server; a panicking resolver ends only its own operation (an `INTERNAL` error).

mod close;
mod connection;
mod protocol;
mod slots;
mod upgrade;

#[cfg(test)]
mod tests;

use std::{sync::Arc, time::Duration};

use async_graphql::{Data, Executor};
use axum::extract::ws::WebSocket;

pub use async_graphql::http::WebSocketProtocols;
pub use slots::{Held, SlotRefused, SubscriptionSlot, SubscriptionSlots};
pub use upgrade::{GraphQLWsRejection, GraphQLWsUpgrade};

/// Per-socket limits; each protects the server from one misbehaving client.
#[derive(Debug, Clone, Copy)]
pub struct WsLimits {
    /// Time from opening the socket to acknowledging `connection_init` (close 4408 after).
    pub init_timeout: Duration,
    /// Operations (subscriptions, and queries still running) active at once on one socket.
    pub max_subscriptions: usize,
    /// Time a socket may hold no operation before it is closed (4410).
    pub idle_timeout: Duration,
    /// Largest accepted client message, in bytes (close 4400 above it).
    pub max_message_bytes: usize,
}

/// Authenticates a socket from its `connection_init` payload.
#[async_trait::async_trait]
pub trait ConnectionInit: Send + Sync + 'static {
    /// Called once per socket with the `connection_init` payload: always a JSON object,
    /// empty when the client sent none (by contract the token arrives as
    /// `{"Authorization": "Bearer <token>"}`). Returns the data attached to every operation
    /// of this socket, or a message for the client: the socket is then closed with 4401.
    async fn init(&self, payload: serde_json::Value) -> Result<Data, String>;
}

/// Serves an upgraded socket until it closes. `protocol` must be the subprotocol the
/// upgrade response agreed on; [`GraphQLWsUpgrade`] does that negotiation.
pub async fn serve<E: Executor>(
    socket: WebSocket,
    protocol: WebSocketProtocols,
    executor: E,
    init: Arc<dyn ConnectionInit>,
    limits: WsLimits,
) {
    connection::Connection::new(protocol, executor, init, limits)
        .run(socket)
        .await;
}
