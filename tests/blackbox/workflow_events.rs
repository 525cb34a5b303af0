//! `workflowEvents` across a cluster: two `serve` nodes on one Postgres and one Redis.
//!
//! Invariants protected here: a workflow changed through either node reaches the
//! subscribers on both nodes, each change once and in the order the changes were made,
//! carrying the workflow exactly as the node that changed it returned it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{
    TestApp, TestDatabase, WORKFLOW_FIELDS, WsClient, data, definitions, pretty, string_at,
};

/// A hang guard for one message, not a speed requirement.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn subscription() -> String {
    format!(
        "subscription($workspaceId: ID!) {{ workflowEvents(workspaceId: $workspaceId) {{ kind workflowId version workflow {{ {WORKFLOW_FIELDS} }} }} }}"
    )
}

async fn subscribed(app: &TestApp, token: &str, workspace_id: &str) -> WsClient {
    let mut socket = app.ws_connect().await;
    socket.init_ok(token).await;
    socket
        .subscribe(
            "events",
            &subscription(),
            json!({"workspaceId": workspace_id}),
        )
        .await;
    socket
}

fn workflow_event(message: &Value) -> &Value {
    assert_eq!(message["type"], "next", "{}", pretty(message));
    &message["payload"]["data"]["workflowEvents"]
}

/// Redis relays a change only to the nodes listening at that moment, a node starts
/// listening in the background after it starts serving, and `subscribe` is not
/// acknowledged. So this creates workflows through `through` until `socket` delivers one
/// of them: from then on, changes made through `through` reach `socket`.
async fn go_live(through: &TestApp, socket: &mut WsClient, token: &str, workspace_id: &str) {
    let deadline = Instant::now() + HANG_GUARD;
    let mut warm_ups = Vec::new();
    while Instant::now() < deadline {
        let created = through
            .create_workflow(
                token,
                workspace_id,
                &format!("warm-up {}", warm_ups.len() + 1),
                definitions::manual(),
            )
            .await;
        warm_ups.push(created["id"].clone());
        while let Some(message) = socket.next_for("events", Duration::from_secs(1)).await {
            if warm_ups.contains(&workflow_event(&message)["workflowId"]) {
                return;
            }
        }
    }
    panic!(
        "none of {} warm-up workflows reached the subscriber",
        warm_ups.len()
    );
}

/// The next event of `workflow_id` on `socket`, skipping those of the warm-up workflows.
async fn next_change(socket: &mut WsClient, workflow_id: &str) -> Value {
    loop {
        let message = socket
            .next_for("events", HANG_GUARD)
            .await
            .unwrap_or_else(|| panic!("no further event of workflow {workflow_id}"));
        let event = workflow_event(&message);
        if event["workflowId"] == workflow_id {
            return event.clone();
        }
    }
}

/// The event a subscriber on `watcher` gets for a change that `made_through` answered
/// with `workflow`: the same workflow, its webhook URL on the subscriber's node.
fn expected(kind: &str, workflow: &Value, made_through: &TestApp, watcher: &TestApp) -> Value {
    let mut workflow = workflow.clone();
    if let Some(url) = workflow["webhookUrl"].as_str() {
        let path = url
            .strip_prefix(&made_through.url(""))
            .unwrap_or_else(|| panic!("{url} is not on the node that made the change"));
        workflow["webhookUrl"] = json!(watcher.url(path));
    }
    json!({
        "kind": kind,
        "workflowId": workflow["id"],
        "version": workflow["version"],
        "workflow": workflow,
    })
}

async fn rename(app: &TestApp, token: &str, id: &str, name: &str) -> Value {
    let response = app
        .gql_as(
            token,
            &format!("mutation($input: UpdateWorkflowInput!) {{ updateWorkflow(input: $input) {{ {WORKFLOW_FIELDS} }} }}"),
            json!({"input": {"id": id, "name": name}}),
        )
        .await;
    data(&response)["updateWorkflow"].clone()
}

async fn set_active(app: &TestApp, token: &str, id: &str, active: bool) -> Value {
    let response = app
        .gql_as(
            token,
            &format!("mutation($input: SetWorkflowActiveInput!) {{ setWorkflowActive(input: $input) {{ {WORKFLOW_FIELDS} }} }}"),
            json!({"input": {"id": id, "active": active}}),
        )
        .await;
    data(&response)["setWorkflowActive"].clone()
}

async fn delete(app: &TestApp, token: &str, id: &str) {
    let response = app
        .gql_as(
            token,
            "mutation($input: DeleteWorkflowInput!) { deleteWorkflow(input: $input) }",
            json!({"input": {"id": id}}),
        )
        .await;
    assert_eq!(data(&response)["deleteWorkflow"], true);
}

#[tokio::test]
async fn a_change_through_either_node_reaches_the_subscribers_on_both_in_order() {
    let (Some(database), Ok(redis_url)) = (
        TestDatabase::create_if_configured().await,
        std::env::var("AOS_TEST_REDIS_URL"),
    ) else {
        eprintln!("skipped: two nodes need AOS_TEST_DATABASE_URL and AOS_TEST_REDIS_URL");
        return;
    };
    let master_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let node = || {
        TestApp::builder()
            .env("AOS_MASTER_KEY", master_key)
            .env("REDIS_URL", &redis_url)
            .database(None)
            .arg("--database-url")
            .arg(&database.url)
            .arg("--workers")
            .arg("0")
    };
    let first = node().spawn().await;
    let second = node().spawn().await;
    let owner = first.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace_id = first.create_workspace(token, "Acme").await;
    let mut on_first = subscribed(&first, token, &workspace_id).await;
    let mut on_second = subscribed(&second, token, &workspace_id).await;
    go_live(&first, &mut on_second, token, &workspace_id).await;
    go_live(&second, &mut on_first, token, &workspace_id).await;

    let created = first
        .create_workflow(token, &workspace_id, "greeter", definitions::webhook())
        .await;
    let id = string_at(&created["id"]);
    let renamed = rename(&first, token, &id, "renamed").await;
    let activated = set_active(&first, token, &id, true).await;

    for (kind, workflow) in [
        ("CREATED", &created),
        ("UPDATED", &renamed),
        ("ACTIVATED", &activated),
    ] {
        assert_eq!(
            next_change(&mut on_second, &id).await,
            expected(kind, workflow, &first, &second),
            "{kind} on the second node"
        );
        assert_eq!(
            next_change(&mut on_first, &id).await,
            expected(kind, workflow, &first, &first),
            "{kind} on the first node"
        );
    }

    // The second node changes the workflow only after it heard the first node's changes,
    // so Redis relays those to the first node before this one: had the first node taken
    // back its own changes, they would arrive here again before DEACTIVATED.
    let deactivated = set_active(&second, token, &id, false).await;
    assert_eq!(
        next_change(&mut on_first, &id).await,
        expected("DEACTIVATED", &deactivated, &second, &first)
    );
    assert_eq!(
        next_change(&mut on_second, &id).await,
        expected("DEACTIVATED", &deactivated, &second, &second)
    );

    // Likewise for the second node's own change, before the first node's next one.
    delete(&first, token, &id).await;
    let deleted = json!({"kind": "DELETED", "workflowId": id, "version": null, "workflow": null});
    assert_eq!(next_change(&mut on_second, &id).await, deleted);
    assert_eq!(next_change(&mut on_first, &id).await, deleted);
}
