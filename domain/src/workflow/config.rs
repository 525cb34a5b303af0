//! Parsing each node type's `config` into its typed form.
//!
//! Policy: every key a type does not define is a problem (config typos would otherwise
//! silently change what a node does), and every field is checked before giving up, so one
//! pass reports all of a config's problems. Templates are only checked for syntax and scope
//! elsewhere (`expressions`); here a templated value is accepted wherever the type allows
//! one, and a literal value must already be valid.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::expr;

use super::definition::NodeId;
use super::fields::{FieldReader, integer_in, non_blank_string, object, one_of, shown, string};
use super::node_types::{
    CodeConfig, CodeLanguage, ConnectorConfig, CronSchedule, DelayConfig, Dynamic, FailConfig,
    HttpMethod, HttpRequestConfig, IfConfig, LoopConfig, LoopStep, ManualTriggerConfig,
    MergeConfig, MergeMode, NodeKind, NodeType, PollTriggerConfig, RespondConfig,
    ScheduleTriggerConfig, SetConfig, WebhookResponse, WebhookSecret, WebhookTriggerConfig,
};
use super::nodes::read_retry;
use super::retry::RetryPolicy;
use crate::ids::ConnectionId;

/// The typed config of a node of type `node_type`, or `None` after pushing at least one
/// problem onto `problems`. A missing config reads as `{}`.
pub(super) fn parse_config(
    node_type: NodeType,
    config: Option<&Value>,
    problems: &mut Vec<String>,
) -> Option<NodeKind> {
    let empty = Value::Object(Map::new());
    let config = config.filter(|c| !c.is_null()).unwrap_or(&empty);
    let mut reader = FieldReader::new(config, "config", problems)?;
    let kind = match node_type {
        NodeType::ManualTrigger => manual_trigger(&mut reader).map(NodeKind::ManualTrigger),
        NodeType::WebhookTrigger => webhook_trigger(&mut reader).map(NodeKind::WebhookTrigger),
        NodeType::ScheduleTrigger => schedule_trigger(&mut reader).map(NodeKind::ScheduleTrigger),
        NodeType::PollTrigger => poll_trigger(&mut reader).map(NodeKind::PollTrigger),
        NodeType::Set => set(&mut reader).map(NodeKind::Set),
        NodeType::If => if_(&mut reader).map(NodeKind::If),
        NodeType::HttpRequest => http_request(&mut reader).map(NodeKind::HttpRequest),
        NodeType::Connector => connector(&mut reader).map(NodeKind::Connector),
        NodeType::Code => code(&mut reader).map(NodeKind::Code),
        NodeType::Delay => delay(&mut reader).map(NodeKind::Delay),
        NodeType::Respond => respond(&mut reader).map(NodeKind::Respond),
        NodeType::Fail => fail(&mut reader).map(NodeKind::Fail),
        NodeType::Merge => merge(&mut reader).map(NodeKind::Merge),
        NodeType::Loop => loop_(&mut reader).map(NodeKind::Loop),
    };
    let clean = reader.finish();
    kind.filter(|_| clean)
}

fn manual_trigger(r: &mut FieldReader) -> Option<ManualTriggerConfig> {
    Some(ManualTriggerConfig {
        input_example: r.any("inputExample").cloned(),
    })
}

fn webhook_trigger(r: &mut FieldReader) -> Option<WebhookTriggerConfig> {
    let respond = r
        .optional(
            "respond",
            one_of(&WebhookResponse::NAMES, WebhookResponse::parse),
        )
        .unwrap_or_default();
    let secret = r.optional("secret", |v| {
        let text = string(v)?;
        if has_template(text) {
            return Err("must be the secret itself, not a template".to_owned());
        }
        WebhookSecret::parse(text)
    });
    let methods = r
        .optional("methods", webhook_methods)
        .unwrap_or_else(|| vec![HttpMethod::Post]);
    Some(WebhookTriggerConfig {
        respond,
        secret,
        methods,
    })
}

fn webhook_methods(value: &Value) -> Result<Vec<HttpMethod>, String> {
    let items = value
        .as_array()
        .filter(|items| !items.is_empty())
        .ok_or_else(|| "must be a non-empty list of HTTP methods".to_owned())?;
    let mut methods = Vec::with_capacity(items.len());
    for item in items {
        let method = http_method(item)?;
        if methods.contains(&method) {
            return Err(format!("lists {method} twice"));
        }
        methods.push(method);
    }
    Ok(methods)
}

fn http_method(value: &Value) -> Result<HttpMethod, String> {
    let listed = HttpMethod::ALL.map(HttpMethod::as_str).join(", ");
    value
        .as_str()
        .and_then(HttpMethod::parse)
        .ok_or_else(|| format!("must be one of {listed} (upper case)"))
}

fn schedule_trigger(r: &mut FieldReader) -> Option<ScheduleTriggerConfig> {
    let cron = r.required("cron", |v| CronSchedule::parse(string(v)?));
    let timezone = r
        .optional("timezone", |v| {
            let name = string(v)?;
            name.parse::<chrono_tz::Tz>().map_err(|_| {
                format!(
                    "`{}` is not an IANA time zone name (such as `Europe/Paris` or `UTC`)",
                    shown(name)
                )
            })
        })
        .unwrap_or(chrono_tz::UTC);
    Some(ScheduleTriggerConfig {
        cron: cron?,
        timezone,
    })
}

fn poll_trigger(r: &mut FieldReader) -> Option<PollTriggerConfig> {
    let connector = r.required("connector", registry_key);
    let trigger = r.required("trigger", registry_key);
    let connection_id = r.required("connectionId", |v| {
        let text = string(v)?;
        if has_template(text) {
            return Err(
                "must be the connection's id itself, not a template: a polling trigger opens its connection before any run exists"
                    .to_owned(),
            );
        }
        text.trim()
            .parse::<ConnectionId>()
            .map_err(|_| "must be the id of a connection".to_owned())
    });
    let params = r.optional("params", object);
    let templated = params.and_then(first_template_path);
    let interval_seconds = r
        .optional(
            "intervalSeconds",
            integer_in(
                u64::from(PollTriggerConfig::MIN_INTERVAL_SECONDS),
                u64::from(PollTriggerConfig::MAX_INTERVAL_SECONDS),
            ),
        )
        .and_then(|seconds| u32::try_from(seconds).ok())
        .unwrap_or(PollTriggerConfig::DEFAULT_INTERVAL_SECONDS);
    if let Some(path) = templated {
        let params_path = r.child_path("params");
        r.push_all(vec![format!(
            "{params_path}/{path}: a polling trigger sends its params as written, so they cannot hold `{{{{ }}}}` templates"
        )]);
        return None;
    }
    Some(PollTriggerConfig {
        connector: connector?,
        trigger: trigger?,
        connection_id: connection_id?,
        params: params.cloned().unwrap_or_default(),
        interval_seconds,
    })
}

/// The path (`a/0/b`) of the first string inside `params` that holds a template.
fn first_template_path(params: &Map<String, Value>) -> Option<String> {
    fn walk(value: &Value) -> Option<String> {
        match value {
            Value::String(text) => has_template(text).then(String::new),
            Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
                walk(item).map(|rest| join_path(&index.to_string(), &rest))
            }),
            Value::Object(fields) => fields
                .iter()
                .find_map(|(key, item)| walk(item).map(|rest| join_path(&shown(key), &rest))),
            Value::Null | Value::Bool(_) | Value::Number(_) => None,
        }
    }
    fn join_path(head: &str, rest: &str) -> String {
        if rest.is_empty() {
            head.to_owned()
        } else {
            format!("{head}/{rest}")
        }
    }
    params
        .iter()
        .find_map(|(key, value)| walk(value).map(|rest| join_path(&shown(key), &rest)))
}

fn connector(r: &mut FieldReader) -> Option<ConnectorConfig> {
    let connector = r.required("connector", registry_key);
    let operation = r.required("operation", registry_key);
    let connection_id = r.required("connectionId", |v| {
        let text = non_blank_string(v)?;
        if !has_template(text) && text.trim().parse::<ConnectionId>().is_err() {
            return Err("must be the id of a connection or a `{{ }}` expression".to_owned());
        }
        Ok(text.to_owned())
    });
    let params = r.optional("params", object).cloned().unwrap_or_default();
    Some(ConnectorConfig {
        connector: connector?,
        operation: operation?,
        connection_id: connection_id?,
        params,
    })
}

/// A key of the connector registry (a connector, an operation, a trigger), written out:
/// the registry is checked against it before anything runs.
fn registry_key(value: &Value) -> Result<String, String> {
    let text = non_blank_string(value)?;
    if has_template(text) {
        return Err("must be written out, not a template".to_owned());
    }
    Ok(text.trim().to_owned())
}

fn set(r: &mut FieldReader) -> Option<SetConfig> {
    let fields = r.required("fields", object)?;
    Some(SetConfig {
        fields: fields.clone(),
    })
}

fn if_(r: &mut FieldReader) -> Option<IfConfig> {
    let condition = r.required("condition", |v| match v {
        Value::Bool(b) => Ok(Dynamic::Fixed(*b)),
        Value::String(s) if has_template(s) => Ok(Dynamic::Template(s.clone())),
        _ => Err("must be true, false or a `{{ }}` expression".to_owned()),
    })?;
    Some(IfConfig { condition })
}

fn http_request(r: &mut FieldReader) -> Option<HttpRequestConfig> {
    let method = r.optional("method", http_method).unwrap_or(HttpMethod::Get);
    let url = r.required("url", |v| {
        let url = string(v)?;
        if !has_template(url) {
            check_absolute_http_url(url)?;
        }
        Ok(url.to_owned())
    });
    let headers = r.optional("headers", string_map);
    let query = r.optional("query", object).cloned().unwrap_or_default();
    let body = r.any("body").cloned();
    let connection_id = r
        .optional("connectionId", non_blank_string)
        .map(str::to_owned);
    let timeout_ms = r.optional(
        "timeoutMs",
        integer_in(1, HttpRequestConfig::MAX_TIMEOUT_MS),
    );
    Some(HttpRequestConfig {
        method,
        url: url?,
        headers: headers.unwrap_or_default(),
        query,
        body,
        connection_id,
        timeout_ms,
    })
}

fn check_absolute_http_url(raw: &str) -> Result<(), String> {
    let parsed =
        url::Url::parse(raw).map_err(|e| format!("must be an absolute http(s) URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
        return Err("must be an absolute http(s) URL".to_owned());
    }
    Ok(())
}

/// An object whose values are all strings. The error names the first bad entry.
fn string_map(value: &Value) -> Result<BTreeMap<String, String>, String> {
    let entries = object(value)?;
    let mut strings = BTreeMap::new();
    for (key, item) in entries {
        let text = item
            .as_str()
            .ok_or_else(|| format!("the value of `{}` must be a string", shown(key)))?;
        strings.insert(key.clone(), text.to_owned());
    }
    Ok(strings)
}

fn code(r: &mut FieldReader) -> Option<CodeConfig> {
    let language = r
        .optional(
            "language",
            one_of(&["javascript"], |name| {
                (name == "javascript").then_some(CodeLanguage::JavaScript)
            }),
        )
        .unwrap_or_default();
    let source = r.required("source", |v| {
        let source = non_blank_string(v)?;
        if source.len() > CodeConfig::MAX_SOURCE_BYTES {
            return Err(format!(
                "must be at most {} KiB",
                CodeConfig::MAX_SOURCE_BYTES / 1024
            ));
        }
        Ok(source.to_owned())
    })?;
    Some(CodeConfig { language, source })
}

fn delay(r: &mut FieldReader) -> Option<DelayConfig> {
    let ms = r.required("ms", |v| {
        dynamic(
            v,
            integer_in(0, DelayConfig::MAX_MS),
            "an integer from 0 to 2592000000 (30 days)",
        )
    })?;
    Some(DelayConfig { ms })
}

fn respond(r: &mut FieldReader) -> Option<RespondConfig> {
    let status = r
        .optional("status", |v| {
            dynamic(v, status_code, "an integer from 100 to 599")
        })
        .unwrap_or(Dynamic::Fixed(200));
    let body = r.any("body").cloned();
    let headers = r.optional("headers", string_map);
    Some(RespondConfig {
        status,
        body,
        headers: headers.unwrap_or_default(),
    })
}

fn status_code(value: &Value) -> Result<u16, String> {
    value
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| (100..=599).contains(n))
        .ok_or_else(|| "must be an integer from 100 to 599".to_owned())
}

fn fail(r: &mut FieldReader) -> Option<FailConfig> {
    let message = r.required("message", non_blank_string)?;
    Some(FailConfig {
        message: message.to_owned(),
    })
}

fn merge(r: &mut FieldReader) -> Option<MergeConfig> {
    let mode = r
        .optional("mode", one_of(&MergeMode::NAMES, MergeMode::parse))
        .unwrap_or_default();
    Some(MergeConfig { mode })
}

fn loop_(r: &mut FieldReader) -> Option<LoopConfig> {
    let items = r.required("items", |v| {
        let text = string(v)?;
        if !has_template(text) {
            return Err(
                "must be a `{{ }}` expression that evaluates to an array, such as `{{ steps.fetch.body.items }}`"
                    .to_owned(),
            );
        }
        Ok(text.to_owned())
    });
    let concurrency = r
        .optional(
            "concurrency",
            integer_in(1, u64::from(LoopConfig::MAX_CONCURRENCY)),
        )
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1);
    let max_items = r
        .optional(
            "maxItems",
            integer_in(1, u64::from(LoopConfig::MAX_ITEMS_LIMIT)),
        )
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(LoopConfig::DEFAULT_MAX_ITEMS);
    let path = r.child_path("steps");
    let mut messages = Vec::new();
    let steps = match r.any("steps").filter(|v| !v.is_null()) {
        None => {
            messages.push(format!("{path}: is required"));
            None
        }
        Some(raw) => loop_steps(raw, &path, &mut messages),
    };
    let clean = messages.is_empty();
    r.push_all(messages);
    Some(LoopConfig {
        items: items?,
        concurrency,
        max_items,
        steps: steps.filter(|_| clean)?,
    })
}

/// The body of a loop, `None` after at least one problem. `path` is the body's own path
/// (`config/steps`); each message starts with the path of what it is about.
fn loop_steps(raw: &Value, path: &str, messages: &mut Vec<String>) -> Option<Vec<LoopStep>> {
    let Some(entries) = raw.as_array() else {
        messages.push(format!("{path}: must be an array of steps"));
        return None;
    };
    if entries.is_empty() {
        messages.push(format!("{path}: must list at least one step"));
        return None;
    }
    if entries.len() > LoopConfig::MAX_STEPS {
        messages.push(format!(
            "{path}: a loop body may have at most {} steps, this one has {}",
            LoopConfig::MAX_STEPS,
            entries.len()
        ));
        return None;
    }
    let mut first_with_id: BTreeMap<&str, usize> = BTreeMap::new();
    let mut steps = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let step_path = format!("{path}/{index}");
        let step = loop_step(entry, &step_path, messages);
        if let Some(id) = entry.get("id").and_then(Value::as_str) {
            match first_with_id.get(id) {
                Some(first) => messages.push(format!(
                    "{step_path}/id: duplicate id `{}`: {path}/{first} has it too",
                    shown(id)
                )),
                None => {
                    first_with_id.insert(id, index);
                }
            }
        }
        steps.push(step);
    }
    steps.into_iter().collect()
}

fn loop_step(entry: &Value, path: &str, messages: &mut Vec<String>) -> Option<LoopStep> {
    let mut inner = Vec::new();
    let mut r = FieldReader::new(entry, path, messages)?;
    let id = r.required("id", |v| NodeId::parse(string(v)?));
    let node_type = r.required("type", |v| {
        let name = string(v)?;
        let node_type =
            NodeType::parse(name).ok_or_else(|| format!("unknown node type `{}`", shown(name)))?;
        if !node_type.runs_in_loop_body() {
            return Err(refused_in_loop_body(node_type));
        }
        Ok(node_type)
    });
    let config = r.any("config");
    let retry = r.any("retry").filter(|v| !v.is_null());
    let clean = r.finish();
    let kind = node_type.and_then(|t| parse_config(t, config, &mut inner));
    let retry = match retry {
        Some(raw) => read_retry(raw, &mut inner).and_then(|policy| {
            let pause = longest_pause_ms(&policy);
            if pause > LoopConfig::MAX_BODY_RETRY_PAUSE_MS {
                inner.push(format!(
                    "retry: inside a loop body a retry waits in the worker, so it may pause at most {} ms, and this policy pauses up to {pause} ms (lower `initialIntervalMs` or set `maxIntervalMs`)",
                    LoopConfig::MAX_BODY_RETRY_PAUSE_MS
                ));
                return None;
            }
            Some(policy)
        }),
        None => Some(RetryPolicy::NO_RETRY),
    };
    let inner_clean = inner.is_empty();
    messages.extend(inner.into_iter().map(|m| format!("{path}/{m}")));
    let step = LoopStep {
        id: id?,
        kind: kind?,
        retry: retry?,
    };
    (clean && inner_clean).then_some(step)
}

fn refused_in_loop_body(node_type: NodeType) -> String {
    let why = match node_type {
        NodeType::If => {
            "a loop body is a straight line of steps: branching inside a loop is not supported yet"
        }
        NodeType::Delay => {
            "a loop body cannot wait durably for each item; put the delay before or after the loop"
        }
        NodeType::Respond => {
            "a loop body cannot answer the webhook caller; put `respond` after the loop"
        }
        NodeType::Loop => "loops do not nest",
        NodeType::Merge => "`merge` joins branches of the graph, and a loop body has none",
        _ => "a trigger starts a run and cannot be a step of a loop body",
    };
    let allowed: Vec<&str> = NodeType::ALL
        .into_iter()
        .filter(|t| t.runs_in_loop_body())
        .map(NodeType::as_str)
        .collect();
    format!(
        "`{node_type}` cannot run in a loop body: {why} (allowed: {})",
        allowed.join(", ")
    )
}

/// The longest pause between two attempts that `policy` asks for, before jitter.
fn longest_pause_ms(policy: &RetryPolicy) -> u64 {
    (1..policy.max_attempts())
        .map(|attempt| {
            u64::try_from(policy.delay_after_attempt(attempt).as_millis()).unwrap_or(u64::MAX)
        })
        .max()
        .unwrap_or(0)
}

/// A literal converted by `fixed`, or a string holding a template.
fn dynamic<T>(
    value: &Value,
    fixed: impl Fn(&Value) -> Result<T, String>,
    expected: &str,
) -> Result<Dynamic<T>, String> {
    match value {
        Value::String(s) if has_template(s) => Ok(Dynamic::Template(s.clone())),
        Value::Number(_) => fixed(value).map(Dynamic::Fixed),
        _ => Err(format!("must be {expected} or a `{{{{ }}}}` expression")),
    }
}

/// Whether a string is meant as a template rather than plain text. One that fails to
/// parse counts as a template: its syntax error is reported by the expression checks, and
/// judging it as plain text too would only add a second, misleading problem.
fn has_template(text: &str) -> bool {
    expr::parse_template(text).map_or(true, |template| template.has_expressions())
}
