use std::sync::Arc;

use async_trait::async_trait;
use chrono::TimeZone;
use serde_json::{Value, json};
use wiremock::matchers::{basic_auth, bearer_token, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use aos_domain::connection::{
    Connection, ConnectionName, ConnectionStatus, Credentials, KeyPlacement, REDACTED, Redactor,
};
use aos_domain::ids::{ConnectionId, WorkspaceId};
use aos_domain::ports::ConnectionSecrets;
use aos_domain::run::{IdempotencyKey, IfBranch, RunId, StepOutcome};
use aos_domain::workflow::{Definition, validate_definition};

use super::{Attempt, AttemptResult, NodeServices, execute, is_truthy, redact};
use crate::code::CodeLimits;
use crate::gate::ConnectionGate;
use crate::loop_node::LoopProgress;
use aos_connectors::Registry;
use aos_connectors::http::{HttpClient, HttpPolicy};

/// A definition whose trigger leads to the single node under test, `n`.
fn with_node(node: Value) -> Definition {
    let definition = json!({
        "nodes": [{"id": "start", "type": "trigger.manual"}, node],
        "edges": [{"from": "start", "to": "n"}]
    });
    validate_definition(&definition).unwrap_or_else(|problems| panic!("{problems:?}"))
}

fn services(allow_private: bool) -> NodeServices {
    let policy = HttpPolicy {
        allow_private,
        ..HttpPolicy::default()
    };
    NodeServices {
        http: HttpClient::new(policy).expect("http client"),
        code_limits: CodeLimits::default(),
        secrets: None,
        connectors: Registry::builtin(),
        gate: ConnectionGate::new(),
    }
}

fn scope() -> Value {
    json!({
        "trigger": {"name": "Ada", "n": 7},
        "steps": {"start": {"name": "Ada", "n": 7}},
        "vars": {"region": "eu", "connection": CONNECTION_ID},
        "run": {"id": "r1", "workflowId": "w1"}
    })
}

async fn run_node(node: Value, input: &Value, allow_private: bool) -> AttemptResult {
    run_node_at(node, input, allow_private, 0).await
}

async fn run_node_at(
    node: Value,
    input: &Value,
    allow_private: bool,
    now_offset_ms: i64,
) -> AttemptResult {
    run_node_with(node, input, &[], allow_private, now_offset_ms).await
}

/// The run every test runs in, so idempotency keys are known.
const RUN_ID: &str = "0190f1a2-0000-7000-8000-000000000001";
/// The workspace of that run.
const WORKSPACE_ID: &str = "0190f1a2-0000-7000-8000-0000000000aa";
/// The connection the connection tests use, also in the scope as `vars.connection`.
const CONNECTION_ID: &str = "0190f1a2-0000-7000-8000-0000000000c1";

async fn run_node_with(
    node: Value,
    input: &Value,
    inputs: &[(&str, &Value)],
    allow_private: bool,
    now_offset_ms: i64,
) -> AttemptResult {
    run_node_in(node, input, inputs, now_offset_ms, &services(allow_private)).await
}

async fn run_node_in(
    node: Value,
    input: &Value,
    inputs: &[(&str, &Value)],
    now_offset_ms: i64,
    services: &NodeServices,
) -> AttemptResult {
    let definition = with_node(node);
    let node = definition.node("n").expect("node n");
    let run_id: RunId = RUN_ID.parse().expect("a run id");
    let key = IdempotencyKey::for_step(run_id, node.id());
    let scope = scope();
    let started_at = chrono::Utc
        .timestamp_millis_opt(1_000_000)
        .single()
        .expect("time");
    let attempt = Attempt {
        workspace_id: WORKSPACE_ID.parse().expect("a workspace id"),
        scope: &scope,
        input,
        inputs,
        idempotency_key: &key,
        started_at,
        now: started_at + chrono::Duration::milliseconds(now_offset_ms),
        loop_progress: LoopProgress::default(),
    };
    execute(node, attempt, services).await
}

fn succeeded(result: AttemptResult) -> Value {
    match result {
        AttemptResult::Finished(StepOutcome::Succeeded(output)) => output,
        other => panic!("expected success, got {other:?}"),
    }
}

fn failed(result: AttemptResult) -> String {
    match result {
        AttemptResult::Finished(StepOutcome::Failed(message)) => message,
        other => panic!("expected failure, got {other:?}"),
    }
}

#[tokio::test]
async fn set_outputs_its_rendered_fields_with_their_types() {
    let node = json!({"id": "n", "type": "set", "config": {"fields": {
        "greeting": "Hello {{ trigger.name }}", "double": "{{ trigger.n * 2 }}", "region": "{{ vars.region }}"
    }}});

    let output = succeeded(run_node(node, &Value::Null, false).await);

    assert_eq!(
        output,
        json!({"greeting": "Hello Ada", "double": 14, "region": "eu"})
    );
}

#[tokio::test]
async fn if_passes_its_input_on_and_picks_the_branch_by_truthiness() {
    let input = json!({"kept": true});
    for (condition, expected) in [
        ("{{ trigger.n > 5 }}", IfBranch::True),
        ("{{ trigger.n > 50 }}", IfBranch::False),
        ("{{ trigger.missing }}", IfBranch::False),
        ("{{ trigger.name }}", IfBranch::True),
    ] {
        let node = json!({"id": "n", "type": "if", "config": {"condition": condition}});
        match run_node(node, &input, false).await {
            AttemptResult::Finished(StepOutcome::Branched { output, branch }) => {
                assert_eq!((output, branch), (input.clone(), expected), "{condition}");
            }
            other => panic!("{condition}: {other:?}"),
        }
    }
}

#[test]
fn truthiness_matches_the_expression_language() {
    for falsy in [json!(null), json!(false), json!(0), json!(0.0), json!("")] {
        assert!(!is_truthy(&falsy), "{falsy}");
    }
    for truthy in [
        json!(true),
        json!(1),
        json!(-0.5),
        json!("0"),
        json!([]),
        json!({}),
    ] {
        assert!(is_truthy(&truthy), "{truthy}");
    }
}

#[tokio::test]
async fn respond_outputs_status_headers_and_body() {
    let node = json!({"id": "n", "type": "respond", "config": {
        "status": 201, "headers": {"x-name": "{{ trigger.name }}"}, "body": {"n": "{{ trigger.n }}"}
    }});

    let output = succeeded(run_node(node, &Value::Null, false).await);

    assert_eq!(
        output,
        json!({"status": 201, "headers": {"x-name": "Ada"}, "body": {"n": 7}})
    );
}

#[tokio::test]
async fn fail_fails_with_its_rendered_message() {
    let node = json!({"id": "n", "type": "fail", "config": {"message": "no {{ trigger.name }}"}});

    assert_eq!(failed(run_node(node, &Value::Null, false).await), "no Ada");
}

#[tokio::test]
async fn a_template_error_fails_the_step_with_its_message() {
    let node =
        json!({"id": "n", "type": "set", "config": {"fields": {"x": "{{ trigger.n / 0 }}"}}});

    let message = failed(run_node(node, &Value::Null, false).await);

    assert!(message.contains("zero"), "{message}");
}

#[tokio::test]
async fn delay_waits_from_its_first_start_then_passes_its_input_on() {
    let node = json!({"id": "n", "type": "delay", "config": {"ms": 500}});
    let input = json!({"x": 1});

    let early = run_node_at(node.clone(), &input, false, 100).await;
    let done = run_node_at(node, &input, false, 500).await;

    let wake_at = chrono::Utc
        .timestamp_millis_opt(1_000_500)
        .single()
        .expect("time");
    assert_eq!(early, AttemptResult::WaitUntil(wake_at));
    assert_eq!(succeeded(done), input);
}

#[tokio::test]
async fn code_sees_the_scope_and_returns_its_value() {
    let node = json!({"id": "n", "type": "code", "config": {
        "language": "javascript", "source": "return { who: trigger.name, n: steps.start.n + 1, region: vars.region };"
    }});

    let output = succeeded(run_node(node, &Value::Null, false).await);

    assert_eq!(output, json!({"who": "Ada", "n": 8, "region": "eu"}));
}

#[tokio::test]
async fn code_that_throws_fails_the_step() {
    let node = json!({"id": "n", "type": "code", "config": {
        "language": "javascript", "source": "throw new Error('nope');"
    }});

    assert!(failed(run_node(node, &Value::Null, false).await).contains("nope"));
}

#[tokio::test]
async fn http_request_sends_the_rendered_request_with_the_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/greet"))
        .and(query_param("who", "Ada"))
        .and(header("x-region", "eu"))
        .and(wiremock::matchers::header_exists("idempotency-key"))
        .and(wiremock::matchers::body_json(json!({"n": 7})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .expect(1)
        .mount(&server)
        .await;
    let node = json!({"id": "n", "type": "http.request", "config": {
        "method": "POST", "url": format!("{}/greet", server.uri()),
        "query": {"who": "{{ trigger.name }}"}, "headers": {"x-region": "{{ vars.region }}"},
        "body": {"n": "{{ trigger.n }}"}
    }});

    let output = succeeded(run_node(node, &Value::Null, true).await);

    assert_eq!(output["status"], 200);
    assert_eq!(output["body"], json!({"ok": true}));
}

#[tokio::test]
async fn http_request_fails_on_a_server_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let node = json!({"id": "n", "type": "http.request", "config": {"method": "GET", "url": server.uri()}});

    assert!(failed(run_node(node, &Value::Null, true).await).contains("503"));
}

#[tokio::test]
async fn http_request_to_a_private_address_fails_without_the_flag() {
    let node = json!({"id": "n", "type": "http.request", "config": {"method": "GET", "url": "http://127.0.0.1:9/"}});

    let message = failed(run_node(node, &Value::Null, false).await);

    assert!(!message.is_empty());
}

#[tokio::test]
async fn merge_shapes_the_taken_predecessors_outputs_by_mode() {
    // `b` was on the branch not taken: the worker hands over only `a` and `c`.
    let (a, c) = (json!({"side": "a"}), json!([3]));
    let inputs = [("a", &a), ("c", &c)];
    let cases = [
        (json!({}), json!({"a": {"side": "a"}, "c": [3]})),
        (
            json!({"mode": "object"}),
            json!({"a": {"side": "a"}, "c": [3]}),
        ),
        (json!({"mode": "array"}), json!([{"side": "a"}, [3]])),
        (json!({"mode": "first"}), json!({"side": "a"})),
    ];
    for (config, expected) in cases {
        let node = json!({"id": "n", "type": "merge", "config": config});
        let output = succeeded(run_node_with(node, &Value::Null, &inputs, false, 0).await);
        assert_eq!(output, expected, "{config}");
    }
}

/// Answers with what the request said, later for earlier items, so that iterations in
/// flight together finish out of element order.
struct EchoSlowerForEarlierItems;

impl wiremock::Respond for EchoSlowerForEarlierItems {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let index = body["index"].as_u64().unwrap_or(0);
        ResponseTemplate::new(200)
            .set_body_json(json!({"got": body}))
            .set_delay(std::time::Duration::from_millis(40 * (5 - index.min(5))))
    }
}

fn loop_over_five(concurrency: u32, url: &str) -> Value {
    json!({"id": "n", "type": "loop", "config": {
        "items": "{{ ['a', 'b', 'c', 'd', 'e'] }}",
        "concurrency": concurrency,
        "steps": [
            {"id": "shape", "type": "set", "config": {"fields": {"letter": "{{ item }}", "index": "{{ index }}", "who": "{{ trigger.name }}"}}},
            {"id": "call", "type": "http.request", "config": {
                "method": "POST", "url": format!("{url}/items/{{{{ item }}}}"), "body": "{{ steps.shape }}"}},
            {"id": "sum", "type": "code", "config": {
                "source": "return { at: index, item: item, echoed: steps.call.body.got.letter, status: steps.call.status, start: steps.start.n };"}}
        ]
    }})
}

fn received_keys_and_paths(requests: &[wiremock::Request]) -> Vec<(String, String)> {
    requests
        .iter()
        .map(|request| {
            let key = request
                .headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            (key, request.url.path().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_loop_runs_its_body_per_item_and_outputs_in_item_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(EchoSlowerForEarlierItems)
        .expect(5)
        .mount(&server)
        .await;

    let output = succeeded(run_node(loop_over_five(2, &server.uri()), &Value::Null, true).await);

    let expected: Vec<Value> = ["a", "b", "c", "d", "e"]
        .iter()
        .enumerate()
        .map(|(i, letter)| json!({"at": i, "item": letter, "echoed": letter, "status": 200, "start": 7}))
        .collect();
    assert_eq!(output, Value::Array(expected));
    let mut sent = received_keys_and_paths(&server.received_requests().await.expect("recorded"));
    sent.sort();
    let expected_sent: Vec<(String, String)> = ["a", "b", "c", "d", "e"]
        .iter()
        .enumerate()
        .map(|(i, letter)| (format!("{RUN_ID}:n:{i}:call"), format!("/items/{letter}")))
        .collect();
    assert_eq!(sent, expected_sent);
}

#[tokio::test]
async fn a_loop_with_concurrency_one_runs_the_items_one_after_the_other() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(EchoSlowerForEarlierItems)
        .mount(&server)
        .await;

    succeeded(run_node(loop_over_five(1, &server.uri()), &Value::Null, true).await);

    // Earlier items answer more slowly: only one-at-a-time execution keeps them in order.
    let paths: Vec<String> =
        received_keys_and_paths(&server.received_requests().await.expect("recorded"))
            .into_iter()
            .map(|(_, path)| path)
            .collect();
    assert_eq!(
        paths,
        ["/items/a", "/items/b", "/items/c", "/items/d", "/items/e"]
    );
}

#[tokio::test]
async fn a_failing_item_fails_the_loop_naming_the_item_and_step() {
    let node = json!({"id": "n", "type": "loop", "config": {
        "items": "{{ [1, 2, 3] }}",
        "concurrency": 3,
        "steps": [
            {"id": "double", "type": "set", "config": {"fields": {"v": "{{ item * 2 }}"}}},
            {"id": "check", "type": "code", "config": {"source": "if (steps.double.v === 4) throw new Error('four is bad'); return 1;"}}
        ]
    }});

    let message = failed(run_node(node, &Value::Null, false).await);

    assert!(message.starts_with("item 1, step check: "), "{message}");
    assert!(message.contains("four is bad"), "{message}");
}

#[tokio::test]
async fn a_loop_whose_items_are_not_an_array_fails() {
    let node = json!({"id": "n", "type": "loop", "config": {
        "items": "{{ trigger.name }}",
        "steps": [{"id": "x", "type": "set", "config": {"fields": {"v": "{{ item }}"}}}]
    }});

    let message = failed(run_node(node, &Value::Null, false).await);

    assert_eq!(
        message,
        "items: `{{ trigger.name }}` must evaluate to an array, and it evaluated to a string"
    );
}

#[tokio::test]
async fn a_loop_over_more_items_than_its_limit_fails_before_running_any() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let node = json!({"id": "n", "type": "loop", "config": {
        "items": "{{ [1, 2, 3] }}",
        "maxItems": 2,
        "steps": [{"id": "call", "type": "http.request", "config": {"url": server.uri()}}]
    }});

    let message = failed(run_node(node, &Value::Null, true).await);

    assert_eq!(
        message,
        "items: 3 elements, more than the loop's limit of 2 (`maxItems`)"
    );
}

#[tokio::test]
async fn a_loop_body_step_is_retried_by_its_own_policy_with_the_same_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!("fine")))
        .mount(&server)
        .await;
    let node = json!({"id": "n", "type": "loop", "config": {
        "items": "{{ [10] }}",
        "steps": [{"id": "call", "type": "http.request", "config": {"url": server.uri()},
                   "retry": {"maxAttempts": 2, "initialIntervalMs": 0}}]
    }});

    let output = succeeded(run_node(node, &Value::Null, true).await);

    assert_eq!(output[0]["body"], json!("fine"));
    let keys: Vec<String> =
        received_keys_and_paths(&server.received_requests().await.expect("recorded"))
            .into_iter()
            .map(|(key, _)| key)
            .collect();
    assert_eq!(
        keys,
        [format!("{RUN_ID}:n:0:call"), format!("{RUN_ID}:n:0:call")]
    );
}

#[tokio::test]
async fn a_loop_over_an_empty_list_outputs_an_empty_array() {
    let node = json!({"id": "n", "type": "loop", "config": {
        "items": "{{ [] }}",
        "steps": [{"id": "x", "type": "fail", "config": {"message": "never"}}]
    }});

    assert_eq!(
        succeeded(run_node(node, &Value::Null, false).await),
        json!([])
    );
}

// Connections: the invariant of the module doc of `step`, that a step signs with its own
// workspace's connection and never returns one of its secrets.

/// Opens connections as the vault does: the one it holds, for its own workspace only, or
/// the refusal it was given.
struct FakeSecrets {
    opened: Result<(Connection, Credentials), String>,
}

#[async_trait]
impl ConnectionSecrets for FakeSecrets {
    async fn open_connection(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
    ) -> Result<(Connection, Credentials), String> {
        match &self.opened {
            Ok((connection, credentials))
                if connection.id == id && connection.workspace_id == workspace_id =>
            {
                Ok((connection.clone(), credentials.clone()))
            }
            Ok(_) => Err(format!("connection `{id}` not found")),
            Err(message) => Err(message.clone()),
        }
    }
}

/// A broken port that hands out its connection whoever asks.
struct CarelessSecrets(Connection, Credentials);

#[async_trait]
impl ConnectionSecrets for CarelessSecrets {
    async fn open_connection(
        &self,
        _workspace_id: WorkspaceId,
        _id: ConnectionId,
    ) -> Result<(Connection, Credentials), String> {
        Ok((self.0.clone(), self.1.clone()))
    }
}

fn connection_of(workspace_id: &str, credentials: &Credentials) -> Connection {
    let now = chrono::Utc::now();
    Connection {
        id: CONNECTION_ID.parse().expect("a connection id"),
        workspace_id: workspace_id.parse().expect("a workspace id"),
        name: ConnectionName::parse("Billing API").expect("a connection name"),
        connector: "http".to_owned(),
        auth_kind: credentials.auth_kind(),
        status: ConnectionStatus::Valid,
        settings: json!({}),
        created_at: now,
        updated_at: now,
        last_tested_at: None,
        last_test_ok: None,
    }
}

fn services_with(secrets: impl ConnectionSecrets + 'static) -> NodeServices {
    NodeServices {
        secrets: Some(Arc::new(secrets)),
        ..services(true)
    }
}

/// Services whose vault holds `credentials` as the run's workspace's connection.
fn with_connection(credentials: Credentials) -> NodeServices {
    services_with(FakeSecrets {
        opened: Ok((connection_of(WORKSPACE_ID, &credentials), credentials)),
    })
}

fn bearer(token: &str) -> Credentials {
    Credentials::Bearer {
        token: token.to_owned(),
    }
}

fn api_key(placement: KeyPlacement, name: &str, value: &str) -> Credentials {
    Credentials::ApiKey {
        placement,
        name: name.to_owned(),
        value: value.to_owned(),
    }
}

fn basic(username: &str, password: &str) -> Credentials {
    Credentials::Basic {
        username: username.to_owned(),
        password: password.to_owned(),
    }
}

fn http_node(config: Value) -> Value {
    json!({"id": "n", "type": "http.request", "config": config})
}

async fn run_with(node: Value, services: &NodeServices) -> AttemptResult {
    run_node_in(node, &Value::Null, &[], 0, services).await
}

/// Runs a GET to `server` signed with `credentials`; the server's mocks say what must
/// arrive, and anything else gets a 404 that fails the step.
async fn signed_get(server: &MockServer, credentials: Credentials) -> Value {
    let node = http_node(json!({"url": server.uri(), "connectionId": CONNECTION_ID}));
    succeeded(run_with(node, &with_connection(credentials)).await)
}

#[tokio::test]
async fn a_bearer_connection_sends_its_token_as_authorization() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(bearer_token("tok-7f3a"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;

    let output = signed_get(&server, bearer("tok-7f3a")).await;

    assert_eq!(output["status"], 200);
}

#[tokio::test]
async fn an_api_key_connection_sends_its_key_in_the_named_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(header("x-api-key", "key-91b2"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;

    signed_get(
        &server,
        api_key(KeyPlacement::Header, "X-Api-Key", "key-91b2"),
    )
    .await;
}

#[tokio::test]
async fn an_api_key_connection_sends_its_key_in_the_named_query_parameter() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(query_param("api_key", "k/2+x y"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;

    signed_get(&server, api_key(KeyPlacement::Query, "api_key", "k/2+x y")).await;
}

#[tokio::test]
async fn a_basic_connection_sends_user_and_password_as_basic_auth() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(basic_auth("ada", "pw:s3cret"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;

    signed_get(&server, basic("ada", "pw:s3cret")).await;
}

#[tokio::test]
async fn the_connection_id_may_be_a_template() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(bearer_token("tok-7f3a"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let node = http_node(json!({"url": server.uri(), "connectionId": "{{ vars.connection }}"}));

    succeeded(run_with(node, &with_connection(bearer("tok-7f3a"))).await);
}

#[tokio::test]
async fn the_connection_replaces_an_author_header_of_the_same_name_in_any_case() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let node = http_node(json!({
        "url": server.uri(), "connectionId": CONNECTION_ID,
        "headers": {"AUTHORIZATION": "Bearer the-authors", "x-other": "kept"}
    }));

    succeeded(run_with(node, &with_connection(bearer("tok-7f3a"))).await);

    let requests = server.received_requests().await.expect("recorded");
    let sent: Vec<&str> = requests[0]
        .headers
        .get_all("authorization")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    assert_eq!(sent, ["Bearer tok-7f3a"]);
    assert_eq!(
        requests[0]
            .headers
            .get("x-other")
            .and_then(|v| v.to_str().ok()),
        Some("kept")
    );
}

#[tokio::test]
async fn the_connection_replaces_an_author_query_parameter_of_the_same_name() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let node = http_node(json!({
        "url": format!("{}/items?api_key=from-url&page=2", server.uri()),
        "connectionId": CONNECTION_ID,
        "query": {"api_key": "from-query"}
    }));

    succeeded(
        run_with(
            node,
            &with_connection(api_key(KeyPlacement::Query, "api_key", "key-91b2")),
        )
        .await,
    );

    let requests = server.received_requests().await.expect("recorded");
    let keys: Vec<String> = requests[0]
        .url
        .query_pairs()
        .filter(|(name, _)| name == "api_key")
        .map(|(_, value)| value.into_owned())
        .collect();
    assert_eq!(keys, ["key-91b2"]);
}

/// A server that reflects what it was sent: every request header and the URL, in its
/// body and in its own headers.
struct Echo;

impl wiremock::Respond for Echo {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let headers: serde_json::Map<String, Value> = request
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), Value::String(value))
            })
            .collect();
        let query: serde_json::Map<String, Value> = request
            .url
            .query_pairs()
            .map(|(name, value)| (name.into_owned(), Value::String(value.into_owned())))
            .collect();
        let authorization = headers
            .get("authorization")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let url = request.url.to_string();
        ResponseTemplate::new(200)
            .insert_header("x-echo-authorization", authorization.as_str())
            .insert_header("x-echo-url", url.as_str())
            .set_body_json(json!({
                "authorization": authorization, "url": url, "headers": headers, "query": query
            }))
    }
}

fn assert_no_secret(output: &Value, credentials: &Credentials) {
    let text = output.to_string();
    for form in credentials.secret_forms() {
        assert!(!text.contains(&form), "{form:?} is in {text}");
    }
    assert!(text.contains(REDACTED), "{text}");
}

#[tokio::test]
async fn secrets_a_server_echoes_are_redacted_from_the_output() {
    let cases = [
        bearer("tok-7f3a"),
        api_key(KeyPlacement::Header, "x-api-key", "key-91b2"),
        api_key(KeyPlacement::Query, "api_key", "k/2+x y"),
        basic("ada", "pw:s3cret"),
    ];
    for credentials in cases {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(Echo)
            .expect(1)
            .mount(&server)
            .await;

        let output = signed_get(&server, credentials.clone()).await;

        assert_eq!(output["status"], 200);
        assert_no_secret(&output, &credentials);
    }
}

#[tokio::test]
async fn an_echoed_bearer_token_reads_redacted_in_headers_and_body() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(Echo)
        .mount(&server)
        .await;

    let output = signed_get(&server, bearer("tok-7f3a")).await;

    assert_eq!(
        output["headers"]["x-echo-authorization"],
        "Bearer [REDACTED]"
    );
    assert_eq!(output["body"]["authorization"], "Bearer [REDACTED]");
}

#[test]
fn an_error_quoting_the_query_key_is_redacted() {
    let credentials = api_key(KeyPlacement::Query, "api_key", "k/2+x y");
    let redactor = Redactor::for_credentials(&credentials);
    let error = "could not reach https://api.example.com/v1?api_key=k%2F2%2Bx+y (key k/2+x y)";

    let redacted = redact(Err(error.to_owned()), &redactor);

    assert_eq!(
        redacted,
        Err(
            "could not reach https://api.example.com/v1?api_key=[REDACTED] (key [REDACTED])"
                .to_owned()
        )
    );
}

#[tokio::test]
async fn a_loop_body_request_is_signed_and_its_output_redacted() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(bearer_token("tok-7f3a"))
        .respond_with(Echo)
        .expect(2)
        .mount(&server)
        .await;
    let node = json!({"id": "n", "type": "loop", "config": {
        "items": "{{ [1, 2] }}",
        "steps": [{"id": "call", "type": "http.request",
                   "config": {"url": server.uri(), "connectionId": "{{ vars.connection }}"}}]
    }});

    let output = succeeded(run_with(node, &with_connection(bearer("tok-7f3a"))).await);

    assert_eq!(output[1]["body"]["authorization"], "Bearer [REDACTED]");
    assert_no_secret(&output, &bearer("tok-7f3a"));
}

/// A server that must not be called: the step fails before sending anything.
async fn untouched_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_connection_the_vault_refuses_fails_the_step_with_its_message() {
    let server = untouched_server().await;
    let services = services_with(FakeSecrets {
        opened: Err("connection `Billing API` needs to be authorized again".to_owned()),
    });
    let node = http_node(json!({"url": server.uri(), "connectionId": CONNECTION_ID}));

    let message = failed(run_with(node, &services).await);

    assert_eq!(
        message,
        "connection `Billing API` needs to be authorized again"
    );
}

#[tokio::test]
async fn an_unknown_or_malformed_connection_id_is_not_found() {
    let server = untouched_server().await;
    let services = with_connection(bearer("tok-7f3a"));
    let unknown = ConnectionId::generate().to_string();
    for id in [unknown.as_str(), "billing-api"] {
        let node = http_node(json!({"url": server.uri(), "connectionId": id}));

        let message = failed(run_with(node, &services).await);

        assert_eq!(message, format!("connection `{id}` not found"));
    }
}

#[tokio::test]
async fn another_workspaces_connection_is_never_used_even_if_the_port_hands_it_out() {
    let server = untouched_server().await;
    let credentials = bearer("tok-7f3a");
    let elsewhere = WorkspaceId::generate().to_string();
    let services = services_with(CarelessSecrets(
        connection_of(&elsewhere, &credentials),
        credentials,
    ));
    let node = http_node(json!({"url": server.uri(), "connectionId": CONNECTION_ID}));

    let message = failed(run_with(node, &services).await);

    assert_eq!(message, format!("connection `{CONNECTION_ID}` not found"));
}

#[tokio::test]
async fn without_connections_in_the_process_a_step_naming_one_fails_clearly() {
    let server = untouched_server().await;
    let node = http_node(json!({"url": server.uri(), "connectionId": CONNECTION_ID}));

    let message = failed(run_with(node, &services(true)).await);

    assert_eq!(
        message,
        format!(
            "connection `{CONNECTION_ID}` cannot be used: connections are not available in this process"
        )
    );
}
