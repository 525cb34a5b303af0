//! The per-socket state machine: one loop selects over the client's next message, the
//! next event of any active operation, the initialisation deadline, the idle deadline
//! and the keepalive.
//!
//! Each branch's handler runs to completion (including its one send) before the next
//! select, so writes are naturally backpressured: a client that stops reading stops its
//! own operations from being polled, and after `SEND_TIMEOUT` the socket is dropped.

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use async_graphql::{Data, Executor, Response, Value, http::WebSocketProtocols};
use axum::{
    body::Bytes,
    extract::ws::{Message, WebSocket},
};
use futures::{FutureExt, SinkExt, StreamExt, stream::BoxStream};
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until, timeout, timeout_at};
use tokio_stream::StreamMap;

use super::{
    ConnectionInit, WsLimits,
    close::CloseReason,
    protocol::{ClientMessage, ServerMessage, coded_error, parse_client_message},
};
use crate::limits::charge::RequestTally;

/// WebSocket-level pings (answered by every client's WebSocket layer, browsers included)
/// keep idle sockets alive through proxies that cut connections silent for 60 s.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// A client that accepts no data for this long is gone or hostile; its socket is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the client to answer our close frame before dropping TCP.
const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// Used when a timeout is too large to add to the clock: effectively no deadline.
const FAR_FUTURE: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Why the loop ended, which decides how the socket is shut down.
enum Stop {
    /// The server ends the socket with this close frame.
    Close(CloseReason),
    /// The client sent a close frame; tungstenite has queued the reply.
    ClientClosed,
    /// The connection is gone or unusable: nothing more can be sent.
    Disconnected,
}

enum OperationEvent {
    Response {
        response: Box<Response>,
        first: bool,
    },
    Panicked,
    Finished,
}

type OperationEvents = BoxStream<'static, OperationEvent>;

pub(super) struct Connection<E> {
    protocol: WebSocketProtocols,
    executor: E,
    init: Arc<dyn ConnectionInit>,
    limits: WsLimits,
    init_deadline: Instant,
    /// When the acknowledged socket is closed for holding no operation; set at the
    /// acknowledgement and moved on as the last operation ends.
    idle_deadline: Instant,
    init_received: bool,
    /// `Some` once the socket is acknowledged.
    session: Option<Arc<Data>>,
    operations: StreamMap<String, OperationEvents>,
}

impl<E: Executor> Connection<E> {
    pub(super) fn new(
        protocol: WebSocketProtocols,
        executor: E,
        init: Arc<dyn ConnectionInit>,
        limits: WsLimits,
    ) -> Self {
        let init_deadline = deadline_after(limits.init_timeout);
        let idle_deadline = deadline_after(limits.idle_timeout);
        Self {
            protocol,
            executor,
            init,
            limits,
            init_deadline,
            idle_deadline,
            init_received: false,
            session: None,
            operations: StreamMap::new(),
        }
    }

    pub(super) async fn run(mut self, mut socket: WebSocket) {
        let stop = self.drive(&mut socket).await;
        // Operations end with the socket, before the close handshake.
        drop(self);
        shut_down(socket, stop).await;
    }

    async fn drive(&mut self, socket: &mut WebSocket) -> Stop {
        let init_deadline = sleep_until(self.init_deadline);
        tokio::pin!(init_deadline);
        let idle_deadline = sleep_until(self.idle_deadline);
        tokio::pin!(idle_deadline);
        let mut keepalive = interval_at(Instant::now() + KEEPALIVE_INTERVAL, KEEPALIVE_INTERVAL);
        keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);

        loop {
            let step = tokio::select! {
                incoming = socket.recv() => self.on_incoming(socket, incoming).await,
                () = &mut init_deadline, if self.session.is_none() => {
                    Err(Stop::Close(CloseReason::init_timeout()))
                }
                // Until the acknowledgement the init deadline alone applies, so an
                // unauthenticated socket is always told 4408.
                () = &mut idle_deadline, if self.session.is_some() && self.operations.is_empty() => {
                    Err(Stop::Close(CloseReason::idle_timeout()))
                }
                Some((id, event)) = self.operations.next(), if !self.operations.is_empty() => {
                    self.on_operation_event(socket, id, event).await
                }
                _ = keepalive.tick() => send(socket, Message::Ping(Bytes::new())).await,
            };
            if let Err(stop) = step {
                return stop;
            }
            if idle_deadline.deadline() != self.idle_deadline {
                idle_deadline.as_mut().reset(self.idle_deadline);
            }
        }
    }

    async fn on_incoming(
        &mut self,
        socket: &mut WebSocket,
        incoming: Option<Result<Message, axum::Error>>,
    ) -> Result<(), Stop> {
        let message = match incoming {
            None => return Err(Stop::Disconnected),
            Some(Err(error)) => {
                // Oversized frames (axum's limit), invalid UTF-8 and protocol violations;
                // on a broken connection the close frame simply fails to send.
                tracing::debug!(%error, "unreadable WebSocket message");
                return Err(Stop::Close(CloseReason::invalid_message(
                    "Unreadable message: too large or not valid WebSocket data",
                )));
            }
            Some(Ok(message)) => message,
        };
        let bytes = match message {
            // Both protocols send JSON text; a client that frames it as binary is served too.
            Message::Text(_) | Message::Binary(_) => message.into_data(),
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
            Message::Close(_) => return Err(Stop::ClientClosed),
        };
        if bytes.len() > self.limits.max_message_bytes {
            return Err(Stop::Close(CloseReason::invalid_message(format!(
                "Message exceeds {} bytes",
                self.limits.max_message_bytes
            ))));
        }
        let message = parse_client_message(self.protocol, &bytes).map_err(|invalid| {
            tracing::debug!(reason = %invalid.0, "invalid GraphQL WebSocket message");
            Stop::Close(CloseReason::invalid_message(invalid.0))
        })?;
        self.on_client_message(socket, message).await
    }

    async fn on_client_message(
        &mut self,
        socket: &mut WebSocket,
        message: ClientMessage,
    ) -> Result<(), Stop> {
        match message {
            ClientMessage::ConnectionInit { payload } => {
                self.on_connection_init(socket, serde_json::Value::Object(payload))
                    .await
            }
            ClientMessage::Ping => self.send_message(socket, ServerMessage::Pong).await,
            ClientMessage::Pong => Ok(()),
            ClientMessage::Subscribe { id, request } => {
                self.on_subscribe(socket, id, *request).await
            }
            ClientMessage::Complete { id } => {
                // Stopping an unknown or already finished operation is a harmless race.
                self.end_operation(&id);
                Ok(())
            }
            ClientMessage::Terminate => Err(Stop::Close(CloseReason::normal())),
        }
    }

    async fn on_connection_init(
        &mut self,
        socket: &mut WebSocket,
        payload: serde_json::Value,
    ) -> Result<(), Stop> {
        if self.init_received {
            return Err(Stop::Close(CloseReason::too_many_init_requests()));
        }
        self.init_received = true;
        let init = Arc::clone(&self.init);
        let checked = timeout_at(
            self.init_deadline,
            AssertUnwindSafe(init.init(payload)).catch_unwind(),
        )
        .await;
        match checked {
            Err(_elapsed) => Err(Stop::Close(CloseReason::init_timeout())),
            Ok(Err(_panic)) => {
                tracing::error!("ConnectionInit panicked");
                Err(Stop::Close(CloseReason::internal()))
            }
            Ok(Ok(Err(message))) => {
                if self.protocol == WebSocketProtocols::SubscriptionsTransportWS {
                    let refusal = ServerMessage::ConnectionError { message: &message };
                    self.send_message(socket, refusal).await?;
                }
                Err(Stop::Close(CloseReason::unauthorized(message)))
            }
            Ok(Ok(Ok(data))) => {
                self.session = Some(Arc::new(data));
                self.idle_deadline = deadline_after(self.limits.idle_timeout);
                self.send_message(socket, ServerMessage::ConnectionAck)
                    .await
            }
        }
    }

    async fn on_subscribe(
        &mut self,
        socket: &mut WebSocket,
        id: String,
        request: async_graphql::Request,
    ) -> Result<(), Stop> {
        let Some(session) = &self.session else {
            return Err(Stop::Close(CloseReason::unauthorized("Unauthorized")));
        };
        if self.operations.contains_key(&id) {
            return Err(Stop::Close(CloseReason::subscriber_exists(&id)));
        }
        if self.operations.len() >= self.limits.max_subscriptions {
            let error = coded_error(
                format!(
                    "Too many active operations on this connection (at most {})",
                    self.limits.max_subscriptions
                ),
                "BAD_USER_INPUT",
            );
            let refusal = ServerMessage::Error {
                id: &id,
                errors: &[error],
            };
            return self.send_message(socket, refusal).await;
        }
        let responses = self
            .executor
            .execute_stream(request, Some(Arc::clone(session)));
        // A subscription starts (and is authorized) as its stream is first polled; its
        // own tally makes that start count once per workspace, and its later events not.
        let responses = Box::pin(RequestTally::default().scope_stream(responses));
        self.operations.insert(id, operation_events(responses));
        Ok(())
    }

    async fn on_operation_event(
        &mut self,
        socket: &mut WebSocket,
        id: String,
        event: OperationEvent,
    ) -> Result<(), Stop> {
        match event {
            OperationEvent::Response { response, first } => {
                // graphql-transport-ws reports an operation that could not run (parse or
                // validation errors, no data) as `error`; later errors travel in `next`.
                let refused = first
                    && self.protocol == WebSocketProtocols::GraphQLWS
                    && !response.errors.is_empty()
                    && response.data == Value::Null;
                if refused {
                    self.end_operation(&id);
                    let errors = &response.errors;
                    self.send_message(socket, ServerMessage::Error { id: &id, errors })
                        .await
                } else {
                    let response = &response;
                    self.send_message(socket, ServerMessage::Next { id: &id, response })
                        .await
                }
            }
            OperationEvent::Panicked => {
                tracing::error!(operation.id = %id, "GraphQL operation panicked");
                self.end_operation(&id);
                let errors = &[coded_error("Internal server error", "INTERNAL")];
                self.send_message(socket, ServerMessage::Error { id: &id, errors })
                    .await
            }
            OperationEvent::Finished => {
                // Removed now, not when the map next polls the exhausted stream, so the
                // client may reuse the id as soon as it reads `complete`.
                self.end_operation(&id);
                self.send_message(socket, ServerMessage::Complete { id: &id })
                    .await
            }
        }
    }

    /// Drops operation `id` (with whatever it holds, such as its subscription slot); the
    /// idle clock starts again when it was the last one.
    fn end_operation(&mut self, id: &str) {
        if self.operations.remove(id).is_some() && self.operations.is_empty() {
            self.idle_deadline = deadline_after(self.limits.idle_timeout);
        }
    }

    async fn send_message(
        &mut self,
        socket: &mut WebSocket,
        message: ServerMessage<'_>,
    ) -> Result<(), Stop> {
        send_message(socket, self.protocol, message).await
    }
}

// Takes the protocol rather than `&Connection`, whose streams are `Send` but not `Sync`.
async fn send_message(
    socket: &mut WebSocket,
    protocol: WebSocketProtocols,
    message: ServerMessage<'_>,
) -> Result<(), Stop> {
    let text = message.encode(protocol).map_err(|error| {
        tracing::error!(%error, "could not encode a GraphQL WebSocket message");
        Stop::Close(CloseReason::internal())
    })?;
    send(socket, Message::Text(text.into())).await
}

fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| now + FAR_FUTURE)
}

/// Tags each response with whether it is the operation's first, turns a panic into an
/// event instead of unwinding through the socket's task, and marks the end.
fn operation_events(responses: BoxStream<'static, Response>) -> OperationEvents {
    AssertUnwindSafe(responses)
        .catch_unwind()
        .enumerate()
        .map(|(index, polled)| match polled {
            Ok(response) => OperationEvent::Response {
                response: Box::new(response),
                first: index == 0,
            },
            Err(_panic) => OperationEvent::Panicked,
        })
        .chain(futures::stream::once(async { OperationEvent::Finished }))
        .boxed()
}

async fn send(socket: &mut WebSocket, message: Message) -> Result<(), Stop> {
    match timeout(SEND_TIMEOUT, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => {
            tracing::debug!(%error, "GraphQL WebSocket send failed");
            Err(Stop::Disconnected)
        }
        Err(_elapsed) => {
            tracing::debug!("GraphQL WebSocket client stopped reading");
            Err(Stop::Disconnected)
        }
    }
}

async fn shut_down(mut socket: WebSocket, stop: Stop) {
    match stop {
        Stop::Close(reason) => {
            tracing::debug!(close = %reason, "closing GraphQL WebSocket");
            if send(&mut socket, Message::Close(Some(reason.into_frame())))
                .await
                .is_ok()
            {
                // Wait for the client's close reply so the server closes TCP first
                // (RFC 6455 §7.1.1), ignoring whatever else it still sends.
                let drain = async { while let Some(Ok(_)) = socket.recv().await {} };
                let _ = timeout(CLOSE_HANDSHAKE_TIMEOUT, drain).await;
            }
        }
        Stop::ClientClosed => {
            // Flushes the close reply tungstenite queued on reading the client's frame.
            let _ = timeout(CLOSE_HANDSHAKE_TIMEOUT, socket.close()).await;
        }
        Stop::Disconnected => {}
    }
}
