//! Workflow runs through the API: executing, failing, retrying, cancelling, listing.
//!
//! Invariants protected here: a run executes the version it was queued with; its steps
//! and outputs follow the contract's node semantics (branches, skips, error edges,
//! `onError`, retries with one idempotency key); its journal is seq 1..n without gaps and
//! starts with RUN_QUEUED, RUN_STARTED and ends with its terminal event; `retryRun`
//! re-executes only `fromNode` onwards; only writers may start, cancel or retry runs;
//! another workspace's runs do not exist for the caller; and an `http.request` step
//! cannot reach the server's own loopback unless the operator allows private addresses.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{
    NewToken, Session, TestApp, assert_contiguous_events, assert_error_code, data, definitions,
    event_kinds, pretty, step, string_at,
};

async fn owner_with_workspace(app: &TestApp, email: &str) -> (Session, String) {
    let owner = app.sign_up(email, "Owner").await;
    let workspace_id = app.create_workspace(&owner.access_token, "Acme").await;
    (owner, workspace_id)
}

async fn new_workflow(app: &TestApp, token: &str, workspace_id: &str, definition: Value) -> String {
    let created = app
        .create_workflow(token, workspace_id, "under test", definition)
        .await;
    string_at(&created["id"])
}

/// Kinds of the events about `node_id` (or, with `None`, about the run itself), in order.
fn kinds_of(run: &Value, node_id: Option<&str>) -> Vec<String> {
    let wanted = node_id.map_or(Value::Null, |id| json!(id));
    run["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|event| event["nodeId"] == wanted)
        .map(|event| string_at(&event["kind"]))
        .collect()
}

fn node_ids(run: &Value) -> Vec<String> {
    run["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|step| string_at(&step["nodeId"]))
        .collect()
}

fn run_ids(connection: &Value) -> Vec<String> {
    connection["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|run| string_at(&run["id"]))
        .collect()
}

/// The run's journal is well formed: seq 1..n, it opens with RUN_QUEUED and RUN_STARTED
/// and ends with `terminal`.
#[track_caller]
fn assert_journal(run: &Value, terminal: &str) {
    let events = run["events"].as_array().cloned().unwrap_or_default();
    assert_contiguous_events(&string_at(&run["id"]), &events);
    let kinds = event_kinds(run);
    assert_eq!(
        kinds.get(..2),
        Some(&["RUN_QUEUED".to_owned(), "RUN_STARTED".to_owned()][..]),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some(terminal),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|kind| kind.starts_with("RUN_")).count(),
        3,
        "one queued, one started, one terminal event: {kinds:?}"
    );
}

/// A manual trigger, a `set` computed from the trigger, an `if` on the `set`, and one
/// `set` per branch reading both the trigger and the first `set`.
fn branching() -> Value {
    json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual", "config": {}},
            {"id": "prep", "type": "set", "config": {"fields": {
                "greeting": "Hello {{ trigger.name }}",
                "doubled": "{{ trigger.n * 2 }}"
            }}},
            {"id": "check", "type": "if", "config": {"condition": "{{ steps.prep.doubled > 10 }}"}},
            {"id": "big", "type": "set", "config": {"fields": {
                "size": "big",
                "message": "{{ steps.prep.greeting }}: {{ trigger.n }} doubled is {{ steps.prep.doubled }}"
            }}},
            {"id": "small", "type": "set", "config": {"fields": {
                "size": "small",
                "message": "{{ steps.prep.greeting }}: only {{ steps.prep.doubled }}"
            }}}
        ],
        "edges": [
            {"from": "start", "to": "prep"},
            {"from": "prep", "to": "check"},
            {"from": "check", "to": "big", "branch": "true"},
            {"from": "check", "to": "small", "branch": "false"}
        ]
    })
}

#[tokio::test]
async fn a_manual_run_follows_the_branch_its_if_takes() {
    struct Case {
        n: i64,
        branch: &'static str,
        taken: &'static str,
        skipped: &'static str,
        output: Value,
    }
    let cases = [
        Case {
            n: 7,
            branch: "true",
            taken: "big",
            skipped: "small",
            output: json!({"size": "big", "message": "Hello Ada: 7 doubled is 14"}),
        },
        Case {
            n: 2,
            branch: "false",
            taken: "small",
            skipped: "big",
            output: json!({"size": "small", "message": "Hello Ada: only 4"}),
        },
    ];
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app, "owner@example.com").await;
    let workflow_id = new_workflow(&app, &owner.access_token, &workspace_id, branching()).await;

    for case in cases {
        let input = json!({"name": "Ada", "n": case.n});
        let queued = app
            .run_workflow(&owner.access_token, &workflow_id, input.clone())
            .await;
        assert_eq!(queued["workflowId"], workflow_id.as_str());
        assert_eq!(queued["workspaceId"], workspace_id.as_str());
        assert_eq!(queued["trigger"], "MANUAL");
        assert_eq!(queued["input"], input);
        let run = app
            .wait_for_run(&owner.access_token, &string_at(&queued["id"]))
            .await;

        let context = format!("n = {}: {}", case.n, pretty(&run));
        assert_eq!(run["status"], "SUCCEEDED", "{context}");
        assert_eq!(run["workflowVersion"], 1, "{context}");
        assert_eq!(run["output"], case.output, "{context}");
        assert_eq!(run["error"], Value::Null, "{context}");
        assert_eq!(run["retryOf"], Value::Null, "{context}");
        assert_eq!(run["cancelRequested"], false, "{context}");
        assert!(run["startedAt"].is_string(), "{context}");
        assert!(run["finishedAt"].is_string(), "{context}");
        assert_eq!(
            node_ids(&run),
            ["start", "prep", "check", case.taken, case.skipped],
            "steps in the order they started, skipped last: {context}"
        );
        assert_eq!(step(&run, "start")["output"], input, "{context}");
        assert_eq!(
            step(&run, "prep")["output"],
            json!({"greeting": "Hello Ada", "doubled": case.n * 2}),
            "{context}"
        );
        assert_eq!(step(&run, "check")["branch"], case.branch, "{context}");
        assert_eq!(
            step(&run, "check")["output"],
            step(&run, "prep")["output"],
            "`if` outputs its input: {context}"
        );
        for node in ["start", "prep", "check", case.taken] {
            assert_eq!(step(&run, node)["status"], "SUCCEEDED", "{node}: {context}");
            assert_eq!(step(&run, node)["attempt"], 1, "{node}: {context}");
            assert_eq!(
                kinds_of(&run, Some(node)),
                ["STEP_STARTED", "STEP_SUCCEEDED"],
                "{node}: {context}"
            );
        }
        assert_eq!(step(&run, case.skipped)["status"], "SKIPPED", "{context}");
        assert_eq!(step(&run, case.skipped)["attempt"], 0, "{context}");
        assert_eq!(
            kinds_of(&run, Some(case.skipped)),
            ["STEP_SKIPPED"],
            "{context}"
        );
        assert_eq!(
            kinds_of(&run, None),
            ["RUN_QUEUED", "RUN_STARTED", "RUN_SUCCEEDED"],
            "{context}"
        );
        assert_journal(&run, "RUN_SUCCEEDED");
    }
}

/// `start` → `wait` (a delay) → `mark` (a `set` of `{"version": version}`).
fn marked(version: u64) -> Value {
    json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual", "config": {}},
            {"id": "wait", "type": "delay", "config": {"ms": 300}},
            {"id": "mark", "type": "set", "config": {"fields": {"version": version}}}
        ],
        "edges": [{"from": "start", "to": "wait"}, {"from": "wait", "to": "mark"}]
    })
}

#[tokio::test]
async fn a_run_executes_the_version_it_was_queued_with() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app, "owner@example.com").await;
    let workflow_id = new_workflow(&app, &owner.access_token, &workspace_id, marked(1)).await;

    let first = app
        .run_workflow(&owner.access_token, &workflow_id, json!({}))
        .await;
    let updated = app
        .gql_as(
            &owner.access_token,
            "mutation($input: UpdateWorkflowInput!) { updateWorkflow(input: $input) { version } }",
            json!({"input": {"id": workflow_id, "definition": marked(2)}}),
        )
        .await;
    assert_eq!(data(&updated)["updateWorkflow"]["version"], 2);
    let second = app
        .run_workflow(&owner.access_token, &workflow_id, json!({}))
        .await;

    let first = app
        .wait_for_run(&owner.access_token, &string_at(&first["id"]))
        .await;
    let second = app
        .wait_for_run(&owner.access_token, &string_at(&second["id"]))
        .await;
    assert_eq!(first["status"], "SUCCEEDED", "{}", pretty(&first));
    assert_eq!(first["workflowVersion"], 1);
    assert_eq!(first["output"], json!({"version": 1}), "{}", pretty(&first));
    assert_eq!(second["status"], "SUCCEEDED", "{}", pretty(&second));
    assert_eq!(second["workflowVersion"], 2);
    assert_eq!(
        second["output"],
        json!({"version": 2}),
        "{}",
        pretty(&second)
    );
}

/// The contract's example without its webhook: a manual trigger, and `call` aimed at
/// `url` with the contract's retry policy but a short interval.
fn contract_example_calling(url: &str) -> Value {
    json!({
      "nodes": [
        {"id": "start", "type": "trigger.manual", "config": {}},
        {"id": "greet", "type": "set", "config": {"fields": {"message": "Hello {{ trigger.name }}", "n": "{{ trigger.n * 2 }}"}}},
        {"id": "big", "type": "if", "config": {"condition": "{{ steps.greet.n > 10 }}"}},
        {"id": "call", "type": "http.request", "config": {"method": "POST", "url": url, "body": {"m": "{{ steps.greet.message }}"}},
         "retry": {"maxAttempts": 3, "initialIntervalMs": 50, "backoffMultiplier": 2}},
        {"id": "reply", "type": "respond", "config": {"status": 200, "body": {"message": "{{ steps.greet.message }}"}}}
      ],
      "edges": [
        {"from": "start", "to": "greet"},
        {"from": "greet", "to": "big"},
        {"from": "big", "to": "call", "branch": "true"},
        {"from": "big", "to": "reply", "branch": "false"},
        {"from": "call", "to": "reply"}
      ]
    })
}

#[tokio::test]
async fn an_http_step_retries_server_errors_with_one_idempotency_key() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"accepted": true})))
        .with_priority(2)
        .mount(&upstream)
        .await;
    let app = TestApp::builder().arg("--http-allow-private").spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app, "owner@example.com").await;
    let definition = contract_example_calling(&format!("{}/x", upstream.uri()));
    let workflow_id = new_workflow(&app, &owner.access_token, &workspace_id, definition).await;

    let queued = app
        .run_workflow(
            &owner.access_token,
            &workflow_id,
            json!({"name": "Ada", "n": 7}),
        )
        .await;
    let run = app
        .wait_for_run(&owner.access_token, &string_at(&queued["id"]))
        .await;

    let context = pretty(&run);
    assert_eq!(run["status"], "SUCCEEDED", "{context}");
    let call = step(&run, "call");
    assert_eq!(call["status"], "SUCCEEDED", "{context}");
    assert_eq!(call["attempt"], 3, "{context}");
    assert_eq!(call["output"]["status"], 200, "{context}");
    assert_eq!(
        call["output"]["body"],
        json!({"accepted": true}),
        "{context}"
    );
    assert_eq!(step(&run, "big")["branch"], "true", "{context}");
    assert_eq!(
        run["output"]["body"],
        json!({"message": "Hello Ada"}),
        "the respond node's output is the run's: {context}"
    );
    let call_kinds = kinds_of(&run, Some("call"));
    assert_eq!(
        call_kinds.iter().filter(|k| *k == "STEP_RETRYING").count(),
        2,
        "{call_kinds:?}"
    );
    assert_eq!(
        call_kinds.last().map(String::as_str),
        Some("STEP_SUCCEEDED"),
        "{call_kinds:?}"
    );
    assert_journal(&run, "RUN_SUCCEEDED");

    let requests = upstream.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 3, "two failures and a success");
    let keys: Vec<Option<&str>> = requests
        .iter()
        .map(|request| {
            request
                .headers
                .get("idempotency-key")
                .and_then(|value| value.to_str().ok())
        })
        .collect();
    assert!(
        keys[0].is_some_and(|key| !key.is_empty()),
        "every attempt carries an Idempotency-Key: {keys:?}"
    );
    assert!(
        keys.iter().all(|key| *key == keys[0]),
        "the attempts of one step share their key: {keys:?}"
    );
    for request in &requests {
        assert_eq!(
            request.body_json::<Value>().ok(),
            Some(json!({"m": "Hello Ada"}))
        );
    }
}

#[tokio::test]
async fn failures_fail_the_run_unless_an_error_edge_or_continue_handles_them() {
    struct Case {
        name: &'static str,
        definition: Value,
        status: &'static str,
        /// Part of the run's `error`, for a failed run.
        error: Option<&'static str>,
        output: Value,
        /// Node ids and the status each step must have.
        steps: &'static [(&'static str, &'static str)],
        /// Nodes that must not have succeeded (they may be skipped or absent).
        not_run: &'static [&'static str],
    }
    let start = json!({"id": "start", "type": "trigger.manual", "config": {}});
    let cases = [
        Case {
            name: "a fail node",
            definition: json!({
                "nodes": [
                    start,
                    {"id": "boom", "type": "fail", "config": {"message": "no {{ trigger.what }} today"}},
                    {"id": "after", "type": "set", "config": {"fields": {"reached": true}}}
                ],
                "edges": [{"from": "start", "to": "boom"}, {"from": "boom", "to": "after"}]
            }),
            status: "FAILED",
            error: Some("no cake today"),
            output: Value::Null,
            steps: &[("start", "SUCCEEDED"), ("boom", "FAILED")],
            not_run: &["after"],
        },
        Case {
            name: "an error edge",
            definition: json!({
                "nodes": [
                    start,
                    {"id": "boom", "type": "fail", "config": {"message": "no {{ trigger.what }} today"}},
                    {"id": "after", "type": "set", "config": {"fields": {"reached": true}}},
                    {"id": "rescue", "type": "set", "config": {"fields": {"rescued": "{{ steps.boom.error }}"}}}
                ],
                "edges": [
                    {"from": "start", "to": "boom"},
                    {"from": "boom", "to": "after"},
                    {"from": "boom", "to": "rescue", "branch": "error"}
                ]
            }),
            status: "SUCCEEDED",
            error: None,
            output: json!({"rescued": "no cake today"}),
            steps: &[
                ("start", "SUCCEEDED"),
                ("boom", "FAILED"),
                ("rescue", "SUCCEEDED"),
                ("after", "SKIPPED"),
            ],
            not_run: &[],
        },
        Case {
            name: "onError continue",
            definition: json!({
                "nodes": [
                    start,
                    {"id": "boom", "type": "fail", "config": {"message": "no {{ trigger.what }} today"}, "onError": "continue"},
                    {"id": "after", "type": "set", "config": {"fields": {"saw": "{{ steps.boom.error }}"}}}
                ],
                "edges": [{"from": "start", "to": "boom"}, {"from": "boom", "to": "after"}]
            }),
            status: "SUCCEEDED",
            error: None,
            output: json!({"saw": "no cake today"}),
            steps: &[
                ("start", "SUCCEEDED"),
                ("boom", "FAILED"),
                ("after", "SUCCEEDED"),
            ],
            not_run: &[],
        },
    ];
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app, "owner@example.com").await;

    for case in cases {
        let workflow_id =
            new_workflow(&app, &owner.access_token, &workspace_id, case.definition).await;
        let queued = app
            .run_workflow(&owner.access_token, &workflow_id, json!({"what": "cake"}))
            .await;
        let run = app
            .wait_for_run(&owner.access_token, &string_at(&queued["id"]))
            .await;

        let context = format!("{}: {}", case.name, pretty(&run));
        assert_eq!(run["status"], case.status, "{context}");
        match case.error {
            Some(part) => {
                let error = run["error"].as_str().unwrap_or_default();
                assert!(error.contains(part), "{context}");
            }
            None => assert_eq!(run["error"], Value::Null, "{context}"),
        }
        if case.status == "SUCCEEDED" {
            assert_eq!(run["output"], case.output, "{context}");
        }
        for (node, status) in case.steps {
            assert_eq!(step(&run, node)["status"], *status, "{node}: {context}");
        }
        let boom = step(&run, "boom");
        assert!(
            boom["error"]
                .as_str()
                .is_some_and(|error| error.contains("no cake today")),
            "the fail node's error is its rendered message: {context}"
        );
        assert!(kinds_of(&run, Some("boom")).contains(&"STEP_FAILED".to_owned()));
        for node in case.not_run {
            let ran = run["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|step| step["nodeId"] == *node && step["status"] == "SUCCEEDED");
            assert!(!ran, "{node} ran after the failure: {context}");
        }
        let terminal = format!("RUN_{}", case.status);
        assert_journal(&run, &terminal);
    }
}

#[tokio::test]
async fn a_code_step_outputs_what_its_source_returns() {
    struct Case {
        name: &'static str,
        source: &'static str,
        /// The expected output, given the run's id; `None` for a failure.
        output: Option<fn(&str) -> Value>,
        error: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "a returned object",
            source: "const total = steps.prep.items.reduce((sum, n) => sum + n, 0);\nreturn { total, who: trigger.name.toUpperCase(), runId: run.id };",
            output: Some(|run_id| json!({"total": 6, "who": "ADA", "runId": run_id})),
            error: None,
        },
        Case {
            name: "a thrown error",
            source: "throw new Error('the ' + trigger.name + ' case');",
            output: None,
            error: Some("the Ada case"),
        },
    ];
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app, "owner@example.com").await;

    for case in cases {
        let definition = json!({
            "nodes": [
                {"id": "start", "type": "trigger.manual", "config": {}},
                {"id": "prep", "type": "set", "config": {"fields": {"items": [1, 2, 3]}}},
                {"id": "compute", "type": "code", "config": {"language": "javascript", "source": case.source}}
            ],
            "edges": [{"from": "start", "to": "prep"}, {"from": "prep", "to": "compute"}]
        });
        let workflow_id = new_workflow(&app, &owner.access_token, &workspace_id, definition).await;
        let queued = app
            .run_workflow(&owner.access_token, &workflow_id, json!({"name": "Ada"}))
            .await;
        let run_id = string_at(&queued["id"]);
        let run = app.wait_for_run(&owner.access_token, &run_id).await;

        let context = format!("{}: {}", case.name, pretty(&run));
        let compute = step(&run, "compute");
        match (case.output, case.error) {
            (Some(output), _) => {
                assert_eq!(run["status"], "SUCCEEDED", "{context}");
                assert_eq!(compute["output"], output(&run_id), "{context}");
                assert_eq!(run["output"], output(&run_id), "{context}");
            }
            (None, error) => {
                assert_eq!(run["status"], "FAILED", "{context}");
                assert_eq!(compute["status"], "FAILED", "{context}");
                let part = error.unwrap_or_default();
                assert!(
                    compute["error"]
                        .as_str()
                        .is_some_and(|text| text.contains(part)),
                    "{context}"
                );
            }
        }
    }
}

const CANCEL_RUN: &str =
    "mutation($input: CancelRunInput!) { cancelRun(input: $input) { id status cancelRequested } }";
const RETRY_RUN: &str = "mutation($input: RetryRunInput!) { retryRun(input: $input) { id status retryOf retryFromNode trigger workflowVersion input } }";

async fn cancel_run(app: &TestApp, token: &str, run_id: &str) -> Value {
    app.gql_as(token, CANCEL_RUN, json!({"input": {"id": run_id}}))
        .await
}

async fn retry_run(app: &TestApp, token: &str, run_id: &str, from_node: Option<&str>) -> Value {
    app.gql_as(
        token,
        RETRY_RUN,
        json!({"input": {"id": run_id, "fromNode": from_node}}),
    )
    .await
}

#[tokio::test]
async fn a_running_run_is_cancelled_at_its_next_step_boundary() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app, "owner@example.com").await;
    let (outsider, _) = owner_with_workspace(&app, "outsider@example.com").await;
    let workflow_id = new_workflow(
        &app,
        &owner.access_token,
        &workspace_id,
        definitions::delayed(60_000),
    )
    .await;
    let queued = app
        .run_workflow(&owner.access_token, &workflow_id, json!({}))
        .await;
    let run_id = string_at(&queued["id"]);
    app.wait_for_run_until(&owner.access_token, &run_id, "into its delay", |run| {
        run["status"] == "RUNNING"
            && run["steps"]
                .as_array()
                .is_some_and(|steps| steps.iter().any(|step| step["nodeId"] == "wait"))
    })
    .await;

    let by_outsider = cancel_run(&app, &outsider.access_token, &run_id).await;
    assert_error_code(&by_outsider, "NOT_FOUND");
    let untouched = app.query_run(&owner.access_token, &run_id).await;
    assert_eq!(data(&untouched)["run"]["status"], "RUNNING");
    assert_eq!(data(&untouched)["run"]["cancelRequested"], false);

    let cancelled = cancel_run(&app, &owner.access_token, &run_id).await;
    let answer = &data(&cancelled)["cancelRun"];
    assert!(
        answer["status"] == "CANCELLED" || answer["cancelRequested"] == true,
        "{}",
        pretty(&cancelled)
    );
    let run = app.wait_for_run(&owner.access_token, &run_id).await;
    let context = pretty(&run);
    assert_eq!(run["status"], "CANCELLED", "{context}");
    assert!(run["finishedAt"].is_string(), "{context}");
    let done_ran = run["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|step| step["nodeId"] == "done" && step["status"] == "SUCCEEDED");
    assert!(!done_ran, "the step after the delay ran: {context}");
    assert_journal(&run, "RUN_CANCELLED");

    let again = cancel_run(&app, &owner.access_token, &run_id).await;
    assert_error_code(&again, "CONFLICT");
}

#[tokio::test]
async fn a_queued_run_is_cancelled_at_once_and_cannot_be_retried_before() {
    // No workers: runs stay queued.
    let app = TestApp::builder().arg("--workers").arg("0").spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app, "owner@example.com").await;
    let workflow_id = new_workflow(
        &app,
        &owner.access_token,
        &workspace_id,
        definitions::manual(),
    )
    .await;
    let queued = app
        .run_workflow(&owner.access_token, &workflow_id, json!({}))
        .await;
    let run_id = string_at(&queued["id"]);
    assert_eq!(queued["status"], "QUEUED");

    let retried = retry_run(&app, &owner.access_token, &run_id, None).await;
    assert_error_code(&retried, "CONFLICT");

    let cancelled = cancel_run(&app, &owner.access_token, &run_id).await;
    assert_eq!(data(&cancelled)["cancelRun"]["status"], "CANCELLED");
    let run = app.query_run(&owner.access_token, &run_id).await;
    let run = &data(&run)["run"];
    assert_eq!(run["status"], "CANCELLED");
    assert_eq!(event_kinds(run), ["RUN_QUEUED", "RUN_CANCELLED"]);
    let events = run["events"].as_array().cloned().unwrap_or_default();
    assert_contiguous_events(&run_id, &events);
    assert_error_code(
        &cancel_run(&app, &owner.access_token, &run_id).await,
        "CONFLICT",
    );
}

/// `start` → `before` (an HTTP call) → `prep` (a `set` of its answer) → `call` (another
/// HTTP call) → `after` (a `set` of both).
fn two_calls(base_url: &str) -> Value {
    json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual", "config": {}},
            {"id": "before", "type": "http.request", "config": {"method": "GET", "url": format!("{base_url}/before")}},
            {"id": "prep", "type": "set", "config": {"fields": {"token": "{{ steps.before.body.token }}", "who": "{{ trigger.name }}"}}},
            {"id": "call", "type": "http.request", "config": {"method": "GET", "url": format!("{base_url}/flaky")}},
            {"id": "after", "type": "set", "config": {"fields": {"status": "{{ steps.call.status }}", "token": "{{ steps.prep.token }}", "who": "{{ steps.prep.who }}"}}}
        ],
        "edges": [
            {"from": "start", "to": "before"},
            {"from": "before", "to": "prep"},
            {"from": "prep", "to": "call"},
            {"from": "call", "to": "after"}
        ]
    })
}

async fn requests_to(server: &MockServer, to: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|request| request.url.path() == to)
        .count()
}

async fn answer(server: &MockServer, at: &str, status: u16, body: Value) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_retry_from_the_failed_step_reuses_the_steps_before_it() {
    let upstream = MockServer::start().await;
    answer(&upstream, "/before", 200, json!({"token": "first"})).await;
    answer(&upstream, "/flaky", 500, json!({"down": true})).await;
    let app = TestApp::builder().arg("--http-allow-private").spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app, "owner@example.com").await;
    let workflow_id = new_workflow(
        &app,
        &owner.access_token,
        &workspace_id,
        two_calls(&upstream.uri()),
    )
    .await;
    let queued = app
        .run_workflow(&owner.access_token, &workflow_id, json!({"name": "Ada"}))
        .await;
    let failed_id = string_at(&queued["id"]);
    let failed = app.wait_for_run(&owner.access_token, &failed_id).await;
    assert_eq!(failed["status"], "FAILED", "{}", pretty(&failed));
    assert_eq!(step(&failed, "call")["status"], "FAILED");
    assert_eq!(step(&failed, "call")["attempt"], 1, "no retry policy");

    let unknown = retry_run(&app, &owner.access_token, &failed_id, Some("nowhere")).await;
    assert_error_code(&unknown, "BAD_USER_INPUT");

    // The upstream recovers, and would now answer `before` differently.
    upstream.reset().await;
    answer(&upstream, "/before", 200, json!({"token": "second"})).await;
    answer(&upstream, "/flaky", 200, json!({"ok": true})).await;
    let retried = retry_run(&app, &owner.access_token, &failed_id, Some("call")).await;
    let retried = data(&retried)["retryRun"].clone();
    assert_ne!(retried["id"], failed_id.as_str());
    assert_eq!(retried["retryOf"], failed_id.as_str());
    assert_eq!(retried["retryFromNode"], "call");
    assert_eq!(retried["trigger"], "RETRY");
    assert_eq!(retried["workflowVersion"], 1);
    assert_eq!(retried["input"], json!({"name": "Ada"}));
    let run = app
        .wait_for_run(&owner.access_token, &string_at(&retried["id"]))
        .await;

    let context = pretty(&run);
    assert_eq!(run["status"], "SUCCEEDED", "{context}");
    assert_eq!(
        run["output"],
        json!({"status": 200, "token": "first", "who": "Ada"}),
        "the reused steps' outputs feed the re-executed ones: {context}"
    );
    for node in ["start", "before", "prep"] {
        let reused = step(&run, node);
        let original = step(&failed, node);
        assert_eq!(reused["status"], "SUCCEEDED", "{node}: {context}");
        assert_eq!(reused["output"], original["output"], "{node}: {context}");
        assert_eq!(
            reused["startedAt"], original["startedAt"],
            "{node} was reused, not executed again: {context}"
        );
    }
    assert_eq!(step(&run, "call")["status"], "SUCCEEDED", "{context}");
    assert_eq!(step(&run, "after")["status"], "SUCCEEDED", "{context}");
    assert_eq!(requests_to(&upstream, "/before").await, 0);
    assert_eq!(requests_to(&upstream, "/flaky").await, 1);
    let events = run["events"].as_array().cloned().unwrap_or_default();
    assert_contiguous_events(&string_at(&run["id"]), &events);
    assert_eq!(
        event_kinds(&run).last().map(String::as_str),
        Some("RUN_SUCCEEDED")
    );
    let original = app.query_run(&owner.access_token, &failed_id).await;
    assert_eq!(
        data(&original)["run"]["status"],
        "FAILED",
        "a retry leaves the original as it was"
    );

    // Without `fromNode`, a retry starts at the first failed step.
    let by_default = retry_run(&app, &owner.access_token, &failed_id, None).await;
    assert_eq!(data(&by_default)["retryRun"]["retryFromNode"], "call");
    let run = app
        .wait_for_run(
            &owner.access_token,
            &string_at(&data(&by_default)["retryRun"]["id"]),
        )
        .await;
    assert_eq!(run["status"], "SUCCEEDED", "{}", pretty(&run));
    assert_eq!(requests_to(&upstream, "/before").await, 0);
}

#[tokio::test]
async fn a_run_still_in_progress_cannot_be_retried() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app, "owner@example.com").await;
    let workflow_id = new_workflow(
        &app,
        &owner.access_token,
        &workspace_id,
        definitions::delayed(60_000),
    )
    .await;
    let queued = app
        .run_workflow(&owner.access_token, &workflow_id, json!({}))
        .await;
    let run_id = string_at(&queued["id"]);
    app.wait_for_run_until(&owner.access_token, &run_id, "to start", |run| {
        run["status"] == "RUNNING"
    })
    .await;

    let retried = retry_run(&app, &owner.access_token, &run_id, Some("wait")).await;

    assert_error_code(&retried, "CONFLICT");
}

const RUNS_PAGE: &str = "query($id: ID!, $first: Int, $after: String, $status: RunStatus, $workflowId: ID) { workspace(id: $id) { runs(first: $first, after: $after, status: $status, workflowId: $workflowId) { edges { cursor node { id status workflowId } } nodes { id status workflowId } pageInfo { hasNextPage endCursor } } } }";

/// Every run id the filter selects, page by page; with the size of each page.
async fn all_pages(
    app: &TestApp,
    token: &str,
    workspace_id: &str,
    first: i64,
    filter: Value,
) -> (Vec<String>, Vec<usize>) {
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut after = Value::Null;
    loop {
        let mut variables = json!({"id": workspace_id, "first": first, "after": after});
        if let (Some(variables), Some(filter)) = (variables.as_object_mut(), filter.as_object()) {
            variables.extend(filter.clone());
        }
        let page = app.gql_as(token, RUNS_PAGE, variables).await;
        let connection = &data(&page)["workspace"]["runs"];
        let edges: Vec<Value> = connection["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|edge| edge["node"].clone())
            .collect();
        assert_eq!(
            Some(&edges),
            connection["nodes"].as_array(),
            "edges and nodes agree"
        );
        let ids = run_ids(connection);
        sizes.push(ids.len());
        seen.extend(ids);
        if connection["pageInfo"]["hasNextPage"] == false {
            return (seen, sizes);
        }
        assert!(sizes.len() < 10, "pagination does not terminate: {page}");
        after = connection["pageInfo"]["endCursor"].clone();
        assert!(
            after.is_string(),
            "a page with a next page has an endCursor"
        );
    }
}

#[tokio::test]
async fn workspace_runs_are_newest_first_filtered_and_paged() {
    // No workers: every run stays as the test left it.
    let app = TestApp::builder().arg("--workers").arg("0").spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app, "owner@example.com").await;
    let token = owner.access_token.as_str();
    let a = new_workflow(&app, token, &workspace_id, definitions::manual()).await;
    let b = new_workflow(&app, token, &workspace_id, definitions::manual()).await;
    let mut ids = Vec::new();
    for workflow in [&a, &b, &a, &a, &b] {
        let run = app.run_workflow(token, workflow, json!({})).await;
        ids.push(string_at(&run["id"]));
    }
    let [a1, b1, a2, a3, b2] = <[String; 5]>::try_from(ids).expect("five runs");
    data(&cancel_run(&app, token, &a2).await);

    struct Case {
        name: &'static str,
        first: i64,
        filter: Value,
        expected: Vec<&'static str>,
        pages: Vec<usize>,
    }
    let by_name = |name: &str| -> String {
        match name {
            "a1" => a1.clone(),
            "a2" => a2.clone(),
            "a3" => a3.clone(),
            "b1" => b1.clone(),
            "b2" => b2.clone(),
            other => panic!("no run {other}"),
        }
    };
    let cases = [
        Case {
            name: "all",
            first: 2,
            filter: json!({}),
            expected: vec!["b2", "a3", "a2", "b1", "a1"],
            pages: vec![2, 2, 1],
        },
        Case {
            name: "queued",
            first: 10,
            filter: json!({"status": "QUEUED"}),
            expected: vec!["b2", "a3", "b1", "a1"],
            pages: vec![4],
        },
        Case {
            name: "cancelled",
            first: 10,
            filter: json!({"status": "CANCELLED"}),
            expected: vec!["a2"],
            pages: vec![1],
        },
        Case {
            name: "succeeded",
            first: 10,
            filter: json!({"status": "SUCCEEDED"}),
            expected: vec![],
            pages: vec![0],
        },
        Case {
            name: "workflow a",
            first: 1,
            filter: json!({"workflowId": a}),
            expected: vec!["a3", "a2", "a1"],
            pages: vec![1, 1, 1],
        },
        Case {
            name: "workflow a, queued",
            first: 10,
            filter: json!({"workflowId": a, "status": "QUEUED"}),
            expected: vec!["a3", "a1"],
            pages: vec![2],
        },
        Case {
            name: "workflow b",
            first: 10,
            filter: json!({"workflowId": b}),
            expected: vec!["b2", "b1"],
            pages: vec![2],
        },
    ];

    for case in cases {
        let (seen, pages) = all_pages(&app, token, &workspace_id, case.first, case.filter).await;
        let expected: Vec<String> = case.expected.iter().map(|name| by_name(name)).collect();
        assert_eq!(seen, expected, "{}: newest first", case.name);
        assert_eq!(pages, case.pages, "{}: page sizes", case.name);
    }
}

/// Workspace A with a finished run, a VIEWER and two run tokens; workspace B with its
/// owner and an all-scopes token.
struct World {
    app: TestApp,
    owner: Session,
    workspace_id: String,
    workflow_id: String,
    run_id: String,
    viewer: Session,
    runs_read: NewToken,
    runs_write: NewToken,
    other_owner: Session,
    other_token: NewToken,
}

async fn world() -> World {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app, "owner@example.com").await;
    let workflow_id = new_workflow(
        &app,
        &owner.access_token,
        &workspace_id,
        definitions::manual(),
    )
    .await;
    let queued = app
        .run_workflow(&owner.access_token, &workflow_id, json!({}))
        .await;
    let run_id = string_at(&queued["id"]);
    let run = app.wait_for_run(&owner.access_token, &run_id).await;
    assert_eq!(run["status"], "SUCCEEDED", "{}", pretty(&run));
    let viewer = app
        .member(
            &owner.access_token,
            &workspace_id,
            "viewer@example.com",
            "VIEWER",
        )
        .await;
    let runs_read = app
        .create_token(&owner.access_token, &workspace_id, &["RUNS_READ"])
        .await;
    let runs_write = app
        .create_token(&owner.access_token, &workspace_id, &["RUNS_WRITE"])
        .await;
    let (other_owner, other_workspace) = owner_with_workspace(&app, "other@example.com").await;
    let other_token = app
        .create_token(
            &other_owner.access_token,
            &other_workspace,
            &[
                "WORKFLOWS_READ",
                "WORKFLOWS_WRITE",
                "RUNS_READ",
                "RUNS_WRITE",
                "CONNECTIONS_READ",
                "CONNECTIONS_WRITE",
                "ADMIN",
            ],
        )
        .await;
    World {
        app,
        owner,
        workspace_id,
        workflow_id,
        run_id,
        viewer,
        runs_read,
        runs_write,
        other_owner,
        other_token,
    }
}

#[derive(Clone, Copy, Debug)]
enum Operation {
    ReadRun,
    RunWorkflow,
    CancelRun,
    RetryRun,
}

impl Operation {
    const ALL: [Operation; 4] = [
        Operation::ReadRun,
        Operation::RunWorkflow,
        Operation::CancelRun,
        Operation::RetryRun,
    ];

    /// The operation aimed at this run and workflow.
    async fn send(self, app: &TestApp, token: &str, run_id: &str, workflow_id: &str) -> Value {
        match self {
            Operation::ReadRun => app.query_run(token, run_id).await,
            Operation::RunWorkflow => app.try_run_workflow(token, workflow_id, json!({})).await,
            Operation::CancelRun => cancel_run(app, token, run_id).await,
            Operation::RetryRun => retry_run(app, token, run_id, None).await,
        }
    }
}

#[tokio::test]
async fn readers_read_runs_and_only_writers_start_cancel_or_retry_them() {
    let world = world().await;
    let app = &world.app;
    let cases: [(&str, &str, [Option<&str>; 4]); 2] = [
        (
            "a VIEWER",
            &world.viewer.access_token,
            [
                None,
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
            ],
        ),
        (
            "a RUNS_READ token",
            &world.runs_read.token,
            [
                None,
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
            ],
        ),
    ];

    for (caller, token, expected) in cases {
        for (operation, expected) in Operation::ALL.into_iter().zip(expected) {
            let response = operation
                .send(app, token, &world.run_id, &world.workflow_id)
                .await;
            match expected {
                Some(code) => {
                    assert_error_code(&response, code);
                }
                None => {
                    assert_eq!(
                        data(&response)["run"]["id"],
                        world.run_id.as_str(),
                        "{caller} {operation:?}"
                    );
                }
            }
        }
        let listed = app
            .gql_as(
                token,
                "query($id: ID!) { workspace(id: $id) { runs { nodes { id } } } }",
                json!({"id": world.workspace_id}),
            )
            .await;
        assert_eq!(
            run_ids(&data(&listed)["workspace"]["runs"]),
            [world.run_id.as_str()],
            "{caller} lists the runs, and created none"
        );
    }

    let by_token = app
        .try_run_workflow(
            &world.runs_write.token,
            &world.workflow_id,
            json!({"by": "token"}),
        )
        .await;
    let run = &data(&by_token)["runWorkflow"];
    assert_eq!(run["workflowId"], world.workflow_id.as_str());
    let run = app
        .wait_for_run(&world.owner.access_token, &string_at(&run["id"]))
        .await;
    assert_eq!(run["status"], "SUCCEEDED", "{}", pretty(&run));
    assert_eq!(run["input"], json!({"by": "token"}));
    let original = app
        .query_run(&world.owner.access_token, &world.run_id)
        .await;
    assert_eq!(data(&original)["run"]["status"], "SUCCEEDED");
}

#[tokio::test]
async fn another_workspace_and_garbage_ids_find_no_run() {
    let world = world().await;
    let app = &world.app;
    let outsiders = [
        (
            "another workspace's owner",
            world.other_owner.access_token.as_str(),
        ),
        (
            "another workspace's token",
            world.other_token.token.as_str(),
        ),
    ];
    let unknown_uuid = uuid::Uuid::new_v4().to_string();
    let garbage_targets = [
        ("garbage", "garbage".to_owned(), "garbage".to_owned()),
        ("an unknown uuid", unknown_uuid.clone(), unknown_uuid),
        (
            "ids of the wrong kind",
            world.workflow_id.clone(),
            world.run_id.clone(),
        ),
    ];

    for (caller, token) in outsiders {
        for operation in Operation::ALL {
            let response = operation
                .send(app, token, &world.run_id, &world.workflow_id)
                .await;
            assert_error_code(&response, "NOT_FOUND");
            assert!(
                !response.to_string().contains(&world.workspace_id),
                "{caller} {operation:?} leaks the workspace: {}",
                pretty(&response)
            );
        }
    }
    for (_, run_id, workflow_id) in &garbage_targets {
        for operation in Operation::ALL {
            let response = operation
                .send(app, &world.owner.access_token, run_id, workflow_id)
                .await;
            assert_error_code(&response, "NOT_FOUND");
        }
    }

    // Nothing changed: still the one run, finished as it was.
    let listed = app
        .gql_as(
            &world.owner.access_token,
            "query($id: ID!) { workspace(id: $id) { runs { nodes { id status } } } }",
            json!({"id": world.workspace_id}),
        )
        .await;
    let runs = &data(&listed)["workspace"]["runs"];
    assert_eq!(run_ids(runs), [world.run_id.as_str()]);
    assert_eq!(runs["nodes"][0]["status"], "SUCCEEDED");
}

/// A manual trigger and a GET of the URL given as the run's input.
fn get_of_input_url() -> Value {
    json!({
        "nodes": [
            {"id": "start", "type": "trigger.manual", "config": {}},
            {"id": "call", "type": "http.request", "config": {"method": "GET", "url": "{{ trigger.url }}"}}
        ],
        "edges": [{"from": "start", "to": "call"}]
    })
}

/// Runs `get_of_input_url` on `app` once per URL and returns the finished runs.
async fn get_each(app: &TestApp, urls: &[String]) -> Vec<Value> {
    let (owner, workspace_id) = owner_with_workspace(app, "owner@example.com").await;
    let workflow_id =
        new_workflow(app, &owner.access_token, &workspace_id, get_of_input_url()).await;
    let mut runs = Vec::new();
    for url in urls {
        let queued = app
            .run_workflow(&owner.access_token, &workflow_id, json!({"url": url}))
            .await;
        runs.push(
            app.wait_for_run(&owner.access_token, &string_at(&queued["id"]))
                .await,
        );
    }
    runs
}

#[tokio::test]
async fn an_http_step_cannot_reach_loopback_without_allow_private() {
    let target = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"secret": "internal"})))
        .mount(&target)
        .await;
    let port = target.address().port();
    let loopback_spellings = [
        format!("http://127.0.0.1:{port}/ssrf"),
        format!("http://localhost:{port}/ssrf"),
        format!("http://127.1:{port}/ssrf"),
        format!("http://0x7f000001:{port}/ssrf"),
        format!("http://[::ffff:127.0.0.1]:{port}/ssrf"),
    ];
    let app = TestApp::spawn().await;

    let runs = get_each(&app, &loopback_spellings).await;

    for (url, run) in loopback_spellings.iter().zip(&runs) {
        let context = format!("{url}: {}", pretty(run));
        assert_eq!(run["status"], "FAILED", "{context}");
        assert_eq!(step(run, "call")["status"], "FAILED", "{context}");
        assert!(
            step(run, "call")["error"]
                .as_str()
                .is_some_and(|error| !error.is_empty()),
            "{context}"
        );
        assert!(
            !run.to_string().contains("secret"),
            "the response leaked into the run: {context}"
        );
    }
    let received = target.received_requests().await.unwrap_or_default();
    assert!(
        received.is_empty(),
        "the server reached its own loopback: {received:?}"
    );

    // The control: the operator's flag, and nothing else, is what kept them out.
    let permissive = TestApp::builder().arg("--http-allow-private").spawn().await;
    let runs = get_each(&permissive, &loopback_spellings[..1]).await;
    assert_eq!(runs[0]["status"], "SUCCEEDED", "{}", pretty(&runs[0]));
    assert_eq!(
        step(&runs[0], "call")["output"]["body"],
        json!({"secret": "internal"})
    );
    assert_eq!(
        target.received_requests().await.unwrap_or_default().len(),
        1
    );
}
