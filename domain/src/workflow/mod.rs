//! Workflows: a named graph definition with immutable versions. Every update stores a new
//! version and bumps the current version number; old versions are never rewritten, so a
//! run can always name exactly the graph it executed.

mod cache;
mod config;
pub mod definition;
mod edges;
mod expressions;
mod fields;
mod graph;
pub mod node_types;
mod nodes;
pub mod retry;
mod structure;
pub mod validate;
#[cfg(test)]
mod validate_tests;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::DomainError;
use crate::ids::{UserId, WorkflowId, WorkspaceId};

pub use cache::DefinitionCache;
pub use definition::Definition;
pub use validate::validate_definition;

/// One thing wrong with a definition. `node_id` is `None` for problems of the whole graph
/// (no trigger, a cycle through several nodes is reported on each of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub node_id: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn graph(message: impl Into<String>) -> Self {
        Self {
            node_id: None,
            message: message.into(),
        }
    }

    pub fn node(node_id: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            node_id: Some(node_id.into()),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowName(String);

impl WorkflowName {
    pub const MAX_LEN: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        if name.is_empty()
            || name.chars().count() > Self::MAX_LEN
            || name.chars().any(char::is_control)
        {
            return Err(DomainError::invalid(format!(
                "workflow name must be 1 to {} printable characters",
                Self::MAX_LEN
            )));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowDescription(String);

impl WorkflowDescription {
    pub const MAX_LEN: usize = 5_000;

    /// An empty or blank description is no description.
    pub fn parse(raw: Option<&str>) -> Result<Option<Self>, DomainError> {
        let Some(text) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        if text.chars().count() > Self::MAX_LEN {
            return Err(DomainError::invalid(format!(
                "description must be at most {} characters",
                Self::MAX_LEN
            )));
        }
        Ok(Some(Self(text.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    pub id: WorkflowId,
    pub workspace_id: WorkspaceId,
    pub name: WorkflowName,
    pub description: Option<WorkflowDescription>,
    /// The current version number, from 1.
    pub version: i32,
    /// The current version's definition, as validated when it was saved.
    pub definition: serde_json::Value,
    pub active: bool,
    /// The secret path segment of this workflow's webhook URL.
    pub webhook_key: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Workflow {
    /// Whether the current definition starts with a webhook trigger (and so has a URL).
    pub fn has_webhook_trigger(&self) -> bool {
        self.definition
            .get("nodes")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|nodes| {
                nodes.iter().any(|n| {
                    n.get("type").and_then(serde_json::Value::as_str) == Some("trigger.webhook")
                })
            })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowVersion {
    pub workflow_id: WorkflowId,
    pub version: i32,
    pub name: WorkflowName,
    pub description: Option<WorkflowDescription>,
    pub definition: serde_json::Value,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
}

/// What `create` stores: the definition has already passed `validate_definition`.
#[derive(Debug, Clone)]
pub struct NewWorkflow {
    pub name: WorkflowName,
    pub description: Option<WorkflowDescription>,
    pub definition: serde_json::Value,
    pub webhook_key: String,
}

/// A new version. Fields left `None` keep the current version's value.
#[derive(Debug, Clone, Default)]
pub struct WorkflowChange {
    pub name: Option<WorkflowName>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<WorkflowDescription>>,
    pub definition: Option<serde_json::Value>,
}
