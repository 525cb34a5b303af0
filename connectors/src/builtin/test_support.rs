//! What the API connectors' tests share: connections and contexts built directly, and an
//! SSRF-safe client that may reach the loopback fakes (wiremock) or, to show that the
//! rules hold for connectors too, may not.

use std::time::Duration;

use serde_json::Value;

use aos_domain::connection::{Connection, ConnectionName, ConnectionStatus, Credentials};
use aos_domain::ids::{ConnectionId, WorkspaceId};

use crate::http::{HttpClient, HttpPolicy};
use crate::{ConnectorContext, ConnectorError};

pub fn client(allow_private: bool) -> HttpClient {
    HttpClient::new(HttpPolicy {
        allow_private,
        connect_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(10),
        ..HttpPolicy::default()
    })
    .expect("the client builds")
}

pub fn bearer(token: &str) -> Credentials {
    Credentials::Bearer {
        token: token.to_owned(),
    }
}

/// A connection, its opened credentials and a client: what a step hands a connector.
pub struct Fixture {
    pub connection: Connection,
    pub credentials: Credentials,
    pub http: HttpClient,
}

impl Fixture {
    /// A connection of `connector` whose client reaches loopback.
    pub fn new(connector: &str, settings: Value, credentials: Credentials) -> Self {
        Self::with_client(connector, settings, credentials, client(true))
    }

    pub fn with_client(
        connector: &str,
        settings: Value,
        credentials: Credentials,
        http: HttpClient,
    ) -> Self {
        let now = chrono::Utc::now();
        let connection = Connection {
            id: ConnectionId::generate(),
            workspace_id: WorkspaceId::generate(),
            name: ConnectionName::parse("Team workspace").expect("a connection name"),
            connector: connector.to_owned(),
            auth_kind: credentials.auth_kind(),
            status: ConnectionStatus::Valid,
            settings,
            created_at: now,
            updated_at: now,
            last_tested_at: None,
            last_test_ok: None,
        };
        Self {
            connection,
            credentials,
            http,
        }
    }

    pub fn ctx(&self) -> ConnectorContext<'_> {
        ConnectorContext {
            connection: &self.connection,
            credentials: &self.credentials,
            http: &self.http,
            idempotency_key: None,
        }
    }
}

/// The message of any error, to check what a user would read.
pub fn message(error: &ConnectorError) -> String {
    match error {
        ConnectorError::Invalid(message)
        | ConnectorError::Unauthorized(message)
        | ConnectorError::Failed(message)
        | ConnectorError::Unsupported(message)
        | ConnectorError::RateLimited { message, .. } => message.clone(),
    }
}
