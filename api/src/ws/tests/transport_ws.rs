//! `graphql-transport-ws`: the handshake, operations, limits and every close code.

use std::time::Duration;

use serde_json::json;

use super::harness::{Client, close, connect, eventually, init_message, json_msg, spawn_server};

const PROTOCOL: &str = "graphql-transport-ws";

fn subscribe(id: &str, query: &str) -> serde_json::Value {
    json!({"type": "subscribe", "id": id, "payload": {"query": query}})
}

#[tokio::test]
async fn subscription_streams_each_value_then_completes() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;

    client.send(subscribe("1", "subscription { count }")).await;

    for n in 1..=3 {
        assert_eq!(
            client.recv().await,
            json_msg(json!({"type": "next", "id": "1", "payload": {"data": {"count": n}}}))
        );
    }
    assert_eq!(
        client.recv().await,
        json_msg(json!({"type": "complete", "id": "1"}))
    );
}

#[tokio::test]
async fn query_yields_one_response_with_the_connection_data_then_completes() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;

    client.send(subscribe("q", "{ whoami hello }")).await;

    assert_eq!(
        client.recv().await,
        json_msg(json!({
            "type": "next", "id": "q",
            "payload": {"data": {"whoami": "good-user", "hello": "world"}}
        }))
    );
    assert_eq!(
        client.recv().await,
        json_msg(json!({"type": "complete", "id": "q"}))
    );
}

#[tokio::test]
async fn ping_is_answered_with_pong_even_before_init() {
    let server = spawn_server().await;
    let mut client = Client::connect(&server, PROTOCOL).await;

    client
        .send(json!({"type": "ping", "payload": {"t": 1}}))
        .await;

    assert_eq!(client.recv().await, json_msg(json!({"type": "pong"})));
}

#[tokio::test]
async fn operation_that_fails_validation_is_an_error_message_without_complete() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;

    client.send(subscribe("bad", "{ nope }")).await;

    assert_eq!(
        client.recv().await,
        json_msg(json!({
            "type": "error", "id": "bad",
            "payload": [{
                "message": "Unknown field \"nope\" on type \"Query\".",
                "locations": [{"line": 1, "column": 3}]
            }]
        }))
    );
    client.send(subscribe("ok", "{ hello }")).await;
    assert_eq!(
        client.recv().await,
        json_msg(json!({"type": "next", "id": "ok", "payload": {"data": {"hello": "world"}}})),
        "no complete for the failed operation precedes the next one"
    );
}

#[tokio::test]
async fn silent_client_is_closed_4408_after_the_init_timeout() {
    let server = spawn_server().await;
    let mut client = Client::connect(&server, PROTOCOL).await;

    let received = client.recv().await;

    assert_eq!(received, close(4408, "Connection initialisation timeout"));
}

#[tokio::test]
async fn init_check_slower_than_the_init_timeout_closes_4408() {
    let server = spawn_server().await;
    let mut client = Client::connect(&server, PROTOCOL).await;

    client.send(init_message("Bearer slow")).await;

    assert_eq!(
        client.recv().await,
        close(4408, "Connection initialisation timeout")
    );
}

#[tokio::test]
async fn rejected_token_closes_4401_with_the_reason() {
    let server = spawn_server().await;
    let mut client = Client::connect(&server, PROTOCOL).await;

    client.send(init_message("Bearer bad")).await;

    assert_eq!(client.recv().await, close(4401, "Invalid token"));
}

#[tokio::test]
async fn init_without_payload_reaches_the_check_as_an_empty_object() {
    let server = spawn_server().await;
    let mut client = Client::connect(&server, PROTOCOL).await;

    client.send(json!({"type": "connection_init"})).await;

    assert_eq!(client.recv().await, close(4401, "Missing Authorization"));
}

#[tokio::test]
async fn subscribe_before_ack_closes_4401() {
    let server = spawn_server().await;
    let mut client = Client::connect(&server, PROTOCOL).await;

    client.send(subscribe("1", "{ hello }")).await;

    assert_eq!(client.recv().await, close(4401, "Unauthorized"));
}

#[tokio::test]
async fn second_connection_init_closes_4429() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;

    client.send(init_message("Bearer good")).await;

    assert_eq!(
        client.recv().await,
        close(4429, "Too many initialisation requests")
    );
}

#[tokio::test]
async fn duplicate_active_id_closes_4409_and_drops_the_streams() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;
    client.send(subscribe("1", "subscription { idle }")).await;

    client.send(subscribe("1", "subscription { idle }")).await;

    assert_eq!(
        client.recv().await,
        close(4409, "Subscriber for 1 already exists")
    );
    assert!(eventually(|| server.live.count() == 0).await);
}

#[tokio::test]
async fn operations_over_the_cap_get_an_error_and_the_socket_stays_usable() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;
    client.send(subscribe("a", "subscription { idle }")).await;
    client.send(subscribe("b", "subscription { idle }")).await;

    client.send(subscribe("c", "subscription { idle }")).await;

    assert_eq!(
        client.recv().await,
        json_msg(json!({
            "type": "error", "id": "c",
            "payload": [{
                "message": "Too many active operations on this connection (at most 2)",
                "extensions": {"code": "BAD_USER_INPUT"}
            }]
        }))
    );
    client.send(json!({"type": "complete", "id": "a"})).await;
    client.send(subscribe("d", "{ hello }")).await;
    assert_eq!(
        client.recv().await,
        json_msg(json!({"type": "next", "id": "d", "payload": {"data": {"hello": "world"}}}))
    );
    assert_eq!(
        client.recv().await,
        json_msg(json!({"type": "complete", "id": "d"}))
    );
    assert!(
        eventually(|| server.live.count() == 1).await,
        "only b is left"
    );
}

#[tokio::test]
async fn malformed_json_closes_4400() {
    let server = spawn_server().await;
    let mut client = Client::connect(&server, PROTOCOL).await;

    client.send_text("not json".to_owned()).await;

    assert_eq!(
        client.recv().await,
        close(
            4400,
            "Invalid message received: expected ident at line 1 column 2"
        )
    );
}

#[tokio::test]
async fn unknown_message_type_closes_4400() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;

    client
        .send(json!({"type": "start", "id": "1", "payload": {"query": "{ hello }"}}))
        .await;

    assert_eq!(
        client.recv().await,
        close(4400, "Unknown message type \"start\"")
    );
}

#[tokio::test]
async fn oversized_message_closes_4400_at_the_transport() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;

    client
        .send(subscribe(
            "1",
            &format!("{{ hello }} #{}", "x".repeat(2000)),
        ))
        .await;

    assert_eq!(
        client.recv().await,
        close(
            4400,
            "Unreadable message: too large or not valid WebSocket data"
        )
    );
}

#[tokio::test]
async fn oversized_message_closes_4400_when_the_socket_allows_it() {
    let server = spawn_server().await;
    let mut client = connect(&server, "/raw", PROTOCOL).await.expect("handshake");

    client
        .send_text(format!(
            "{{\"type\":\"ping\",\"pad\":\"{}\"}}",
            "x".repeat(2000)
        ))
        .await;

    assert_eq!(
        client.recv().await,
        close(4400, "Message exceeds 1024 bytes")
    );
}

#[tokio::test]
async fn complete_stops_the_stream_and_frees_its_id() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;
    client.send(subscribe("t", "subscription { ticks }")).await;
    assert_eq!(
        client.recv().await,
        json_msg(json!({"type": "next", "id": "t", "payload": {"data": {"ticks": 0}}}))
    );

    client.send(json!({"type": "complete", "id": "t"})).await;
    client.send(subscribe("q", "{ hello }")).await;

    assert_eq!(
        client.recv_skipping(&["t"]).await,
        json_msg(json!({"type": "next", "id": "q", "payload": {"data": {"hello": "world"}}})),
        "ticks sent before the complete was read may still arrive"
    );
    assert_eq!(
        client.recv().await,
        json_msg(json!({"type": "complete", "id": "q"}))
    );
    client.assert_silent_for(Duration::from_millis(150)).await;
    client.send(subscribe("t", "{ hello }")).await;
    assert_eq!(
        client.recv().await,
        json_msg(json!({"type": "next", "id": "t", "payload": {"data": {"hello": "world"}}}))
    );
}

#[tokio::test]
async fn client_close_drops_every_stream() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;
    client.send(subscribe("a", "subscription { idle }")).await;
    client.send(subscribe("b", "subscription { idle }")).await;
    assert!(eventually(|| server.live.count() == 2).await);

    client.close().await;

    assert!(eventually(|| server.live.count() == 0).await);
}

#[tokio::test]
async fn vanished_client_drops_every_stream() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;
    client.send(subscribe("a", "subscription { idle }")).await;
    assert!(eventually(|| server.live.count() == 1).await);

    drop(client);

    assert!(eventually(|| server.live.count() == 0).await);
}

#[tokio::test]
async fn panicking_operation_ends_with_internal_error_and_the_socket_stays_usable() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;

    client
        .send(subscribe("boom", "subscription { explode }"))
        .await;

    assert_eq!(
        client.recv().await,
        json_msg(json!({
            "type": "error", "id": "boom",
            "payload": [{"message": "Internal server error", "extensions": {"code": "INTERNAL"}}]
        }))
    );
    client.send(subscribe("q", "{ hello }")).await;
    assert_eq!(
        client.recv().await,
        json_msg(json!({"type": "next", "id": "q", "payload": {"data": {"hello": "world"}}}))
    );
}

#[tokio::test]
async fn socket_without_operations_is_closed_4410_after_the_idle_timeout() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;
    client.send(subscribe("q", "{ hello }")).await;
    assert_eq!(
        client.recv().await,
        json_msg(json!({"type": "next", "id": "q", "payload": {"data": {"hello": "world"}}}))
    );
    assert_eq!(
        client.recv().await,
        json_msg(json!({"type": "complete", "id": "q"}))
    );

    // Protocol pings are not activity: the socket still holds nothing.
    client.send(json!({"type": "ping"})).await;
    assert_eq!(client.recv().await, json_msg(json!({"type": "pong"})));

    assert_eq!(client.recv().await, close(4410, "Idle timeout"));
}

#[tokio::test]
async fn socket_holding_a_subscription_outlives_the_idle_timeout() {
    let server = spawn_server().await;
    let mut client = Client::acknowledged(&server, PROTOCOL).await;
    client.send(subscribe("a", "subscription { idle }")).await;
    assert!(eventually(|| server.live.count() == 1).await);

    client.assert_silent_for(Duration::from_secs(3)).await;

    client.send(json!({"type": "complete", "id": "a"})).await;
    assert_eq!(client.recv().await, close(4410, "Idle timeout"));
}
