//! Cron schedules: an active `trigger.schedule` workflow runs at its ticks, and stops when
//! deactivated.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{TestApp, data};

const RUNS: &str = "query($id: ID!) { workspace(id: $id) { runs(first: 100) { nodes { id trigger status input } } } }";
const ACTIVATE: &str =
    "mutation($input: SetWorkflowActiveInput!) { setWorkflowActive(input: $input) { active } }";
/// A hang guard for waiting on ticks, not a speed requirement.
const DEADLINE: Duration = Duration::from_secs(60);

fn every_second() -> Value {
    json!({
        "nodes": [
            {"id": "tick", "type": "trigger.schedule", "config": {"cron": "* * * * * *", "timezone": "UTC"}},
            {"id": "note", "type": "set", "config": {"fields": {"at": "{{ trigger.scheduledAt }}"}}}
        ],
        "edges": [{"from": "tick", "to": "note"}]
    })
}

async fn runs(app: &TestApp, token: &str, workspace_id: &str) -> Vec<Value> {
    let response = app.gql_as(token, RUNS, json!({"id": workspace_id})).await;
    data(&response)["workspace"]["runs"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn an_active_schedule_runs_at_each_tick_until_it_is_deactivated() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace_id = app.create_workspace(token, "Acme").await;
    let workflow = app
        .create_workflow(token, &workspace_id, "tick", every_second())
        .await;
    let workflow_id = workflow["id"].as_str().expect("id").to_owned();
    assert!(
        workflow["webhookUrl"].is_null(),
        "a schedule has no webhook URL"
    );
    assert!(
        runs(&app, token, &workspace_id).await.is_empty(),
        "an inactive schedule does not run"
    );

    data(
        &app.gql_as(
            token,
            ACTIVATE,
            json!({"input": {"id": workflow_id, "active": true}}),
        )
        .await,
    );
    let started = Instant::now();
    let fired = loop {
        let fired: Vec<Value> = runs(&app, token, &workspace_id)
            .await
            .into_iter()
            .filter(|run| run["status"] == "SUCCEEDED")
            .collect();
        if fired.len() >= 3 {
            break fired;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "only {} runs so far",
            fired.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let mut ticks: Vec<String> = fired
        .iter()
        .map(|run| {
            assert_eq!(run["trigger"], "SCHEDULE");
            run["input"]["scheduledAt"]
                .as_str()
                .expect("scheduledAt")
                .to_owned()
        })
        .collect();
    for tick in &ticks {
        let at = chrono::DateTime::parse_from_rfc3339(tick).expect("an RFC 3339 time");
        assert_eq!(
            at.timestamp_subsec_millis(),
            0,
            "ticks fall on whole seconds: {tick}"
        );
    }
    let count = ticks.len();
    ticks.sort();
    ticks.dedup();
    assert_eq!(ticks.len(), count, "each tick ran once");

    data(
        &app.gql_as(
            token,
            ACTIVATE,
            json!({"input": {"id": workflow_id, "active": false}}),
        )
        .await,
    );
    // The scheduler re-reads the active workflows every 2 s; after that nothing new.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settled = runs(&app, token, &workspace_id).await.len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(runs(&app, token, &workspace_id).await.len(), settled);
}
