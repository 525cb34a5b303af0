//! Workflow validation through the API.
//!
//! Invariant protected here: no invalid graph is ever stored, and the client is told every
//! problem at once, each with the node it concerns (`extensions.problems`), so an editor can
//! mark them all.

use serde_json::{Value, json};

use crate::harness::{Session, TestApp, assert_error_code, data, pretty};

/// What one expected problem looks like: its `nodeId` is one of `node_ids` (`None` for a
/// problem of the whole graph) and its message contains one of `fragments`
/// (case-insensitive). Alternatives keep the tests about the behaviour, not the wording.
struct Expected {
    node_ids: &'static [Option<&'static str>],
    fragments: &'static [&'static str],
}

struct Case {
    name: &'static str,
    definition: Value,
    expected: Vec<Expected>,
}

fn trigger() -> Value {
    json!({"id": "start", "type": "trigger.manual", "config": {}})
}

fn set(id: &str) -> Value {
    json!({"id": id, "type": "set", "config": {"fields": {"x": 1}}})
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "cycle",
            definition: json!({
                "nodes": [trigger(), set("a"), set("b")],
                "edges": [{"from": "start", "to": "a"}, {"from": "a", "to": "b"}, {"from": "b", "to": "a"}]
            }),
            expected: vec![Expected {
                node_ids: &[Some("a"), Some("b")],
                fragments: &["cycle", "cyclic", "loop"],
            }],
        },
        Case {
            name: "two triggers",
            definition: json!({
                "nodes": [
                    {"id": "t1", "type": "trigger.manual", "config": {}},
                    {"id": "t2", "type": "trigger.webhook", "config": {"respond": "immediately"}},
                    set("a")
                ],
                "edges": [{"from": "t1", "to": "a"}, {"from": "t2", "to": "a"}]
            }),
            expected: vec![Expected {
                node_ids: &[None, Some("t1"), Some("t2")],
                fragments: &["trigger"],
            }],
        },
        Case {
            name: "no trigger",
            definition: json!({
                "nodes": [set("a"), set("b")],
                "edges": [{"from": "a", "to": "b"}]
            }),
            expected: vec![Expected {
                node_ids: &[None, Some("a"), Some("b")],
                fragments: &["trigger"],
            }],
        },
        Case {
            name: "unknown node type",
            definition: json!({
                "nodes": [trigger(), {"id": "mystery", "type": "does.not.exist", "config": {}}],
                "edges": [{"from": "start", "to": "mystery"}]
            }),
            expected: vec![Expected {
                node_ids: &[Some("mystery")],
                fragments: &["does.not.exist", "unknown", "type"],
            }],
        },
        Case {
            name: "duplicate node id",
            definition: json!({
                "nodes": [trigger(), set("twin"), set("twin")],
                "edges": [{"from": "start", "to": "twin"}]
            }),
            expected: vec![Expected {
                node_ids: &[Some("twin")],
                fragments: &["duplicate", "unique", "more than once", "twice"],
            }],
        },
        Case {
            name: "edge to a missing node",
            definition: json!({
                "nodes": [trigger(), set("a")],
                "edges": [{"from": "start", "to": "a"}, {"from": "a", "to": "ghost"}]
            }),
            expected: vec![Expected {
                node_ids: &[None, Some("a"), Some("ghost")],
                fragments: &["ghost"],
            }],
        },
        Case {
            name: "branch label on a node without branches",
            definition: json!({
                "nodes": [trigger(), set("a"), set("b")],
                "edges": [{"from": "start", "to": "a"}, {"from": "a", "to": "b", "branch": "true"}]
            }),
            expected: vec![Expected {
                node_ids: &[Some("a"), Some("b")],
                fragments: &["branch"],
            }],
        },
        Case {
            name: "unknown branch of an if",
            definition: json!({
                "nodes": [trigger(), {"id": "check", "type": "if", "config": {"condition": "{{ trigger.ok }}"}}, set("b")],
                "edges": [{"from": "start", "to": "check"}, {"from": "check", "to": "b", "branch": "maybe"}]
            }),
            expected: vec![Expected {
                node_ids: &[Some("check"), Some("b")],
                fragments: &["branch", "maybe"],
            }],
        },
        Case {
            name: "bad expression",
            definition: json!({
                "nodes": [trigger(), {"id": "greet", "type": "set", "config": {"fields": {"message": "Hi {{ trigger.body. }}"}}}],
                "edges": [{"from": "start", "to": "greet"}]
            }),
            expected: vec![Expected {
                node_ids: &[Some("greet")],
                fragments: &[
                    "expression",
                    "expected",
                    "unexpected",
                    "syntax",
                    "parse",
                    "invalid",
                ],
            }],
        },
        Case {
            name: "bad cron",
            definition: json!({
                "nodes": [{"id": "tick", "type": "trigger.schedule", "config": {"cron": "every full moon", "timezone": "UTC"}}, set("a")],
                "edges": [{"from": "tick", "to": "a"}]
            }),
            expected: vec![Expected {
                node_ids: &[Some("tick")],
                fragments: &["cron"],
            }],
        },
        Case {
            name: "several problems at once",
            definition: json!({
                "nodes": [
                    {"id": "tick", "type": "trigger.schedule", "config": {"cron": "every full moon", "timezone": "UTC"}},
                    {"id": "mystery", "type": "does.not.exist", "config": {}},
                    set("a")
                ],
                "edges": [{"from": "tick", "to": "mystery"}, {"from": "mystery", "to": "a"}, {"from": "a", "to": "ghost"}]
            }),
            expected: vec![
                Expected {
                    node_ids: &[Some("tick")],
                    fragments: &["cron"],
                },
                Expected {
                    node_ids: &[Some("mystery")],
                    fragments: &["does.not.exist", "unknown", "type"],
                },
                Expected {
                    node_ids: &[None, Some("a"), Some("ghost")],
                    fragments: &["ghost"],
                },
            ],
        },
    ]
}

fn matches(problem: &Value, expected: &Expected) -> bool {
    let node_id = problem["nodeId"].as_str();
    let message = problem["message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    expected.node_ids.contains(&node_id)
        && expected
            .fragments
            .iter()
            .any(|fragment| message.contains(&fragment.to_lowercase()))
}

#[track_caller]
fn assert_problems(case: &Case, problems: &Value, context: &Value) {
    let problems = problems.as_array().unwrap_or_else(|| {
        panic!(
            "{}: expected a problems list, got {}",
            case.name,
            pretty(context)
        )
    });
    for expected in &case.expected {
        assert!(
            problems.iter().any(|problem| matches(problem, expected)),
            "{}: no problem on {:?} mentioning one of {:?} in {}",
            case.name,
            expected.node_ids,
            expected.fragments,
            pretty(context)
        );
    }
}

async fn owner_with_workspace(app: &TestApp) -> (Session, String) {
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let workspace_id = app.create_workspace(&owner.access_token, "Acme").await;
    (owner, workspace_id)
}

#[tokio::test]
async fn invalid_definitions_are_refused_with_every_problem() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;

    for case in cases() {
        let response = app
            .try_create_workflow(
                &owner.access_token,
                &workspace_id,
                case.name,
                case.definition.clone(),
            )
            .await;

        assert_error_code(&response, "BAD_USER_INPUT");
        let error = &response["errors"][0];
        assert_problems(&case, &error["extensions"]["problems"], &response);
    }

    // Nothing invalid was stored.
    let listed = app
        .gql_as(
            &owner.access_token,
            "query($id: ID!) { workspace(id: $id) { workflows(first: 100) { nodes { id name } } } }",
            json!({"id": workspace_id}),
        )
        .await;
    assert_eq!(data(&listed)["workspace"]["workflows"]["nodes"], json!([]));
}

#[tokio::test]
async fn several_problems_are_reported_together() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let case = cases()
        .into_iter()
        .find(|case| case.name == "several problems at once")
        .expect("the case exists");

    let response = app
        .try_create_workflow(
            &owner.access_token,
            &workspace_id,
            case.name,
            case.definition.clone(),
        )
        .await;

    let problems = &response["errors"][0]["extensions"]["problems"];
    assert!(
        problems.as_array().map(Vec::len).unwrap_or_default() >= 3,
        "{}",
        pretty(&response)
    );
}

#[tokio::test]
async fn an_invalid_update_keeps_the_current_version() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;
    let created = app
        .create_workflow(
            &owner.access_token,
            &workspace_id,
            "w",
            crate::harness::definitions::manual(),
        )
        .await;
    let cycle = cases().into_iter().next().expect("the cycle case");

    let updated = app
        .gql_as(
            &owner.access_token,
            "mutation($input: UpdateWorkflowInput!) { updateWorkflow(input: $input) { version } }",
            json!({"input": {"id": created["id"], "definition": cycle.definition}}),
        )
        .await;

    assert_error_code(&updated, "BAD_USER_INPUT");
    assert_problems(
        &cycle,
        &updated["errors"][0]["extensions"]["problems"],
        &updated,
    );
    let read = app
        .gql_as(
            &owner.access_token,
            "query($id: ID!) { workflow(id: $id) { version definition } }",
            json!({"id": created["id"]}),
        )
        .await;
    assert_eq!(data(&read)["workflow"]["version"], 1);
    assert_eq!(
        data(&read)["workflow"]["definition"],
        crate::harness::definitions::manual()
    );
}

#[tokio::test]
async fn validate_workflow_definition_lists_problems_without_storing() {
    let app = TestApp::spawn().await;
    let (owner, _) = owner_with_workspace(&app).await;
    let validate = "query($definition: JSON!) { validateWorkflowDefinition(definition: $definition) { nodeId message } }";

    for valid in [
        crate::harness::definitions::manual(),
        crate::harness::definitions::webhook(),
        crate::harness::definitions::contract_example(),
    ] {
        let response = app
            .gql_as(&owner.access_token, validate, json!({"definition": valid}))
            .await;
        assert_eq!(
            data(&response)["validateWorkflowDefinition"],
            json!([]),
            "{valid}"
        );
    }
    for case in cases() {
        let response = app
            .gql_as(
                &owner.access_token,
                validate,
                json!({"definition": case.definition}),
            )
            .await;
        assert_problems(
            &case,
            &data(&response)["validateWorkflowDefinition"],
            &response,
        );
    }
}

#[tokio::test]
async fn a_definition_that_is_not_a_graph_is_bad_input() {
    let app = TestApp::spawn().await;
    let (owner, workspace_id) = owner_with_workspace(&app).await;

    for definition in [
        json!("just a string"),
        json!({"nodes": "nope"}),
        json!([1, 2, 3]),
        json!({}),
    ] {
        let response = app
            .try_create_workflow(&owner.access_token, &workspace_id, "bad", definition)
            .await;
        assert_error_code(&response, "BAD_USER_INPUT");
    }
}
