//! Properties for any input: the validator never panics, and what it accepts survives a
//! round trip through its own JSON.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::super::validate::validate_definition;

/// Any JSON value, with object keys and strings drawn mostly from the definition format's
/// own vocabulary so that generated values get deep into the validator.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let words = prop::sample::select(vec![
        "nodes",
        "edges",
        "id",
        "type",
        "config",
        "retry",
        "onError",
        "name",
        "position",
        "notes",
        "from",
        "to",
        "branch",
        "true",
        "false",
        "error",
        "a",
        "b",
        "t",
        "trigger.manual",
        "trigger.webhook",
        "trigger.schedule",
        "set",
        "if",
        "http.request",
        "code",
        "delay",
        "respond",
        "fail",
        "fields",
        "condition",
        "url",
        "method",
        "headers",
        "query",
        "body",
        "timeoutMs",
        "source",
        "language",
        "ms",
        "status",
        "message",
        "cron",
        "timezone",
        "secret",
        "methods",
        "maxAttempts",
        "initialIntervalMs",
        "backoffMultiplier",
        "maxIntervalMs",
        "x",
        "y",
        "{{ steps.a.x }}",
        "{{ }}",
        "{{ trigger.body",
        "https://example.com",
        "* * * * *",
        "Europe/Paris",
        "GET",
        "continue",
        "javascript",
        "inputExample",
        "respond",
        "merge",
        "loop",
        "mode",
        "object",
        "array",
        "first",
        "items",
        "concurrency",
        "maxItems",
        "steps",
        "{{ item }}",
        "{{ steps.a }}",
    ])
    .prop_map(str::to_owned);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (0u64..700).prop_map(Value::from),
        words.clone().prop_map(Value::String),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 96, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((words.clone(), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// Random graphs of valid-looking nodes, some of them broken, with random edges.
fn arbitrary_graph() -> impl Strategy<Value = Value> {
    let node_types = prop::sample::select(vec![
        json!({"type": "set", "config": {"fields": {"v": "{{ steps.n0 }}"}}}),
        json!({"type": "if", "config": {"condition": "{{ steps.n1.ok }}"}}),
        json!({"type": "delay", "config": {"ms": 5}}),
        json!({"type": "fail", "config": {"message": "stop"}}),
        json!({"type": "trigger.manual"}),
        json!({"type": "trigger.schedule", "config": {"cron": "0 0 31 2 *"}}),
        json!({"type": "code", "config": {"source": "return 1"}, "retry": {"maxAttempts": 2}}),
        json!({"type": "unknown"}),
    ]);
    let branches = prop::sample::select(vec![
        Value::Null,
        json!("true"),
        json!("false"),
        json!("error"),
        json!("other"),
    ]);
    (1usize..12)
        .prop_flat_map(move |count| {
            (
                prop::collection::vec(node_types.clone(), count),
                prop::collection::vec((0..count + 1, 0..count + 1, branches.clone()), 0..count * 3),
            )
        })
        .prop_map(|(kinds, edges)| {
            let nodes: Vec<Value> = std::iter::once(json!({"id": "n0", "type": "trigger.webhook"}))
                .chain(kinds.into_iter().enumerate().map(|(i, mut node)| {
                    node["id"] = json!(format!("n{}", i + 1));
                    node
                }))
                .collect();
            let edges: Vec<Value> = edges
                .into_iter()
                .map(|(from, to, branch)| {
                    json!({"from": format!("n{from}"), "to": format!("n{to}"), "branch": branch})
                })
                .collect();
            json!({"nodes": nodes, "edges": edges})
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_json_never_panics(raw in arbitrary_json()) {
        let _ = validate_definition(&raw);
        let _ = validate_definition(&json!({"nodes": [raw.clone()], "edges": [raw]}));
    }

    #[test]
    fn arbitrary_strings_in_configs_never_panic(text in ".{0,64}") {
        let raw = json!({"nodes": [
            {"id": "t", "type": "trigger.schedule", "config": {"cron": text, "timezone": text}},
            {"id": "a", "type": "http.request", "config": {"url": text, "method": text, "body": text}},
            {"id": "b", "type": "if", "config": {"condition": text}},
            {"id": text, "type": text}
        ], "edges": [{"from": "t", "to": "a", "branch": text}, {"from": "a", "to": text}]});
        let _ = validate_definition(&raw);
    }

    #[test]
    fn random_graphs_are_judged_without_panic_and_valid_ones_round_trip(raw in arbitrary_graph()) {
        match validate_definition(&raw) {
            Ok(definition) => {
                let stored = serde_json::to_value(&definition).expect("serializable");
                prop_assert_eq!(validate_definition(&stored), Ok(definition));
            }
            Err(problems) => prop_assert!(!problems.is_empty()),
        }
    }
}
