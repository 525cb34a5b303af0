//! Connectors: what each outside service offers a workflow, and how it is reached.
//!
//! The SDK is [`Connector`]: its [`ConnectorInfo`] (auth kinds, operations and polling
//! triggers with JSON Schemas of their parameters and outputs, the non-secret settings of
//! a connection), `execute` for a `connector` step, `test` for `testConnection`, and
//! optionally `poll` (polling triggers, with a cursor) and webhook setup and teardown.
//! [`Registry`] holds them by key; the API lists it as `connectorTypes`.
//!
//! Invariants:
//! - a connection may only be created for a connector in the registry, with an auth kind
//!   that connector declares and settings its `check_settings` accepts (plus the generic
//!   [`MAX_REQUESTS_PER_SECOND`] setting every connection may have, checked here and
//!   stripped before the connector sees its settings);
//! - a workflow is stored only if every `connector` step and `trigger.poll` names a
//!   connector, operation or trigger of the registry ([`Registry::check_definition`],
//!   which the API runs next to the domain's validator, since the domain cannot see the
//!   registry);
//! - every outbound request of a connector goes through [`http::HttpClient`] (or, for
//!   other protocols, is vetted by [`http::HttpClient::vet_host`] first), so the SSRF
//!   rules hold for connectors as for `http.request` steps;
//! - a connector's errors and outputs are redacted by the caller with the connection's
//!   `Redactor`; connectors still never put a credential in a message on purpose.

pub mod builtin;
pub mod call;
pub mod http;
pub mod oauth;

use std::collections::BTreeMap;
use std::sync::Arc;

use std::time::Duration;

use aos_domain::connection::{AuthKind, Connection, ConnectionTestResult, Credentials, Redactor};
use aos_domain::ports::ConnectionTester;
use aos_domain::workflow::node_types::NodeKind;
use aos_domain::workflow::{Definition, Problem};
use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::http::HttpClient;

/// An operation a connector performs for a step.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationInfo {
    pub key: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    /// JSON Schema of the step's `params`, from which the editor renders a form.
    pub parameters: Value,
    /// JSON Schema of what the step outputs.
    pub output: Value,
}

/// What a connector is, for listing and for checking connections.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorInfo {
    pub key: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub auth_kinds: Vec<AuthKind>,
    pub operations: Vec<OperationInfo>,
    /// Polling triggers (`trigger.poll` nodes): same shape as operations; `output` is
    /// the schema of one new item, which becomes a run's trigger output.
    pub triggers: Vec<OperationInfo>,
    /// JSON Schema of a connection's non-secret `settings`.
    pub settings: Value,
}

impl ConnectorInfo {
    pub fn operation(&self, key: &str) -> Option<&OperationInfo> {
        self.operations
            .iter()
            .find(|operation| operation.key == key)
    }

    pub fn trigger(&self, key: &str) -> Option<&OperationInfo> {
        self.triggers.iter().find(|trigger| trigger.key == key)
    }
}

/// What a connector works with for one call: the connection (its settings), its opened
/// credentials, and the SSRF-safe HTTP client.
pub struct ConnectorContext<'a> {
    pub connection: &'a Connection,
    pub credentials: &'a Credentials,
    pub http: &'a HttpClient,
    /// Stable across retries of one step; sent where the service supports it.
    pub idempotency_key: Option<&'a str>,
}

/// Why a connector call failed. The caller decides what follows: a step fails
/// (`Invalid`, `Failed`), a token is refreshed and the call tried once more
/// (`Unauthorized`), or the connection waits (`RateLimited`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectorError {
    /// The parameters are wrong; trying again will not help.
    #[error("{0}")]
    Invalid(String),
    /// The service refused the credentials (HTTP 401 or its equivalent).
    #[error("the service refused the credentials: {0}")]
    Unauthorized(String),
    /// The service asked us to slow down, for `retry_after` if it said.
    #[error("the service is rate limiting this connection: {message}")]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// Anything else: a 5xx, a transport error, an unexpected answer.
    #[error("{0}")]
    Failed(String),
    /// The connector does not offer this.
    #[error("{0}")]
    Unsupported(String),
}

/// New items a poll found, oldest first, and the cursor to poll from next time.
#[derive(Debug, Clone, PartialEq)]
pub struct Polled {
    pub items: Vec<Value>,
    pub cursor: Value,
}

/// A webhook a connector registered with its service, to tear it down later.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRegistration {
    pub id: String,
    pub data: Value,
}

#[async_trait]
pub trait Connector: Send + Sync {
    fn info(&self) -> &ConnectorInfo;

    /// Whether `settings` suit this connector; the message says what is wrong.
    fn check_settings(&self, settings: &Value) -> Result<(), String>;

    /// Runs `operation` (a key of `info().operations`) with `params`, already rendered
    /// from the step's templates. Returns the step's output.
    async fn execute(
        &self,
        ctx: &ConnectorContext<'_>,
        operation: &str,
        params: &Value,
    ) -> Result<Value, ConnectorError>;

    /// Checks that the connection works, with a request that changes nothing.
    async fn test(&self, ctx: &ConnectorContext<'_>) -> ConnectionTestResult;

    /// Items of polling trigger `trigger` newer than `cursor` (`None`: the first poll,
    /// which should return no items and only a cursor, so a new trigger does not fire
    /// for everything that already exists).
    async fn poll(
        &self,
        _ctx: &ConnectorContext<'_>,
        trigger: &str,
        _params: &Value,
        _cursor: Option<&Value>,
    ) -> Result<Polled, ConnectorError> {
        Err(ConnectorError::Unsupported(format!(
            "the `{}` connector has no polling trigger `{trigger}`",
            self.info().key
        )))
    }

    /// Registers `target_url` with the service to receive `trigger`'s events.
    async fn setup_webhook(
        &self,
        _ctx: &ConnectorContext<'_>,
        trigger: &str,
        _params: &Value,
        _target_url: &str,
    ) -> Result<WebhookRegistration, ConnectorError> {
        Err(ConnectorError::Unsupported(format!(
            "the `{}` connector cannot register webhooks for `{trigger}`",
            self.info().key
        )))
    }

    async fn teardown_webhook(
        &self,
        _ctx: &ConnectorContext<'_>,
        _registration: &WebhookRegistration,
    ) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// The connectors this build knows, by key.
#[derive(Clone)]
pub struct Registry {
    connectors: BTreeMap<&'static str, Arc<dyn Connector>>,
}

impl Registry {
    /// Every built-in connector.
    pub fn builtin() -> Self {
        let mut registry = Self {
            connectors: BTreeMap::new(),
        };
        for connector in builtin::all() {
            registry.register(connector);
        }
        registry
    }

    pub fn register(&mut self, connector: Arc<dyn Connector>) {
        self.connectors.insert(connector.info().key, connector);
    }

    pub fn get(&self, key: &str) -> Option<&Arc<dyn Connector>> {
        self.connectors.get(key)
    }

    /// Ordered by key.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Connector>> {
        self.connectors.values()
    }

    /// Checks that a connection of `connector` may be created or changed as asked.
    pub fn check_connection(
        &self,
        connector: &str,
        auth_kind: AuthKind,
        settings: &Value,
    ) -> Result<(), String> {
        let Some(found) = self.get(connector) else {
            let known: Vec<&str> = self.connectors.keys().copied().collect();
            return Err(format!(
                "unknown connector `{connector}`; known: {}",
                known.join(", ")
            ));
        };
        let info = found.info();
        if !info.auth_kinds.contains(&auth_kind) {
            let kinds: Vec<&str> = info.auth_kinds.iter().map(|kind| kind.as_str()).collect();
            return Err(format!(
                "the `{connector}` connector does not take `{}` credentials; it takes {}",
                auth_kind.as_str(),
                kinds.join(", ")
            ));
        }
        check_settings_size(settings)?;
        let own_settings = without_generic_settings(settings)?;
        found
            .check_settings(&own_settings)
            .map_err(|error| format!("settings: {error}"))
    }

    /// What the registry has to say about a validated definition: every `connector` step
    /// (loop bodies included) and `trigger.poll` whose connector, operation or trigger it
    /// does not know, each with the known ones listed.
    pub fn check_definition(&self, definition: &Definition) -> Vec<Problem> {
        let mut problems = Vec::new();
        for node in definition.nodes() {
            let id = node.id().as_str();
            match node.kind() {
                NodeKind::Connector(config) => self.check_use(
                    Use::Operation,
                    &config.connector,
                    &config.operation,
                    |message| problems.push(Problem::node(id, format!("config/{message}"))),
                ),
                NodeKind::PollTrigger(config) => {
                    self.check_use(
                        Use::Trigger,
                        &config.connector,
                        &config.trigger,
                        |message| {
                            problems.push(Problem::node(id, format!("config/{message}")));
                        },
                    );
                }
                NodeKind::Loop(config) => {
                    for (index, step) in config.steps.iter().enumerate() {
                        if let NodeKind::Connector(step_config) = &step.kind {
                            self.check_use(
                                Use::Operation,
                                &step_config.connector,
                                &step_config.operation,
                                |message| {
                                    problems.push(Problem::node(
                                        id,
                                        format!("config/steps/{index}/config/{message}"),
                                    ));
                                },
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        problems
    }

    /// [`Registry::check_definition`] for a definition as a client sent it, which may
    /// still break the domain's rules: so the API reports the registry's problems with
    /// the validator's, in one answer. Nodes too broken to read are the validator's to
    /// report, and are passed over here.
    pub fn check_definition_json(&self, raw: &Value) -> Vec<Problem> {
        let mut problems = Vec::new();
        let nodes = raw.get("nodes").and_then(Value::as_array);
        for node in nodes.into_iter().flatten() {
            let Some(id) = node.get("id").and_then(Value::as_str) else {
                continue;
            };
            let config = node.get("config").and_then(Value::as_object);
            match node.get("type").and_then(Value::as_str) {
                Some("connector") => self.check_raw_use(Use::Operation, config, |message| {
                    problems.push(Problem::node(id, format!("config/{message}")));
                }),
                Some("trigger.poll") => self.check_raw_use(Use::Trigger, config, |message| {
                    problems.push(Problem::node(id, format!("config/{message}")));
                }),
                Some("loop") => {
                    let steps = config
                        .and_then(|config| config.get("steps"))
                        .and_then(Value::as_array);
                    for (index, step) in steps.into_iter().flatten().enumerate() {
                        if step.get("type").and_then(Value::as_str) != Some("connector") {
                            continue;
                        }
                        let step_config = step.get("config").and_then(Value::as_object);
                        self.check_raw_use(Use::Operation, step_config, |message| {
                            problems.push(Problem::node(
                                id,
                                format!("config/steps/{index}/config/{message}"),
                            ));
                        });
                    }
                }
                _ => {}
            }
        }
        problems
    }

    fn check_raw_use(
        &self,
        usage: Use,
        config: Option<&Map<String, Value>>,
        report: impl FnMut(String),
    ) {
        let key_of = |field: &str| {
            config
                .and_then(|config| config.get(field))
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|key| !key.is_empty())
        };
        if let (Some(connector), Some(key)) = (key_of("connector"), key_of(usage.field())) {
            self.check_use(usage, connector, key, report);
        }
    }

    /// Reports, as `<field>: <message>`, a `connector` or `key` the registry lacks.
    fn check_use(&self, usage: Use, connector: &str, key: &str, mut report: impl FnMut(String)) {
        let Some(found) = self.get(connector) else {
            let known: Vec<&str> = self.connectors.keys().copied().collect();
            report(format!(
                "connector: unknown connector `{connector}`; known: {}",
                known.join(", ")
            ));
            return;
        };
        let info = found.info();
        let offered = match usage {
            Use::Operation => &info.operations,
            Use::Trigger => &info.triggers,
        };
        if offered.iter().any(|offer| offer.key == key) {
            return;
        }
        let listed: Vec<&str> = offered.iter().map(|offer| offer.key).collect();
        let has = if listed.is_empty() {
            "it has none".to_owned()
        } else {
            format!("it has {}", listed.join(", "))
        };
        report(format!(
            "{}: the `{connector}` connector has no {} `{key}`; {has}",
            usage.field(),
            usage.noun()
        ));
    }
}

/// What a node asks of a connector.
#[derive(Debug, Clone, Copy)]
enum Use {
    /// A `connector` step's `operation`.
    Operation,
    /// A `trigger.poll`'s `trigger`.
    Trigger,
}

impl Use {
    fn field(self) -> &'static str {
        match self {
            Use::Operation => "operation",
            Use::Trigger => "trigger",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Use::Operation => "operation",
            Use::Trigger => "polling trigger",
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.connectors.keys()).finish()
    }
}

/// `testConnection` for any connector of the registry.
#[derive(Clone)]
pub struct ConnectorTester {
    pub registry: Registry,
    pub http: HttpClient,
}

#[async_trait]
impl ConnectionTester for ConnectorTester {
    async fn test(
        &self,
        connection: &Connection,
        credentials: &Credentials,
    ) -> ConnectionTestResult {
        let Some(connector) = self.registry.get(&connection.connector) else {
            return ConnectionTestResult {
                ok: false,
                message: format!(
                    "this server has no `{}` connector any more",
                    connection.connector
                ),
            };
        };
        let ctx = ConnectorContext {
            connection,
            credentials,
            http: &self.http,
            idempotency_key: None,
        };
        let mut result = connector.test(&ctx).await;
        result.message = Redactor::for_credentials(credentials)
            .redact_text(&result.message)
            .into_owned();
        result
    }
}

/// Settings are a few options, not a place to store data.
pub const MAX_SETTINGS_BYTES: usize = 16 * 1024;

/// The setting any connection may have, whatever its connector: at most this many
/// requests per second through the connection, from each process (see the engine's
/// gate). A number greater than 0 and at most [`MAX_REQUESTS_PER_SECOND_LIMIT`].
pub const MAX_REQUESTS_PER_SECOND: &str = "maxRequestsPerSecond";
/// Above this, a limit limits nothing a process could send anyway.
pub const MAX_REQUESTS_PER_SECOND_LIMIT: f64 = 10_000.0;

/// The [`MAX_REQUESTS_PER_SECOND`] of a connection's settings, if it has a valid one.
pub fn max_requests_per_second(settings: &Value) -> Option<f64> {
    settings.get(MAX_REQUESTS_PER_SECOND).and_then(request_rate)
}

fn request_rate(value: &Value) -> Option<f64> {
    value
        .as_f64()
        .filter(|rate| *rate > 0.0 && *rate <= MAX_REQUESTS_PER_SECOND_LIMIT)
}

/// `settings` without the generic ones, after checking them: what the connector's own
/// `check_settings` judges.
fn without_generic_settings(settings: &Value) -> Result<Value, String> {
    let mut own = settings.clone();
    let Some(fields) = own.as_object_mut() else {
        return Ok(own);
    };
    if let Some(rate) = fields.remove(MAX_REQUESTS_PER_SECOND)
        && !rate.is_null()
        && request_rate(&rate).is_none()
    {
        return Err(format!(
            "settings: {MAX_REQUESTS_PER_SECOND} must be a number greater than 0 and at most {MAX_REQUESTS_PER_SECOND_LIMIT}"
        ));
    }
    Ok(own)
}

fn check_settings_size(settings: &Value) -> Result<(), String> {
    if !settings.is_object() {
        return Err("settings must be an object".to_owned());
    }
    if settings.to_string().len() > MAX_SETTINGS_BYTES {
        return Err(format!(
            "settings must be at most {MAX_SETTINGS_BYTES} bytes of JSON"
        ));
    }
    Ok(())
}

/// Reads an optional absolute http(s) URL from `settings[field]`.
pub fn optional_url(settings: &Value, field: &str) -> Result<Option<url::Url>, String> {
    match settings.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(raw)) => {
            let url = url::Url::parse(raw)
                .map_err(|error| format!("{field} must be an absolute URL ({error})"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!("{field} must be an http or https URL"));
            }
            Ok(Some(url))
        }
        Some(_) => Err(format!("{field} must be a string")),
    }
}

#[cfg(test)]
mod tests;
