//! The legacy `graphql-ws` protocol (subscriptions-transport-ws): start/data/stop.

use serde_json::json;

use super::harness::{Client, close, init_message, json_msg, spawn_server};

const PROTOCOL: &str = "graphql-ws";

fn start(id: &str, query: &str) -> serde_json::Value {
    json!({"type": "start", "id": id, "payload": {"query": query}})
}

#[tokio::test]
async fn subscription_streams_data_then_completes() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;

    client.send(start("1", "subscription { count }")).await;

    for n in 1..=3 {
        assert_eq!(
            client.recv().await,
            json_msg(json!({"type": "data", "id": "1", "payload": {"data": {"count": n}}}))
        );
    }
    assert_eq!(
        client.recv().await,
        json_msg(json!({"type": "complete", "id": "1"}))
    );
}

#[tokio::test]
async fn validation_errors_arrive_as_data_then_complete() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;

    client.send(start("bad", "{ nope }")).await;

    assert_eq!(
        client.recv().await,
        json_msg(json!({
            "type": "data", "id": "bad",
            "payload": {
                "data": null,
                "errors": [{
                    "message": "Unknown field \"nope\" on type \"Query\".",
                    "locations": [{"line": 1, "column": 3}]
                }]
            }
        }))
    );
    assert_eq!(
        client.recv().await,
        json_msg(json!({"type": "complete", "id": "bad"}))
    );
}

#[tokio::test]
async fn rejected_token_sends_connection_error_then_closes_4401() {
    let server = spawn_server().await;
    let mut client = Client::connect(&server, PROTOCOL).await;

    client.send(init_message("Bearer bad")).await;

    assert_eq!(
        client.recv().await,
        json_msg(json!({"type": "connection_error", "payload": {"message": "Invalid token"}}))
    );
    assert_eq!(client.recv().await, close(4401, "Invalid token"));
}

#[tokio::test]
async fn stop_ends_the_stream() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;
    client.send(start("1", "subscription { idle }")).await;
    assert!(super::harness::eventually(|| server.live.count() == 1).await);

    client.send(json!({"type": "stop", "id": "1"})).await;

    assert!(super::harness::eventually(|| server.live.count() == 0).await);
    client.send(start("1", "{ hello }")).await;
    assert_eq!(
        client.recv().await,
        json_msg(json!({"type": "data", "id": "1", "payload": {"data": {"hello": "world"}}})),
        "the id is free again"
    );
}

#[tokio::test]
async fn connection_terminate_closes_normally() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;

    client.send(json!({"type": "connection_terminate"})).await;

    assert_eq!(client.recv().await, close(1000, ""));
}

#[tokio::test]
async fn graphql_transport_ws_message_types_close_4400() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;

    client.send(json!({"type": "ping"})).await;

    assert_eq!(
        client.recv().await,
        close(4400, "Unknown message type \"ping\"")
    );
}
