//! Operations: health, readiness, metrics, the `schema` and `migrate` commands.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{DataDir, PASSWORD, TestApp, TestDatabase, binary, data};

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

/// Every request is logged as one JSON line that carries the id the client got back in
/// `x-request-id`, so a support request can be matched to the server's logs.
#[tokio::test]
async fn each_request_is_logged_with_the_request_id_the_client_sees() {
    let app = TestApp::spawn().await;

    let response = app
        .http()
        .post(app.url("/graphql"))
        .json(&json!({"query": "{ __typename }"}))
        .send()
        .await
        .expect("POST /graphql");
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("an x-request-id header")
        .to_owned();

    let logged = wait_for_log(&app, |line| line.contains(&request_id)).await;
    let line: serde_json::Value = serde_json::from_str(&logged).expect("log lines are JSON");
    assert_eq!(line["span"]["request.id"], request_id.as_str(), "{logged}");
    assert_eq!(line["fields"]["status"], 200, "{logged}");
}

/// Passwords, access tokens, refresh tokens and API token secrets never reach the logs.
#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("ada@example.com", "Ada").await;
    let logged_in = app.log_in("ada@example.com", PASSWORD).await;
    let _ = app
        .log_in("ada@example.com", "a wrong password, also secret")
        .await;
    let workspace_id = app.create_workspace(&session.access_token, "Acme").await;
    let token = app
        .create_token(&session.access_token, &workspace_id, &["WORKFLOWS_READ"])
        .await;
    // A request that fails authentication, so the error path is logged too.
    let _ = app
        .gql_as(&format!("{}x", token.token), "{ __typename }", json!({}))
        .await;
    let request_id = app
        .http()
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("GET /healthz")
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("an x-request-id header")
        .to_owned();
    // The last request is logged after the earlier ones: once it is there, all are.
    wait_for_log(&app, |line| line.contains(&request_id)).await;

    let logs = app.log_lines().join("\n");
    let secrets = [
        PASSWORD.to_owned(),
        "a wrong password, also secret".to_owned(),
        session.access_token.clone(),
        session.refresh_token.clone(),
        data(&logged_in)["logIn"]["refreshToken"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        token.token.clone(),
    ];
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(
            !logs.contains(&secret),
            "a secret appears in the logs:\n{logs}"
        );
    }
}

async fn wait_for_log(app: &TestApp, wanted: impl Fn(&str) -> bool) -> String {
    for _ in 0..100 {
        if let Some(line) = app.log_lines().into_iter().find(|line| wanted(line)) {
            return line;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "the expected line was never logged:\n{}",
        app.log_lines().join("\n")
    );
}
