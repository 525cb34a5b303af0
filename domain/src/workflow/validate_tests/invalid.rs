//! Invalid definitions, each with exactly the problems it must produce.

use serde_json::{Value, json};

use super::{Expected, after_trigger, assert_problems, set_node};

#[test]
fn invalid_shapes() {
    let many_nodes: Vec<Value> = (0..501)
        .map(|i| json!({"id": format!("n{i}"), "type": "set"}))
        .collect();
    let many_edges: Vec<Value> = (0..2001).map(|_| json!({})).collect();
    let cases: Vec<(&str, Value, Vec<Expected>)> = vec![
        (
            "root is an array",
            json!([]),
            vec![(None, "must be a JSON object")],
        ),
        (
            "root is null",
            Value::Null,
            vec![(None, "must be a JSON object")],
        ),
        (
            "no nodes",
            json!({"edges": []}),
            vec![(None, "`nodes` is required")],
        ),
        (
            "empty nodes",
            json!({"nodes": []}),
            vec![(None, "`nodes` must not be empty")],
        ),
        (
            "nodes is an object",
            json!({"nodes": {}}),
            vec![(None, "`nodes` must be an array")],
        ),
        (
            "too many nodes",
            json!({"nodes": many_nodes}),
            vec![(None, "at most 500 nodes, this one has 501")],
        ),
        (
            "too many edges",
            json!({"nodes": [{"id": "t", "type": "trigger.manual"}], "edges": many_edges}),
            vec![(None, "at most 2000 edges, this one has 2001")],
        ),
        (
            "unknown top-level key",
            json!({"nodes": [{"id": "t", "type": "trigger.manual"}], "edgse": []}),
            vec![(None, "unknown top-level key `edgse`")],
        ),
        (
            "edges is not an array",
            json!({"nodes": [{"id": "t", "type": "trigger.manual"}, set_node("a", json!({}))], "edges": {}}),
            vec![(None, "`edges` must be an array")],
        ),
        (
            "a node is not an object",
            json!({"nodes": [{"id": "t", "type": "trigger.manual"}, 7]}),
            vec![(None, "nodes[1]: must be an object")],
        ),
        (
            "a node has no id",
            json!({"nodes": [{"id": "t", "type": "trigger.manual"}, {"type": "set", "config": {"fields": {}}}]}),
            vec![(None, "nodes[1]: has no `id`")],
        ),
        (
            "an id is not a string",
            json!({"nodes": [{"id": "t", "type": "trigger.manual"}, {"id": 3, "type": "fail"}]}),
            vec![
                (None, "nodes[1]: `id` must be a string"),
                (None, "nodes[1]: config/message: is required"),
            ],
        ),
        (
            "an id with a dash",
            after_trigger(set_node("my-step", json!({}))),
            vec![(
                Some("my-step"),
                "id `my-step` must be 1 to 64 letters, digits or underscores",
            )],
        ),
        (
            "an id starting with a digit",
            after_trigger(set_node("1st", json!({}))),
            vec![(Some("1st"), "not starting with a digit")],
        ),
        (
            "an id that is too long",
            after_trigger(set_node(&"a".repeat(65), json!({}))),
            vec![(Some(&*"a".repeat(65).leak()), "must be 1 to 64")],
        ),
        (
            "a node has no type",
            after_trigger(json!({"id": "a"})),
            vec![(Some("a"), "has no `type`")],
        ),
        (
            "a node key typo",
            after_trigger(json!({"id": "a", "type": "set", "confg": {"fields": {}}})),
            vec![
                (Some("a"), "unknown key `confg` (did you mean `config`?)"),
                (Some("a"), "config/fields: is required"),
            ],
        ),
        (
            "bad editor data",
            after_trigger(json!({"id": "a", "type": "set", "config": {"fields": {}},
                "name": 5, "notes": "x".repeat(10_001), "position": {"x": "1", "z": 2}})),
            vec![
                (Some("a"), "name: must be a string"),
                (Some("a"), "notes: must be at most 10000 characters"),
                (Some("a"), "position/x: must be a number"),
                (Some("a"), "position/y: is required"),
                (Some("a"), "position: unknown key `z`"),
            ],
        ),
        (
            "an edge is not an object",
            json!({"nodes": [{"id": "t", "type": "trigger.manual"}], "edges": ["t->a"]}),
            vec![(None, "edges[0]: must be an object")],
        ),
        (
            "an edge end is not a string",
            json!({"nodes": [{"id": "t", "type": "trigger.manual"}], "edges": [{"from": "t", "to": 1}]}),
            vec![(Some("t"), "edges[0]: `to` must be a string")],
        ),
        (
            "an edge has no ends and an unknown key",
            json!({"nodes": [{"id": "t", "type": "trigger.manual"}], "edges": [{"source": "t"}]}),
            vec![
                (None, "edges[0]: has no `from`"),
                (None, "edges[0]: has no `to`"),
                (None, "edges[0]: unknown key `source`"),
            ],
        ),
    ];
    for (case, raw, expected) in cases {
        assert_problems(case, &raw, &expected);
    }
}

#[test]
fn invalid_graphs() {
    let t = json!({"id": "t", "type": "trigger.manual"});
    let a = set_node("a", json!({}));
    let b = set_node("b", json!({}));
    let check = json!({"id": "check", "type": "if", "config": {"condition": false}});
    let cases: Vec<(&str, Value, Vec<Expected>)> = vec![
        (
            "a cycle",
            json!({"nodes": [t, a, b], "edges": [
                {"from": "t", "to": "a"}, {"from": "a", "to": "b"}, {"from": "b", "to": "a"}]}),
            vec![
                (Some("a"), "is part of a cycle: a -> b -> a"),
                (Some("b"), "is part of a cycle: b -> a -> b"),
            ],
        ),
        (
            "a cycle through the trigger",
            json!({"nodes": [t, a], "edges": [{"from": "t", "to": "a"}, {"from": "a", "to": "t"}]}),
            vec![
                (
                    Some("t"),
                    "edges[1]: a trigger cannot have incoming edges (this one comes from `a`)",
                ),
                (Some("t"), "is part of a cycle: t -> a -> t"),
                (Some("a"), "is part of a cycle: a -> t -> a"),
            ],
        ),
        (
            "a self-loop",
            json!({"nodes": [t, a], "edges": [{"from": "t", "to": "a"}, {"from": "a", "to": "a"}]}),
            vec![(Some("a"), "edges[1]: connects `a` to itself")],
        ),
        (
            "two triggers",
            json!({"nodes": [t, {"id": "hook", "type": "trigger.webhook"}, a],
                   "edges": [{"from": "t", "to": "a"}, {"from": "hook", "to": "a"}]}),
            vec![
                (
                    Some("t"),
                    "is one of 2 triggers (`t`, `hook`): a workflow has exactly one",
                ),
                (Some("hook"), "is one of 2 triggers"),
            ],
        ),
        (
            "no trigger",
            json!({"nodes": [a, b], "edges": [{"from": "a", "to": "b"}]}),
            vec![(None, "a workflow needs one trigger node")],
        ),
        (
            "an unknown node type",
            json!({"nodes": [t, {"id": "x", "type": "http.requests", "config": {"anything": 1}}],
                   "edges": [{"from": "t", "to": "x"}, {"from": "x", "to": "x2", "branch": "true"}]}),
            vec![
                (
                    Some("x"),
                    "unknown node type `http.requests` (did you mean `http.request`?",
                ),
                (Some("x"), "edges[1]: `to`: there is no node `x2`"),
            ],
        ),
        (
            "duplicate ids",
            json!({"nodes": [t, a, set_node("a", json!({"other": 1}))], "edges": [{"from": "t", "to": "a"}]}),
            vec![(
                Some("a"),
                "duplicate id `a`: ids must be unique, but nodes[1], nodes[2] share it",
            )],
        ),
        (
            "a dangling edge",
            json!({"nodes": [t], "edges": [{"from": "t", "to": "ghost"}, {"from": "spook", "to": "boo"}]}),
            vec![
                (Some("t"), "edges[0]: `to`: there is no node `ghost`"),
                (None, "edges[1]: `from`: there is no node `spook`"),
                (None, "edges[1]: `to`: there is no node `boo`"),
            ],
        ),
        (
            "a duplicate edge",
            json!({"nodes": [t, a], "edges": [{"from": "t", "to": "a"}, {"from": "t", "to": "a"}]}),
            vec![(Some("t"), "edges[1]: repeats edges[0]")],
        ),
        (
            "an unknown branch label",
            json!({"nodes": [t, check, a], "edges": [{"from": "t", "to": "check"}, {"from": "check", "to": "a", "branch": "yes"}]}),
            vec![(Some("check"), "edges[1]: unknown branch `yes`")],
        ),
        (
            "a true branch leaving a set node",
            json!({"nodes": [t, a, b], "edges": [{"from": "t", "to": "a"}, {"from": "a", "to": "b", "branch": "true"}]}),
            vec![(
                Some("a"),
                "edges[1]: branch `true` can only leave an `if` node, and `a` is a `set` node",
            )],
        ),
        (
            "an edge leaving an if without a branch",
            json!({"nodes": [t, check, a], "edges": [{"from": "t", "to": "check"}, {"from": "check", "to": "a"}]}),
            vec![(
                Some("check"),
                "edges[1]: an edge leaving an `if` node needs a `branch`",
            )],
        ),
        (
            "a branch that is not a string",
            json!({"nodes": [t, check, a], "edges": [{"from": "t", "to": "check"}, {"from": "check", "to": "a", "branch": true}]}),
            vec![(Some("check"), "edges[1]: `branch` must be a string")],
        ),
        (
            "an unreachable node",
            json!({"nodes": [t, a, b, {"id": "c", "type": "fail", "config": {"message": "x"}}],
                   "edges": [{"from": "t", "to": "a"}, {"from": "b", "to": "c"}]}),
            vec![
                (Some("b"), "is not reachable from the trigger `t`"),
                (Some("c"), "is not reachable from the trigger `t`"),
            ],
        ),
    ];
    for (case, raw, expected) in cases {
        assert_problems(case, &raw, &expected);
    }
}

#[test]
fn invalid_node_settings() {
    let cases: Vec<(&str, Value, Vec<Expected>)> = vec![
        (
            "onError",
            json!({"id": "a", "type": "set", "config": {"fields": {}}, "onError": "ignore"}),
            vec![(Some("a"), "onError: must be one of `fail`, `continue`")],
        ),
        (
            "retry is not an object",
            json!({"id": "a", "type": "set", "config": {"fields": {}}, "retry": 3}),
            vec![(Some("a"), "retry: must be an object")],
        ),
        (
            "retry fields out of range",
            json!({"id": "a", "type": "set", "config": {"fields": {}},
                   "retry": {"maxAttempts": 11, "initialIntervalMs": 3600001, "backoffMultiplier": 0.5, "maxIntervalMs": -1}}),
            vec![
                (
                    Some("a"),
                    "retry/maxAttempts: must be an integer from 1 to 10",
                ),
                (
                    Some("a"),
                    "retry/initialIntervalMs: must be an integer from 0 to 3600000",
                ),
                (
                    Some("a"),
                    "retry/backoffMultiplier: must be a number from 1 to 10",
                ),
                (
                    Some("a"),
                    "retry/maxIntervalMs: must be an integer from 0 to 86400000",
                ),
            ],
        ),
        (
            "retry without maxAttempts and with a typo",
            json!({"id": "a", "type": "set", "config": {"fields": {}}, "retry": {"maxAttempt": 3}}),
            vec![
                (Some("a"), "retry/maxAttempts: is required"),
                (
                    Some("a"),
                    "retry: unknown key `maxAttempt` (did you mean `maxAttempts`?)",
                ),
            ],
        ),
        (
            "retry with a fractional attempt count",
            json!({"id": "a", "type": "set", "config": {"fields": {}}, "retry": {"maxAttempts": 2.5}}),
            vec![(
                Some("a"),
                "retry/maxAttempts: must be an integer from 1 to 10",
            )],
        ),
        (
            "retry cap below the first interval",
            json!({"id": "a", "type": "set", "config": {"fields": {}},
                   "retry": {"maxAttempts": 3, "initialIntervalMs": 500, "maxIntervalMs": 100}}),
            vec![(
                Some("a"),
                "retry: maxIntervalMs must be from initialIntervalMs (500)",
            )],
        ),
    ];
    for (case, node, expected) in cases {
        assert_problems(case, &after_trigger(node), &expected);
    }
}

#[test]
fn invalid_configs() {
    let big_source = "x".repeat(64 * 1024 + 1);
    let cases: Vec<(&str, Value, Vec<Expected>)> = vec![
        (
            "config is not an object",
            json!({"id": "a", "type": "set", "config": [1]}),
            vec![(Some("a"), "config: must be an object")],
        ),
        (
            "set without fields",
            json!({"id": "a", "type": "set", "config": {}}),
            vec![(Some("a"), "config/fields: is required")],
        ),
        (
            "set fields not an object",
            json!({"id": "a", "type": "set", "config": {"fields": "x"}}),
            vec![(Some("a"), "config/fields: must be an object")],
        ),
        (
            "if without a condition",
            json!({"id": "a", "type": "if", "config": {}}),
            vec![(Some("a"), "config/condition: is required")],
        ),
        (
            "if with a plain string",
            json!({"id": "a", "type": "if", "config": {"condition": "yes"}}),
            vec![(
                Some("a"),
                "config/condition: must be true, false or a `{{ }}` expression",
            )],
        ),
        (
            "http.request without a url, with a typo",
            json!({"id": "a", "type": "http.request", "config": {"urll": "https://x.io"}}),
            vec![
                (Some("a"), "config/url: is required"),
                (
                    Some("a"),
                    "config: unknown key `urll` (did you mean `url`?)",
                ),
            ],
        ),
        (
            "http.request with a relative url",
            json!({"id": "a", "type": "http.request", "config": {"url": "example.com/x"}}),
            vec![(Some("a"), "config/url: must be an absolute http(s) URL")],
        ),
        (
            "http.request with an ftp url",
            json!({"id": "a", "type": "http.request", "config": {"url": "ftp://example.com/x"}}),
            vec![(Some("a"), "config/url: must be an absolute http(s) URL")],
        ),
        (
            "http.request with bad fields",
            json!({"id": "a", "type": "http.request", "config": {"url": "https://x.io", "method": "get",
                "headers": {"X-A": 1}, "query": [], "timeoutMs": 0, "connectionId": ""}}),
            vec![
                (
                    Some("a"),
                    "config/method: must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS",
                ),
                (
                    Some("a"),
                    "config/headers: the value of `X-A` must be a string",
                ),
                (Some("a"), "config/query: must be an object"),
                (
                    Some("a"),
                    "config/timeoutMs: must be an integer from 1 to 300000",
                ),
                (Some("a"), "config/connectionId: must not be empty"),
            ],
        ),
        (
            "code in another language",
            json!({"id": "a", "type": "code", "config": {"language": "python", "source": "return 1"}}),
            vec![(Some("a"), "config/language: must be one of `javascript`")],
        ),
        (
            "code without source",
            json!({"id": "a", "type": "code", "config": {"source": "  "}}),
            vec![(Some("a"), "config/source: must not be empty")],
        ),
        (
            "code too long",
            json!({"id": "a", "type": "code", "config": {"source": big_source}}),
            vec![(Some("a"), "config/source: must be at most 64 KiB")],
        ),
        (
            "delay too long",
            json!({"id": "a", "type": "delay", "config": {"ms": 2_592_000_001u64}}),
            vec![(
                Some("a"),
                "config/ms: must be an integer from 0 to 2592000000",
            )],
        ),
        (
            "delay negative",
            json!({"id": "a", "type": "delay", "config": {"ms": -1}}),
            vec![(
                Some("a"),
                "config/ms: must be an integer from 0 to 2592000000",
            )],
        ),
        (
            "delay as a plain string",
            json!({"id": "a", "type": "delay", "config": {"ms": "5"}}),
            vec![(
                Some("a"),
                "config/ms: must be an integer from 0 to 2592000000 (30 days) or a `{{ }}` expression",
            )],
        ),
        (
            "delay without ms",
            json!({"id": "a", "type": "delay"}),
            vec![(Some("a"), "config/ms: is required")],
        ),
        (
            "respond status out of range",
            json!({"id": "a", "type": "respond", "config": {"status": 99, "headers": "x"}}),
            vec![
                (
                    Some("a"),
                    "config/status: must be an integer from 100 to 599",
                ),
                (Some("a"), "config/headers: must be an object"),
            ],
        ),
        (
            "respond status as text",
            json!({"id": "a", "type": "respond", "config": {"status": "ok"}}),
            vec![(
                Some("a"),
                "config/status: must be an integer from 100 to 599 or a `{{ }}` expression",
            )],
        ),
        (
            "fail without a message",
            json!({"id": "a", "type": "fail", "config": {"message": ""}}),
            vec![(Some("a"), "config/message: must not be empty")],
        ),
    ];
    for (case, node, expected) in cases {
        assert_problems(case, &after_trigger(node), &expected);
    }
}

#[test]
fn invalid_trigger_configs() {
    let trigger = |node_type: &str, config: Value| json!({"nodes": [{"id": "t", "type": node_type, "config": config}]});
    let cases: Vec<(&str, Value, Vec<Expected>)> = vec![
        (
            "manual trigger with an unknown key",
            trigger("trigger.manual", json!({"input": {}})),
            vec![(Some("t"), "config: unknown key `input`")],
        ),
        (
            "webhook with bad fields",
            trigger(
                "trigger.webhook",
                json!({"respond": "later", "secret": "short", "methods": []}),
            ),
            vec![
                (
                    Some("t"),
                    "config/respond: must be one of `onCompletion`, `immediately`",
                ),
                (
                    Some("t"),
                    "config/secret: must be at least 16 characters long",
                ),
                (
                    Some("t"),
                    "config/methods: must be a non-empty list of HTTP methods",
                ),
            ],
        ),
        (
            "webhook with a repeated method and a templated secret",
            trigger(
                "trigger.webhook",
                json!({"methods": ["POST", "GET", "POST"], "secret": "{{ vars.webhook_secret }}"}),
            ),
            vec![
                (Some("t"), "config/methods: lists POST twice"),
                (
                    Some("t"),
                    "config/secret: must be the secret itself, not a template",
                ),
            ],
        ),
        (
            "schedule without cron",
            trigger("trigger.schedule", json!({"timezone": "UTC"})),
            vec![(Some("t"), "config/cron: is required")],
        ),
        (
            "schedule with an invalid cron",
            trigger("trigger.schedule", json!({"cron": "61 * * * *"})),
            vec![(Some("t"), "config/cron: is not a valid cron expression")],
        ),
        (
            "schedule with too few cron fields",
            trigger("trigger.schedule", json!({"cron": "* * *"})),
            vec![(Some("t"), "config/cron: must have 5 fields")],
        ),
        (
            "schedule with a year field",
            trigger("trigger.schedule", json!({"cron": "0 0 0 1 1 * 2030"})),
            vec![(
                Some("t"),
                "config/cron: must have 5 fields (minute hour day-of-month month day-of-week) or 6 (with seconds first), not 7",
            )],
        ),
        (
            "schedule with an unknown time zone",
            trigger(
                "trigger.schedule",
                json!({"cron": "0 * * * *", "timezone": "Mars/Olympus"}),
            ),
            vec![(
                Some("t"),
                "config/timezone: `Mars/Olympus` is not an IANA time zone name",
            )],
        ),
    ];
    for (case, raw, expected) in cases {
        assert_problems(case, &raw, &expected);
    }
}

#[test]
fn invalid_expressions() {
    let t = json!({"id": "t", "type": "trigger.manual"});
    let cases: Vec<(&str, Value, Vec<Expected>)> = vec![
        (
            "an empty expression",
            after_trigger(set_node("a", json!({"n": "value: {{ }}"}))),
            vec![(Some("a"), "config/fields/n: invalid expression at ")],
        ),
        (
            "an unclosed template inside a list",
            after_trigger(json!({"id": "a", "type": "http.request",
                "config": {"url": "https://x.io", "body": {"items": ["ok", "{{ trigger.body"]}}})),
            vec![(Some("a"), "config/body/items/1: invalid expression at ")],
        ),
        (
            "a reference to a later step",
            json!({"nodes": [t, set_node("a", json!({"x": "{{ steps.b.y }}"})), set_node("b", json!({"y": 1}))],
                   "edges": [{"from": "t", "to": "a"}, {"from": "a", "to": "b"}]}),
            vec![(
                Some("a"),
                "config/fields/x: refers to steps.b, which does not run before this node",
            )],
        ),
        (
            "a reference to a step on another branch",
            json!({"nodes": [t, set_node("a", json!({})), set_node("b", json!({"y": "{{ steps.a }}"}))],
                   "edges": [{"from": "t", "to": "a"}, {"from": "t", "to": "b"}]}),
            vec![(
                Some("b"),
                "config/fields/y: refers to steps.a, which does not run before this node",
            )],
        ),
        (
            "a reference to the node itself",
            after_trigger(set_node("a", json!({"x": "{{ steps.a.x }}"}))),
            vec![(
                Some("a"),
                "config/fields/x: refers to steps.a, which does not run before this node",
            )],
        ),
        (
            "a reference to a missing step",
            after_trigger(set_node(
                "a",
                json!({"x": "{{ steps.nope.x }}", "y": "{{ steps.nope.y }}"}),
            )),
            vec![
                (
                    Some("a"),
                    "config/fields/x: refers to steps.nope, but there is no node `nope`",
                ),
                (
                    Some("a"),
                    "config/fields/y: refers to steps.nope, but there is no node `nope`",
                ),
            ],
        ),
        (
            "a trigger reading steps",
            json!({"nodes": [{"id": "t", "type": "trigger.manual", "config": {"inputExample": {"a": "{{ steps.a.x }}"}}},
                             set_node("a", json!({}))],
                   "edges": [{"from": "t", "to": "a"}]}),
            vec![(
                Some("t"),
                "config/inputExample/a: a trigger's config cannot refer to `steps`",
            )],
        ),
    ];
    for (case, raw, expected) in cases {
        assert_problems(case, &raw, &expected);
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let raw = json!({
        "nodes": [
            {"id": "t", "type": "trigger.webhook", "config": {"respond": "never"}},
            {"id": "t2", "type": "trigger.manual"},
            {"id": "a", "type": "set", "config": {"fields": {"x": "{{ steps.b.y }}"}}},
            {"id": "b", "type": "if", "config": {"condition": "maybe"}},
            {"id": "c", "type": "nope"},
            {"id": "bad-id", "type": "fail", "config": {"message": "x"}}
        ],
        "edges": [
            {"from": "t", "to": "a"},
            {"from": "a", "to": "b", "branch": "maybe"},
            {"from": "b", "to": "a", "branch": "true"},
            {"from": "b", "to": "ghost", "branch": "false"}
        ]
    });
    assert_problems(
        "many problems",
        &raw,
        &[
            (Some("t"), "config/respond: must be one of"),
            (Some("t"), "is one of 2 triggers"),
            (Some("t2"), "is one of 2 triggers"),
            (
                Some("b"),
                "config/condition: must be true, false or a `{{ }}` expression",
            ),
            (Some("c"), "unknown node type `nope`"),
            (Some("bad-id"), "id `bad-id` must be"),
            (Some("a"), "edges[1]: unknown branch `maybe`"),
            (Some("b"), "edges[3]: `to`: there is no node `ghost`"),
            (Some("a"), "is part of a cycle: a -> b -> a"),
            (Some("b"), "is part of a cycle: b -> a -> b"),
        ],
    );
}
