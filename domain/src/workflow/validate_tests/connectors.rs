//! `connector` steps and `trigger.poll` triggers: the shapes the validator accepts, with
//! their defaults, and every bad field with its message. Whether a connector, operation or
//! trigger exists is the registry's check, not the validator's.

use serde_json::{Value, json};

use super::{Expected, after_trigger, assert_problems, problems_of};
use crate::ids::ConnectionId;
use crate::workflow::node_types::{NodeKind, NodeType, PollTriggerConfig};
use crate::workflow::validate::validate_definition;

const CONNECTION: &str = "0190f1a2-0000-7000-8000-0000000000c1";

fn connector_node(config: Value) -> Value {
    json!({"id": "a", "type": "connector", "config": config})
}

/// A definition whose only node is a polling trigger with `config`.
fn poll_trigger(config: Value) -> Value {
    json!({"nodes": [{"id": "t", "type": "trigger.poll", "config": config}]})
}

#[test]
fn a_connector_step_keeps_its_keys_connection_and_params() {
    let raw = json!({
        "nodes": [
            {"id": "t", "type": "trigger.manual"},
            {"id": "post", "type": "connector", "onError": "continue",
             "retry": {"maxAttempts": 3, "initialIntervalMs": 100},
             "config": {"connector": "slack", "operation": "postMessage", "connectionId": CONNECTION,
                        "params": {"channel": "#ops", "text": "Hi {{ trigger.name }}", "blocks": [{"n": "{{ trigger.n }}"}]}}},
            {"id": "again", "type": "connector",
             "config": {"connector": " http ", "operation": "request", "connectionId": "{{ steps.post.connection }}"}}
        ],
        "edges": [{"from": "t", "to": "post"}, {"from": "post", "to": "again"}]
    });

    let definition = validate_definition(&raw).unwrap_or_else(|p| panic!("{p:?}"));

    let post = definition.node("post").expect("node post");
    assert_eq!(post.retry().max_attempts(), 3);
    let NodeKind::Connector(config) = post.kind() else {
        panic!("a connector node");
    };
    assert_eq!(
        (config.connector.as_str(), config.operation.as_str()),
        ("slack", "postMessage")
    );
    assert_eq!(config.connection_id, CONNECTION);
    assert_eq!(config.params["text"], "Hi {{ trigger.name }}");
    let Some(NodeKind::Connector(again)) = definition.node("again").map(|n| n.kind()) else {
        panic!("a connector node");
    };
    assert_eq!(again.connector, "http", "keys are trimmed");
    assert!(again.params.is_empty(), "params default to an empty object");
    assert!(NodeType::Connector.has_side_effects());
    let stored = serde_json::to_value(&definition).expect("serializable");
    assert_eq!(stored["nodes"][2]["config"]["params"], json!({}));
    assert_eq!(validate_definition(&stored), Ok(definition));
}

#[test]
fn a_connector_step_may_run_in_a_loop_body() {
    let raw = json!({
        "nodes": [
            {"id": "t", "type": "trigger.manual"},
            {"id": "each", "type": "loop", "config": {"items": "{{ trigger.channels }}", "steps": [
                {"id": "post", "type": "connector", "config": {"connector": "slack", "operation": "postMessage",
                 "connectionId": CONNECTION, "params": {"channel": "{{ item }}", "at": "{{ index }}"}}}
            ]}}
        ],
        "edges": [{"from": "t", "to": "each"}]
    });
    assert_eq!(problems_of(&raw), []);
}

#[test]
fn a_polling_trigger_has_defaults_and_round_trips() {
    let raw = poll_trigger(
        json!({"connector": "http", "trigger": "newItems", "connectionId": CONNECTION}),
    );

    let definition = validate_definition(&raw).unwrap_or_else(|p| panic!("{p:?}"));

    let NodeKind::PollTrigger(config) = definition.trigger().kind() else {
        panic!("a polling trigger");
    };
    assert_eq!(
        config.interval_seconds,
        PollTriggerConfig::DEFAULT_INTERVAL_SECONDS
    );
    assert_eq!(
        config.connection_id,
        CONNECTION.parse::<ConnectionId>().expect("an id")
    );
    assert!(config.params.is_empty());
    assert!(NodeType::PollTrigger.is_trigger());
    let stored = serde_json::to_value(&definition).expect("serializable");
    assert_eq!(stored["nodes"][0]["config"]["intervalSeconds"], json!(60));
    assert_eq!(
        stored["nodes"][0]["config"]["connectionId"],
        json!(CONNECTION)
    );
    assert_eq!(validate_definition(&stored), Ok(definition));
}

#[test]
fn a_polling_trigger_takes_its_interval_and_params_as_written() {
    for seconds in [15, 86_400] {
        let raw = json!({
            "nodes": [
                {"id": "t", "type": "trigger.poll", "config": {"connector": "http", "trigger": "newItems",
                 "connectionId": CONNECTION, "intervalSeconds": seconds,
                 "params": {"url": "https://api.example.com/items", "itemsPath": "data.items", "nested": [{"a": 1}]}}},
                {"id": "greet", "type": "set", "config": {"fields": {"id": "{{ trigger.id }}"}}}
            ],
            "edges": [{"from": "t", "to": "greet"}]
        });
        let definition = validate_definition(&raw).unwrap_or_else(|p| panic!("{p:?}"));
        let NodeKind::PollTrigger(config) = definition.trigger().kind() else {
            panic!("a polling trigger");
        };
        assert_eq!(u64::from(config.interval_seconds), seconds);
        assert_eq!(config.params["itemsPath"], "data.items");
    }
}

#[test]
fn invalid_connector_steps() {
    let cases: Vec<(&str, Value, Vec<Expected>)> = vec![
        (
            "nothing given",
            connector_node(json!({})),
            vec![
                (Some("a"), "config/connector: is required"),
                (Some("a"), "config/operation: is required"),
                (Some("a"), "config/connectionId: is required"),
            ],
        ),
        (
            "blank keys",
            connector_node(json!({"connector": " ", "operation": "", "connectionId": "  "})),
            vec![
                (Some("a"), "config/connector: must not be empty"),
                (Some("a"), "config/operation: must not be empty"),
                (Some("a"), "config/connectionId: must not be empty"),
            ],
        ),
        (
            "keys of the wrong type",
            connector_node(
                json!({"connector": 1, "operation": ["x"], "connectionId": true, "params": "x"}),
            ),
            vec![
                (Some("a"), "config/connector: must be a string"),
                (Some("a"), "config/operation: must be a string"),
                (Some("a"), "config/connectionId: must be a string"),
                (Some("a"), "config/params: must be an object"),
            ],
        ),
        (
            "templated keys",
            connector_node(
                json!({"connector": "{{ vars.c }}", "operation": "{{ vars.o }}", "connectionId": CONNECTION}),
            ),
            vec![
                (
                    Some("a"),
                    "config/connector: must be written out, not a template",
                ),
                (
                    Some("a"),
                    "config/operation: must be written out, not a template",
                ),
            ],
        ),
        (
            "a connection id that is no id",
            connector_node(
                json!({"connector": "slack", "operation": "postMessage", "connectionId": "my-slack"}),
            ),
            vec![(
                Some("a"),
                "config/connectionId: must be the id of a connection or a `{{ }}` expression",
            )],
        ),
        (
            "a typo",
            connector_node(
                json!({"connector": "slack", "operation": "postMessage", "connectionId": CONNECTION, "parms": {}}),
            ),
            vec![(
                Some("a"),
                "config: unknown key `parms` (did you mean `params`?)",
            )],
        ),
        (
            "params reading a step that does not exist",
            connector_node(
                json!({"connector": "slack", "operation": "postMessage", "connectionId": CONNECTION,
                "params": {"text": "{{ steps.nope.text }}"}}),
            ),
            vec![(
                Some("a"),
                "config/params/text: refers to steps.nope, but there is no node `nope`",
            )],
        ),
        (
            "a bad retry and onError",
            json!({"id": "a", "type": "connector", "onError": "ignore", "retry": {"maxAttempts": 0},
                "config": {"connector": "slack", "operation": "postMessage", "connectionId": CONNECTION}}),
            vec![
                (Some("a"), "onError: must be one of `fail`, `continue`"),
                (Some("a"), "retry/maxAttempts: must be an integer from 1"),
            ],
        ),
    ];
    for (case, node, expected) in cases {
        assert_problems(case, &after_trigger(node), &expected);
    }
}

#[test]
fn invalid_polling_triggers() {
    let cases: Vec<(&str, Value, Vec<Expected>)> = vec![
        (
            "nothing given",
            poll_trigger(json!({})),
            vec![
                (Some("t"), "config/connector: is required"),
                (Some("t"), "config/trigger: is required"),
                (Some("t"), "config/connectionId: is required"),
            ],
        ),
        (
            "a templated connection",
            poll_trigger(
                json!({"connector": "http", "trigger": "newItems", "connectionId": "{{ vars.conn }}"}),
            ),
            vec![(
                Some("t"),
                "config/connectionId: must be the connection's id itself, not a template",
            )],
        ),
        (
            "a connection id that is no id",
            poll_trigger(
                json!({"connector": "http", "trigger": "newItems", "connectionId": "conn_1"}),
            ),
            vec![(
                Some("t"),
                "config/connectionId: must be the id of a connection",
            )],
        ),
        (
            "too short an interval",
            poll_trigger(
                json!({"connector": "http", "trigger": "newItems", "connectionId": CONNECTION, "intervalSeconds": 14}),
            ),
            vec![(
                Some("t"),
                "config/intervalSeconds: must be an integer from 15 to 86400",
            )],
        ),
        (
            "too long an interval",
            poll_trigger(
                json!({"connector": "http", "trigger": "newItems", "connectionId": CONNECTION, "intervalSeconds": 86_401}),
            ),
            vec![(
                Some("t"),
                "config/intervalSeconds: must be an integer from 15 to 86400",
            )],
        ),
        (
            "an interval as text",
            poll_trigger(
                json!({"connector": "http", "trigger": "newItems", "connectionId": CONNECTION, "intervalSeconds": "60"}),
            ),
            vec![(
                Some("t"),
                "config/intervalSeconds: must be an integer from 15 to 86400",
            )],
        ),
        (
            "params that are no object",
            poll_trigger(
                json!({"connector": "http", "trigger": "newItems", "connectionId": CONNECTION, "params": [1]}),
            ),
            vec![(Some("t"), "config/params: must be an object")],
        ),
        (
            "a template deep in the params",
            poll_trigger(
                json!({"connector": "http", "trigger": "newItems", "connectionId": CONNECTION,
                "params": {"url": "https://x.io", "filters": [{"since": "{{ steps.a.at }}"}]}}),
            ),
            vec![(
                Some("t"),
                "config/params/filters/0/since: a polling trigger sends its params as written, so they cannot hold `{{ }}` templates",
            )],
        ),
        (
            "a templated trigger key and a typo",
            poll_trigger(
                json!({"connector": "http", "trigger": "{{ vars.t }}", "connectionId": CONNECTION, "interval": 60}),
            ),
            vec![
                (
                    Some("t"),
                    "config/trigger: must be written out, not a template",
                ),
                (Some("t"), "config: unknown key `interval`"),
            ],
        ),
    ];
    for (case, raw, expected) in cases {
        assert_problems(case, &raw, &expected);
    }
}

#[test]
fn a_polling_trigger_is_one_trigger_among_the_others() {
    let poll = json!({"id": "p", "type": "trigger.poll",
        "config": {"connector": "http", "trigger": "newItems", "connectionId": CONNECTION}});
    let two = json!({"nodes": [{"id": "m", "type": "trigger.manual"}, poll]});
    assert_problems(
        "two triggers",
        &two,
        &[
            (Some("m"), "is one of 2 triggers"),
            (Some("p"), "is one of 2 triggers"),
        ],
    );
    let none = json!({"nodes": [{"id": "a", "type": "set", "config": {"fields": {}}}]});
    assert_problems(
        "no trigger",
        &none,
        &[(
            None,
            "a workflow needs one trigger node (`trigger.manual`, `trigger.webhook`, `trigger.schedule`, `trigger.poll`)",
        )],
    );
    let in_loop = after_trigger(
        json!({"id": "each", "type": "loop", "config": {"items": "{{ trigger.xs }}",
        "steps": [{"id": "p", "type": "trigger.poll"}]}}),
    );
    assert_problems(
        "a polling trigger in a loop body",
        &in_loop,
        &[(
            Some("each"),
            "config/steps/0/type: `trigger.poll` cannot run in a loop body: a trigger starts a run",
        )],
    );
}
