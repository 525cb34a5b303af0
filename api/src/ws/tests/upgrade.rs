//! Protocol negotiation on the upgrade request.

use axum::{body::Body, http::Request, http::StatusCode};
use tokio_tungstenite::tungstenite;
use tower::ServiceExt;

use super::harness::{Client, LiveStreams, app, connect, spawn_server};

#[tokio::test]
async fn upgrade_offering_no_graphql_protocol_is_refused_with_400() {
    let server = spawn_server().await;

    let refused = connect(&server, "/graphql", "soap").await;

    let Err(tungstenite::Error::Http(response)) = refused else {
        panic!("expected an HTTP refusal");
    };
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn graphql_transport_ws_is_chosen_when_both_are_offered() {
    let server = spawn_server().await;

    let client = Client::connect(&server, "graphql-ws, graphql-transport-ws").await;

    assert_eq!(
        client.selected_protocol.as_deref(),
        Some("graphql-transport-ws")
    );
}

#[tokio::test]
async fn plain_get_is_not_an_upgrade() {
    let app = app(LiveStreams::default());
    let request = Request::get("/graphql")
        .body(Body::empty())
        .expect("a valid request");

    let response = app.oneshot(request).await.expect("infallible router");

    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .expect("body");
    assert_eq!(&body[..], b"plain HTTP");
}
