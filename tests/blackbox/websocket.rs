//! Subscriptions over WebSocket (`graphql-transport-ws`, and the legacy `graphql-ws`).
//!
//! Invariants protected here: a socket does nothing until it presents a valid credential in
//! `connection_init`, and one that never does is closed rather than held open; one client
//! cannot hold unbounded subscriptions; a subscriber sees the events of its own workspace
//! only, and only while it is still a member.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{
    Session, TestApp, WORKFLOW_EVENTS_SUBSCRIPTION, WsClient, WsEvent, data, definitions, pretty,
    string_at, subscription_error_codes,
};

const PATIENCE: Duration = Duration::from_secs(5);

async fn owner_with_workspace(app: &TestApp) -> (Session, String) {
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let workspace_id = app.create_workspace(&owner.access_token, "Acme").await;
    (owner, workspace_id)
}

/// The protocol has no acknowledgement of `subscribe`, so the server may not be listening
/// yet when the test acts. This creates workflows (as `token`) until subscription `id`
/// delivers an event (at most 3 tries) and returns that message: after it, the
/// subscription is certainly live.
async fn go_live(
    app: &TestApp,
    socket: &mut WsClient,
    token: &str,
    workspace_id: &str,
    id: &str,
) -> Value {
    for attempt in 1..=3 {
        app.create_workflow(
            token,
            workspace_id,
            &format!("warm-up {attempt}"),
            definitions::manual(),
        )
        .await;
        if let Some(message) = socket.next_for(id, Duration::from_secs(2)).await {
            return message;
        }
    }
    panic!("subscription {id} delivered nothing after 3 workflows were created");
}

fn workflow_event(message: &Value) -> &Value {
    &message["payload"]["data"]["workflowEvents"]
}

#[tokio::test]
async fn the_server_speaks_graphql_transport_ws() {
    let app = TestApp::spawn().await;

    let socket = app.ws_connect().await;

    assert_eq!(socket.protocol.as_deref(), Some("graphql-transport-ws"));
}

#[tokio::test]
async fn a_socket_without_connection_init_is_closed_with_4408() {
    let app = TestApp::builder()
        .env("AOS_WS_INIT_TIMEOUT_MS", "500")
        .spawn()
        .await;
    let mut socket = app.ws_connect().await;

    let code = socket.expect_close(Duration::from_secs(3)).await;

    assert_eq!(code, Some(4408));
}

#[tokio::test]
async fn a_bad_token_in_connection_init_is_closed_with_4401() {
    let app = TestApp::spawn().await;

    for token in [Some("garbage"), Some("aos_garbage"), None] {
        let mut socket = app.ws_connect().await;
        socket.init(token).await;
        let code = socket.expect_close(PATIENCE).await;
        assert_eq!(code, Some(4401), "token {token:?}");
    }
}

#[tokio::test]
async fn subscribing_before_connection_init_is_closed_with_4401() {
    let app = TestApp::spawn().await;
    let (_, workspace_id) = owner_with_workspace(&app).await;
    let mut socket = app.ws_connect().await;

    socket
        .subscribe(
            "1",
            WORKFLOW_EVENTS_SUBSCRIPTION,
            json!({"workspaceId": workspace_id}),
        )
        .await;

    assert_eq!(socket.expect_close(PATIENCE).await, Some(4401));
}

#[tokio::test]
async fn a_malformed_message_is_closed_with_4400() {
    let app = TestApp::spawn().await;
    let (owner, _) = owner_with_workspace(&app).await;
    let mut socket = app.ws_connect().await;
    socket.init_ok(&owner.access_token).await;

    socket.send_text("this is not a protocol message").await;

    assert_eq!(socket.expect_close(PATIENCE).await, Some(4400));
}

#[tokio::test]
async fn a_second_connection_init_is_closed_with_4429() {
    let app = TestApp::spawn().await;
    let (owner, _) = owner_with_workspace(&app).await;
    let mut socket = app.ws_connect().await;
    socket.init_ok(&owner.access_token).await;

    socket.init(Some(&owner.access_token)).await;

    assert_eq!(socket.expect_close(PATIENCE).await, Some(4429));
}

#[tokio::test]
async fn a_subscriber_receives_workflow_events_of_its_workspace() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let mut socket = app.ws_connect().await;
    socket.init_ok(&owner.access_token).await;

    socket
        .subscribe(
            "events",
            WORKFLOW_EVENTS_SUBSCRIPTION,
            json!({"workspaceId": workspace_id}),
        )
        .await;
    let message = go_live(
        &app,
        &mut socket,
        &owner.access_token,
        &workspace_id,
        "events",
    )
    .await;

    assert_eq!(message["type"], "next", "{}", pretty(&message));
    let event = workflow_event(&message);
    assert_eq!(event["kind"], "CREATED", "{}", pretty(&message));
    assert_eq!(event["workflow"]["id"], event["workflowId"]);
    assert_eq!(event["version"], 1);
}

#[tokio::test]
async fn an_api_token_can_subscribe_to_its_workspace() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let token = app
        .create_token(&owner.access_token, &workspace_id, &["WORKFLOWS_READ"])
        .await;
    let mut socket = app.ws_connect().await;
    socket.init_ok(&token.token).await;

    socket
        .subscribe(
            "events",
            WORKFLOW_EVENTS_SUBSCRIPTION,
            json!({"workspaceId": workspace_id}),
        )
        .await;
    let message = go_live(
        &app,
        &mut socket,
        &owner.access_token,
        &workspace_id,
        "events",
    )
    .await;

    assert_eq!(
        workflow_event(&message)["kind"],
        "CREATED",
        "{}",
        pretty(&message)
    );
}

#[tokio::test]
async fn the_legacy_graphql_ws_protocol_works() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let mut socket = app.ws_connect_with("graphql-ws").await;
    assert_eq!(socket.protocol.as_deref(), Some("graphql-ws"));

    socket.init(Some(&owner.access_token)).await;
    loop {
        match socket.next_event(PATIENCE).await {
            Some(WsEvent::Message(message)) if message["type"] == "connection_ack" => break,
            Some(WsEvent::Message(message)) if message["type"] == "ka" => {}
            other => panic!("expected connection_ack, got {other:?}"),
        }
    }
    socket
        .send(json!({"type": "start", "id": "1", "payload": {"query": WORKFLOW_EVENTS_SUBSCRIPTION, "variables": {"workspaceId": workspace_id}}}))
        .await;

    let mut received = None;
    for attempt in 1..=3 {
        app.create_workflow(
            &owner.access_token,
            &workspace_id,
            &format!("w{attempt}"),
            definitions::manual(),
        )
        .await;
        if let Some(message) = socket.next_for("1", Duration::from_secs(2)).await {
            received = Some(message);
            break;
        }
    }
    let message = received.expect("a `data` message on the legacy protocol");
    assert_eq!(message["type"], "data", "{}", pretty(&message));
    assert_eq!(workflow_event(&message)["kind"], "CREATED");
}

#[tokio::test]
async fn workflow_events_follow_the_lifecycle() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let token = &owner.access_token;
    let mut socket = app.ws_connect().await;
    socket.init_ok(token).await;
    socket
        .subscribe(
            "events",
            WORKFLOW_EVENTS_SUBSCRIPTION,
            json!({"workspaceId": workspace_id}),
        )
        .await;
    let first = go_live(&app, &mut socket, token, &workspace_id, "events").await;
    let workflow_id = workflow_event(&first)["workflowId"].clone();

    data(
        &app.gql_as(
            token,
            "mutation($input: UpdateWorkflowInput!) { updateWorkflow(input: $input) { version } }",
            json!({"input": {"id": workflow_id, "name": "renamed"}}),
        )
        .await,
    );
    let set_active =
        "mutation($input: SetWorkflowActiveInput!) { setWorkflowActive(input: $input) { active } }";
    data(
        &app.gql_as(
            token,
            set_active,
            json!({"input": {"id": workflow_id, "active": true}}),
        )
        .await,
    );
    data(
        &app.gql_as(
            token,
            set_active,
            json!({"input": {"id": workflow_id, "active": false}}),
        )
        .await,
    );
    data(
        &app.gql_as(
            token,
            "mutation($input: DeleteWorkflowInput!) { deleteWorkflow(input: $input) }",
            json!({"input": {"id": workflow_id}}),
        )
        .await,
    );

    // Late CREATED events of other warm-up workflows are filtered out.
    let mut kinds = Vec::new();
    while kinds.len() < 4 {
        let message = socket
            .next_for("events", PATIENCE)
            .await
            .unwrap_or_else(|| panic!("only these events arrived: {kinds:?}"));
        let event = workflow_event(&message);
        if event["workflowId"] == workflow_id {
            kinds.push(string_at(&event["kind"]));
        }
    }
    assert_eq!(kinds, ["UPDATED", "ACTIVATED", "DEACTIVATED", "DELETED"]);
}

/// Events are filtered by workspace on the server: another tenant's activity never
/// reaches this socket.
#[tokio::test]
async fn a_subscriber_never_sees_another_workspaces_events() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let other = app.sign_up("other@example.com", "Other").await;
    let other_workspace = app.create_workspace(&other.access_token, "Elsewhere").await;
    let mut socket = app.ws_connect().await;
    socket.init_ok(&owner.access_token).await;
    socket
        .subscribe(
            "events",
            WORKFLOW_EVENTS_SUBSCRIPTION,
            json!({"workspaceId": workspace_id}),
        )
        .await;
    go_live(
        &app,
        &mut socket,
        &owner.access_token,
        &workspace_id,
        "events",
    )
    .await;

    let foreign = app
        .create_workflow(
            &other.access_token,
            &other_workspace,
            "secret",
            definitions::manual(),
        )
        .await;
    let own = app
        .create_workflow(
            &owner.access_token,
            &workspace_id,
            "mine",
            definitions::manual(),
        )
        .await;

    // Events arrive in order: by the time our own new workflow's event arrives, the foreign
    // one would have too, so nothing up to it may be foreign.
    loop {
        let message = socket
            .next_for("events", PATIENCE)
            .await
            .expect("our own event");
        let event = workflow_event(&message);
        assert_ne!(
            event["workflowId"],
            foreign["id"],
            "leaked: {}",
            pretty(&message)
        );
        if event["workflowId"] == own["id"] {
            break;
        }
    }
}

/// Access is checked again before every event, so removal from the workspace ends the
/// stream of its events at once, not at the next reconnect.
#[tokio::test]
async fn a_removed_member_stops_receiving_events() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let member = app
        .member(
            &owner.access_token,
            &workspace_id,
            "ed@example.com",
            "EDITOR",
        )
        .await;
    let mut socket = app.ws_connect().await;
    socket.init_ok(&member.access_token).await;
    socket
        .subscribe(
            "events",
            WORKFLOW_EVENTS_SUBSCRIPTION,
            json!({"workspaceId": workspace_id}),
        )
        .await;
    go_live(
        &app,
        &mut socket,
        &owner.access_token,
        &workspace_id,
        "events",
    )
    .await;

    data(
        &app.gql_as(
            &owner.access_token,
            "mutation($input: RemoveMemberInput!) { removeMember(input: $input) }",
            json!({"input": {"workspaceId": workspace_id, "userId": member.user_id}}),
        )
        .await,
    );
    let after_removal = app
        .create_workflow(
            &owner.access_token,
            &workspace_id,
            "after removal",
            definitions::manual(),
        )
        .await;

    // Whatever still arrives (a late warm-up event, then the refusal) never carries the
    // workflow created after the removal, and the subscription then completes.
    let mut refused = false;
    loop {
        match socket.next_event(Duration::from_secs(5)).await {
            Some(WsEvent::Message(message)) => {
                if message["type"] == "complete" && message["id"] == "events" {
                    break;
                }
                if message["payload"]["errors"].is_array() {
                    refused = true;
                    continue;
                }
                assert_ne!(
                    workflow_event(&message)["workflowId"],
                    after_removal["id"],
                    "a removed member received: {}",
                    pretty(&message)
                );
            }
            other => panic!("expected the subscription to complete, got {other:?}"),
        }
    }
    assert!(
        refused,
        "the removed member was not told why the subscription ended"
    );
}

#[tokio::test]
async fn a_duplicate_subscription_id_closes_with_4409() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let mut socket = app.ws_connect().await;
    socket.init_ok(&owner.access_token).await;

    socket
        .subscribe(
            "same",
            WORKFLOW_EVENTS_SUBSCRIPTION,
            json!({"workspaceId": workspace_id}),
        )
        .await;
    socket
        .subscribe(
            "same",
            WORKFLOW_EVENTS_SUBSCRIPTION,
            json!({"workspaceId": workspace_id}),
        )
        .await;

    assert_eq!(socket.expect_close(PATIENCE).await, Some(4409));
}

#[tokio::test]
async fn subscriptions_over_the_limit_get_an_error_and_the_socket_stays_open() {
    let app = TestApp::builder()
        .env("AOS_WS_MAX_SUBSCRIPTIONS", "2")
        .spawn()
        .await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let mut socket = app.ws_connect().await;
    socket.init_ok(&owner.access_token).await;

    for id in ["1", "2", "3"] {
        socket
            .subscribe(
                id,
                WORKFLOW_EVENTS_SUBSCRIPTION,
                json!({"workspaceId": workspace_id}),
            )
            .await;
    }

    let refused = socket
        .next_for("3", PATIENCE)
        .await
        .expect("an answer for subscription 3");
    assert_eq!(refused["type"], "error", "{}", pretty(&refused));
    assert_eq!(
        subscription_error_codes(&refused),
        ["BAD_USER_INPUT"],
        "{}",
        pretty(&refused)
    );
    // Still open and serving: a protocol ping is answered.
    socket.send(json!({"type": "ping"})).await;
    let mut got_pong = false;
    while let Some(event) = socket.next_event(PATIENCE).await {
        match event {
            WsEvent::Message(message) if message["type"] == "pong" => {
                got_pong = true;
                break;
            }
            WsEvent::Message(_) => {}
            WsEvent::Closed { code, reason } => panic!("socket closed ({code:?} {reason})"),
        }
    }
    assert!(got_pong, "no pong after the refused subscription");
}

#[tokio::test]
async fn completing_a_subscription_frees_its_slot() {
    let app = TestApp::builder()
        .env("AOS_WS_MAX_SUBSCRIPTIONS", "1")
        .spawn()
        .await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let mut socket = app.ws_connect().await;
    socket.init_ok(&owner.access_token).await;
    let variables = json!({"workspaceId": workspace_id});

    socket
        .subscribe("1", WORKFLOW_EVENTS_SUBSCRIPTION, variables.clone())
        .await;
    socket.send(json!({"type": "complete", "id": "1"})).await;
    socket
        .subscribe("2", WORKFLOW_EVENTS_SUBSCRIPTION, variables)
        .await;

    let received = go_live(&app, &mut socket, &owner.access_token, &workspace_id, "2").await;
    assert_eq!(received["type"], "next", "{}", pretty(&received));
}
