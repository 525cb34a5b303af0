use chrono::TimeZone;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use aos_domain::run::{IdempotencyKey, IfBranch, RunId, StepOutcome};
use aos_domain::workflow::{Definition, validate_definition};

use super::{Attempt, AttemptResult, NodeServices, execute, is_truthy};
use crate::code::CodeLimits;
use crate::http::{HttpClient, HttpPolicy};
use crate::loop_node::LoopProgress;

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
    }
}

fn scope() -> Value {
    json!({
        "trigger": {"name": "Ada", "n": 7},
        "steps": {"start": {"name": "Ada", "n": 7}},
        "vars": {"region": "eu"},
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

async fn run_node_with(
    node: Value,
    input: &Value,
    inputs: &[(&str, &Value)],
    allow_private: bool,
    now_offset_ms: i64,
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
        scope: &scope,
        input,
        inputs,
        idempotency_key: &key,
        started_at,
        now: started_at + chrono::Duration::milliseconds(now_offset_ms),
        loop_progress: LoopProgress::default(),
    };
    execute(node, attempt, &services(allow_private)).await
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
