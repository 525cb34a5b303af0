//! Workflows: versions, activation, webhook URLs, deletion and cursor pagination.

use serde_json::{Value, json};

use crate::harness::{
    Session, TestApp, WORKFLOW_FIELDS, assert_error_code, data, definitions, string_at,
};

async fn editor_with_workspace(app: &TestApp) -> (Session, String) {
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let workspace_id = app.create_workspace(&owner.access_token, "Acme").await;
    (owner, workspace_id)
}

async fn workflow(app: &TestApp, token: &str, id: &str) -> Value {
    app.gql_as(
        token,
        &format!("query($id: ID!) {{ workflow(id: $id) {{ {WORKFLOW_FIELDS} versions {{ version name description definition createdAt }} }} }}"),
        json!({"id": id}),
    )
    .await
}

#[tokio::test]
async fn a_new_workflow_is_version_one_and_inactive() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = editor_with_workspace(&app).await;

    let created = app
        .create_workflow(
            &owner.access_token,
            &workspace_id,
            "Greeter",
            definitions::manual(),
        )
        .await;

    assert_eq!(created["version"], 1);
    assert_eq!(created["name"], "Greeter");
    assert_eq!(created["description"], "made by a test");
    assert_eq!(created["workspaceId"], workspace_id.as_str());
    assert_eq!(created["active"], false);
    assert_eq!(created["definition"], definitions::manual());
    let read = workflow(&app, &owner.access_token, &string_at(&created["id"])).await;
    let versions = &data(&read)["workflow"]["versions"];
    assert_eq!(versions.as_array().map(Vec::len), Some(1));
    assert_eq!(versions[0]["version"], 1);
}

#[tokio::test]
async fn updating_a_workflow_makes_a_new_version_and_keeps_the_old() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = editor_with_workspace(&app).await;
    let created = app
        .create_workflow(
            &owner.access_token,
            &workspace_id,
            "Greeter",
            definitions::manual(),
        )
        .await;
    let id = string_at(&created["id"]);

    let updated = app
        .gql_as(
            &owner.access_token,
            &format!("mutation($input: UpdateWorkflowInput!) {{ updateWorkflow(input: $input) {{ {WORKFLOW_FIELDS} }} }}"),
            json!({"input": {"id": id, "name": "Webhook greeter", "definition": definitions::webhook()}}),
        )
        .await;

    let updated = &data(&updated)["updateWorkflow"];
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["name"], "Webhook greeter");
    assert_eq!(updated["definition"], definitions::webhook());
    // Fields left out of the update keep their value.
    assert_eq!(updated["description"], "made by a test");
    let read = workflow(&app, &owner.access_token, &id).await;
    let versions = &data(&read)["workflow"]["versions"];
    let numbers: Vec<&Value> = versions
        .as_array()
        .map(|v| v.iter().map(|v| &v["version"]).collect())
        .unwrap_or_default();
    assert_eq!(numbers, [&json!(2), &json!(1)], "versions newest first");
    assert_eq!(versions[1]["definition"], definitions::manual());
    assert_eq!(versions[1]["name"], "Greeter");
}

#[tokio::test]
async fn a_workflow_can_be_activated_and_deactivated() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = editor_with_workspace(&app).await;
    let created = app
        .create_workflow(
            &owner.access_token,
            &workspace_id,
            "w",
            definitions::webhook(),
        )
        .await;
    let set_active = "mutation($input: SetWorkflowActiveInput!) { setWorkflowActive(input: $input) { id active version } }";

    let activated = app
        .gql_as(
            &owner.access_token,
            set_active,
            json!({"input": {"id": created["id"], "active": true}}),
        )
        .await;
    assert_eq!(data(&activated)["setWorkflowActive"]["active"], true);
    let read = workflow(&app, &owner.access_token, &string_at(&created["id"])).await;
    assert_eq!(data(&read)["workflow"]["active"], true);

    let deactivated = app
        .gql_as(
            &owner.access_token,
            set_active,
            json!({"input": {"id": created["id"], "active": false}}),
        )
        .await;
    assert_eq!(data(&deactivated)["setWorkflowActive"]["active"], false);
    // Activation is not a new version of the graph.
    assert_eq!(data(&deactivated)["setWorkflowActive"]["version"], 1);
}

#[tokio::test]
async fn only_a_webhook_workflow_has_a_webhook_url() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = editor_with_workspace(&app).await;

    let webhook = app
        .create_workflow(
            &owner.access_token,
            &workspace_id,
            "hook",
            definitions::webhook(),
        )
        .await;
    let manual = app
        .create_workflow(
            &owner.access_token,
            &workspace_id,
            "manual",
            definitions::manual(),
        )
        .await;
    let other_webhook = app
        .create_workflow(
            &owner.access_token,
            &workspace_id,
            "hook 2",
            definitions::webhook(),
        )
        .await;

    let url = string_at(&webhook["webhookUrl"]);
    assert!(url.starts_with("http"), "{url}");
    assert!(url.contains("/hooks/"), "{url}");
    assert_ne!(
        webhook["webhookUrl"], other_webhook["webhookUrl"],
        "each workflow has its own key"
    );
    assert_eq!(manual["webhookUrl"], Value::Null);
}

#[tokio::test]
async fn a_deleted_workflow_is_gone() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = editor_with_workspace(&app).await;
    let created = app
        .create_workflow(
            &owner.access_token,
            &workspace_id,
            "w",
            definitions::manual(),
        )
        .await;

    let deleted = app
        .gql_as(
            &owner.access_token,
            "mutation($input: DeleteWorkflowInput!) { deleteWorkflow(input: $input) }",
            json!({"input": {"id": created["id"]}}),
        )
        .await;

    assert_eq!(data(&deleted)["deleteWorkflow"], true);
    let read = workflow(&app, &owner.access_token, &string_at(&created["id"])).await;
    assert_error_code(&read, "NOT_FOUND");
    assert_eq!(read["data"]["workflow"], Value::Null);
}

#[tokio::test]
async fn workflows_page_through_with_cursors_newest_first() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = editor_with_workspace(&app).await;
    let mut created_ids = Vec::new();
    for n in 1..=5 {
        let created = app
            .create_workflow(
                &owner.access_token,
                &workspace_id,
                &format!("w{n}"),
                definitions::manual(),
            )
            .await;
        created_ids.push(created["id"].clone());
    }
    let page_query = "query($id: ID!, $after: String) { workspace(id: $id) { workflows(first: 2, after: $after) { edges { cursor node { id } } nodes { id } pageInfo { hasNextPage endCursor } } } }";

    let mut seen = Vec::new();
    let mut page_sizes = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = app
            .gql_as(
                &owner.access_token,
                page_query,
                json!({"id": workspace_id, "after": after}),
            )
            .await;
        let connection = &data(&page)["workspace"]["workflows"];
        let edges = connection["edges"].as_array().cloned().unwrap_or_default();
        let nodes = connection["nodes"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            edges.iter().map(|e| e["node"].clone()).collect::<Vec<_>>(),
            nodes
        );
        page_sizes.push(nodes.len());
        seen.extend(nodes.iter().map(|n| n["id"].clone()));
        if connection["pageInfo"]["hasNextPage"] == false {
            break;
        }
        assert!(
            page_sizes.len() < 5,
            "pagination does not terminate: {page}"
        );
        after = connection["pageInfo"]["endCursor"].clone();
        assert!(
            after.is_string(),
            "a page with a next page has an endCursor: {page}"
        );
    }

    assert_eq!(page_sizes, [2, 2, 1]);
    created_ids.reverse();
    assert_eq!(seen, created_ids, "every workflow once, newest first");
}

#[tokio::test]
async fn a_page_size_below_one_is_bad_input() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = editor_with_workspace(&app).await;

    let page = app
        .gql_as(
            &owner.access_token,
            "query($id: ID!) { workspace(id: $id) { workflows(first: 0) { nodes { id } } } }",
            json!({"id": workspace_id}),
        )
        .await;

    assert_error_code(&page, "BAD_USER_INPUT");
}

#[tokio::test]
async fn the_contract_example_definition_is_accepted() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = editor_with_workspace(&app).await;

    let created = app
        .create_workflow(
            &owner.access_token,
            &workspace_id,
            "Contract example",
            definitions::contract_example(),
        )
        .await;

    assert_eq!(created["version"], 1);
    assert_eq!(created["definition"], definitions::contract_example());
    assert!(created["webhookUrl"].is_string());
}
