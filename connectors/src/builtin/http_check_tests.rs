//! `test_connection` against a real server on loopback: what counts as passing, and that
//! no message ever carries a secret (the module's invariants).

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{bearer_token, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use aos_domain::connection::{
    Connection, ConnectionName, ConnectionStatus, ConnectionTestResult, Credentials, KeyPlacement,
    REDACTED,
};
use aos_domain::ids::{ConnectionId, WorkspaceId};
use aos_domain::ports::ConnectionTester;

use super::test_connection;
use crate::http::{HttpClient, HttpPolicy};
use crate::{ConnectorTester, Registry};

/// Wiremock listens on loopback, which only a client allowing private addresses reaches.
fn client(allow_private: bool) -> HttpClient {
    HttpClient::new(HttpPolicy {
        allow_private,
        connect_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(10),
        ..HttpPolicy::default()
    })
    .expect("the client builds")
}

fn connection(settings: Value, credentials: &Credentials) -> Connection {
    let now = chrono::Utc::now();
    Connection {
        id: ConnectionId::generate(),
        workspace_id: WorkspaceId::generate(),
        name: ConnectionName::parse("Billing API").expect("a connection name"),
        connector: "http".to_owned(),
        auth_kind: credentials.auth_kind(),
        status: ConnectionStatus::Valid,
        settings,
        created_at: now,
        updated_at: now,
        last_tested_at: None,
        last_test_ok: None,
    }
}

fn bearer() -> Credentials {
    Credentials::Bearer {
        token: "tok-7f3a".to_owned(),
    }
}

fn query_key(value: &str) -> Credentials {
    Credentials::ApiKey {
        placement: KeyPlacement::Query,
        name: "api_key".to_owned(),
        value: value.to_owned(),
    }
}

async fn test_against(settings: Value, credentials: &Credentials) -> ConnectionTestResult {
    test_connection(
        &client(true),
        &connection(settings, credentials),
        credentials,
    )
    .await
}

#[tokio::test]
async fn a_test_url_that_accepts_the_signed_request_passes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/health"))
        .and(bearer_token("tok-7f3a"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let settings = json!({"testUrl": format!("{}/health", server.uri())});

    let result = test_against(settings, &bearer()).await;

    assert_eq!(
        result,
        ConnectionTestResult {
            ok: true,
            message: format!("GET {}/health answered HTTP 200", server.uri()),
        }
    );
}

#[tokio::test]
async fn the_message_shows_the_url_without_its_query_where_keys_travel() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(query_param("api_key", "key-91b2"))
        .and(query_param("probe", "1"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let settings = json!({"testUrl": format!("{}/me?probe=1", server.uri())});

    let result = test_against(settings, &query_key("key-91b2")).await;

    assert!(result.ok, "{result:?}");
    assert_eq!(
        result.message,
        format!("GET {}/me answered HTTP 204", server.uri())
    );
}

#[tokio::test]
async fn a_server_that_refuses_the_credentials_fails_the_test_saying_so() {
    for status in [401, 403] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(status))
            .mount(&server)
            .await;
        let settings = json!({"testUrl": server.uri()});

        let result = test_against(settings, &bearer()).await;

        assert!(!result.ok, "{status}");
        assert_eq!(
            result.message,
            format!(
                "GET {}/ answered HTTP {status}: the server refused the credentials",
                server.uri()
            )
        );
    }
}

#[tokio::test]
async fn any_other_error_status_fails_the_test() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;

    let result = test_against(json!({"testUrl": server.uri()}), &bearer()).await;

    assert!(!result.ok);
    assert_eq!(
        result.message,
        format!("GET {}/ answered HTTP 500", server.uri())
    );
}

#[tokio::test]
async fn without_a_test_url_well_formed_credentials_pass() {
    for settings in [
        json!({}),
        json!({"testUrl": null, "baseUrl": "https://example.com"}),
    ] {
        let result = test_against(settings, &bearer()).await;

        assert_eq!(
            result,
            ConnectionTestResult {
                ok: true,
                message: "the credentials are well-formed; set settings.testUrl to check them against a server".to_owned(),
            }
        );
    }
}

#[tokio::test]
async fn a_test_url_that_is_not_a_string_fails_the_test() {
    let result = test_against(json!({"testUrl": 42}), &bearer()).await;

    assert!(!result.ok);
    assert_eq!(result.message, "settings.testUrl must be a URL string");
}

#[tokio::test]
async fn a_transport_error_fails_the_test_and_a_secret_in_the_path_is_redacted() {
    // A port nothing listens on any more: the connection is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = listener.local_addr().expect("its address");
    drop(listener);
    let credentials = query_key("key-91b2");
    let settings = json!({"testUrl": format!("http://{address}/key-91b2/check")});

    let result = test_against(settings, &credentials).await;

    assert!(!result.ok);
    assert!(
        result.message.starts_with(&format!(
            "GET http://{address}/{REDACTED}/check failed: could not connect"
        )),
        "{}",
        result.message
    );
    assert!(!result.message.contains("key-91b2"), "{}", result.message);
}

#[tokio::test]
async fn the_ssrf_rules_apply_to_a_test_as_to_any_step() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let credentials = bearer();
    let connection = connection(json!({"testUrl": server.uri()}), &credentials);

    let result = test_connection(&client(false), &connection, &credentials).await;

    assert!(!result.ok);
    assert!(
        result.message.contains("refused to reach 127.0.0.1"),
        "{}",
        result.message
    );
}

#[tokio::test]
async fn the_port_adapter_runs_the_same_test() {
    let credentials = bearer();
    let tester: &dyn ConnectionTester = &ConnectorTester {
        registry: Registry::builtin(),
        http: client(true),
    };

    let result = tester
        .test(&connection(json!({}), &credentials), &credentials)
        .await;

    assert!(result.ok);
    assert!(
        result
            .message
            .starts_with("the credentials are well-formed")
    );
}
