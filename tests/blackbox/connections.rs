//! Connections through the public API: created, listed, changed, tested and deleted over
//! GraphQL, used by `http.request` steps against a local server, kept to their workspace,
//! and their secrets never shown again: not in an answer, a step, an event, the log or a
//! data file.

use std::path::Path;

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::harness::{
    Session, TestApp, assert_error_code, data, error_codes, first_error, pretty, step, string_at,
};

pub const CONNECTION_FIELDS: &str = "id workspaceId name connector authKind status settings createdAt updatedAt lastTestedAt lastTestOk";

const BEARER_SECRET: &str = "bearer-Zq8t1m0-secret";
const HEADER_KEY_SECRET: &str = "hdr-key-7Hh3-secret";
const QUERY_KEY_SECRET: &str = "query key&7=secret";
const BASIC_PASSWORD: &str = "basic-pw-Qx91-secret";

impl TestApp {
    pub async fn try_create_connection(
        &self,
        token: &str,
        workspace_id: &str,
        name: &str,
        credentials: Value,
        settings: Option<Value>,
    ) -> Value {
        self.gql_as(
            token,
            &format!("mutation($input: CreateConnectionInput!) {{ createConnection(input: $input) {{ {CONNECTION_FIELDS} }} }}"),
            json!({"input": {"workspaceId": workspace_id, "connector": "http", "name": name,
                "credentials": credentials, "settings": settings}}),
        )
        .await
    }

    /// Creates an `http` connection and returns its id.
    pub async fn create_connection(
        &self,
        token: &str,
        workspace_id: &str,
        name: &str,
        credentials: Value,
    ) -> String {
        let response = self
            .try_create_connection(token, workspace_id, name, credentials, None)
            .await;
        string_at(&data(&response)["createConnection"]["id"])
    }

    pub async fn test_connection(&self, token: &str, id: &str) -> Value {
        self.gql_as(
            token,
            "mutation($input: TestConnectionInput!) { testConnection(input: $input) { ok message } }",
            json!({"input": {"id": id}}),
        )
        .await
    }
}

/// Answers with what it received: method, path, query and headers.
struct EchoRequest;

impl wiremock::Respond for EchoRequest {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let headers: serde_json::Map<String, Value> = request
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    Value::String(value.to_str().unwrap_or_default().to_owned()),
                )
            })
            .collect();
        ResponseTemplate::new(200)
            .insert_header(
                "x-echo-authorization",
                request
                    .headers
                    .get("authorization")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or(""),
            )
            .set_body_json(json!({
                "path": request.url.path(),
                "query": request.url.query(),
                "headers": headers,
            }))
    }
}

/// One `http.request` step per connection id, each calling `{base}/echo/<step>`.
fn calls_with(base: &str, connections: &[(&str, &str)]) -> Value {
    let mut nodes = vec![json!({"id": "t", "type": "trigger.manual"})];
    let mut edges = Vec::new();
    let mut previous = "t".to_owned();
    for (node, connection_id) in connections {
        nodes.push(json!({"id": node, "type": "http.request", "config": {
            "method": "GET", "url": format!("{base}/echo/{node}"),
            "headers": {"Authorization": "Bearer author-set", "X-Trace": "1"},
            "connectionId": connection_id}}));
        edges.push(json!({"from": previous, "to": node}));
        previous = (*node).to_owned();
    }
    json!({"nodes": nodes, "edges": edges})
}

async fn echo_server() -> MockServer {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(EchoRequest)
        .mount(&upstream)
        .await;
    upstream
}

/// A server whose steps may call loopback, and an owner with a workspace "Acme".
async fn app_with_workspace() -> (TestApp, Session, String) {
    let app = TestApp::builder().arg("--http-allow-private").spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let workspace = app.create_workspace(&owner.access_token, "Acme").await;
    (app, owner, workspace)
}

fn assert_no_secret(text: &str, context: &str) {
    for secret in [
        BEARER_SECRET,
        HEADER_KEY_SECRET,
        QUERY_KEY_SECRET,
        BASIC_PASSWORD,
    ] {
        assert!(
            !text.contains(secret),
            "{context} shows the secret {secret}:\n{text}"
        );
    }
    let basic_wire = base64_of(&format!("ann:{BASIC_PASSWORD}"));
    assert!(
        !text.contains(&basic_wire),
        "{context} shows basic credentials"
    );
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Every byte of every file under `dir`, searched for each secret.
fn assert_no_secret_in_files(dir: &Path) {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap_or_default();
            for secret in [
                BEARER_SECRET,
                HEADER_KEY_SECRET,
                QUERY_KEY_SECRET,
                BASIC_PASSWORD,
            ] {
                assert!(
                    !bytes
                        .windows(secret.len())
                        .any(|window| window == secret.as_bytes()),
                    "{} holds the secret {secret} in the clear",
                    path.display()
                );
            }
        }
    }
}

#[tokio::test]
async fn a_connection_is_created_read_tested_replaced_and_deleted_without_showing_its_secret() {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/me"))
        .and(header("authorization", format!("Bearer {BEARER_SECRET}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/me"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&upstream)
        .await;
    let (app, owner, workspace) = app_with_workspace().await;
    let token = owner.access_token.as_str();
    let test_url = format!("{}/me?probe=1", upstream.uri());

    let created = app
        .try_create_connection(
            token,
            &workspace,
            "Billing API",
            json!({"kind": "bearer", "token": BEARER_SECRET}),
            Some(json!({"testUrl": test_url})),
        )
        .await;
    assert_no_secret(&created.to_string(), "createConnection");
    let connection = data(&created)["createConnection"].clone();
    assert_eq!(connection["name"], "Billing API");
    assert_eq!(connection["connector"], "http");
    assert_eq!(connection["authKind"], "bearer");
    assert_eq!(connection["status"], "VALID");
    assert_eq!(connection["workspaceId"], workspace.as_str());
    assert_eq!(connection["settings"], json!({"testUrl": test_url}));
    assert_eq!(connection["lastTestedAt"], Value::Null);
    let id = string_at(&connection["id"]);

    let listed = app
        .gql_as(
            token,
            &format!("query($id: ID!) {{ workspace(id: $id) {{ connections {{ {CONNECTION_FIELDS} }} }} }}"),
            json!({"id": workspace}),
        )
        .await;
    assert_no_secret(&listed.to_string(), "Workspace.connections");
    assert_eq!(
        data(&listed)["workspace"]["connections"],
        json!([connection])
    );

    let tested = app.test_connection(token, &id).await;
    assert_eq!(
        data(&tested)["testConnection"]["ok"],
        true,
        "{}",
        pretty(&tested)
    );
    assert_no_secret(&tested.to_string(), "testConnection");
    let read = app
        .gql_as(
            token,
            &format!("query($id: ID!) {{ connection(id: $id) {{ {CONNECTION_FIELDS} }} }}"),
            json!({"id": id}),
        )
        .await;
    assert_eq!(data(&read)["connection"]["lastTestOk"], true);
    assert!(data(&read)["connection"]["lastTestedAt"].is_string());

    // Credentials can be replaced, never read; the wrong ones fail the test and say so.
    let updated = app
        .gql_as(
            token,
            &format!("mutation($input: UpdateConnectionInput!) {{ updateConnection(input: $input) {{ {CONNECTION_FIELDS} }} }}"),
            json!({"input": {"id": id, "name": "Billing (old key)",
                "credentials": {"kind": "apiKey", "in": "header", "name": "X-Api-Key", "value": HEADER_KEY_SECRET}}}),
        )
        .await;
    assert_no_secret(&updated.to_string(), "updateConnection");
    assert_eq!(
        data(&updated)["updateConnection"]["name"],
        "Billing (old key)"
    );
    assert_eq!(data(&updated)["updateConnection"]["authKind"], "apiKey");
    assert_eq!(
        data(&updated)["updateConnection"]["lastTestedAt"],
        Value::Null,
        "a test of the old credentials says nothing of the new ones"
    );
    let refused = app.test_connection(token, &id).await;
    let refused = &data(&refused)["testConnection"];
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("401"),
        "{refused}"
    );
    assert_no_secret(&refused.to_string(), "a failed testConnection");

    let deleted = app
        .gql_as(
            token,
            "mutation($input: DeleteConnectionInput!) { deleteConnection(input: $input) }",
            json!({"input": {"id": id}}),
        )
        .await;
    assert_eq!(data(&deleted)["deleteConnection"], true);
    let gone = app
        .gql_as(
            token,
            "query($id: ID!) { connection(id: $id) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_error_code(&gone, "NOT_FOUND");
    let again = app.test_connection(token, &id).await;
    assert_error_code(&again, "NOT_FOUND");
    assert_no_secret(&app.log_lines().join("\n"), "the server log");
}

#[tokio::test]
async fn every_auth_kind_signs_its_step_and_echoed_secrets_are_redacted_everywhere() {
    let upstream = echo_server().await;
    let (app, owner, workspace) = app_with_workspace().await;
    let token = owner.access_token.as_str();
    let bearer = app
        .create_connection(
            token,
            &workspace,
            "bearer",
            json!({"kind": "bearer", "token": BEARER_SECRET}),
        )
        .await;
    let in_header = app
        .create_connection(
            token,
            &workspace,
            "header key",
            json!({"kind": "apiKey", "in": "header", "name": "X-Api-Key", "value": HEADER_KEY_SECRET}),
        )
        .await;
    let in_query = app
        .create_connection(
            token,
            &workspace,
            "query key",
            json!({"kind": "apiKey", "in": "query", "name": "api_key", "value": QUERY_KEY_SECRET}),
        )
        .await;
    let basic = app
        .create_connection(
            token,
            &workspace,
            "basic",
            json!({"kind": "basic", "username": "ann", "password": BASIC_PASSWORD}),
        )
        .await;
    let workflow = app
        .create_workflow(
            token,
            &workspace,
            "signed calls",
            calls_with(
                &upstream.uri(),
                &[
                    ("bearer", &bearer),
                    ("header", &in_header),
                    ("query", &in_query),
                    ("basic", &basic),
                ],
            ),
        )
        .await;
    let run = app
        .run_workflow(token, &string_at(&workflow["id"]), json!({}))
        .await;
    let run = app.wait_for_run(token, &string_at(&run["id"])).await;
    assert_eq!(run["status"], "SUCCEEDED", "{}", pretty(&run));

    // What the service received: each request signed, the author's Authorization replaced.
    let received = upstream.received_requests().await.unwrap_or_default();
    let request_to = |node: &str| {
        received
            .iter()
            .find(|request| request.url.path() == format!("/echo/{node}"))
            .unwrap_or_else(|| panic!("no request from step {node}"))
            .clone()
    };
    let authorization = |request: &Request| {
        request
            .headers
            .get_all("authorization")
            .iter()
            .filter_map(|value| value.to_str().ok().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        authorization(&request_to("bearer")),
        vec![format!("Bearer {BEARER_SECRET}")]
    );
    let header_call = request_to("header");
    assert_eq!(
        header_call
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok()),
        Some(HEADER_KEY_SECRET)
    );
    assert_eq!(
        authorization(&header_call),
        vec!["Bearer author-set".to_owned()]
    );
    let query_call = request_to("query");
    let sent_key = query_call
        .url
        .query_pairs()
        .find(|(name, _)| name == "api_key")
        .map(|(_, value)| value.into_owned());
    assert_eq!(sent_key.as_deref(), Some(QUERY_KEY_SECRET));
    assert_eq!(
        authorization(&request_to("basic")),
        vec![format!(
            "Basic {}",
            base64_of(&format!("ann:{BASIC_PASSWORD}"))
        )]
    );

    // What the run shows: the echoed secrets, redacted.
    assert_no_secret(&run.to_string(), "the run, its steps and events");
    let bearer_output = &step(&run, "bearer")["output"];
    assert_eq!(
        bearer_output["headers"]["x-echo-authorization"],
        "Bearer [REDACTED]"
    );
    assert_eq!(
        bearer_output["body"]["headers"]["x-trace"], "1",
        "the rest of the output is kept"
    );
    assert_eq!(
        step(&run, "header")["output"]["body"]["headers"]["x-api-key"],
        "[REDACTED]"
    );
    let streamed = app
        .gql_as(
            token,
            "query($id: ID!) { run(id: $id) { events { kind message data } } }",
            json!({"id": run["id"]}),
        )
        .await;
    assert_no_secret(&streamed.to_string(), "the run's events");
    assert_no_secret(&app.log_lines().join("\n"), "the server log");
    assert_no_secret_in_files(app.data_path());
}

#[tokio::test]
async fn connections_stay_in_their_workspace_and_follow_roles_and_scopes() {
    let upstream = echo_server().await;
    let (app, owner, workspace) = app_with_workspace().await;
    let token = owner.access_token.as_str();
    let connection = app
        .create_connection(
            token,
            &workspace,
            "main",
            json!({"kind": "bearer", "token": BEARER_SECRET}),
        )
        .await;

    // Another tenant: the id does not exist for them, whatever they try.
    let other = app.sign_up("other@example.com", "Other").await;
    let other_workspace = app.create_workspace(&other.access_token, "Rival").await;
    for (operation, variables) in [
        (
            "query($id: ID!) { connection(id: $id) { id } }",
            json!({"id": connection}),
        ),
        (
            "mutation($id: ID!) { testConnection(input: {id: $id}) { ok } }",
            json!({"id": connection}),
        ),
        (
            "mutation($id: ID!) { updateConnection(input: {id: $id, name: \"mine\"}) { id } }",
            json!({"id": connection}),
        ),
        (
            "mutation($id: ID!) { deleteConnection(input: {id: $id}) }",
            json!({"id": connection}),
        ),
    ] {
        let response = app.gql_as(&other.access_token, operation, variables).await;
        assert_error_code(&response, "NOT_FOUND");
    }
    let stolen = app
        .create_workflow(
            &other.access_token,
            &other_workspace,
            "borrow",
            calls_with(&upstream.uri(), &[("call", &connection)]),
        )
        .await;
    let run = app
        .run_workflow(&other.access_token, &string_at(&stolen["id"]), json!({}))
        .await;
    let run = app
        .wait_for_run(&other.access_token, &string_at(&run["id"]))
        .await;
    assert_eq!(run["status"], "FAILED", "{}", pretty(&run));
    assert!(
        step(&run, "call")["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not found"),
        "{}",
        pretty(&run)
    );
    assert!(
        upstream
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "no request may leave with another tenant's connection"
    );

    // Roles: a VIEWER sees connections but cannot change them; an EDITOR may test them.
    let viewer = app.sign_up("viewer@example.com", "Viewer").await;
    let editor = app.sign_up("editor@example.com", "Editor").await;
    app.add_member(token, &workspace, &viewer.email, "VIEWER")
        .await;
    app.add_member(token, &workspace, &editor.email, "EDITOR")
        .await;
    let seen = app
        .gql_as(
            &viewer.access_token,
            "query($id: ID!) { connection(id: $id) { name } }",
            json!({"id": connection}),
        )
        .await;
    assert_eq!(data(&seen)["connection"]["name"], "main");
    let refused = app
        .try_create_connection(
            &viewer.access_token,
            &workspace,
            "mine",
            json!({"kind": "bearer", "token": "x"}),
            None,
        )
        .await;
    assert_error_code(&refused, "FORBIDDEN");
    let editor_create = app
        .try_create_connection(
            &editor.access_token,
            &workspace,
            "mine",
            json!({"kind": "bearer", "token": "x"}),
            None,
        )
        .await;
    assert_error_code(&editor_create, "FORBIDDEN");
    let editor_test = app.test_connection(&editor.access_token, &connection).await;
    assert_eq!(data(&editor_test)["testConnection"]["ok"], true);
    let viewer_test = app.test_connection(&viewer.access_token, &connection).await;
    assert_error_code(&viewer_test, "FORBIDDEN");

    // Scopes: CONNECTIONS_READ lists; CONNECTIONS_WRITE creates.
    let reader = app
        .create_token(token, &workspace, &["CONNECTIONS_READ"])
        .await;
    let listed = app
        .gql_as(
            &reader.token,
            "query($id: ID!) { workspace(id: $id) { connections { name } } }",
            json!({"id": workspace}),
        )
        .await;
    assert_eq!(
        data(&listed)["workspace"]["connections"],
        json!([{"name": "main"}])
    );
    let reader_create = app
        .try_create_connection(
            &reader.token,
            &workspace,
            "r",
            json!({"kind": "bearer", "token": "x"}),
            None,
        )
        .await;
    assert_error_code(&reader_create, "FORBIDDEN");
    let writer = app
        .create_token(token, &workspace, &["CONNECTIONS_WRITE"])
        .await;
    let writer_create = app
        .try_create_connection(
            &writer.token,
            &workspace,
            "w",
            json!({"kind": "bearer", "token": "x"}),
            None,
        )
        .await;
    assert_eq!(data(&writer_create)["createConnection"]["name"], "w");
    let no_scope = app
        .create_token(token, &workspace, &["WORKFLOWS_READ"])
        .await;
    let hidden = app
        .gql_as(
            &no_scope.token,
            "query($id: ID!) { workspace(id: $id) { connections { name } } }",
            json!({"id": workspace}),
        )
        .await;
    assert_error_code(&hidden, "FORBIDDEN");
}

#[tokio::test]
async fn bad_credentials_and_settings_are_refused_with_a_reason_that_never_echoes_them() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.com", "Owner").await;
    let token = owner.access_token.as_str();
    let workspace = app.create_workspace(token, "Acme").await;
    let cases = [
        (
            json!({"kind": "bearer", "token": format!("{BEARER_SECRET}\r\nX-Evil: 1")}),
            None,
            "control characters",
        ),
        (
            json!({"kind": "bearer", "token": [BEARER_SECRET]}),
            None,
            "credentials",
        ),
        (
            json!({"kind": "oauth3", "token": BEARER_SECRET}),
            None,
            "unknown variant",
        ),
        (json!({"kind": "bearer"}), None, "missing field `token`"),
        (
            json!({"kind": "apiKey", "in": "header", "name": "bad name", "value": BEARER_SECRET}),
            None,
            "header name",
        ),
        (
            json!({"kind": "basic", "username": "a:b", "password": BASIC_PASSWORD}),
            None,
            "username",
        ),
        (json!(BEARER_SECRET), None, "object"),
        (
            json!({"kind": "bearer", "token": BEARER_SECRET}),
            Some(json!({"testUrl": "ftp://example.com"})),
            "testUrl",
        ),
        (
            json!({"kind": "bearer", "token": BEARER_SECRET}),
            Some(json!({"colour": "red"})),
            "colour",
        ),
    ];
    for (credentials, settings, reason) in cases {
        let response = app
            .try_create_connection(token, &workspace, "c", credentials.clone(), settings)
            .await;
        assert_eq!(
            error_codes(&response),
            vec!["BAD_USER_INPUT"],
            "{credentials}: {}",
            pretty(&response)
        );
        let message = first_error(&response)["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains(reason),
            "{credentials}: `{message}` should mention {reason}"
        );
        assert_no_secret(&response.to_string(), "a refusal");
    }
    let unknown = app
        .gql_as(
            token,
            "mutation($ws: ID!) { createConnection(input: {workspaceId: $ws, connector: \"telepathy\", name: \"x\", credentials: {kind: \"bearer\", token: \"t\"}}) { id } }",
            json!({"ws": workspace}),
        )
        .await;
    assert_error_code(&unknown, "BAD_USER_INPUT");
    let first = app
        .create_connection(
            token,
            &workspace,
            "same",
            json!({"kind": "bearer", "token": "t1"}),
        )
        .await;
    assert!(!first.is_empty());
    let duplicate = app
        .try_create_connection(
            token,
            &workspace,
            "same",
            json!({"kind": "bearer", "token": "t2"}),
            None,
        )
        .await;
    assert_error_code(&duplicate, "CONFLICT");
    let listed = app
        .gql_as(
            token,
            "query($id: ID!) { workspace(id: $id) { connections { name } } }",
            json!({"id": workspace}),
        )
        .await;
    assert_eq!(
        data(&listed)["workspace"]["connections"],
        json!([{"name": "same"}])
    );
    let types = app
        .gql_as(
            token,
            "{ connectorTypes { key name authKinds operations operationSchemas { key parameters output } settingsSchema } }",
            json!({}),
        )
        .await;
    let http = data(&types)["connectorTypes"]
        .as_array()
        .and_then(|types| types.iter().find(|t| t["key"] == "http").cloned())
        .unwrap_or_default();
    assert_eq!(
        http["authKinds"],
        json!(["bearer", "apiKey", "basic", "oauth2"])
    );
    assert_eq!(http["operations"], json!(["request"]));
    assert_eq!(http["operationSchemas"][0]["parameters"]["type"], "object");
}
