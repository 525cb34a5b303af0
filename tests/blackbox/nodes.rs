//! The `merge` and `loop` node types through the real binary.
//!
//! Invariants protected here: a `merge` after an `if` sees exactly the predecessors whose
//! edge into it was taken (a skipped branch contributes nothing), shaped by its `mode`; a
//! `loop` runs its body once per element with the per-item idempotency key
//! `{runId}:{loopNodeId}:{index}:{bodyStepId}`, outputs in element order, is one step of
//! the run's journal, and fails as a whole (so its `error` edge applies) naming the
//! failing element and body step; and a definition using `item` outside a loop body is
//! refused with a problem on that node.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::harness::{
    Session, TestApp, assert_contiguous_events, assert_error_code, pretty, step, string_at,
};

async fn owner_with_workspace(app: &TestApp) -> (Session, String) {
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let workspace_id = app.create_workspace(&owner.access_token, "Acme").await;
    (owner, workspace_id)
}

/// Creates a workflow, runs it with `input` and waits for the run to end.
async fn run_to_end(
    app: &TestApp,
    owner: &Session,
    workspace_id: &str,
    definition: Value,
    input: Value,
) -> Value {
    let created = app
        .create_workflow(&owner.access_token, workspace_id, "under test", definition)
        .await;
    let queued = app
        .run_workflow(&owner.access_token, &string_at(&created["id"]), input)
        .await;
    let run = app
        .wait_for_run(&owner.access_token, &string_at(&queued["id"]))
        .await;
    let events = run["events"].as_array().cloned().unwrap_or_default();
    assert_contiguous_events(&string_at(&run["id"]), &events);
    run
}

/// t -> check (if trigger.big); check -true-> yes; check -false-> no; t -> side;
/// yes, no and side -> join (merge).
fn branches_into_merge(mode: &str) -> Value {
    json!({
        "nodes": [
            {"id": "t", "type": "trigger.manual"},
            {"id": "check", "type": "if", "config": {"condition": "{{ trigger.big }}"}},
            {"id": "yes", "type": "set", "config": {"fields": {"side": "yes", "n": "{{ trigger.n }}"}}},
            {"id": "no", "type": "set", "config": {"fields": {"side": "no"}}},
            {"id": "side", "type": "set", "config": {"fields": {"always": true}}},
            {"id": "join", "type": "merge", "config": {"mode": mode}}
        ],
        "edges": [
            {"from": "t", "to": "check"},
            {"from": "check", "to": "yes", "branch": "true"},
            {"from": "check", "to": "no", "branch": "false"},
            {"from": "t", "to": "side"},
            {"from": "yes", "to": "join"},
            {"from": "no", "to": "join"},
            {"from": "side", "to": "join"}
        ]
    })
}

#[tokio::test]
async fn a_merge_outputs_the_branches_that_ran_as_its_mode_says() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let cases = [
        (
            "object",
            json!({"big": true, "n": 5}),
            "no",
            json!({"yes": {"side": "yes", "n": 5}, "side": {"always": true}}),
        ),
        (
            "array",
            json!({"big": false}),
            "yes",
            json!([{"side": "no"}, {"always": true}]),
        ),
        (
            "first",
            json!({"big": true, "n": 1}),
            "no",
            json!({"side": "yes", "n": 1}),
        ),
    ];
    for (mode, input, skipped, expected) in cases {
        let run = run_to_end(
            &app,
            &owner,
            &workspace_id,
            branches_into_merge(mode),
            input,
        )
        .await;

        let context = format!("mode {mode}: {}", pretty(&run));
        assert_eq!(run["status"], "SUCCEEDED", "{context}");
        assert_eq!(step(&run, skipped)["status"], "SKIPPED", "{context}");
        let join = step(&run, "join");
        assert_eq!(join["status"], "SUCCEEDED", "{context}");
        assert_eq!(join["output"], expected, "{context}");
        assert_eq!(run["output"], expected, "{context}");
    }
}

/// Answers `{"echo": <request body>}`.
struct Echo;

impl wiremock::Respond for Echo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        ResponseTemplate::new(200).set_body_json(json!({"echo": body}))
    }
}

/// t -> each (loop over `trigger.ids`, POST {base}/items/{item}) -> after, and an error
/// edge each -> handler.
fn loop_calling(base: &str) -> Value {
    json!({
        "nodes": [
            {"id": "t", "type": "trigger.manual"},
            {"id": "each", "type": "loop", "config": {
                "items": "{{ trigger.ids }}",
                "concurrency": 2,
                "steps": [
                    {"id": "call", "type": "http.request", "config": {
                        "method": "POST", "url": format!("{base}/items/{{{{ item }}}}"),
                        "body": {"id": "{{ item }}", "at": "{{ index }}", "tag": "{{ trigger.tag }}"}}},
                    {"id": "shape", "type": "set", "config": {"fields": {
                        "id": "{{ steps.call.body.echo.id }}", "at": "{{ index }}", "status": "{{ steps.call.status }}"}}}
                ]
            }},
            {"id": "after", "type": "set", "config": {"fields": {"count": "{{ steps.each.length }}"}}},
            {"id": "handler", "type": "set", "config": {"fields": {"why": "{{ steps.each.error }}"}}}
        ],
        "edges": [
            {"from": "t", "to": "each"},
            {"from": "each", "to": "after"},
            {"from": "each", "to": "handler", "branch": "error"}
        ]
    })
}

fn idempotency_keys(requests: &[Request]) -> Vec<String> {
    let mut keys: Vec<String> = requests
        .iter()
        .filter_map(|request| request.headers.get("idempotency-key"))
        .filter_map(|value| value.to_str().ok())
        .map(str::to_owned)
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_loop_calls_the_server_once_per_item_and_outputs_in_item_order() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(Echo)
        .expect(3)
        .mount(&upstream)
        .await;
    let app = TestApp::builder().arg("--http-allow-private").spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;

    let run = run_to_end(
        &app,
        &owner,
        &workspace_id,
        loop_calling(&upstream.uri()),
        json!({"ids": [30, 10, 20], "tag": "x"}),
    )
    .await;

    let context = pretty(&run);
    assert_eq!(run["status"], "SUCCEEDED", "{context}");
    let each = step(&run, "each");
    assert_eq!(each["status"], "SUCCEEDED", "{context}");
    assert_eq!(each["attempt"], 1, "{context}");
    assert_eq!(
        each["output"],
        json!([
            {"id": 30, "at": 0, "status": 200},
            {"id": 10, "at": 1, "status": 200},
            {"id": 20, "at": 2, "status": 200}
        ]),
        "{context}"
    );
    assert_eq!(
        step(&run, "after")["output"],
        json!({"count": 3}),
        "{context}"
    );
    assert_eq!(step(&run, "handler")["status"], "SKIPPED", "{context}");
    assert_eq!(run["output"], json!({"count": 3}), "{context}");
    // The loop is one step of the journal: its body steps have no records of their own.
    let recorded: Vec<String> = run["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| string_at(&s["nodeId"]))
        .collect();
    assert!(
        !recorded.iter().any(|id| id == "call" || id == "shape"),
        "{recorded:?}"
    );

    let requests = upstream.received_requests().await.unwrap_or_default();
    let run_id = string_at(&run["id"]);
    let mut paths: Vec<String> = requests.iter().map(|r| r.url.path().to_owned()).collect();
    paths.sort();
    assert_eq!(paths, ["/items/10", "/items/20", "/items/30"]);
    assert_eq!(
        idempotency_keys(&requests),
        (0..3)
            .map(|i| format!("{run_id}:each:{i}:call"))
            .collect::<Vec<_>>()
    );
    let tags: Vec<Value> = requests
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null)["tag"].clone())
        .collect();
    assert_eq!(tags, [json!("x"), json!("x"), json!("x")]);
}

#[tokio::test]
async fn a_failing_item_fails_the_loop_and_takes_its_error_edge() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/items/2"))
        .respond_with(ResponseTemplate::new(500))
        .with_priority(1)
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .respond_with(Echo)
        .with_priority(2)
        .mount(&upstream)
        .await;
    let app = TestApp::builder().arg("--http-allow-private").spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;

    let run = run_to_end(
        &app,
        &owner,
        &workspace_id,
        loop_calling(&upstream.uri()),
        json!({"ids": [1, 2, 3], "tag": "y"}),
    )
    .await;

    let context = pretty(&run);
    let expected_error = "item 1, step call: the server answered HTTP 500";
    let each = step(&run, "each");
    assert_eq!(each["status"], "FAILED", "{context}");
    assert_eq!(each["error"], expected_error, "{context}");
    assert_eq!(step(&run, "after")["status"], "SKIPPED", "{context}");
    assert_eq!(
        step(&run, "handler")["output"],
        json!({"why": expected_error}),
        "{context}"
    );
    assert_eq!(run["status"], "SUCCEEDED", "{context}");
}

#[tokio::test]
async fn item_outside_a_loop_body_is_refused_with_a_problem_on_its_node() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let definition = json!({
        "nodes": [
            {"id": "t", "type": "trigger.manual"},
            {"id": "a", "type": "set", "config": {"fields": {"v": "{{ item }}"}}},
            {"id": "each", "type": "loop", "config": {"items": "{{ trigger.ids }}", "concurrency": 99,
                "steps": [{"id": "d", "type": "delay", "config": {"ms": 1}}]}}
        ],
        "edges": [{"from": "t", "to": "a"}, {"from": "a", "to": "each"}]
    });

    let response = app
        .try_create_workflow(&owner.access_token, &workspace_id, "bad", definition)
        .await;

    assert_error_code(&response, "BAD_USER_INPUT");
    let problems = response["errors"][0]["extensions"]["problems"].clone();
    let has = |node: &str, fragment: &str| {
        problems.as_array().into_iter().flatten().any(|p| {
            p["nodeId"] == node && p["message"].as_str().is_some_and(|m| m.contains(fragment))
        })
    };
    let context = pretty(&response);
    assert!(has("a", "unknown name `item`"), "{context}");
    assert!(
        has(
            "each",
            "config/concurrency: must be an integer from 1 to 16"
        ),
        "{context}"
    );
    assert!(
        has("each", "`delay` cannot run in a loop body"),
        "{context}"
    );
}
