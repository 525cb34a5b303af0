//! Webhook triggers at `/hooks/{key}`: answered at once or on completion, signed with a
//! secret, refused for inactive workflows, unknown keys and other methods.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{RUN_FIELDS, Session, TestApp, data, definitions, pretty, string_at};

const ACTIVATE: &str =
    "mutation($input: SetWorkflowActiveInput!) { setWorkflowActive(input: $input) { active } }";

/// An owner's active workflow with `definition`, and its webhook URL.
async fn active_hook(app: &TestApp, definition: Value) -> (Session, String, String) {
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let workspace_id = app.create_workspace(&owner.access_token, "Acme").await;
    let workflow = app
        .create_workflow(&owner.access_token, &workspace_id, "hook", definition)
        .await;
    let workflow_id = workflow["id"].as_str().expect("workflow id").to_owned();
    data(
        &app.gql_as(
            &owner.access_token,
            ACTIVATE,
            json!({"input": {"id": workflow_id, "active": true}}),
        )
        .await,
    );
    let url = workflow["webhookUrl"]
        .as_str()
        .expect("a webhook workflow has a webhookUrl")
        .to_owned();
    (owner, workflow_id, url)
}

fn greeting_hook(respond: &str, secret: Option<&str>) -> Value {
    let mut trigger = json!({"respond": respond});
    if let Some(secret) = secret {
        trigger["secret"] = json!(secret);
    }
    json!({
        "nodes": [
            {"id": "hook", "type": "trigger.webhook", "config": trigger},
            {"id": "greet", "type": "set", "config": {"fields": {"message": "Hello {{ trigger.body.name }}", "via": "{{ trigger.method }}", "q": "{{ trigger.query.x }}"}}}
        ],
        "edges": [{"from": "hook", "to": "greet"}]
    })
}

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn the_contract_example_answers_with_its_respond_node() {
    let app = TestApp::spawn().await;
    let (_, _, url) = active_hook(&app, definitions::contract_example()).await;

    let small = app
        .http()
        .post(&url)
        .json(&json!({"name": "Ada", "n": 2}))
        .send()
        .await
        .expect("POST the hook");
    let status = small.status();
    let body: Value = small.json().await.expect("a JSON answer");

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"message": "Hello Ada"}));
}

#[tokio::test]
async fn on_completion_without_a_respond_node_answers_with_the_run_output() {
    let app = TestApp::spawn().await;
    let (_, _, url) = active_hook(&app, greeting_hook("onCompletion", None)).await;

    let response = app
        .http()
        .post(format!("{url}?x=1"))
        .json(&json!({"name": "Ada"}))
        .send()
        .await
        .expect("POST the hook");

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("a JSON answer");
    assert_eq!(
        body,
        json!({"message": "Hello Ada", "via": "POST", "q": "1"})
    );
}

#[tokio::test]
async fn immediately_answers_202_with_the_run_id_and_the_run_completes() {
    let app = TestApp::spawn().await;
    let (owner, _, url) = active_hook(&app, greeting_hook("immediately", None)).await;

    let response = app
        .http()
        .post(&url)
        .json(&json!({"name": "Ada"}))
        .send()
        .await
        .expect("POST the hook");

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.expect("a JSON answer");
    let run_id = body["runId"].as_str().expect("runId").to_owned();
    let run = app.wait_for_run(&owner.access_token, &run_id).await;
    assert_eq!(run["status"], "SUCCEEDED");
    assert_eq!(run["trigger"], "WEBHOOK");
    assert_eq!(run["output"]["message"], "Hello Ada");
    assert_eq!(run["input"]["body"], json!({"name": "Ada"}));
}

#[tokio::test]
async fn a_failing_run_answers_500_with_its_error() {
    let app = TestApp::spawn().await;
    let definition = json!({
        "nodes": [
            {"id": "hook", "type": "trigger.webhook", "config": {"respond": "onCompletion"}},
            {"id": "stop", "type": "fail", "config": {"message": "no {{ trigger.body.name }}"}}
        ],
        "edges": [{"from": "hook", "to": "stop"}]
    });
    let (_, _, url) = active_hook(&app, definition).await;

    let response = app
        .http()
        .post(&url)
        .json(&json!({"name": "Ada"}))
        .send()
        .await
        .expect("POST the hook");

    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = response.json().await.expect("a JSON answer");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("no Ada"), "{body}");
}

#[tokio::test]
async fn a_secret_hook_runs_only_for_a_correct_signature() {
    let app = TestApp::spawn().await;
    let secret = "s3cret-signing-key";
    let (owner, workflow_id, url) =
        active_hook(&app, greeting_hook("onCompletion", Some(secret))).await;
    let body = br#"{"name":"Ada"}"#;

    let unsigned = app
        .http()
        .post(&url)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .expect("POST unsigned");
    let wrong = app
        .http()
        .post(&url)
        .header("content-type", "application/json")
        .header("x-signature-256", sign("another key", body))
        .body(body.to_vec())
        .send()
        .await
        .expect("POST with a wrong signature");
    let signed = app
        .http()
        .post(&url)
        .header("content-type", "application/json")
        .header("x-signature-256", sign(secret, body))
        .body(body.to_vec())
        .send()
        .await
        .expect("POST signed");

    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(signed.status(), StatusCode::OK);
    let runs = app
        .gql_as(
            &owner.access_token,
            "query($id: ID!) { workflow(id: $id) { workspaceId } }",
            json!({"id": workflow_id}),
        )
        .await;
    let workspace_id = data(&runs)["workflow"]["workspaceId"].clone();
    let listed = app
        .gql_as(
            &owner.access_token,
            "query($id: ID!) { workspace(id: $id) { runs { nodes { id input } } } }",
            json!({"id": workspace_id}),
        )
        .await;
    let nodes = data(&listed)["workspace"]["runs"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        nodes.len(),
        1,
        "only the signed request made a run: {listed}"
    );
    assert!(
        nodes[0]["input"]["headers"]
            .get("x-signature-256")
            .is_none(),
        "the signature is not kept in the run's input"
    );
}

#[tokio::test]
async fn inactive_workflows_and_unknown_keys_are_404_and_other_methods_405() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let workspace_id = app.create_workspace(&owner.access_token, "Acme").await;
    let inactive = app
        .create_workflow(
            &owner.access_token,
            &workspace_id,
            "inactive",
            greeting_hook("onCompletion", None),
        )
        .await;
    let inactive_url = inactive["webhookUrl"].as_str().expect("webhookUrl");
    let (_, _, active_url) = {
        let (session, id, url) = active_hook_in(&app, &owner, &workspace_id).await;
        (session, id, url)
    };

    let not_active = app.http().post(inactive_url).send().await.expect("POST");
    let unknown = app
        .http()
        .post(app.url("/hooks/not-a-real-key"))
        .send()
        .await
        .expect("POST");
    let wrong_method = app.http().get(&active_url).send().await.expect("GET");

    assert_eq!(not_active.status(), StatusCode::NOT_FOUND);
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
}

async fn active_hook_in(
    app: &TestApp,
    owner: &Session,
    workspace_id: &str,
) -> (Session, String, String) {
    let workflow = app
        .create_workflow(
            &owner.access_token,
            workspace_id,
            "active",
            greeting_hook("onCompletion", None),
        )
        .await;
    let id = workflow["id"].as_str().expect("id").to_owned();
    data(
        &app.gql_as(
            &owner.access_token,
            ACTIVATE,
            json!({"input": {"id": id, "active": true}}),
        )
        .await,
    );
    let url = workflow["webhookUrl"]
        .as_str()
        .expect("webhookUrl")
        .to_owned();
    (owner.clone(), id, url)
}

/// The workspace's newest run, with `RUN_FIELDS`.
async fn newest_run(app: &TestApp, token: &str, workflow_id: &str) -> Value {
    let workflow = app
        .gql_as(
            token,
            "query($id: ID!) { workflow(id: $id) { workspaceId } }",
            json!({"id": workflow_id}),
        )
        .await;
    let workspace_id = string_at(&data(&workflow)["workflow"]["workspaceId"]);
    let response = app
        .gql_as(
            token,
            &format!(
                "query($ws: ID!, $id: ID!) {{ workspace(id: $ws) {{ runs(first: 1, workflowId: $id) {{ edges {{ node {{ {RUN_FIELDS} }} }} }} }} }}"
            ),
            json!({"ws": workspace_id, "id": workflow_id}),
        )
        .await;
    data(&response)["workspace"]["runs"]["edges"][0]["node"].clone()
}

fn event_kinds(run: &Value) -> Vec<String> {
    run["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|event| {
            format!(
                "{} {}",
                string_at(&event["kind"]),
                event["nodeId"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

/// By default `onCompletion` runs execute in place on the node that received them; with
/// `--runs-in-place 0` they go through the queue. Either way the caller gets the same
/// answer and the run is stored the same: whole, pinned, with every event numbered.
#[tokio::test]
async fn a_run_answered_on_completion_is_stored_the_same_in_place_or_queued() {
    let mut stored = Vec::new();
    for runs_in_place in ["64", "0"] {
        let app = TestApp::builder()
            .arg("--runs-in-place")
            .arg(runs_in_place)
            .spawn()
            .await;
        let (owner, workflow_id, url) = active_hook(&app, definitions::contract_example()).await;

        let response = app
            .http()
            .post(&url)
            .json(&json!({"name": "Ada", "n": 2}))
            .send()
            .await
            .expect("POST the hook");

        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("a JSON answer");
        assert_eq!(body, json!({"message": "Hello Ada"}));
        let run = newest_run(&app, &owner.access_token, &workflow_id).await;
        assert_eq!(run["status"], "SUCCEEDED", "{}", pretty(&run));
        assert_eq!(run["trigger"], "WEBHOOK");
        assert_eq!(run["workflowVersion"], 1);
        assert_eq!(run["input"]["body"], json!({"name": "Ada", "n": 2}));
        assert!(run["startedAt"].is_string() && run["finishedAt"].is_string());
        let seqs: Vec<i64> = run["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|event| event["seq"].as_i64())
            .collect();
        let contiguous: Vec<i64> = (1..=i64::try_from(seqs.len()).expect("few")).collect();
        assert_eq!(seqs, contiguous, "{}", pretty(&run));
        stored.push(event_kinds(&run));
    }
    assert_eq!(
        stored[0],
        [
            "RUN_QUEUED -",
            "RUN_STARTED -",
            "STEP_STARTED hook",
            "STEP_SUCCEEDED hook",
            "STEP_STARTED greet",
            "STEP_SUCCEEDED greet",
            "STEP_STARTED big",
            "STEP_SUCCEEDED big",
            "STEP_SKIPPED call",
            "STEP_STARTED reply",
            "STEP_SUCCEEDED reply",
            "RUN_SUCCEEDED -",
        ]
    );
    assert_eq!(
        stored[0], stored[1],
        "in place and queued store the same run"
    );
}

/// A run executed in place that has to wait (a `delay`) is stored and handed to the
/// queue; the caller still gets its answer when it ends.
#[tokio::test]
async fn an_on_completion_run_that_waits_still_answers_when_it_ends() {
    let app = TestApp::spawn().await;
    let definition = json!({
        "nodes": [
            {"id": "hook", "type": "trigger.webhook", "config": {"respond": "onCompletion"}},
            {"id": "wait", "type": "delay", "config": {"ms": 300}},
            {"id": "reply", "type": "respond", "config": {"status": 201, "body": {"waited": "{{ trigger.body.name }}"}}}
        ],
        "edges": [{"from": "hook", "to": "wait"}, {"from": "wait", "to": "reply"}]
    });
    let (owner, workflow_id, url) = active_hook(&app, definition).await;

    let response = app
        .http()
        .post(&url)
        .json(&json!({"name": "Ada"}))
        .send()
        .await
        .expect("POST the hook");

    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.expect("a JSON answer");
    assert_eq!(body, json!({"waited": "Ada"}));
    let run = newest_run(&app, &owner.access_token, &workflow_id).await;
    assert_eq!(run["status"], "SUCCEEDED", "{}", pretty(&run));
}
