//! Master key rotation with `automationos keys`: connections sealed before a rotation
//! open after it, while the server keeps running, and the old key can then be retired
//! and forgotten without losing a connection or a session.

use std::path::Path;

use serde_json::json;
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{PASSWORD, TestApp, binary, data, pretty, string_at};

const TOKEN: &str = "rotation-test-token-4Kd9";

/// Runs `automationos keys <args>` on the server's data dir and database.
fn keys(
    data_dir: &Path,
    database_url: Option<&str>,
    envs: &[(&str, &str)],
    args: &[&str],
) -> String {
    let mut command = binary();
    command
        .arg("keys")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir);
    if let Some(url) = database_url {
        command.arg("--database-url").arg(url);
    }
    for (name, value) in envs {
        command.env(name, value);
    }
    let output = command.output().expect("run automationos keys");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "keys {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn key_lines(data_dir: &Path) -> Vec<String> {
    std::fs::read_to_string(data_dir.join("master.key"))
        .expect("read master.key")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Creates a workspace with a bearer connection and a workflow that calls `upstream`
/// with it; returns (workspace id, workflow id).
async fn connected_workflow(
    app: &TestApp,
    token: &str,
    upstream: &MockServer,
    name: &str,
) -> (String, String) {
    let workspace = app.create_workspace(token, name).await;
    let connection = app
        .create_connection(
            token,
            &workspace,
            "api",
            json!({"kind": "bearer", "token": TOKEN}),
        )
        .await;
    let workflow = app
        .create_workflow(
            token,
            &workspace,
            "call",
            json!({
                "nodes": [
                    {"id": "t", "type": "trigger.manual"},
                    {"id": "call", "type": "http.request", "config": {
                        "url": format!("{}/whoami", upstream.uri()), "connectionId": connection}}
                ],
                "edges": [{"from": "t", "to": "call"}]
            }),
        )
        .await;
    (workspace, string_at(&workflow["id"]))
}

async fn assert_signed_run(app: &TestApp, token: &str, workflow_id: &str) {
    let run = app.run_workflow(token, workflow_id, json!({})).await;
    let run = app.wait_for_run(token, &string_at(&run["id"])).await;
    assert_eq!(run["status"], "SUCCEEDED", "{}", pretty(&run));
}

async fn signed_upstream() -> MockServer {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(header("authorization", format!("Bearer {TOKEN}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"me": 1})))
        .mount(&upstream)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&upstream)
        .await;
    upstream
}

#[tokio::test]
async fn a_key_file_rotation_runs_online_and_the_old_key_can_then_be_retired() {
    let upstream = signed_upstream().await;
    let app = TestApp::builder().arg("--http-allow-private").spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let (_, before) = connected_workflow(&app, token, &upstream, "Before").await;
    assert_signed_run(&app, token, &before).await;
    let original_key = key_lines(app.data_path());
    assert_eq!(original_key.len(), 1);

    // While the server runs.
    let rotated = keys(app.data_path(), app.database_url(), &[], &["rotate"]);
    assert!(
        rotated.contains("re-wrapped 1 data keys and re-sealed 1 signing keys"),
        "{rotated}"
    );
    assert!(rotated.contains("seals nothing now"), "{rotated}");
    let rotated_keys = key_lines(app.data_path());
    assert_eq!(rotated_keys.len(), 2);
    assert_eq!(
        rotated_keys[1], original_key[0],
        "the old key stays until retired"
    );

    // The running server goes on: old connections open, new ones are sealed under the new key.
    assert_signed_run(&app, token, &before).await;
    let (_, during) = connected_workflow(&app, token, &upstream, "During").await;
    assert_signed_run(&app, token, &during).await;
    let status = keys(app.data_path(), app.database_url(), &[], &["status"]);
    assert!(status.contains("current  seals 3"), "{status}");
    assert!(status.contains("previous  seals 0"), "{status}");

    let retired = keys(app.data_path(), app.database_url(), &[], &["retire"]);
    assert!(retired.contains("retired master key"), "{retired}");
    assert_eq!(
        key_lines(app.data_path()),
        vec![rotated_keys[0].clone()],
        "only the new key is left"
    );

    // A fresh process that never saw the old key opens everything.
    let remains = app.kill_hard();
    let app = TestApp::builder()
        .arg("--http-allow-private")
        .data_dir(remains.data_dir)
        .database(remains.database)
        .spawn()
        .await;
    let session = app.log_in("owner@example.com", PASSWORD).await;
    let token = string_at(&data(&session)["logIn"]["accessToken"]);
    assert_signed_run(&app, &token, &before).await;
    assert_signed_run(&app, &token, &during).await;
}

#[tokio::test]
async fn an_environment_key_rotation_lets_the_old_key_be_dropped_from_the_environment() {
    use base64::Engine;
    let encode = |byte: u8| base64::engine::general_purpose::STANDARD.encode([byte; 32]);
    let (old_key, new_key) = (encode(1), encode(2));
    let upstream = signed_upstream().await;
    let app = TestApp::builder()
        .arg("--http-allow-private")
        .env("AOS_MASTER_KEY", &old_key)
        .spawn()
        .await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let (_, workflow) = connected_workflow(&app, &owner.access_token, &upstream, "Acme").await;
    assert!(!app.data_path().join("master.key").exists());

    let rotated = keys(
        app.data_path(),
        app.database_url(),
        &[
            ("AOS_MASTER_KEY", &new_key),
            ("AOS_MASTER_KEY_PREVIOUS", &old_key),
        ],
        &["rotate"],
    );
    assert!(rotated.contains("re-wrapped 1 data keys"), "{rotated}");
    assert!(
        rotated.contains("remove it from AOS_MASTER_KEY_PREVIOUS"),
        "{rotated}"
    );

    let remains = app.kill_hard();
    let app = TestApp::builder()
        .arg("--http-allow-private")
        .env("AOS_MASTER_KEY", &new_key)
        .data_dir(remains.data_dir)
        .database(remains.database)
        .spawn()
        .await;
    let session = app.log_in("owner@example.com", PASSWORD).await;
    let token = string_at(&data(&session)["logIn"]["accessToken"]);
    assert_signed_run(&app, &token, &workflow).await;

    // With only the old key, nothing opens: the rotation really moved everything.
    let remains = app.kill_hard();
    let mut command = binary();
    command
        .args(["keys", "status", "--data-dir"])
        .arg(remains.data_dir.path())
        .env("AOS_MASTER_KEY", &old_key);
    if let Some(database) = &remains.database {
        command.arg("--database-url").arg(&database.url);
    }
    let output = command.output().expect("run keys status");
    let status = String::from_utf8_lossy(&output.stdout);
    assert!(
        status.contains("UNKNOWN to this configuration  seals 2"),
        "{status}"
    );
}
