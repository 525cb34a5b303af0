//! Reading a connector's `params` and `settings` as its JSON Schemas describe them.
//!
//! Policy: a message names the field at fault and what it must be (`params.channel must
//! be a non-empty string`), never the value it got, which may be long or private. A
//! `null` is the same as an absent field, since a template that renders nothing gives
//! one. Unknown fields are refused with the known ones listed: a misspelt optional field
//! would otherwise be dropped without a word.

use std::ops::RangeInclusive;

use serde_json::{Map, Value};

use crate::{ConnectorError, optional_url};

/// The settings key of the base URL every HTTP API connector here takes.
pub const BASE_URL_SETTING: &str = "baseUrl";

fn invalid(message: String) -> ConnectorError {
    ConnectorError::Invalid(message)
}

/// `params` as an object holding only `known` fields.
pub fn params_object<'a>(
    params: &'a Value,
    operation: &str,
    known: &[&str],
) -> Result<&'a Map<String, Value>, ConnectorError> {
    let fields = params
        .as_object()
        .ok_or_else(|| invalid(format!("params of `{operation}` must be an object")))?;
    if let Some(unknown) = fields.keys().find(|key| !known.contains(&key.as_str())) {
        return Err(invalid(format!(
            "params.{unknown} is not a parameter of `{operation}`; known: {}",
            known.join(", ")
        )));
    }
    Ok(fields)
}

fn present<'a>(fields: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    fields.get(field).filter(|value| !value.is_null())
}

pub fn required_str<'a>(
    fields: &'a Map<String, Value>,
    field: &str,
) -> Result<&'a str, ConnectorError> {
    optional_str(fields, field)?
        .ok_or_else(|| invalid(format!("params.{field} is required: a non-empty string")))
}

pub fn optional_str<'a>(
    fields: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, ConnectorError> {
    match present(fields, field) {
        None => Ok(None),
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(Some(text)),
        Some(_) => Err(invalid(format!(
            "params.{field} must be a non-empty string"
        ))),
    }
}

pub fn optional_bool(fields: &Map<String, Value>, field: &str) -> Result<bool, ConnectorError> {
    match present(fields, field) {
        None => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(_) => Err(invalid(format!("params.{field} must be true or false"))),
    }
}

pub fn optional_integer(
    fields: &Map<String, Value>,
    field: &str,
    range: RangeInclusive<u64>,
) -> Result<Option<u64>, ConnectorError> {
    match present(fields, field) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .filter(|number| range.contains(number))
            .map(Some)
            .ok_or_else(|| {
                invalid(format!(
                    "params.{field} must be an integer from {} to {}",
                    range.start(),
                    range.end()
                ))
            }),
    }
}

pub fn optional_number(
    fields: &Map<String, Value>,
    field: &str,
    range: RangeInclusive<f64>,
) -> Result<Option<f64>, ConnectorError> {
    match present(fields, field) {
        None => Ok(None),
        Some(value) => value
            .as_f64()
            .filter(|number| range.contains(number))
            .map(Some)
            .ok_or_else(|| {
                invalid(format!(
                    "params.{field} must be a number from {} to {}",
                    range.start(),
                    range.end()
                ))
            }),
    }
}

/// A list of non-empty strings; an empty list is a list, not an absence.
pub fn optional_strings(
    fields: &Map<String, Value>,
    field: &str,
) -> Result<Option<Vec<String>>, ConnectorError> {
    let Some(value) = present(fields, field) else {
        return Ok(None);
    };
    let must = || {
        invalid(format!(
            "params.{field} must be a list of non-empty strings"
        ))
    };
    let items = value.as_array().ok_or_else(must)?;
    items
        .iter()
        .map(|item| match item {
            Value::String(text) if !text.trim().is_empty() => Ok(text.clone()),
            _ => Err(must()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `check_settings` of a connector whose only setting is [`BASE_URL_SETTING`].
pub fn check_base_url_settings(settings: &Value) -> Result<(), String> {
    if let Some(unknown) = settings
        .as_object()
        .into_iter()
        .flat_map(|fields| fields.keys())
        .find(|key| key.as_str() != BASE_URL_SETTING)
    {
        return Err(format!(
            "unknown setting `{unknown}`; known: {BASE_URL_SETTING}"
        ));
    }
    check_base_url(settings)
}

fn check_base_url(settings: &Value) -> Result<(), String> {
    let Some(url) = optional_url(settings, BASE_URL_SETTING)? else {
        return Ok(());
    };
    // Settings are not secret, so they must not carry what usually is (user info), and
    // paths are appended to the base, which a query or fragment would swallow.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{BASE_URL_SETTING} must not contain user info; credentials belong in the connection's credentials"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{BASE_URL_SETTING} must not have a query or a fragment"
        ));
    }
    Ok(())
}

/// The connection's base URL without a trailing slash, ready for `{base}/path`.
pub fn base_url(settings: &Value, default: &str) -> Result<String, ConnectorError> {
    // Only the URL is checked again: stored settings may hold keys the registry adds
    // (`maxRequestsPerSecond`), and they passed `check_settings` when they were saved.
    check_base_url(settings)
        .map_err(|error| ConnectorError::Invalid(format!("settings: {error}")))?;
    let base = settings
        .get(BASE_URL_SETTING)
        .and_then(Value::as_str)
        .unwrap_or(default);
    Ok(base.trim().trim_end_matches('/').to_owned())
}

/// A server's `host` and `port` from a connection's settings, as a connector speaking
/// another protocol than HTTP takes them; `what` names the server in messages.
pub fn server_address(
    fields: &Map<String, Value>,
    default_port: u16,
    what: &str,
) -> Result<(String, u16), String> {
    let present = |key: &str| fields.get(key).filter(|value| !value.is_null());
    let host = match present("host") {
        Some(Value::String(host)) => check_host(host.trim())?,
        Some(_) | None => return Err(format!("host is required: {what}'s host name")),
    };
    let port = match present("port") {
        None => default_port,
        Some(value) => value
            .as_u64()
            .and_then(|port| u16::try_from(port).ok())
            .filter(|port| *port > 0)
            .ok_or("port must be an integer from 1 to 65535")?,
    };
    Ok((host, port))
}

/// A host name or an IP address, as the SSRF guard will later resolve and judge it.
fn check_host(host: &str) -> Result<String, String> {
    let valid = !host.is_empty()
        && (host.parse::<std::net::IpAddr>().is_ok()
            || matches!(url::Host::parse(host), Ok(url::Host::Domain(_))));
    if valid {
        Ok(host.to_owned())
    } else {
        Err("host must be a host name or an IP address, without scheme or port".to_owned())
    }
}
