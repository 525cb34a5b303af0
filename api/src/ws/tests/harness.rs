//! A real axum server on 127.0.0.1:0 with a tiny schema, and a tokio-tungstenite client
//! that reads the server's messages one by one with a deadline, so no test can hang.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_graphql::{Context, Data, EmptyMutation, Object, Schema, Subscription};
use axum::{
    Router,
    extract::WebSocketUpgrade,
    response::{IntoResponse, Response},
    routing::get,
};
use futures::{SinkExt, Stream, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{self, Message, client::IntoClientRequest, http::HeaderValue},
};

use crate::ws::{ConnectionInit, GraphQLWsUpgrade, WebSocketProtocols, WsLimits, serve};

const READ_DEADLINE: Duration = Duration::from_secs(5);

pub(super) const LIMITS: WsLimits = WsLimits {
    init_timeout: Duration::from_millis(300),
    max_subscriptions: 2,
    idle_timeout: Duration::from_secs(2),
    max_message_bytes: 1024,
};

/// The signed-in user, as the socket's `ConnectionInit` data.
struct Principal(&'static str);

/// How many `idle` subscription streams are alive on the server.
#[derive(Clone, Default)]
pub(super) struct LiveStreams(Arc<AtomicUsize>);

impl LiveStreams {
    pub(super) fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

struct LiveGuard(Arc<AtomicUsize>);

impl LiveGuard {
    fn new(live: &LiveStreams) -> Self {
        live.0.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(&live.0))
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Query;

#[Object]
impl Query {
    async fn hello(&self) -> &str {
        "world"
    }

    async fn whoami(&self, ctx: &Context<'_>) -> async_graphql::Result<&str> {
        Ok(ctx.data::<Principal>()?.0)
    }
}

struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// 1, 2, 3 with a short pause before each.
    async fn count(&self) -> impl Stream<Item = i32> {
        futures::stream::iter(1..=3).then(|n| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            n
        })
    }

    /// Never yields and never ends; counted in `LiveStreams` while alive.
    async fn idle(&self, ctx: &Context<'_>) -> impl Stream<Item = i32> {
        let guard = LiveGuard::new(ctx.data_unchecked::<LiveStreams>());
        futures::stream::unfold(guard, |guard| async move {
            let _held = guard;
            futures::future::pending::<Option<(i32, LiveGuard)>>().await
        })
    }

    /// 0, 1, 2, ... every 20 ms, forever.
    async fn ticks(&self) -> impl Stream<Item = i32> {
        futures::stream::iter(0..).then(|n| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            n
        })
    }

    async fn explode(&self) -> impl Stream<Item = i32> {
        futures::stream::once(async { panic!("resolver bug") })
    }
}

type TestSchema = Schema<Query, EmptyMutation, SubscriptionRoot>;

/// Accepts only `{"Authorization": "Bearer good"}`; "Bearer slow" never answers.
struct TokenInit;

#[async_trait::async_trait]
impl ConnectionInit for TokenInit {
    async fn init(&self, payload: Value) -> Result<Data, String> {
        match payload.get("Authorization").and_then(Value::as_str) {
            Some("Bearer good") => {
                let mut data = Data::default();
                data.insert(Principal("good-user"));
                Ok(data)
            }
            Some("Bearer slow") => futures::future::pending().await,
            Some(_) => Err("Invalid token".to_owned()),
            None => Err("Missing Authorization".to_owned()),
        }
    }
}

pub(super) struct TestServer {
    pub(super) addr: SocketAddr,
    pub(super) live: LiveStreams,
}

/// `/graphql` negotiates through [`GraphQLWsUpgrade`] (plain GET: "plain HTTP"); `/raw`
/// calls [`serve`] on a socket with axum's default limits and `graphql-transport-ws`.
pub(super) fn app(live: LiveStreams) -> Router {
    let schema: TestSchema = Schema::build(Query, EmptyMutation, SubscriptionRoot)
        .data(live)
        .finish();
    let init: Arc<dyn ConnectionInit> = Arc::new(TokenInit);
    let raw_schema = schema.clone();
    let raw_init = Arc::clone(&init);
    Router::new()
        .route(
            "/graphql",
            get(move |upgrade: Option<GraphQLWsUpgrade>| async move {
                match upgrade {
                    Some(upgrade) => upgrade.serve(schema, init, LIMITS),
                    None => "plain HTTP".into_response(),
                }
            }),
        )
        .route(
            "/raw",
            get(move |upgrade: WebSocketUpgrade| async move {
                let response: Response =
                    upgrade
                        .protocols(["graphql-transport-ws"])
                        .on_upgrade(move |socket| {
                            serve(
                                socket,
                                WebSocketProtocols::GraphQLWS,
                                raw_schema,
                                raw_init,
                                LIMITS,
                            )
                        });
                response
            }),
        )
}

pub(super) async fn spawn_server() -> TestServer {
    let live = LiveStreams::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let addr = listener.local_addr().expect("local address");
    let app = app(live.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    TestServer { addr, live }
}

/// What the server sent next, ignoring WebSocket-level pings and pongs.
#[derive(Debug, PartialEq)]
pub(super) enum Received {
    Json(Value),
    Close {
        code: u16,
        reason: String,
    },
    /// The connection ended without a close frame.
    Ended,
}

pub(super) struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub(super) selected_protocol: Option<String>,
}

pub(super) async fn connect(
    server: &TestServer,
    path: &str,
    protocols: &str,
) -> Result<Client, tungstenite::Error> {
    let mut request = format!("ws://{}{path}", server.addr)
        .into_client_request()
        .expect("a valid ws URL");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(protocols).expect("a valid header value"),
    );
    let (socket, response) = connect_async(request).await?;
    let selected_protocol = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    Ok(Client {
        socket,
        selected_protocol,
    })
}

impl Client {
    pub(super) async fn connect(server: &TestServer, protocol: &str) -> Self {
        connect(server, "/graphql", protocol)
            .await
            .expect("WebSocket handshake")
    }

    /// Connects and completes `connection_init` with a good token.
    pub(super) async fn acknowledged(server: &TestServer, protocol: &str) -> Self {
        let mut client = Self::connect(server, protocol).await;
        client.send(init_message("Bearer good")).await;
        assert_eq!(
            client.recv().await,
            json_msg(json!({"type": "connection_ack"}))
        );
        client
    }

    pub(super) async fn send(&mut self, message: Value) {
        self.send_text(message.to_string()).await;
    }

    pub(super) async fn send_text(&mut self, text: String) {
        self.socket
            .send(Message::text(text))
            .await
            .expect("send to the server");
    }

    pub(super) async fn recv(&mut self) -> Received {
        tokio::time::timeout(READ_DEADLINE, self.next_received())
            .await
            .expect("the server answers within the deadline")
    }

    /// Like [`Self::recv`], but skips messages of the operations in `noisy`.
    pub(super) async fn recv_skipping(&mut self, noisy: &[&str]) -> Received {
        loop {
            let received = self.recv().await;
            let is_noise = matches!(&received, Received::Json(message)
                if message["id"].as_str().is_some_and(|id| noisy.contains(&id)));
            if !is_noise {
                return received;
            }
        }
    }

    /// Nothing arrives for `quiet` (other than WebSocket pings).
    pub(super) async fn assert_silent_for(&mut self, quiet: Duration) {
        if let Ok(received) = tokio::time::timeout(quiet, self.next_received()).await {
            panic!("expected silence, got {received:?}");
        }
    }

    pub(super) async fn close(mut self) {
        self.socket.close(None).await.expect("send a close frame");
        while let Some(Ok(_)) = self.socket.next().await {}
    }

    async fn next_received(&mut self) -> Received {
        loop {
            match self.socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let message =
                        serde_json::from_str(text.as_str()).expect("the server sends JSON");
                    return Received::Json(message);
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|frame| (u16::from(frame.code), frame.reason.as_str().to_owned()))
                        .unwrap_or((1005, String::new()));
                    return Received::Close { code, reason };
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(other)) => panic!("unexpected message {other:?}"),
                Some(Err(_)) | None => return Received::Ended,
            }
        }
    }
}

pub(super) fn json_msg(message: Value) -> Received {
    Received::Json(message)
}

pub(super) fn close(code: u16, reason: &str) -> Received {
    Received::Close {
        code,
        reason: reason.to_owned(),
    }
}

pub(super) fn init_message(authorization: &str) -> Value {
    json!({"type": "connection_init", "payload": {"Authorization": authorization}})
}

/// Waits until `condition` holds, polling briefly; false if it never did.
pub(super) async fn eventually(condition: impl Fn() -> bool) -> bool {
    for _ in 0..100 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}
