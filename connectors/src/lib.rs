//! Connectors: what each outside service offers a workflow (its auth kinds, its operations
//! with JSON Schemas of their parameters and outputs, its non-secret settings), and the
//! registry the API lists as `connectorTypes` and checks connections against.
//!
//! Invariant: a connection may only be created for a connector in the registry, with an
//! auth kind that connector declares and settings its `check_settings` accepts.

mod http;

use std::collections::BTreeMap;
use std::sync::Arc;

use aos_domain::connection::AuthKind;
use serde_json::Value;

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
    /// JSON Schema of a connection's non-secret `settings`.
    pub settings: Value,
}

pub trait Connector: Send + Sync {
    fn info(&self) -> &ConnectorInfo;

    /// Whether `settings` suit this connector; the message says what is wrong.
    fn check_settings(&self, settings: &Value) -> Result<(), String>;
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
        registry.register(Arc::new(http::HttpConnector::new()));
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
        found
            .check_settings(settings)
            .map_err(|error| format!("settings: {error}"))
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.connectors.keys()).finish()
    }
}

/// Settings are a few options, not a place to store data.
pub const MAX_SETTINGS_BYTES: usize = 16 * 1024;

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
