//! `merge` and `loop`: the typed configs valid definitions produce, and each invalid one
//! with exactly the problems it must produce.

use serde_json::{Value, json};

use super::{Expected, after_trigger, assert_problems, problems_of, set_node};
use crate::workflow::node_types::{LoopConfig, MergeMode, NodeKind, NodeType};
use crate::workflow::validate::validate_definition;

/// t -> fetch (set) -> each (loop with `body`).
fn with_loop(config: Value) -> Value {
    json!({
        "nodes": [
            {"id": "t", "type": "trigger.manual"},
            set_node("fetch", json!({"list": [1, 2, 3], "base": "https://example.com"})),
            {"id": "each", "type": "loop", "config": config}
        ],
        "edges": [{"from": "t", "to": "fetch"}, {"from": "fetch", "to": "each"}]
    })
}

fn body(steps: Value) -> Value {
    json!({"items": "{{ steps.fetch.list }}", "steps": steps})
}

fn merge_after_if(mode: Option<&str>) -> Value {
    let config = mode.map_or(json!({}), |mode| json!({"mode": mode}));
    json!({
        "nodes": [
            {"id": "t", "type": "trigger.manual"},
            {"id": "check", "type": "if", "config": {"condition": "{{ trigger.big }}"}},
            set_node("yes", json!({"side": "yes"})),
            set_node("no", json!({"side": "no"})),
            {"id": "join", "type": "merge", "config": config}
        ],
        "edges": [
            {"from": "t", "to": "check"},
            {"from": "check", "to": "yes", "branch": "true"},
            {"from": "check", "to": "no", "branch": "false"},
            {"from": "yes", "to": "join"},
            {"from": "no", "to": "join"}
        ]
    })
}

#[test]
fn merge_modes_are_parsed_with_object_as_the_default() {
    let cases = [
        (None, MergeMode::Object),
        (Some("object"), MergeMode::Object),
        (Some("array"), MergeMode::Array),
        (Some("first"), MergeMode::First),
    ];
    for (mode, expected) in cases {
        let definition = validate_definition(&merge_after_if(mode))
            .unwrap_or_else(|p| panic!("{mode:?}: {p:?}"));
        let Some(NodeKind::Merge(merge)) = definition.node("join").map(|n| n.kind()) else {
            panic!("a merge node");
        };
        assert_eq!(merge.mode, expected, "{mode:?}");
        let stored = serde_json::to_value(&definition).expect("serializable");
        assert_eq!(
            stored["nodes"][4]["config"]["mode"],
            json!(format!("{expected:?}").to_lowercase())
        );
        assert_eq!(validate_definition(&stored), Ok(definition));
    }
}

#[test]
fn a_loop_with_every_body_type_is_valid_and_round_trips() {
    let raw = with_loop(json!({
        "items": "{{ steps.fetch.list }}",
        "concurrency": 16,
        "maxItems": 10000,
        "steps": [
            {"id": "shape", "type": "set", "config": {"fields": {"n": "{{ item * 2 }}", "at": "{{ index }}"}}},
            {"id": "call", "type": "http.request",
             "retry": {"maxAttempts": 3, "initialIntervalMs": 100, "maxIntervalMs": 60000, "backoffMultiplier": 10},
             "config": {"method": "POST", "url": "{{ steps.fetch.base }}/items/{{ item }}", "body": {"n": "{{ steps.shape.n }}"}}},
            {"id": "script", "type": "code", "config": {"source": "return run.item + steps.call.status;"}},
            {"id": "never", "type": "fail", "config": {"message": "item {{ index }}: {{ steps.script }}"}}
        ]
    }));
    let definition = validate_definition(&raw).unwrap_or_else(|p| panic!("{p:?}"));
    let Some(NodeKind::Loop(config)) = definition.node("each").map(|n| n.kind()) else {
        panic!("a loop node");
    };
    assert_eq!(config.concurrency, 16);
    assert_eq!(config.max_items, 10_000);
    let body: Vec<(&str, NodeType, u32)> = config
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.kind.node_type(), s.retry.max_attempts()))
        .collect();
    assert_eq!(
        body,
        [
            ("shape", NodeType::Set, 1),
            ("call", NodeType::HttpRequest, 3),
            ("script", NodeType::Code, 1),
            ("never", NodeType::Fail, 1)
        ]
    );
    let stored = serde_json::to_value(&definition).expect("serializable");
    assert_eq!(
        stored["nodes"][2]["config"]["steps"][1]["type"],
        json!("http.request")
    );
    assert_eq!(validate_definition(&stored), Ok(definition));
}

#[test]
fn a_loop_has_defaults_for_concurrency_and_max_items() {
    let raw = with_loop(body(
        json!([{"id": "x", "type": "set", "config": {"fields": {"v": "{{ item }}"}}}]),
    ));
    let definition = validate_definition(&raw).unwrap_or_else(|p| panic!("{p:?}"));
    let Some(NodeKind::Loop(config)) = definition.node("each").map(|n| n.kind()) else {
        panic!("a loop node");
    };
    assert_eq!(config.concurrency, 1);
    assert_eq!(config.max_items, LoopConfig::DEFAULT_MAX_ITEMS);
}

#[test]
fn the_same_body_step_id_may_be_used_by_two_loops() {
    let step = json!([{"id": "x", "type": "set", "config": {"fields": {"v": "{{ item }}"}}}]);
    let raw = json!({
        "nodes": [
            {"id": "t", "type": "trigger.manual"},
            {"id": "first", "type": "loop", "config": {"items": "{{ trigger.a }}", "steps": step}},
            {"id": "second", "type": "loop", "config": {"items": "{{ steps.first }}", "steps": step}}
        ],
        "edges": [{"from": "t", "to": "first"}, {"from": "first", "to": "second"}]
    });
    assert_eq!(problems_of(&raw), []);
}

#[test]
fn invalid_merge_and_loop_configs() {
    let set_item = json!({"id": "x", "type": "set", "config": {"fields": {"v": "{{ item }}"}}});
    let cases: Vec<(&str, Value, Vec<Expected>)> = vec![
        (
            "an unknown merge mode",
            after_trigger(json!({"id": "m", "type": "merge", "config": {"mode": "zip"}})),
            vec![(
                Some("m"),
                "config/mode: must be one of `object`, `array`, `first`",
            )],
        ),
        (
            "a merge key typo",
            after_trigger(json!({"id": "m", "type": "merge", "config": {"mdoe": "array"}})),
            vec![(Some("m"), "unknown key `mdoe` (did you mean `mode`?)")],
        ),
        (
            "loop without items or steps",
            with_loop(json!({})),
            vec![
                (Some("each"), "config/items: is required"),
                (Some("each"), "config/steps: is required"),
            ],
        ),
        (
            "items is not a template",
            with_loop(json!({"items": "[1, 2]", "steps": [set_item]})),
            vec![(
                Some("each"),
                "config/items: must be a `{{ }}` expression that evaluates to an array",
            )],
        ),
        (
            "items is a literal array",
            with_loop(json!({"items": [1, 2], "steps": [set_item]})),
            vec![(Some("each"), "config/items: must be a string")],
        ),
        (
            "items does not parse",
            with_loop(json!({"items": "{{ steps.fetch.list ", "steps": [set_item]})),
            vec![(Some("each"), "config/items: invalid expression")],
        ),
        (
            "items reads item, which only exists inside the body",
            with_loop(json!({"items": "{{ item }}", "steps": [set_item]})),
            vec![(
                Some("each"),
                "config/items: invalid expression at 3: unknown name `item`",
            )],
        ),
        (
            "concurrency out of range",
            with_loop(
                json!({"items": "{{ steps.fetch.list }}", "concurrency": 17, "steps": [set_item]}),
            ),
            vec![(
                Some("each"),
                "config/concurrency: must be an integer from 1 to 16",
            )],
        ),
        (
            "concurrency zero and maxItems too large",
            with_loop(
                json!({"items": "{{ steps.fetch.list }}", "concurrency": 0, "maxItems": 10001, "steps": [set_item]}),
            ),
            vec![
                (
                    Some("each"),
                    "config/concurrency: must be an integer from 1 to 16",
                ),
                (
                    Some("each"),
                    "config/maxItems: must be an integer from 1 to 10000",
                ),
            ],
        ),
        (
            "an empty body",
            with_loop(body(json!([]))),
            vec![(Some("each"), "config/steps: must list at least one step")],
        ),
        (
            "a body that is not an array",
            with_loop(body(json!({"x": set_item}))),
            vec![(Some("each"), "config/steps: must be an array of steps")],
        ),
        (
            "a body step that is not an object",
            with_loop(body(json!(["set"]))),
            vec![(Some("each"), "config/steps/0: must be an object")],
        ),
        (
            "refused body types",
            with_loop(body(json!([
                {"id": "a", "type": "if", "config": {"condition": true}},
                {"id": "b", "type": "delay", "config": {"ms": 10}},
                {"id": "c", "type": "respond"},
                {"id": "d", "type": "loop"},
                {"id": "e", "type": "merge"},
                {"id": "f", "type": "trigger.manual"},
                {"id": "g", "type": "sett"}
            ]))),
            vec![
                (
                    Some("each"),
                    "config/steps/0/type: `if` cannot run in a loop body: a loop body is a straight line of steps: branching inside a loop is not supported yet (allowed: set, http.request, connector, code, fail)",
                ),
                (
                    Some("each"),
                    "config/steps/1/type: `delay` cannot run in a loop body: a loop body cannot wait durably",
                ),
                (
                    Some("each"),
                    "config/steps/2/type: `respond` cannot run in a loop body",
                ),
                (
                    Some("each"),
                    "config/steps/3/type: `loop` cannot run in a loop body: loops do not nest",
                ),
                (
                    Some("each"),
                    "config/steps/4/type: `merge` cannot run in a loop body",
                ),
                (
                    Some("each"),
                    "config/steps/5/type: `trigger.manual` cannot run in a loop body",
                ),
                (
                    Some("each"),
                    "config/steps/6/type: unknown node type `sett`",
                ),
            ],
        ),
        (
            "body step problems carry their path",
            with_loop(body(json!([
                {"id": "1x", "type": "http.request", "config": {"url": 5}, "onError": "continue"},
                {"type": "fail"},
                {"id": "r", "type": "set", "config": {"fields": {}}, "retry": {"maxAttempts": 0}}
            ]))),
            vec![
                (Some("each"), "config/steps/0/id: id `1x` must be 1 to 64"),
                (Some("each"), "config/steps/0: unknown key `onError`"),
                (Some("each"), "config/steps/0/config/url: must be a string"),
                (Some("each"), "config/steps/1/id: is required"),
                (Some("each"), "config/steps/1/config/message: is required"),
                (
                    Some("each"),
                    "config/steps/2/retry/maxAttempts: must be an integer from 1 to 10",
                ),
            ],
        ),
        (
            "a body retry that would hold the worker too long",
            with_loop(body(json!([
                {"id": "x", "type": "set", "config": {"fields": {}}, "retry": {"maxAttempts": 3, "initialIntervalMs": 40000}}
            ]))),
            vec![(
                Some("each"),
                "config/steps/0/retry: inside a loop body a retry waits in the worker, so it may pause at most 60000 ms, and this policy pauses up to 80000 ms",
            )],
        ),
        (
            "duplicate body step ids",
            with_loop(body(json!([set_item, set_item, set_item]))),
            vec![
                (
                    Some("each"),
                    "config/steps/1/id: duplicate id `x`: config/steps/0 has it too",
                ),
                (
                    Some("each"),
                    "config/steps/2/id: duplicate id `x`: config/steps/0 has it too",
                ),
            ],
        ),
        (
            "body ids clashing with graph ids",
            with_loop(body(json!([
                {"id": "fetch", "type": "set", "config": {"fields": {}}},
                {"id": "each", "type": "set", "config": {"fields": {}}}
            ]))),
            vec![
                (
                    Some("each"),
                    "config/steps/0/id: `fetch` is already the id of a node of the graph",
                ),
                (
                    Some("each"),
                    "config/steps/1/id: `each` is already the id of a node of the graph",
                ),
            ],
        ),
        (
            "references to later body steps, itself and unknown steps",
            with_loop(body(json!([
                {"id": "a", "type": "set", "config": {"fields": {"v": "{{ steps.b.v }}", "me": "{{ steps.a }}", "nope": "{{ steps.zz }}", "ok": "{{ steps.fetch.list[index] }}"}}},
                {"id": "b", "type": "set", "config": {"fields": {"v": "{{ steps.a.v }}", "loop": "{{ steps.each }}"}}}
            ]))),
            vec![
                (
                    Some("each"),
                    "config/steps/0/config/fields/v: refers to steps.b, which does not run before this step of the loop body",
                ),
                (
                    Some("each"),
                    "config/steps/0/config/fields/me: refers to steps.a, which does not run before this step",
                ),
                (
                    Some("each"),
                    "config/steps/0/config/fields/nope: refers to steps.zz, but there is no node `zz`",
                ),
                (
                    Some("each"),
                    "config/steps/1/config/fields/loop: refers to steps.each, which does not run before this node",
                ),
            ],
        ),
        (
            "a body expression that does not parse",
            with_loop(body(
                json!([{"id": "a", "type": "set", "config": {"fields": {"v": "{{ item. }}", "w": "{{ itme }}"}}}]),
            )),
            vec![
                (
                    Some("each"),
                    "config/steps/0/config/fields/v: invalid expression",
                ),
                (
                    Some("each"),
                    "config/steps/0/config/fields/w: invalid expression at 3: unknown name `itme`: an expression starts from `trigger`, `steps`, `vars`, `run`, `item`, `index`",
                ),
            ],
        ),
        (
            "item outside a loop is a parse problem",
            after_trigger(set_node(
                "a",
                json!({"v": "{{ item }}", "i": "n{{ index + 1 }}"}),
            )),
            vec![
                (
                    Some("a"),
                    "config/fields/v: invalid expression at 3: unknown name `item`: an expression starts from `trigger`, `steps`, `vars`, `run` (`item` and `index` exist only inside a loop body)",
                ),
                (
                    Some("a"),
                    "config/fields/i: invalid expression at 4: unknown name `index`",
                ),
            ],
        ),
        (
            "a graph node cannot read a body step",
            json!({
                "nodes": [
                    {"id": "t", "type": "trigger.manual"},
                    {"id": "each", "type": "loop", "config": {"items": "{{ trigger.list }}", "steps": [set_item]}},
                    set_node("after", json!({"v": "{{ steps.x }}"}))
                ],
                "edges": [{"from": "t", "to": "each"}, {"from": "each", "to": "after"}]
            }),
            vec![(Some("after"), "refers to steps.x, but there is no node `x`")],
        ),
    ];
    for (case, raw, expected) in cases {
        assert_problems(case, &raw, &expected);
    }
}
