//! Connections and connector types as GraphQL objects. Nothing here can show a secret:
//! `Connection` is built from the domain's secret-free `Connection`.

use async_graphql::{Enum, ID, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};

use aos_connectors::{Connector, OperationInfo};
use aos_domain::connection::{Connection, ConnectionStatus as DomainStatus};

/// Where a connection stands; only OAuth2 connections leave `VALID`.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "DomainStatus")]
pub enum ConnectionStatus {
    Valid,
    Refreshing,
    NeedsReauth,
    Revoked,
}

pub struct ConnectionObject(pub Connection);

/// A stored set of credentials for an outside service. Secrets are write-only: no field
/// returns them.
#[Object(name = "Connection")]
impl ConnectionObject {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn workspace_id(&self) -> ID {
        ID(self.0.workspace_id.to_string())
    }

    async fn name(&self) -> &str {
        self.0.name.as_str()
    }

    /// The connector's key in `connectorTypes`.
    async fn connector(&self) -> &str {
        &self.0.connector
    }

    /// The `kind` of its credentials: `bearer`, `apiKey`, `basic` or `oauth2`.
    async fn auth_kind(&self) -> &str {
        self.0.auth_kind.as_str()
    }

    async fn status(&self) -> ConnectionStatus {
        self.0.status.into()
    }

    /// The connector's non-secret options.
    async fn settings(&self) -> Json<&serde_json::Value> {
        Json(&self.0.settings)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    async fn last_tested_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_tested_at
    }

    /// Whether the last `testConnection` succeeded.
    async fn last_test_ok(&self) -> Option<bool> {
        self.0.last_test_ok
    }
}

#[derive(SimpleObject)]
pub struct ConnectionTest {
    pub ok: bool,
    pub message: String,
}

pub struct ConnectorTypeObject(pub std::sync::Arc<dyn Connector>);

#[Object(name = "ConnectorType")]
impl ConnectorTypeObject {
    async fn key(&self) -> &str {
        self.0.info().key
    }

    async fn name(&self) -> &str {
        self.0.info().name
    }

    async fn description(&self) -> &str {
        self.0.info().description
    }

    /// The credential `kind`s a connection of this connector may have.
    async fn auth_kinds(&self) -> Vec<&str> {
        self.0
            .info()
            .auth_kinds
            .iter()
            .map(|kind| kind.as_str())
            .collect()
    }

    /// The operations' keys.
    async fn operations(&self) -> Vec<&str> {
        self.0.info().operations.iter().map(|op| op.key).collect()
    }

    /// The operations with the JSON Schemas of their parameters and outputs.
    async fn operation_schemas(&self) -> Vec<ConnectorOperation<'_>> {
        self.0
            .info()
            .operations
            .iter()
            .map(ConnectorOperation)
            .collect()
    }

    /// The polling triggers (`trigger.poll` nodes), with the JSON Schemas of their
    /// parameters and of one item, which becomes a run's trigger output.
    async fn triggers(&self) -> Vec<ConnectorOperation<'_>> {
        self.0
            .info()
            .triggers
            .iter()
            .map(ConnectorOperation)
            .collect()
    }

    /// JSON Schema of a connection's `settings`.
    async fn settings_schema(&self) -> Json<&serde_json::Value> {
        Json(&self.0.info().settings)
    }
}

pub struct ConnectorOperation<'a>(&'a OperationInfo);

#[Object]
impl ConnectorOperation<'_> {
    async fn key(&self) -> &str {
        self.0.key
    }

    async fn name(&self) -> &str {
        self.0.name
    }

    async fn description(&self) -> &str {
        self.0.description
    }

    /// JSON Schema of the step's `params`.
    async fn parameters(&self) -> Json<&serde_json::Value> {
        Json(&self.0.parameters)
    }

    /// JSON Schema of the step's output.
    async fn output(&self) -> Json<&serde_json::Value> {
        Json(&self.0.output)
    }
}
