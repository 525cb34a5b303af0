//! The validator's catalogue: valid definitions with the typed result they must produce
//! (here), each invalid definition with exactly the problems it must produce (`invalid`),
//! and properties that hold for any input (`properties`).

mod connectors;
mod invalid;
mod merge_and_loop;
mod properties;

use serde_json::{Value, json};

use super::Problem;
use super::definition::{Branch, Definition, OnError};
use super::node_types::{Dynamic, HttpMethod, NodeKind, NodeType, WebhookResponse};
use super::validate::validate_definition;

/// An expected problem: the node it is on (`None` for the graph) and a fragment of its
/// message.
pub(super) type Expected = (Option<&'static str>, &'static str);

pub(super) fn problems_of(raw: &Value) -> Vec<Problem> {
    match validate_definition(raw) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    }
}

/// Every expected problem matches a distinct actual one, and there are no others.
pub(super) fn assert_problems(case: &str, raw: &Value, expected: &[Expected]) {
    let actual = problems_of(raw);
    let mut unmatched: Vec<&Problem> = actual.iter().collect();
    for (node_id, fragment) in expected {
        let position = unmatched
            .iter()
            .position(|p| p.node_id.as_deref() == *node_id && p.message.contains(fragment));
        match position {
            Some(i) => {
                unmatched.remove(i);
            }
            None => panic!(
                "{case}: expected a problem on {node_id:?} containing {fragment:?}, got {actual:#?}"
            ),
        }
    }
    assert!(
        unmatched.is_empty(),
        "{case}: unexpected problems {unmatched:#?}"
    );
}

pub(super) fn contract_example() -> Value {
    json!({
      "nodes": [
        {"id": "hook", "type": "trigger.webhook", "config": {"respond": "onCompletion"}},
        {"id": "greet", "type": "set", "config": {"fields": {"message": "Hello {{ trigger.body.name }}", "n": "{{ trigger.body.n * 2 }}"}}},
        {"id": "big", "type": "if", "config": {"condition": "{{ steps.greet.n > 10 }}"}},
        {"id": "call", "type": "http.request", "config": {"method": "POST", "url": "https://example.com/x", "body": {"m": "{{ steps.greet.message }}"}},
         "retry": {"maxAttempts": 3, "initialIntervalMs": 200, "backoffMultiplier": 2}},
        {"id": "reply", "type": "respond", "config": {"status": 200, "body": {"message": "{{ steps.greet.message }}"}}}
      ],
      "edges": [
        {"from": "hook", "to": "greet"},
        {"from": "greet", "to": "big"},
        {"from": "big", "to": "call", "branch": "true"},
        {"from": "big", "to": "reply", "branch": "false"},
        {"from": "call", "to": "reply"}
      ]
    })
}

/// A manual trigger `t` followed by `node` (edge `t -> id`).
pub(super) fn after_trigger(node: Value) -> Value {
    let id = node["id"].clone();
    json!({
        "nodes": [{"id": "t", "type": "trigger.manual"}, node],
        "edges": [{"from": "t", "to": id}]
    })
}

pub(super) fn set_node(id: &str, fields: Value) -> Value {
    json!({"id": id, "type": "set", "config": {"fields": fields}})
}

#[test]
fn the_contract_example_is_valid() {
    let definition = validate_definition(&contract_example()).expect("the contract example");

    assert_eq!(definition.trigger().id().as_str(), "hook");
    let NodeKind::WebhookTrigger(hook) = definition.trigger().kind() else {
        panic!("the trigger is a webhook");
    };
    assert_eq!(hook.respond, WebhookResponse::OnCompletion);
    assert_eq!(hook.methods, [HttpMethod::Post]);
    let order: Vec<&str> = definition
        .topological_order()
        .map(|n| n.id().as_str())
        .collect();
    assert_eq!(order, ["hook", "greet", "big", "call", "reply"]);
    let branches: Vec<(&str, Option<Branch>)> = definition
        .outgoing("big")
        .map(|e| (e.to().as_str(), e.branch()))
        .collect();
    assert_eq!(
        branches,
        [("call", Some(Branch::True)), ("reply", Some(Branch::False))]
    );
    let call = definition.node("call").expect("node call");
    assert_eq!(call.retry().max_attempts(), 3);
    assert_eq!(call.retry().initial_interval_ms(), 200);
    assert_eq!(call.on_error(), OnError::Fail);
    let greet = definition.node("greet").expect("node greet");
    assert_eq!(greet.retry().max_attempts(), 1);
    assert_eq!(definition.incoming("reply").count(), 2);
}

#[test]
fn upstream_and_downstream_follow_the_graph() {
    let definition = validate_definition(&contract_example()).expect("the contract example");
    let ids = |nodes: Vec<&super::definition::Node>| -> Vec<String> {
        nodes.iter().map(|n| n.id().to_string()).collect()
    };
    assert_eq!(
        ids(definition.upstream_of("call")),
        ["hook", "greet", "big"]
    );
    assert_eq!(
        ids(definition.downstream_of("big")),
        ["big", "call", "reply"]
    );
    assert!(definition.upstream_of("nope").is_empty());
    assert!(definition.node("nope").is_none());
    assert_eq!(definition.outgoing("nope").count(), 0);
}

#[test]
fn a_definition_round_trips_through_json_with_defaults_written_out() {
    let definition = validate_definition(&contract_example()).expect("the contract example");
    let stored = serde_json::to_value(&definition).expect("serializable");

    assert_eq!(stored["nodes"][0]["config"]["methods"], json!(["POST"]));
    assert_eq!(stored["nodes"][1]["onError"], json!("fail"));
    assert_eq!(stored["nodes"][1]["retry"]["maxAttempts"], json!(1));
    assert_eq!(stored["nodes"][3]["type"], json!("http.request"));
    assert_eq!(
        stored["edges"][2],
        json!({"from": "big", "to": "call", "branch": "true"})
    );
    assert_eq!(validate_definition(&stored), Ok(definition));
}

#[test]
fn deserializing_a_definition_validates_it() {
    let text = contract_example().to_string();
    let definition: Definition = serde_json::from_str(&text).expect("valid JSON definition");
    assert_eq!(definition.nodes().len(), 5);

    let error = serde_json::from_str::<Definition>(r#"{"nodes": [{"id": "a", "type": "set"}]}"#)
        .expect_err("invalid definition");
    let message = error.to_string();
    assert!(
        message.contains("a: config/fields: is required"),
        "{message}"
    );
    assert!(message.contains("needs one trigger node"), "{message}");
}

#[test]
fn every_node_type_accepts_its_full_config() {
    let raw = json!({
        "nodes": [
            {"id": "hook", "type": "trigger.webhook", "name": "Incoming", "notes": "from the shop",
             "position": {"x": 10, "y": -2.5},
             "config": {"respond": "immediately", "secret": "0123456789abcdef", "methods": ["POST", "PUT"]}},
            {"id": "set_1", "type": "set", "config": {"fields": {"a": 1, "b": [true, null], "c": "{{ trigger.body }}"}}},
            {"id": "check", "type": "if", "config": {"condition": true}},
            {"id": "call", "type": "http.request", "onError": "continue",
             "retry": {"maxAttempts": 10, "initialIntervalMs": 0, "backoffMultiplier": 1.5, "maxIntervalMs": 5000},
             "config": {"method": "DELETE", "url": "{{ vars.base }}/items/{{ steps.set_1.a }}",
                        "headers": {"X-Id": "{{ run.id }}"}, "query": {"page": 2}, "body": null,
                        "connectionId": "conn_1", "timeoutMs": 300000}},
            {"id": "script", "type": "code", "config": {"language": "javascript", "source": "return {{ a }} + steps.call;"}},
            {"id": "wait", "type": "delay", "config": {"ms": "{{ steps.set_1.a * 1000 }}"}},
            {"id": "wait_fixed", "type": "delay", "config": {"ms": 2592000000u64}},
            {"id": "answer", "type": "respond", "config": {"status": "{{ steps.call.status }}", "headers": {"X-A": "b"}}},
            {"id": "boom", "type": "fail", "config": {"message": "failed: {{ steps.call.body }}"}}
        ],
        "edges": [
            {"from": "hook", "to": "set_1"},
            {"from": "set_1", "to": "check"},
            {"from": "check", "to": "call", "branch": "true"},
            {"from": "check", "to": "boom", "branch": "false"},
            {"from": "check", "to": "boom", "branch": "error"},
            {"from": "call", "to": "script"},
            {"from": "call", "to": "boom", "branch": "error"},
            {"from": "script", "to": "wait"},
            {"from": "wait", "to": "wait_fixed"},
            {"from": "wait_fixed", "to": "answer"}
        ]
    });
    let definition = validate_definition(&raw).expect("a valid definition");

    let hook = definition.trigger();
    assert_eq!(hook.name(), Some("Incoming"));
    assert_eq!(hook.notes(), Some("from the shop"));
    assert_eq!(hook.position().map(|p| (p.x, p.y)), Some((10.0, -2.5)));
    let NodeKind::WebhookTrigger(hook_config) = hook.kind() else {
        panic!("a webhook trigger");
    };
    assert!(hook_config.accepts(HttpMethod::Put));
    assert!(!hook_config.accepts(HttpMethod::Get));
    assert_eq!(
        hook_config.secret.as_ref().map(|s| s.expose()),
        Some("0123456789abcdef")
    );
    assert!(!format!("{hook_config:?}").contains("0123456789abcdef"));

    let call = definition.node("call").expect("node call");
    assert_eq!(call.on_error(), OnError::Continue);
    assert_eq!(call.retry().max_interval_ms(), Some(5000));
    let NodeKind::HttpRequest(http) = call.kind() else {
        panic!("an http.request node");
    };
    assert_eq!(http.method, HttpMethod::Delete);
    assert_eq!(http.body, Some(Value::Null));
    assert_eq!(http.timeout_ms, Some(300_000));

    let Some(NodeKind::Delay(wait)) = definition.node("wait").map(|n| n.kind()) else {
        panic!("a delay node");
    };
    assert!(matches!(wait.ms, Dynamic::Template(_)));
    let Some(NodeKind::Respond(answer)) = definition.node("answer").map(|n| n.kind()) else {
        panic!("a respond node");
    };
    assert!(matches!(answer.status, Dynamic::Template(_)));

    let stored = serde_json::to_value(&definition).expect("serializable");
    assert_eq!(validate_definition(&stored), Ok(definition));
}

#[test]
fn a_schedule_trigger_fires_in_its_time_zone() {
    let raw = json!({"nodes": [{"id": "tick", "type": "trigger.schedule",
        "config": {"cron": "30 9 * * 1-5", "timezone": "Europe/Paris"}}]});
    let definition = validate_definition(&raw).expect("a valid schedule");
    let NodeKind::ScheduleTrigger(schedule) = definition.trigger().kind() else {
        panic!("a schedule trigger");
    };
    // Friday 2024-03-01 12:00 UTC: the next weekday 09:30 in Paris (UTC+1) is Monday 08:30 UTC.
    let after = chrono::DateTime::parse_from_rfc3339("2024-03-01T12:00:00Z")
        .expect("a timestamp")
        .to_utc();
    let next = schedule.next_after(after).expect("a next firing");
    assert_eq!(next.to_rfc3339(), "2024-03-04T08:30:00+00:00");

    let seconds = json!({"nodes": [{"id": "tick", "type": "trigger.schedule", "config": {"cron": "*/10 * * * * *"}}]});
    let definition = validate_definition(&seconds).expect("a six-field schedule");
    let stored = serde_json::to_value(&definition).expect("serializable");
    assert_eq!(stored["nodes"][0]["config"]["timezone"], json!("UTC"));
}

#[test]
fn null_optional_fields_mean_their_defaults() {
    let raw = json!({
        "nodes": [
            {"id": "t", "type": "trigger.manual", "config": null, "retry": null, "onError": null, "name": null},
            {"id": "call", "type": "http.request", "config": {"url": "http://example.com", "method": null, "headers": null}}
        ],
        "edges": [{"from": "t", "to": "call", "branch": null}]
    });
    let definition = validate_definition(&raw).expect("a valid definition");
    let Some(NodeKind::HttpRequest(http)) = definition.node("call").map(|n| n.kind()) else {
        panic!("an http.request node");
    };
    assert_eq!(http.method, HttpMethod::Get);
    assert_eq!(definition.edges()[0].branch(), None);
}

#[test]
fn a_lone_trigger_is_a_workflow() {
    let raw = json!({"nodes": [{"id": "start", "type": "trigger.manual", "config": {"inputExample": {"a": [1, 2]}}}]});
    let definition = validate_definition(&raw).expect("a valid definition");
    assert_eq!(definition.trigger().node_type(), NodeType::ManualTrigger);
    assert!(definition.edges().is_empty());
}

#[test]
fn code_source_is_not_read_as_a_template() {
    let raw = after_trigger(json!({"id": "a", "type": "code",
        "config": {"source": "const t = `{{ ${steps.nope} }}`; return t;"}}));
    assert!(validate_definition(&raw).is_ok(), "{:?}", problems_of(&raw));
}
