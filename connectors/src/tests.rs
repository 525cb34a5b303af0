use aos_domain::connection::AuthKind;
use serde_json::json;

use super::*;

#[test]
fn the_http_connector_takes_every_generic_auth_kind() {
    let registry = Registry::builtin();
    for kind in AuthKind::ALL {
        assert_eq!(registry.check_connection("http", kind, &json!({})), Ok(()));
    }
}

#[test]
fn unknown_connectors_and_bad_settings_are_refused_with_the_reason() {
    let registry = Registry::builtin();
    let unknown = registry.check_connection("telepathy", AuthKind::Bearer, &json!({}));
    assert!(unknown.is_err_and(|error| error.contains("unknown connector `telepathy`")));
    let bad_url =
        registry.check_connection("http", AuthKind::Bearer, &json!({"testUrl": "ftp://x"}));
    assert!(bad_url.is_err_and(|error| error.contains("testUrl")));
    let unknown_setting =
        registry.check_connection("http", AuthKind::Bearer, &json!({"colour": "red"}));
    assert!(unknown_setting.is_err_and(|error| error.contains("colour")));
    let not_object = registry.check_connection("http", AuthKind::Bearer, &json!([1]));
    assert!(not_object.is_err());
    let huge = json!({"testUrl": format!("https://example.com/{}", "a".repeat(20_000))});
    assert!(
        registry
            .check_connection("http", AuthKind::Bearer, &huge)
            .is_err()
    );
}

#[test]
fn every_operation_declares_object_schemas() {
    for connector in Registry::builtin().all() {
        let info = connector.info();
        assert!(!info.operations.is_empty(), "{}", info.key);
        for operation in &info.operations {
            assert_eq!(operation.parameters["type"], "object", "{}", operation.key);
        }
    }
}

#[test]
fn every_connection_may_limit_its_requests_per_second() {
    let registry = Registry::builtin();
    for rate in [json!(0.5), json!(10), json!(10_000)] {
        let settings = json!({"maxRequestsPerSecond": rate, "testUrl": "https://x.io/me"});
        assert_eq!(
            registry.check_connection("http", AuthKind::Bearer, &settings),
            Ok(()),
            "{settings}"
        );
        assert!(max_requests_per_second(&settings).is_some());
    }
    for rate in [json!(0), json!(-1), json!("5"), json!(10_001), json!([1])] {
        let settings = json!({"maxRequestsPerSecond": rate});
        let refused = registry.check_connection("http", AuthKind::Bearer, &settings);
        assert_eq!(
            refused,
            Err(
                "settings: maxRequestsPerSecond must be a number greater than 0 and at most 10000"
                    .to_owned()
            ),
            "{settings}"
        );
    }
    assert_eq!(max_requests_per_second(&json!({})), None);
}

fn connector_step(connector: &str, operation: &str) -> serde_json::Value {
    json!({"id": "call", "type": "connector", "config": {"connector": connector, "operation": operation,
        "connectionId": "0190f1a2-0000-7000-8000-0000000000c1"}})
}

fn poll_trigger(connector: &str, trigger: &str) -> serde_json::Value {
    json!({"id": "t", "type": "trigger.poll", "config": {"connector": connector, "trigger": trigger,
        "connectionId": "0190f1a2-0000-7000-8000-0000000000c1", "params": {"url": "https://x.io"}}})
}

fn messages(problems: &[Problem]) -> Vec<(Option<&str>, &str)> {
    problems
        .iter()
        .map(|p| (p.node_id.as_deref(), p.message.as_str()))
        .collect()
}

#[test]
fn a_definition_using_what_the_registry_has_passes() {
    let registry = Registry::builtin();
    let raw = json!({
        "nodes": [
            poll_trigger("http", "newItems"),
            connector_step("http", "request"),
            {"id": "each", "type": "loop", "config": {"items": "{{ trigger.list }}", "steps": [
                {"id": "inner", "type": "connector", "config": {"connector": "http", "operation": "request",
                 "connectionId": "0190f1a2-0000-7000-8000-0000000000c1", "params": {"url": "{{ item }}"}}}
            ]}}
        ],
        "edges": [{"from": "t", "to": "call"}, {"from": "call", "to": "each"}]
    });
    let definition = aos_domain::workflow::validate_definition(&raw)
        .unwrap_or_else(|problems| panic!("{problems:?}"));

    assert_eq!(registry.check_definition(&definition), []);
    assert_eq!(registry.check_definition_json(&raw), []);
}

#[test]
fn unknown_connectors_operations_and_triggers_are_reported_with_what_exists() {
    let registry = Registry::builtin();
    let raw = json!({
        "nodes": [
            poll_trigger("http", "newThings"),
            connector_step("http", "fetch"),
            {"id": "other", "type": "connector", "config": {"connector": "telepathy", "operation": "think",
             "connectionId": "0190f1a2-0000-7000-8000-0000000000c1"}},
            {"id": "each", "type": "loop", "config": {"items": "{{ trigger.list }}", "steps": [
                {"id": "inner", "type": "connector", "config": {"connector": "http", "operation": "get",
                 "connectionId": "0190f1a2-0000-7000-8000-0000000000c1"}}
            ]}}
        ],
        "edges": [{"from": "t", "to": "call"}, {"from": "call", "to": "other"}, {"from": "other", "to": "each"}]
    });
    let definition = aos_domain::workflow::validate_definition(&raw)
        .unwrap_or_else(|problems| panic!("{problems:?}"));

    let typed = registry.check_definition(&definition);
    let found = messages(&typed);

    assert_eq!(found.len(), 4, "{found:?}");
    assert_eq!(
        found[0],
        (
            Some("t"),
            "config/trigger: the `http` connector has no polling trigger `newThings`; it has newItems"
        )
    );
    assert_eq!(
        found[1],
        (
            Some("call"),
            "config/operation: the `http` connector has no operation `fetch`; it has request"
        )
    );
    assert_eq!(found[2].0, Some("other"));
    assert!(
        found[2]
            .1
            .starts_with("config/connector: unknown connector `telepathy`; known: "),
        "{found:?}"
    );
    assert!(found[2].1.contains("http"), "{found:?}");
    assert_eq!(
        found[3],
        (
            Some("each"),
            "config/steps/0/config/operation: the `http` connector has no operation `get`; it has request"
        )
    );
    assert_eq!(registry.check_definition_json(&raw), typed);
}

#[test]
fn the_json_check_reports_alongside_a_broken_definition_and_skips_unreadable_nodes() {
    let registry = Registry::builtin();
    let raw = json!({
        "nodes": [
            connector_step("http", "fetch"),
            {"id": "blank", "type": "connector", "config": {"connector": " ", "operation": 3}},
            {"type": "connector", "config": {"connector": "nope", "operation": "x"}},
            {"id": "noconfig", "type": "trigger.poll"}
        ]
    });
    assert!(aos_domain::workflow::validate_definition(&raw).is_err());

    let found = registry.check_definition_json(&raw);

    assert_eq!(
        messages(&found),
        [(
            Some("call"),
            "config/operation: the `http` connector has no operation `fetch`; it has request"
        )]
    );
    assert_eq!(registry.check_definition_json(&json!([1, 2])), []);
}

#[test]
fn every_trigger_declares_object_schemas() {
    let registry = Registry::builtin();
    let http = registry.get("http").map(|found| found.info().clone());
    let triggers = http.map(|info| info.triggers).unwrap_or_default();
    assert_eq!(
        triggers.iter().map(|t| t.key).collect::<Vec<_>>(),
        ["newItems"]
    );
    for connector in registry.all() {
        for trigger in &connector.info().triggers {
            assert_eq!(trigger.parameters["type"], "object", "{}", trigger.key);
            assert_eq!(trigger.output["type"], "object", "{}", trigger.key);
        }
    }
}
