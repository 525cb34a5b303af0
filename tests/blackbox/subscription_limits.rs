//! Limits on subscriptions beyond one socket: per workspace and per node, and the idle
//! timeout of sockets that hold none.
//!
//! Invariants protected here: one workspace cannot hold more than its share of a node's
//! live subscriptions, however many sockets it spreads them over, and reaching that cap
//! does not stop another workspace; the node as a whole holds at most its cap; a refusal
//! is an `error` for that operation (`RATE_LIMITED`, with `retryAfterMs`) and leaves the
//! socket open; a subscription that ends, or whose socket closes, frees its slot; a socket
//! holding no subscription is closed with 4410 after the idle timeout, and one holding a
//! subscription is not.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{
    RUN_EVENTS_SUBSCRIPTION, Session, TestApp, TestDatabase, WORKFLOW_EVENTS_SUBSCRIPTION,
    WsClient, WsEvent, definitions, pretty, string_at, subscription_error_codes,
};

/// A hang guard for one message, not a speed requirement.
const PATIENCE: Duration = Duration::from_secs(10);
/// Long enough that the run is still going while the test fills and probes the cap.
const RUN_DELAY_MS: u64 = 5_000;

async fn spawn_with(limits: &[(&str, &str)]) -> TestApp {
    let mut builder = TestApp::builder().database(TestDatabase::create_if_configured().await);
    for (name, value) in limits {
        builder = builder.env(name, value);
    }
    builder.spawn().await
}

async fn owner_with_workspace(app: &TestApp, email: &str) -> (Session, String) {
    let owner = app.sign_up(email, "Owner").await;
    let workspace_id = app.create_workspace(&owner.access_token, "Acme").await;
    (owner, workspace_id)
}

async fn connected(app: &TestApp, token: &str) -> WsClient {
    let mut socket = app.ws_connect().await;
    socket.init_ok(token).await;
    socket
}

async fn watch_workflows(socket: &mut WsClient, id: &str, workspace_id: &str) {
    socket
        .subscribe(
            id,
            WORKFLOW_EVENTS_SUBSCRIPTION,
            json!({"workspaceId": workspace_id}),
        )
        .await;
}

/// `subscribe` has no acknowledgement, so this creates workflows in the workspace until
/// subscription `id` delivers one (at most 3 tries): after it, the subscription is live
/// and holds its slot.
async fn go_live(app: &TestApp, socket: &mut WsClient, token: &str, workspace_id: &str, id: &str) {
    for attempt in 1..=3 {
        app.create_workflow(
            token,
            workspace_id,
            &format!("warm-up {id} {attempt}"),
            definitions::manual(),
        )
        .await;
        if let Some(message) = socket.next_for(id, Duration::from_secs(2)).await {
            assert_eq!(message["type"], "next", "{}", pretty(&message));
            assert!(
                message["payload"]["errors"].is_null(),
                "{}",
                pretty(&message)
            );
            return;
        }
    }
    panic!("subscription {id} delivered nothing after 3 workflows were created");
}

/// Subscription `id` was refused with `RATE_LIMITED`, naming the limit in its message.
async fn assert_refused(socket: &mut WsClient, id: &str, limit_words: &str) {
    let refused = socket
        .next_for(id, PATIENCE)
        .await
        .unwrap_or_else(|| panic!("no answer for subscription {id}"));
    assert_eq!(refused["type"], "error", "{}", pretty(&refused));
    assert_eq!(
        subscription_error_codes(&refused),
        ["RATE_LIMITED"],
        "{}",
        pretty(&refused)
    );
    let error = &refused["payload"][0];
    assert!(
        error["extensions"]["retryAfterMs"].as_u64().is_some(),
        "{}",
        pretty(&refused)
    );
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(limit_words),
        "the message should say which limit ({limit_words}): {message}"
    );
}

/// The socket still serves: a protocol ping is answered.
async fn assert_still_open(socket: &mut WsClient) {
    socket.send(json!({"type": "ping"})).await;
    loop {
        match socket.next_event(PATIENCE).await {
            Some(WsEvent::Message(message)) if message["type"] == "pong" => return,
            Some(WsEvent::Message(_)) => {}
            Some(WsEvent::Closed { code, reason }) => panic!("socket closed ({code:?} {reason})"),
            None => panic!("no pong within {PATIENCE:?}"),
        }
    }
}

/// The node's live subscriptions, as `GET /metrics` reports them.
async fn live_subscriptions_metric(app: &TestApp) -> Option<f64> {
    let text = app
        .http()
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics");
    text.lines()
        .find_map(|line| line.strip_prefix("aos_ws_subscriptions_live "))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn the_workspace_cap_spans_sockets_spares_other_workspaces_and_frees_on_completion() {
    let app = spawn_with(&[("AOS_WS_MAX_SUBSCRIPTIONS_PER_WORKSPACE", "2")]).await;
    let (owner, capped) = owner_with_workspace(&app, "owner@example.com").await;
    let token = owner.access_token.as_str();
    let other = app.create_workspace(token, "Elsewhere").await;
    let slow = app
        .create_workflow(token, &capped, "slow", definitions::delayed(RUN_DELAY_MS))
        .await;
    let mut first = connected(&app, token).await;
    let mut second = connected(&app, token).await;

    watch_workflows(&mut first, "workflows", &capped).await;
    go_live(&app, &mut first, token, &capped, "workflows").await;
    let run = app
        .run_workflow(token, &string_at(&slow["id"]), json!({}))
        .await;
    let run_id = string_at(&run["id"]);
    second
        .subscribe("run", RUN_EVENTS_SUBSCRIPTION, json!({"runId": run_id}))
        .await;
    let replayed = second.next_for("run", PATIENCE).await;
    assert!(
        replayed.as_ref().is_some_and(|m| m["type"] == "next"),
        "runEvents replays the stored events at once: {replayed:?}"
    );

    watch_workflows(&mut second, "over", &capped).await;
    assert_refused(&mut second, "over", "workspace").await;
    assert_still_open(&mut second).await;

    watch_workflows(&mut second, "elsewhere", &other).await;
    go_live(&app, &mut second, token, &other, "elsewhere").await;

    // The server drops a finished subscription before it sends `complete`.
    loop {
        let message = second
            .next_for("run", Duration::from_secs(60))
            .await
            .unwrap_or_else(|| panic!("the run's subscription never completed"));
        match message["type"].as_str() {
            Some("complete") => break,
            Some("next") => {}
            _ => panic!("runEvents: unexpected {}", pretty(&message)),
        }
    }
    watch_workflows(&mut second, "again", &capped).await;
    go_live(&app, &mut second, token, &capped, "again").await;
}

#[tokio::test]
async fn the_node_cap_spans_workspaces_and_a_closed_socket_frees_its_slots() {
    let app = spawn_with(&[("AOS_WS_MAX_SUBSCRIPTIONS_PER_NODE", "2")]).await;
    let (alice, alices) = owner_with_workspace(&app, "alice@example.com").await;
    let (bob, bobs) = owner_with_workspace(&app, "bob@example.com").await;
    let mut alice_socket = connected(&app, &alice.access_token).await;
    let mut bob_socket = connected(&app, &bob.access_token).await;

    watch_workflows(&mut alice_socket, "a", &alices).await;
    go_live(&app, &mut alice_socket, &alice.access_token, &alices, "a").await;
    watch_workflows(&mut bob_socket, "b", &bobs).await;
    go_live(&app, &mut bob_socket, &bob.access_token, &bobs, "b").await;

    assert_eq!(live_subscriptions_metric(&app).await, Some(2.0));

    watch_workflows(&mut bob_socket, "over", &bobs).await;
    assert_refused(&mut bob_socket, "over", "server").await;
    assert_still_open(&mut bob_socket).await;

    drop(alice_socket);
    // Nothing tells a client when the server has noticed the closed socket: retry.
    let deadline = Instant::now() + PATIENCE;
    for attempt in 0.. {
        let id = format!("retry {attempt}");
        watch_workflows(&mut bob_socket, &id, &bobs).await;
        match bob_socket.next_for(&id, Duration::from_millis(300)).await {
            Some(refused) if subscription_error_codes(&refused) == ["RATE_LIMITED"] => {
                assert!(
                    Instant::now() < deadline,
                    "the closed socket's slot was never freed"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Some(other) => panic!("unexpected {}", pretty(&other)),
            None => {
                go_live(&app, &mut bob_socket, &bob.access_token, &bobs, &id).await;
                break;
            }
        }
    }
}

#[tokio::test]
async fn a_socket_without_subscriptions_is_closed_4410_after_the_idle_timeout() {
    let app = spawn_with(&[("AOS_WS_IDLE_TIMEOUT_MS", "1000")]).await;
    let (owner, _workspace_id) = owner_with_workspace(&app, "owner@example.com").await;
    let mut socket = connected(&app, &owner.access_token).await;
    let acknowledged = Instant::now();

    // Protocol pings are answered but are not activity.
    assert_still_open(&mut socket).await;
    let code = socket.expect_close(PATIENCE).await;

    assert_eq!(code, Some(4410));
    assert!(
        acknowledged.elapsed() >= Duration::from_millis(900),
        "closed after {:?}, before the idle timeout",
        acknowledged.elapsed()
    );
}

#[tokio::test]
async fn a_socket_holding_a_subscription_is_not_closed_for_idleness() {
    let app = spawn_with(&[("AOS_WS_IDLE_TIMEOUT_MS", "1000")]).await;
    let (owner, workspace_id) = owner_with_workspace(&app, "owner@example.com").await;
    let token = owner.access_token.as_str();
    let mut socket = connected(&app, token).await;
    watch_workflows(&mut socket, "live", &workspace_id).await;
    go_live(&app, &mut socket, token, &workspace_id, "live").await;

    let quiet = socket.next_event(Duration::from_millis(2_500)).await;

    assert!(
        quiet.is_none(),
        "nothing should arrive, let alone a close: {quiet:?}"
    );
    socket.send(json!({"type": "complete", "id": "live"})).await;
    assert_eq!(socket.expect_close(PATIENCE).await, Some(4410));
}
