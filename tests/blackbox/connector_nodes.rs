//! Connectors in workflows, through the real binary: a `connector` step of the `http`
//! connector signs its request with its connection and never shows the secret the
//! service echoes; definitions naming what the registry lacks are refused with every
//! problem at once; a `trigger.poll` of `http`/`newItems` starts one run per new item
//! while its workflow is active; and a rate-limited step waits out `Retry-After`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::harness::{
    Session, TestApp, assert_error_code, data, first_error, pretty, step, string_at,
};

const SECRET: &str = "conn-bearer-Xk29-secret";
const RUNS: &str = "query($id: ID!) { workspace(id: $id) { runs(first: 100) { nodes { id trigger status input } } } }";
const ACTIVATE: &str =
    "mutation($input: SetWorkflowActiveInput!) { setWorkflowActive(input: $input) { active } }";
/// A hang guard for waiting on polls, not a speed requirement.
const DEADLINE: Duration = Duration::from_secs(60);

/// A server whose steps may call loopback and whose polling triggers poll every 200 ms,
/// an owner, a workspace, and a bearer connection of the `http` connector in it.
async fn world(settings: Option<Value>) -> (TestApp, Session, String, String) {
    let app = TestApp::builder()
        .arg("--http-allow-private")
        .env("AOS_POLL_INTERVAL_OVERRIDE_MS", "200")
        .spawn()
        .await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let workspace = app.create_workspace(&owner.access_token, "Acme").await;
    let created = app
        .try_create_connection(
            &owner.access_token,
            &workspace,
            "API",
            json!({"kind": "bearer", "token": SECRET}),
            settings,
        )
        .await;
    let connection = string_at(&data(&created)["createConnection"]["id"]);
    (app, owner, workspace, connection)
}

fn connector_step(connection: &str, params: Value) -> Value {
    json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual"},
            {"id": "call", "type": "connector", "config": {"connector": "http", "operation": "request",
             "connectionId": connection, "params": params}}
        ],
        "edges": [{"from": "start", "to": "call"}]
    })
}

async fn run_once(app: &TestApp, owner: &Session, workspace: &str, definition: Value) -> Value {
    let token = owner.access_token.as_str();
    let workflow = app
        .create_workflow(token, workspace, "connector", definition)
        .await;
    let queued = app
        .run_workflow(token, &string_at(&workflow["id"]), json!({"name": "Ada"}))
        .await;
    app.wait_for_run(token, &string_at(&queued["id"])).await
}

/// Answers with the body it received and the `Authorization` header it was sent.
struct EchoAuthorization;

impl wiremock::Respond for EchoAuthorization {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let authorization = request
            .headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        ResponseTemplate::new(201).set_body_json(json!({"youSent": authorization, "body": body}))
    }
}

#[tokio::test]
async fn a_connector_step_signs_its_request_and_redacts_what_the_service_echoes() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/messages"))
        .respond_with(EchoAuthorization)
        .expect(1)
        .mount(&upstream)
        .await;
    let (app, owner, workspace, connection) = world(None).await;

    let run = run_once(
        &app,
        &owner,
        &workspace,
        connector_step(
            &connection,
            json!({"method": "POST", "url": format!("{}/messages", upstream.uri()),
                   "body": {"text": "Hello {{ trigger.name }}"}}),
        ),
    )
    .await;

    assert_eq!(run["status"], "SUCCEEDED", "{}", pretty(&run));
    let received = upstream.received_requests().await.unwrap_or_default();
    assert_eq!(received.len(), 1);
    let header = |name: &str| {
        received[0]
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("authorization"), Some(format!("Bearer {SECRET}")));
    assert_eq!(
        header("idempotency-key"),
        Some(format!("{}:call", string_at(&run["id"])))
    );
    let sent: Value = serde_json::from_slice(&received[0].body).unwrap_or(Value::Null);
    assert_eq!(sent, json!({"text": "Hello Ada"}));
    let output = &step(&run, "call")["output"];
    assert_eq!(output["status"], 201);
    assert_eq!(output["body"]["youSent"], "Bearer [REDACTED]");
    assert!(!run.to_string().contains(SECRET), "{}", pretty(&run));
    assert!(!app.log_lines().join("\n").contains(SECRET));
}

#[tokio::test]
async fn definitions_naming_what_the_registry_lacks_are_refused_with_every_problem() {
    let (app, owner, workspace, connection) = world(None).await;
    let token = owner.access_token.as_str();
    let definition = json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual"},
            {"id": "call", "type": "connector", "config": {"connector": "http", "operation": "fetch",
             "connectionId": connection}},
            {"id": "other", "type": "connector", "config": {"connector": "telepathy", "operation": "think",
             "connectionId": connection}},
            {"id": "broken", "type": "set", "config": {}}
        ],
        "edges": [{"from": "start", "to": "call"}, {"from": "call", "to": "other"}, {"from": "other", "to": "broken"}]
    });

    let refused = app
        .try_create_workflow(token, &workspace, "unknown", definition.clone())
        .await;
    let validated = app
        .gql_as(
            token,
            "query($definition: JSON!) { validateWorkflowDefinition(definition: $definition) { nodeId message } }",
            json!({"definition": definition}),
        )
        .await;

    assert_error_code(&refused, "BAD_USER_INPUT");
    let problems = first_error(&refused)["extensions"]["problems"].clone();
    let listed = data(&validated)["validateWorkflowDefinition"].clone();
    for found in [&problems, &listed] {
        let messages: Vec<(String, String)> = found
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| (string_at(&p["nodeId"]), string_at(&p["message"])))
            .collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(
            messages.contains(&(
                "call".to_owned(),
                "config/operation: the `http` connector has no operation `fetch`; it has request"
                    .to_owned()
            ))
        );
        assert!(
            messages.iter().any(|(node, message)| node == "other"
                && message.starts_with("config/connector: unknown connector `telepathy`")),
            "{messages:?}"
        );
        assert!(messages.contains(&("broken".to_owned(), "config/fields: is required".to_owned())));
    }

    let types = app
        .gql_as(
            token,
            "{ connectorTypes { key triggers { key parameters output } } }",
            json!({}),
        )
        .await;
    let http = data(&types)["connectorTypes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|connector| connector["key"] == "http")
        .cloned()
        .unwrap_or_default();
    assert_eq!(http["triggers"][0]["key"], "newItems");
    assert_eq!(
        http["triggers"][0]["parameters"]["required"],
        json!(["url"])
    );
}

/// A listing that grows when the test says, recording every request it answers.
#[derive(Clone, Default)]
struct Listing {
    items: Arc<Mutex<Vec<Value>>>,
    authorizations: Arc<Mutex<Vec<String>>>,
}

impl Listing {
    fn add(&self, item: Value) {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(item);
    }

    fn requests(&self) -> Vec<String> {
        self.authorizations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl wiremock::Respond for Listing {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let authorization = request
            .headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.authorizations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(authorization);
        let items = self
            .items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        ResponseTemplate::new(200).set_body_json(json!({"data": {"items": items}}))
    }
}

async fn runs(app: &TestApp, token: &str, workspace: &str) -> Vec<Value> {
    let response = app.gql_as(token, RUNS, json!({"id": workspace})).await;
    let mut runs = data(&response)["workspace"]["runs"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    runs.reverse();
    runs
}

async fn wait_for_requests(listing: &Listing, count: usize) {
    let started = Instant::now();
    while listing.requests().len() < count {
        assert!(
            started.elapsed() < DEADLINE,
            "only {} polls",
            listing.requests().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_polling_trigger_starts_one_run_per_new_item_while_active() {
    let upstream = MockServer::start().await;
    let listing = Listing::default();
    listing.add(json!({"id": 1, "title": "old"}));
    Mock::given(method("GET"))
        .and(path("/items"))
        .respond_with(listing.clone())
        .mount(&upstream)
        .await;
    let (app, owner, workspace, connection) = world(None).await;
    let token = owner.access_token.as_str();
    let definition = json!({
        "nodes": [
            {"id": "poll", "type": "trigger.poll", "config": {"connector": "http", "trigger": "newItems",
             "connectionId": connection, "intervalSeconds": 15,
             "params": {"url": format!("{}/items", upstream.uri()), "itemsPath": "data.items"}}},
            {"id": "note", "type": "set", "config": {"fields": {"title": "{{ trigger.title }}"}}}
        ],
        "edges": [{"from": "poll", "to": "note"}]
    });
    let workflow = app
        .create_workflow(token, &workspace, "poller", definition)
        .await;
    let workflow_id = string_at(&workflow["id"]);
    data(
        &app.gql_as(
            token,
            ACTIVATE,
            json!({"input": {"id": workflow_id, "active": true}}),
        )
        .await,
    );

    // The first poll only learns what exists; a few more find nothing new.
    wait_for_requests(&listing, 3).await;
    assert!(runs(&app, token, &workspace).await.is_empty());
    listing.add(json!({"id": 2, "title": "second"}));
    listing.add(json!({"id": 3, "title": "third"}));
    let started = Instant::now();
    let fired = loop {
        let fired: Vec<Value> = runs(&app, token, &workspace)
            .await
            .into_iter()
            .filter(|run| run["status"] == "SUCCEEDED")
            .collect();
        if fired.len() >= 2 {
            break fired;
        }
        assert!(started.elapsed() < DEADLINE, "only {} runs", fired.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let seen = listing.requests().len();
    wait_for_requests(&listing, seen + 3).await;

    let all = runs(&app, token, &workspace).await;
    assert_eq!(all.len(), 2, "one run per new item, once: {all:?}");
    let inputs: Vec<Value> = fired.iter().map(|run| run["input"].clone()).collect();
    assert_eq!(
        inputs,
        [
            json!({"id": 2, "title": "second"}),
            json!({"id": 3, "title": "third"})
        ]
    );
    assert!(fired.iter().all(|run| run["trigger"] == "POLL"));
    let run = app.wait_for_run(token, &string_at(&fired[0]["id"])).await;
    assert_eq!(step(&run, "note")["output"], json!({"title": "second"}));
    assert!(
        listing
            .requests()
            .iter()
            .all(|sent| *sent == format!("Bearer {SECRET}"))
    );

    data(
        &app.gql_as(
            token,
            ACTIVATE,
            json!({"input": {"id": workflow_id, "active": false}}),
        )
        .await,
    );
    // A poll already claimed may still finish; after that, nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped_at = listing.requests().len();
    listing.add(json!({"id": 4, "title": "while inactive"}));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        listing.requests().len(),
        stopped_at,
        "no polls while inactive"
    );
    assert_eq!(runs(&app, token, &workspace).await.len(), 2);
    assert!(!app.log_lines().join("\n").contains(SECRET));
}

/// Answers 429 with `Retry-After: 1` the first time, then 200; records when.
#[derive(Clone, Default)]
struct SlowDownOnce {
    calls: Arc<Mutex<Vec<Instant>>>,
}

impl wiremock::Respond for SlowDownOnce {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls.push(Instant::now());
        if calls.len() == 1 {
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_string("slow down")
        } else {
            ResponseTemplate::new(200).set_body_json(json!({"ok": true}))
        }
    }
}

#[tokio::test]
async fn a_rate_limited_connector_step_waits_out_retry_after_and_succeeds() {
    let upstream = MockServer::start().await;
    let service = SlowDownOnce::default();
    Mock::given(method("GET"))
        .respond_with(service.clone())
        .mount(&upstream)
        .await;
    let (app, owner, workspace, connection) = world(Some(json!({"maxRequestsPerSecond": 5}))).await;

    let run = run_once(
        &app,
        &owner,
        &workspace,
        connector_step(&connection, json!({"url": upstream.uri()})),
    )
    .await;

    assert_eq!(run["status"], "SUCCEEDED", "{}", pretty(&run));
    let call = step(&run, "call");
    assert_eq!(call["attempt"], 1, "waited within the attempt, not retried");
    assert_eq!(call["output"]["body"], json!({"ok": true}));
    let calls = service
        .calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert_eq!(calls.len(), 2);
    assert!(
        calls[1] - calls[0] >= Duration::from_millis(950),
        "{:?}",
        calls[1] - calls[0]
    );
}
