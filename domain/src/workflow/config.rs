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

use super::fields::{FieldReader, integer_in, non_blank_string, object, one_of, shown, string};
use super::node_types::{
    CodeConfig, CodeLanguage, CronSchedule, DelayConfig, Dynamic, FailConfig, HttpMethod,
    HttpRequestConfig, IfConfig, ManualTriggerConfig, NodeKind, NodeType, RespondConfig,
    ScheduleTriggerConfig, SetConfig, WebhookResponse, WebhookSecret, WebhookTriggerConfig,
};

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
        NodeType::Set => set(&mut reader).map(NodeKind::Set),
        NodeType::If => if_(&mut reader).map(NodeKind::If),
        NodeType::HttpRequest => http_request(&mut reader).map(NodeKind::HttpRequest),
        NodeType::Code => code(&mut reader).map(NodeKind::Code),
        NodeType::Delay => delay(&mut reader).map(NodeKind::Delay),
        NodeType::Respond => respond(&mut reader).map(NodeKind::Respond),
        NodeType::Fail => fail(&mut reader).map(NodeKind::Fail),
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
