//! Operations: health, readiness, metrics, the `schema` and `migrate` commands.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{DataDir, TestApp, TestDatabase, binary, data};

#[tokio::test]
async fn healthz_and_readyz_answer_ok() {
    let app = TestApp::spawn().await;

    let health = app
        .http()
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("GET /healthz");
    let ready = app
        .http()
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("GET /readyz");

    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(ready.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_graphql_requests() {
    let app = TestApp::spawn().await;
    data(&app.gql("query Probe { __typename }", json!({})).await);

    let response = app
        .http()
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");

    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("the metrics");
    let counted = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .any(|line| line.starts_with("aos_graphql_requests_total"));
    assert!(counted, "no aos_graphql_requests_total sample in:\n{text}");
    assert!(
        text.contains("aos_graphql_request_duration_seconds"),
        "no duration histogram in:\n{text}"
    );
}

/// `schema.graphql` is the contract that clients generate code from: it must be exactly
/// what the binary serves.
#[test]
fn the_checked_in_schema_matches_the_binary() {
    let checked_in_path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let checked_in = std::fs::read_to_string(checked_in_path)
        .unwrap_or_else(|error| panic!("read {checked_in_path}: {error}"));

    let output = binary()
        .arg("schema")
        .output()
        .expect("run automationos schema");

    assert!(
        output.status.success(),
        "automationos schema failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).expect("the SDL is UTF-8");
    assert!(
        printed == checked_in,
        "schema.graphql is stale: regenerate it with `cargo run -q -- schema > schema.graphql`"
    );
}

#[tokio::test]
async fn migrate_prepares_a_database_that_serve_no_migrate_can_use() {
    let dir = DataDir::new();
    let database = TestDatabase::create_if_configured().await;
    let migrate = || {
        let mut command = binary();
        command.arg("migrate").arg("--data-dir").arg(dir.path());
        if let Some(database) = &database {
            command.arg("--database-url").arg(&database.url);
        }
        command.output().expect("run automationos migrate")
    };

    for run in ["first", "second"] {
        let output = migrate();
        assert!(
            output.status.success(),
            "{run} migrate failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let app = TestApp::builder()
        .data_dir(dir)
        .database(database)
        .arg("--no-migrate")
        .spawn()
        .await;
    let session = app.sign_up("ada@example.com", "Ada").await;
    app.create_workspace(&session.access_token, "Acme").await;
}
