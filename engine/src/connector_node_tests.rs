//! `connector` steps against a fake connector of a registry, and the connection gate as
//! steps meet it (`http.request` with a connection included). Invariants of the module
//! docs of `connector_node` and `connector_call`: one renewal after a refusal, rate limits
//! waited out within the step's patience, nothing but redacted text leaving the step.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::TimeZone;
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use aos_connectors::http::{HttpClient, HttpPolicy};
use aos_connectors::{
    Connector, ConnectorContext, ConnectorError, ConnectorInfo, OperationInfo, Registry,
};
use aos_domain::connection::{
    AuthKind, Connection, ConnectionName, ConnectionStatus, ConnectionTestResult, Credentials,
    REDACTED,
};
use aos_domain::ids::{ConnectionId, WorkspaceId};
use aos_domain::ports::ConnectionSecrets;
use aos_domain::run::{IdempotencyKey, RunId, StepOutcome};
use aos_domain::workflow::validate_definition;

use crate::code::CodeLimits;
use crate::gate::ConnectionGate;
use crate::loop_node::LoopProgress;
use crate::step::{Attempt, AttemptResult, NodeServices, execute};

const RUN_ID: &str = "0190f1a2-0000-7000-8000-000000000001";
const WORKSPACE_ID: &str = "0190f1a2-0000-7000-8000-0000000000aa";
const CONNECTION_ID: &str = "0190f1a2-0000-7000-8000-0000000000c1";
const OLD_TOKEN: &str = "tok-old-5d1e";
const NEW_TOKEN: &str = "tok-new-88ac";

/// What the fake service answers to one call, in order; once the script is used up it
/// answers with what it received.
#[derive(Debug, Clone)]
enum Answer {
    Echo,
    Refuse,
    SlowDown(Option<Duration>),
    Fail,
    Invalid,
}

/// A connector `fake` with one operation, `echo`, whose service follows a script and
/// records each call: when it came, with which token and idempotency key.
#[derive(Clone)]
struct FakeConnector {
    info: Arc<ConnectorInfo>,
    script: Arc<Mutex<Vec<Answer>>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

#[derive(Debug, Clone)]
struct Call {
    at: Instant,
    token: String,
    key: Option<String>,
}

impl FakeConnector {
    fn new(script: Vec<Answer>) -> Self {
        let operation = OperationInfo {
            key: "echo",
            name: "Echo",
            description: "Answers with its params.",
            parameters: json!({"type": "object"}),
            output: json!({"type": "object"}),
        };
        Self {
            info: Arc::new(ConnectorInfo {
                key: "fake",
                name: "Fake",
                description: "A scripted service.",
                auth_kinds: vec![AuthKind::Bearer],
                operations: vec![operation],
                triggers: Vec::new(),
                settings: json!({"type": "object"}),
            }),
            script: Arc::new(Mutex::new(script)),
            calls: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl Connector for FakeConnector {
    fn info(&self) -> &ConnectorInfo {
        &self.info
    }

    fn check_settings(&self, _settings: &Value) -> Result<(), String> {
        Ok(())
    }

    async fn execute(
        &self,
        ctx: &ConnectorContext<'_>,
        operation: &str,
        params: &Value,
    ) -> Result<Value, ConnectorError> {
        let Credentials::Bearer { token } = ctx.credentials else {
            return Err(ConnectorError::Invalid("bearer only".to_owned()));
        };
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Call {
                at: Instant::now(),
                token: token.clone(),
                key: ctx.idempotency_key.map(str::to_owned),
            });
        let answer = {
            let mut script = self.script.lock().unwrap_or_else(PoisonError::into_inner);
            if script.is_empty() {
                Answer::Echo
            } else {
                script.remove(0)
            }
        };
        match answer {
            Answer::Echo => Ok(json!({
                "operation": operation,
                "params": params,
                "sentWith": format!("Bearer {token}"),
            })),
            Answer::Refuse => Err(ConnectorError::Unauthorized(
                "HTTP 401: invalid_auth".to_owned(),
            )),
            Answer::SlowDown(retry_after) => Err(ConnectorError::RateLimited {
                retry_after,
                message: "HTTP 429".to_owned(),
            }),
            Answer::Fail => Err(ConnectorError::Failed(format!(
                "HTTP 500: bad token {token}"
            ))),
            Answer::Invalid => Err(ConnectorError::Invalid(
                "params.channel is required".to_owned(),
            )),
        }
    }

    async fn test(&self, _ctx: &ConnectorContext<'_>) -> ConnectionTestResult {
        ConnectionTestResult {
            ok: true,
            message: "fine".to_owned(),
        }
    }
}

fn bearer(token: &str) -> Credentials {
    Credentials::Bearer {
        token: token.to_owned(),
    }
}

fn connection(connector: &str, settings: Value) -> Connection {
    let now = chrono::Utc::now();
    Connection {
        id: CONNECTION_ID.parse().expect("a connection id"),
        workspace_id: WORKSPACE_ID.parse().expect("a workspace id"),
        name: ConnectionName::parse("Team chat").expect("a name"),
        connector: connector.to_owned(),
        auth_kind: AuthKind::Bearer,
        status: ConnectionStatus::Valid,
        settings,
        created_at: now,
        updated_at: now,
        last_tested_at: None,
        last_test_ok: None,
    }
}

/// The vault of the run's workspace: one connection, and new credentials after a
/// refusal if it has them (otherwise the port's default refusal).
struct Secrets {
    connection: Connection,
    credentials: Credentials,
    renewed: Option<Credentials>,
    renewals: AtomicUsize,
}

#[async_trait]
impl ConnectionSecrets for Secrets {
    async fn open_connection(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
    ) -> Result<(Connection, Credentials), String> {
        if id != self.connection.id || workspace_id != self.connection.workspace_id {
            return Err(format!("connection `{id}` not found"));
        }
        Ok((self.connection.clone(), self.credentials.clone()))
    }

    async fn renew_after_refusal(
        &self,
        _workspace_id: WorkspaceId,
        _id: ConnectionId,
    ) -> Result<(Connection, Credentials), String> {
        self.renewals.fetch_add(1, Ordering::SeqCst);
        match &self.renewed {
            Some(credentials) => Ok((self.connection.clone(), credentials.clone())),
            None => Err("the service refused the connection's credentials".to_owned()),
        }
    }
}

fn secrets(connection: Connection, renewed: Option<Credentials>) -> Arc<Secrets> {
    Arc::new(Secrets {
        connection,
        credentials: bearer(OLD_TOKEN),
        renewed,
        renewals: AtomicUsize::new(0),
    })
}

fn services(fake: &FakeConnector, secrets: Arc<Secrets>) -> NodeServices {
    let mut connectors = Registry::builtin();
    connectors.register(Arc::new(fake.clone()));
    NodeServices {
        http: HttpClient::new(HttpPolicy {
            allow_private: true,
            ..HttpPolicy::default()
        })
        .expect("an HTTP client"),
        code_limits: CodeLimits::default(),
        secrets: Some(secrets),
        connectors,
        gate: ConnectionGate::new(),
    }
}

fn connector_node(config: Value) -> Value {
    json!({"id": "n", "type": "connector", "config": config})
}

fn echo(params: Value) -> Value {
    connector_node(json!({"connector": "fake", "operation": "echo",
        "connectionId": CONNECTION_ID, "params": params}))
}

async fn run(node: Value, services: &NodeServices) -> AttemptResult {
    let definition = validate_definition(&json!({
        "nodes": [{"id": "start", "type": "trigger.manual"}, node],
        "edges": [{"from": "start", "to": "n"}]
    }))
    .unwrap_or_else(|problems| panic!("{problems:?}"));
    let node = definition.node("n").expect("node n");
    let run_id: RunId = RUN_ID.parse().expect("a run id");
    let key = IdempotencyKey::for_step(run_id, node.id());
    let scope = json!({
        "trigger": {"channel": "#ops", "names": ["ada", "bob"]},
        "steps": {},
        "vars": {},
        "run": {"id": RUN_ID, "workflowId": "w1"}
    });
    let now = chrono::Utc
        .timestamp_millis_opt(1_000_000)
        .single()
        .expect("time");
    let attempt = Attempt {
        workspace_id: WORKSPACE_ID.parse().expect("a workspace id"),
        scope: &scope,
        input: &Value::Null,
        inputs: &[],
        idempotency_key: &key,
        started_at: now,
        now,
        loop_progress: LoopProgress::default(),
    };
    execute(node, attempt, services).await
}

fn succeeded(result: AttemptResult) -> Value {
    match result {
        AttemptResult::Finished(StepOutcome::Succeeded(output)) => output,
        other => panic!("expected success, got {other:?}"),
    }
}

fn failed(result: AttemptResult) -> String {
    match result {
        AttemptResult::Finished(StepOutcome::Failed(message)) => message,
        other => panic!("expected failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_connector_step_runs_its_operation_with_rendered_params_and_the_step_key() {
    let fake = FakeConnector::new(Vec::new());
    let services = services(&fake, secrets(connection("fake", json!({})), None));

    let output = succeeded(
        run(
            echo(json!({"channel": "{{ trigger.channel }}", "to": "{{ trigger.names }}"})),
            &services,
        )
        .await,
    );

    assert_eq!(output["operation"], "echo");
    assert_eq!(
        output["params"],
        json!({"channel": "#ops", "to": ["ada", "bob"]})
    );
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].key.as_deref(), Some(&*format!("{RUN_ID}:n")));
}

#[tokio::test]
async fn secrets_in_the_output_and_the_error_are_redacted() {
    let fake = FakeConnector::new(vec![Answer::Echo, Answer::Fail]);
    let services = services(&fake, secrets(connection("fake", json!({})), None));

    let output = succeeded(run(echo(json!({"echo": OLD_TOKEN})), &services).await);
    let error = failed(run(echo(json!({})), &services).await);

    assert_eq!(output["sentWith"], format!("Bearer {REDACTED}"));
    assert_eq!(output["params"]["echo"], REDACTED);
    assert!(!output.to_string().contains(OLD_TOKEN), "{output}");
    assert_eq!(error, format!("HTTP 500: bad token {REDACTED}"));
}

#[tokio::test]
async fn a_refusal_renews_the_credentials_once_and_tries_again_with_them() {
    let fake = FakeConnector::new(vec![Answer::Refuse]);
    let vault = secrets(connection("fake", json!({})), Some(bearer(NEW_TOKEN)));
    let services = services(&fake, Arc::clone(&vault));

    let output = succeeded(run(echo(json!({"both": [OLD_TOKEN, NEW_TOKEN]})), &services).await);

    let tokens: Vec<String> = fake.calls().into_iter().map(|call| call.token).collect();
    assert_eq!(tokens, [OLD_TOKEN, NEW_TOKEN]);
    assert_eq!(vault.renewals.load(Ordering::SeqCst), 1);
    assert_eq!(output["sentWith"], format!("Bearer {REDACTED}"));
    assert_eq!(output["params"]["both"], json!([REDACTED, REDACTED]));
}

#[tokio::test]
async fn a_second_refusal_after_renewing_fails_the_step() {
    let fake = FakeConnector::new(vec![Answer::Refuse, Answer::Refuse]);
    let vault = secrets(connection("fake", json!({})), Some(bearer(NEW_TOKEN)));
    let services = services(&fake, Arc::clone(&vault));

    let error = failed(run(echo(json!({})), &services).await);

    assert_eq!(
        error,
        "the service refused the credentials: HTTP 401: invalid_auth"
    );
    assert_eq!(fake.calls().len(), 2);
    assert_eq!(vault.renewals.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refusal_that_cannot_be_renewed_fails_with_the_services_message() {
    let fake = FakeConnector::new(vec![Answer::Refuse]);
    let vault = secrets(connection("fake", json!({})), None);
    let services = services(&fake, Arc::clone(&vault));

    let error = failed(run(echo(json!({})), &services).await);

    assert_eq!(
        error,
        "the service refused the credentials: HTTP 401: invalid_auth"
    );
    assert_eq!(fake.calls().len(), 1);
    assert_eq!(vault.renewals.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_and_the_call_tried_again() {
    let fake = FakeConnector::new(vec![Answer::SlowDown(Some(Duration::from_millis(300)))]);
    let services = services(&fake, secrets(connection("fake", json!({})), None));

    let output = succeeded(run(echo(json!({"n": 1})), &services).await);

    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    let waited = calls[1].at - calls[0].at;
    assert!(waited >= Duration::from_millis(290), "{waited:?}");
    assert_eq!(output["params"], json!({"n": 1}));
    assert_eq!(
        calls[0].key, calls[1].key,
        "the same idempotency key both times"
    );
}

#[tokio::test]
async fn three_rate_limits_in_a_row_fail_the_step_naming_the_wait() {
    let pause = Answer::SlowDown(Some(Duration::from_millis(50)));
    let fake = FakeConnector::new(vec![pause.clone(), pause.clone(), pause]);
    let services = services(&fake, secrets(connection("fake", json!({})), None));

    let error = failed(run(echo(json!({})), &services).await);

    assert_eq!(
        error,
        "the service is rate limiting this connection: HTTP 429 (it asked to wait 50 ms; gave up after 3 tries)"
    );
    assert_eq!(fake.calls().len(), 3);
}

#[tokio::test]
async fn a_rate_limit_longer_than_a_step_waits_fails_at_once_and_closes_the_connection() {
    let fake = FakeConnector::new(vec![Answer::SlowDown(Some(Duration::from_secs(120)))]);
    let services = services(&fake, secrets(connection("fake", json!({})), None));
    let started = Instant::now();

    let error = failed(run(echo(json!({})), &services).await);
    let next = failed(run(echo(json!({})), &services).await);

    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        error,
        "the service is rate limiting this connection: HTTP 429 (it asked to wait 120 s, longer than a step waits (30 s))"
    );
    assert!(
        next.starts_with("the service asked to wait 1"),
        "the next step does not even call: {next}"
    );
    assert!(next.contains("connection `Team chat`"), "{next}");
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test]
async fn a_rate_limit_without_a_wait_pauses_a_second() {
    let fake = FakeConnector::new(vec![Answer::SlowDown(None)]);
    let services = services(&fake, secrets(connection("fake", json!({})), None));

    succeeded(run(echo(json!({})), &services).await);

    let calls = fake.calls();
    assert!(calls[1].at - calls[0].at >= Duration::from_millis(990));
}

#[tokio::test]
async fn a_rate_limit_closes_the_connection_for_the_other_steps_too() {
    let fake = FakeConnector::new(vec![Answer::SlowDown(Some(Duration::from_millis(600)))]);
    let services = services(&fake, secrets(connection("fake", json!({})), None));

    let (first, second) = tokio::join!(run(echo(json!({"step": 1})), &services), async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        run(echo(json!({"step": 2})), &services).await
    });

    succeeded(first);
    succeeded(second);
    let calls = fake.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    // The second step arrived while the connection was closed: its one call came after
    // the reopening, like the first step's second one.
    assert!(calls[1].at - calls[0].at >= Duration::from_millis(590));
    assert!(calls[2].at - calls[0].at >= Duration::from_millis(590));
}

#[tokio::test]
async fn steps_of_a_paced_connection_wait_their_turn() {
    let fake = FakeConnector::new(Vec::new());
    let paced = connection("fake", json!({"maxRequestsPerSecond": 10}));
    let services = services(&fake, secrets(paced, None));

    for _ in 0..4 {
        succeeded(run(echo(json!({})), &services).await);
    }

    let calls = fake.calls();
    let spread = calls[3].at - calls[0].at;
    assert!(spread >= Duration::from_millis(290), "{spread:?}");
}

#[tokio::test]
async fn invalid_params_fail_the_step_without_another_try() {
    let fake = FakeConnector::new(vec![Answer::Invalid]);
    let services = services(&fake, secrets(connection("fake", json!({})), None));

    let error = failed(run(echo(json!({})), &services).await);

    assert_eq!(error, "params.channel is required");
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test]
async fn a_connection_of_another_connector_is_refused() {
    let fake = FakeConnector::new(Vec::new());
    let services = services(&fake, secrets(connection("http", json!({})), None));

    let error = failed(run(echo(json!({})), &services).await);

    assert_eq!(
        error,
        "connection `Team chat` is a `http` connection, and this step needs a `fake` one"
    );
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn unknown_connectors_and_operations_fail_the_step_naming_what_exists() {
    let fake = FakeConnector::new(Vec::new());
    let services = services(&fake, secrets(connection("fake", json!({})), None));

    let no_operation = failed(
        run(
            connector_node(
                json!({"connector": "fake", "operation": "shout", "connectionId": CONNECTION_ID}),
            ),
            &services,
        )
        .await,
    );
    let no_connector = failed(
        run(
            connector_node(json!({"connector": "telepathy", "operation": "think", "connectionId": CONNECTION_ID})),
            &services,
        )
        .await,
    );

    assert_eq!(
        no_operation,
        "the `fake` connector has no operation `shout`; it has echo"
    );
    assert_eq!(no_connector, "this server has no `telepathy` connector");
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn a_templated_connection_id_is_rendered_and_an_unknown_one_is_not_found() {
    let fake = FakeConnector::new(Vec::new());
    let services = services(&fake, secrets(connection("fake", json!({})), None));
    let other = ConnectionId::generate();

    let found = run(
        connector_node(json!({"connector": "fake", "operation": "echo",
            "connectionId": format!("{{{{ '{CONNECTION_ID}' }}}}")})),
        &services,
    )
    .await;
    let missing = failed(
        run(
            connector_node(json!({"connector": "fake", "operation": "echo", "connectionId": other.to_string()})),
            &services,
        )
        .await,
    );

    succeeded(found);
    assert_eq!(missing, format!("connection `{other}` not found"));
}

#[tokio::test]
async fn a_connector_step_in_a_loop_body_sends_a_key_per_item() {
    let fake = FakeConnector::new(Vec::new());
    let services = services(&fake, secrets(connection("fake", json!({})), None));
    let node = json!({"id": "n", "type": "loop", "config": {"items": "{{ trigger.names }}", "steps": [
        {"id": "post", "type": "connector", "config": {"connector": "fake", "operation": "echo",
         "connectionId": CONNECTION_ID, "params": {"to": "{{ item }}"}}}
    ]}});

    let output = succeeded(run(node, &services).await);

    assert_eq!(output[1]["params"], json!({"to": "bob"}));
    let mut keys: Vec<String> = fake.calls().into_iter().filter_map(|c| c.key).collect();
    keys.sort();
    assert_eq!(
        keys,
        [format!("{RUN_ID}:n:0:post"), format!("{RUN_ID}:n:1:post")]
    );
}

#[tokio::test]
async fn an_http_request_answered_429_with_retry_after_closes_its_connection() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "120"))
        .expect(1)
        .mount(&server)
        .await;
    let fake = FakeConnector::new(Vec::new());
    let services = services(&fake, secrets(connection("http", json!({})), None));
    let node = json!({"id": "n", "type": "http.request",
        "config": {"url": server.uri(), "connectionId": CONNECTION_ID}});

    let first = failed(run(node.clone(), &services).await);
    let second = failed(run(node, &services).await);

    assert_eq!(first, "the server answered HTTP 429");
    let closed = services
        .gate
        .closed_for(CONNECTION_ID.parse().expect("an id"))
        .expect("the connection is closed");
    assert!(closed > Duration::from_secs(100), "{closed:?}");
    assert!(
        second.starts_with("the service asked to wait 1") && second.contains("(30 s)"),
        "{second}"
    );
}

#[tokio::test]
async fn http_requests_of_a_paced_connection_wait_their_turn() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(3)
        .mount(&server)
        .await;
    let fake = FakeConnector::new(Vec::new());
    let paced = connection("http", json!({"maxRequestsPerSecond": 5}));
    let services = services(&fake, secrets(paced, None));
    let node = json!({"id": "n", "type": "http.request",
        "config": {"url": server.uri(), "connectionId": CONNECTION_ID}});
    let started = Instant::now();

    for _ in 0..3 {
        succeeded(run(node.clone(), &services).await);
    }

    assert!(started.elapsed() >= Duration::from_millis(390));
}
