//! The node types of the contract, plus `merge`, `loop`, `connector` and `trigger.poll`,
//! and their validated configurations.
//!
//! Only the validator builds these values inside a [`super::Definition`], so code that
//! receives a `Definition` can rely on every range and format documented here. Strings
//! documented as templates still hold their `{{ }}` source: the engine evaluates them when
//! the node runs, since their values depend on the run.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::ids::ConnectionId;

/// Every node type a definition may use, by its contract name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeType {
    ManualTrigger,
    WebhookTrigger,
    ScheduleTrigger,
    PollTrigger,
    Set,
    If,
    HttpRequest,
    Connector,
    Code,
    Delay,
    Respond,
    Fail,
    Merge,
    Loop,
}

impl NodeType {
    pub const ALL: [NodeType; 14] = [
        NodeType::ManualTrigger,
        NodeType::WebhookTrigger,
        NodeType::ScheduleTrigger,
        NodeType::PollTrigger,
        NodeType::Set,
        NodeType::If,
        NodeType::HttpRequest,
        NodeType::Connector,
        NodeType::Code,
        NodeType::Delay,
        NodeType::Respond,
        NodeType::Fail,
        NodeType::Merge,
        NodeType::Loop,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::ManualTrigger => "trigger.manual",
            NodeType::WebhookTrigger => "trigger.webhook",
            NodeType::ScheduleTrigger => "trigger.schedule",
            NodeType::PollTrigger => "trigger.poll",
            NodeType::Set => "set",
            NodeType::If => "if",
            NodeType::HttpRequest => "http.request",
            NodeType::Connector => "connector",
            NodeType::Code => "code",
            NodeType::Delay => "delay",
            NodeType::Respond => "respond",
            NodeType::Fail => "fail",
            NodeType::Merge => "merge",
            NodeType::Loop => "loop",
        }
    }

    pub fn is_trigger(self) -> bool {
        matches!(
            self,
            NodeType::ManualTrigger
                | NodeType::WebhookTrigger
                | NodeType::ScheduleTrigger
                | NodeType::PollTrigger
        )
    }

    /// Whether a step of this type acts on the outside world, so that the engine journals
    /// it before it starts and repeats it, on resume, with the same idempotency key.
    pub fn has_side_effects(self) -> bool {
        matches!(self, NodeType::HttpRequest | NodeType::Connector)
    }

    /// Whether a `loop` body may hold a step of this type. A body is a straight line of
    /// steps that finish within one attempt of the loop node: no trigger, no branching
    /// (`if`), no durable wait (`delay`), no answer to a webhook caller (`respond`), and no
    /// graph-level joins or nested loops (`merge`, `loop`).
    pub fn runs_in_loop_body(self) -> bool {
        matches!(
            self,
            NodeType::Set
                | NodeType::HttpRequest
                | NodeType::Connector
                | NodeType::Code
                | NodeType::Fail
        )
    }
}

impl fmt::Display for NodeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for NodeType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// What a node does, with its configuration. Serializes as the contract's `type` and
/// `config` keys of a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "config")]
pub enum NodeKind {
    #[serde(rename = "trigger.manual")]
    ManualTrigger(ManualTriggerConfig),
    #[serde(rename = "trigger.webhook")]
    WebhookTrigger(WebhookTriggerConfig),
    #[serde(rename = "trigger.schedule")]
    ScheduleTrigger(ScheduleTriggerConfig),
    #[serde(rename = "trigger.poll")]
    PollTrigger(PollTriggerConfig),
    #[serde(rename = "set")]
    Set(SetConfig),
    #[serde(rename = "if")]
    If(IfConfig),
    #[serde(rename = "http.request")]
    HttpRequest(HttpRequestConfig),
    #[serde(rename = "connector")]
    Connector(ConnectorConfig),
    #[serde(rename = "code")]
    Code(CodeConfig),
    #[serde(rename = "delay")]
    Delay(DelayConfig),
    #[serde(rename = "respond")]
    Respond(RespondConfig),
    #[serde(rename = "fail")]
    Fail(FailConfig),
    #[serde(rename = "merge")]
    Merge(MergeConfig),
    #[serde(rename = "loop")]
    Loop(LoopConfig),
}

impl NodeKind {
    pub fn node_type(&self) -> NodeType {
        match self {
            NodeKind::ManualTrigger(_) => NodeType::ManualTrigger,
            NodeKind::WebhookTrigger(_) => NodeType::WebhookTrigger,
            NodeKind::ScheduleTrigger(_) => NodeType::ScheduleTrigger,
            NodeKind::PollTrigger(_) => NodeType::PollTrigger,
            NodeKind::Set(_) => NodeType::Set,
            NodeKind::If(_) => NodeType::If,
            NodeKind::HttpRequest(_) => NodeType::HttpRequest,
            NodeKind::Connector(_) => NodeType::Connector,
            NodeKind::Code(_) => NodeType::Code,
            NodeKind::Delay(_) => NodeType::Delay,
            NodeKind::Respond(_) => NodeType::Respond,
            NodeKind::Fail(_) => NodeType::Fail,
            NodeKind::Merge(_) => NodeType::Merge,
            NodeKind::Loop(_) => NodeType::Loop,
        }
    }
}

/// A value that is either given in the definition or computed by one `{{ }}` template
/// when the node runs (the template's result must then have the same type and range,
/// which the engine checks).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Dynamic<T> {
    Fixed(T),
    Template(String),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManualTriggerConfig {
    /// Sample input for the editor's "run" form; never used by a run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_example: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookTriggerConfig {
    pub respond: WebhookResponse,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<WebhookSecret>,
    /// The HTTP methods the hook accepts; never empty, no duplicates.
    pub methods: Vec<HttpMethod>,
}

impl WebhookTriggerConfig {
    pub fn accepts(&self, method: HttpMethod) -> bool {
        self.methods.contains(&method)
    }
}

/// When the webhook answers its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum WebhookResponse {
    /// After the run ends: the `respond` node's status and body, or the run output.
    #[default]
    OnCompletion,
    /// At once, with 202 and the run id.
    Immediately,
}

impl WebhookResponse {
    pub const NAMES: [&'static str; 2] = ["onCompletion", "immediately"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "onCompletion" => Some(Self::OnCompletion),
            "immediately" => Some(Self::Immediately),
            _ => None,
        }
    }
}

/// The shared secret of a signed webhook: at least [`WebhookSecret::MIN_LEN`] characters.
/// Its `Debug` output is redacted so the secret never lands in a log.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub const MIN_LEN: usize = 16;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.chars().count() < Self::MIN_LEN {
            return Err(format!(
                "must be at least {} characters long",
                Self::MIN_LEN
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
}

impl HttpMethod {
    pub const ALL: [HttpMethod; 7] = [
        HttpMethod::Get,
        HttpMethod::Post,
        HttpMethod::Put,
        HttpMethod::Patch,
        HttpMethod::Delete,
        HttpMethod::Head,
        HttpMethod::Options,
    ];

    /// Method names are upper case, as on the wire.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Head => "HEAD",
            HttpMethod::Options => "OPTIONS",
        }
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleTriggerConfig {
    pub cron: CronSchedule,
    #[serde(serialize_with = "serialize_timezone")]
    pub timezone: chrono_tz::Tz,
}

impl ScheduleTriggerConfig {
    /// The first firing strictly after `after`, in UTC; `None` if the schedule never
    /// fires again.
    pub fn next_after(
        &self,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let local = after.with_timezone(&self.timezone);
        self.cron
            .parsed
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&chrono::Utc))
    }
}

fn serialize_timezone<S: Serializer>(tz: &chrono_tz::Tz, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(tz.name())
}

/// A cron expression of 5 fields (minute precision), 6 (with seconds first) or a nickname
/// such as `@daily`, as written (trimmed), with its parsed form. Day-of-month and
/// day-of-week combine as in Vixie cron: either one matching is enough.
#[derive(Debug, Clone, PartialEq)]
pub struct CronSchedule {
    expression: String,
    parsed: croner::Cron,
}

impl CronSchedule {
    /// Longer input is not a cron expression; the bound also keeps the parser's work small.
    pub const MAX_LEN: usize = 200;

    pub fn parse(expression: &str) -> Result<Self, String> {
        let expression = expression.trim();
        if expression.len() > Self::MAX_LEN || !expression.is_ascii() {
            return Err(format!(
                "must be a cron expression of at most {} ASCII characters",
                Self::MAX_LEN
            ));
        }
        let fields = expression.split_whitespace().count();
        if !expression.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!(
                "must have 5 fields (minute hour day-of-month month day-of-week) or 6 (with seconds first), not {fields}"
            ));
        }
        let parsed = croner::parser::CronParser::builder()
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| format!("is not a valid cron expression: {e}"))?;
        Ok(Self {
            expression: expression.to_owned(),
            parsed,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.expression
    }

    pub fn parsed(&self) -> &croner::Cron {
        &self.parsed
    }
}

impl Serialize for CronSchedule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.expression)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetConfig {
    /// The node's output, exactly; string values may be templates.
    pub fields: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IfConfig {
    /// A template string always contains at least one `{{ }}`; its result's truthiness
    /// picks the branch.
    pub condition: Dynamic<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestConfig {
    pub method: HttpMethod,
    /// An absolute http(s) URL, or a template that must evaluate to one.
    pub url: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub query: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    /// `None`: the engine's default timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl HttpRequestConfig {
    pub const MAX_TIMEOUT_MS: u64 = 300_000;
}

/// `connector`: one operation of a connector of the registry (`slack`/`postMessage`),
/// signed with a connection of that connector. Whether the connector and the operation
/// exist is the registry's to say (`aos_connectors::Registry::check_definition`, which the
/// API runs next to the validator); here they are only non-blank keys written out.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorConfig {
    pub connector: String,
    pub operation: String,
    /// A connection id, or a template that must evaluate to one.
    pub connection_id: String,
    /// The operation's parameters; templates anywhere inside, rendered when the step runs.
    pub params: Map<String, Value>,
}

/// `trigger.poll`: while its workflow is active, the connector's polling trigger is
/// asked every `interval_seconds` for items newer than its cursor, and each new item
/// starts one run whose trigger output is the item.
///
/// Everything here is read before any run exists, so nothing may be a template: the
/// connection is named by its id itself, and `params` are sent as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PollTriggerConfig {
    pub connector: String,
    pub trigger: String,
    pub connection_id: ConnectionId,
    pub params: Map<String, Value>,
    /// [`PollTriggerConfig::MIN_INTERVAL_SECONDS`] to
    /// [`PollTriggerConfig::MAX_INTERVAL_SECONDS`].
    pub interval_seconds: u32,
}

impl PollTriggerConfig {
    /// Polling more often than this costs the services more than it tells us.
    pub const MIN_INTERVAL_SECONDS: u32 = 15;
    /// A day.
    pub const MAX_INTERVAL_SECONDS: u32 = 86_400;
    pub const DEFAULT_INTERVAL_SECONDS: u32 = 60;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeLanguage {
    #[default]
    JavaScript,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeConfig {
    pub language: CodeLanguage,
    /// A function body (never a template): non-blank, at most [`CodeConfig::MAX_SOURCE_BYTES`].
    pub source: String,
}

impl CodeConfig {
    pub const MAX_SOURCE_BYTES: usize = 64 * 1024;
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DelayConfig {
    /// Fixed values are at most [`DelayConfig::MAX_MS`].
    pub ms: Dynamic<u64>,
}

impl DelayConfig {
    /// Thirty days.
    pub const MAX_MS: u64 = 2_592_000_000;
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RespondConfig {
    /// Fixed values are 100 to 599.
    pub status: Dynamic<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailConfig {
    /// Non-blank; may be a template.
    pub message: String,
}

/// `merge` joins branches. It runs like any node (once every incoming edge is resolved and
/// at least one was taken) and sees the outputs of the predecessors whose edge into it was
/// taken; a skipped branch contributes nothing, a failed predecessor whose edge was taken
/// (`onError: continue`, an `error` edge) contributes its `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MergeConfig {
    pub mode: MergeMode,
}

/// What a `merge` node outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MergeMode {
    /// An object keyed by predecessor id.
    #[default]
    Object,
    /// The outputs in the definition's edge order.
    Array,
    /// The output of the first taken predecessor in the definition's edge order.
    First,
}

impl MergeMode {
    pub const NAMES: [&'static str; 3] = ["object", "array", "first"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "object" => Some(Self::Object),
            "array" => Some(Self::Array),
            "first" => Some(Self::First),
            _ => None,
        }
    }
}

/// `loop` runs its body, an inline straight line of steps, once per element of `items`,
/// with at most `concurrency` iterations in flight, and outputs an array with one entry
/// per element, in element order: the output of that iteration's last body step.
///
/// Scope: body templates see everything the loop node sees, plus `item` (the current
/// element), `index` (its position from 0) and, as `steps.<id>`, the earlier body steps of
/// the same iteration. A `code` body step gets `item` and `index` as parameters too (and,
/// as before, `run.item` and `run.index`). Nothing outside the body sees body
/// steps: body ids may not repeat a graph node's id, and `item` outside a body is a parse
/// error.
///
/// Failure: a body step that fails (after its own `retry`, waited out in the worker) fails
/// the loop node with an error naming the element's index and the step; iterations in
/// flight are abandoned. The node's own `retry`, `onError` and `error` edges then apply to
/// the loop as a whole.
///
/// Durability: the whole loop is one step of the run's journal, so a loop re-executed
/// after a crash or by a retry runs every iteration again; each body `http.request` sends
/// `Idempotency-Key: {runId}:{loopNodeId}:{index}:{bodyStepId}`, so a receiver can drop
/// the repeats item by item. Journaling each iteration on its own is future work.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoopConfig {
    /// A `{{ }}` template that must evaluate to an array of at most `max_items` elements.
    pub items: String,
    /// 1 to [`LoopConfig::MAX_CONCURRENCY`].
    pub concurrency: u32,
    /// 1 to [`LoopConfig::MAX_ITEMS_LIMIT`]; [`LoopConfig::DEFAULT_MAX_ITEMS`] by default.
    pub max_items: u32,
    /// Never empty; ids unique within the body and distinct from the graph's node ids;
    /// every type is one that [`NodeType::runs_in_loop_body`].
    pub steps: Vec<LoopStep>,
}

impl LoopConfig {
    pub const MAX_CONCURRENCY: u32 = 16;
    pub const DEFAULT_MAX_ITEMS: u32 = 1_000;
    pub const MAX_ITEMS_LIMIT: u32 = 10_000;
    pub const MAX_STEPS: usize = 50;
    /// The longest pause a body step's `retry` may ask for: it is waited out by the worker
    /// inside the loop's attempt, not by the queue.
    pub const MAX_BODY_RETRY_PAUSE_MS: u64 = 60_000;
}

/// One step of a loop body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoopStep {
    pub id: super::definition::NodeId,
    #[serde(flatten)]
    pub kind: NodeKind,
    pub retry: super::retry::RetryPolicy,
}
