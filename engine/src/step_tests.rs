use chrono::TimeZone;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use aos_domain::run::{IdempotencyKey, IfBranch, RunId, StepOutcome};
use aos_domain::workflow::{Definition, validate_definition};

use super::{Attempt, AttemptResult, NodeServices, execute, is_truthy};
use crate::code::CodeLimits;
use crate::http::{HttpClient, HttpPolicy};

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
    let definition = with_node(node);
    let node = definition.node("n").expect("node n");
    let key = IdempotencyKey::for_step(RunId::generate(), node.id());
    let scope = scope();
    let started_at = chrono::Utc
        .timestamp_millis_opt(1_000_000)
        .single()
        .expect("time");
    let attempt = Attempt {
        scope: &scope,
        input,
        idempotency_key: &key,
        started_at,
        now: started_at + chrono::Duration::milliseconds(now_offset_ms),
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
