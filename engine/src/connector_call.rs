//! Using a connection on a run's (or a polling trigger's) behalf: opening it for one
//! workspace, and calling its connector through the connection's gate.
//!
//! Invariants:
//! - a connection is opened for the workspace that uses it only, and is refused if the
//!   port answers with any other ([`open_connection`]);
//! - every message that leaves this module went through the connection's [`Redactor`],
//!   which holds every credential used in the call (renewed ones included);
//! - a call is tried again only for the two reasons the connector SDK names: once after
//!   the service refused the credentials, with renewed ones
//!   (`ConnectionSecrets::renew_refused`), and after a rate limit, waited out in
//!   the gate within the caller's [`Patience`].

use std::time::Duration;

use serde_json::Value;

use aos_connectors::{ConnectorContext, ConnectorError, Polled};
use aos_domain::connection::{Connection, Credentials, Redactor};
use aos_domain::ids::{ConnectionId, WorkspaceId};

use crate::step::NodeServices;

/// How long a caller waits out rate limits: each wait at most `max_wait`, and at most
/// `tries` calls answered "too many requests".
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    pub max_wait: Duration,
    pub tries: u32,
}

impl Patience {
    /// A step holds its worker while it waits, so not for long: it fails instead, and its
    /// own `retry` policy (a durable wait) takes over.
    pub const STEP: Patience = Patience {
        max_wait: Duration::from_secs(30),
        tries: 3,
    };
    /// A poll never waits for a closed connection: it is simply due again once the
    /// service reopens it.
    pub const POLL: Patience = Patience {
        max_wait: Duration::ZERO,
        tries: 1,
    };
}

/// The pause after "too many requests" without a `Retry-After`.
pub const DEFAULT_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(1);

/// An opened connection, for the length of one use.
pub struct OpenConnection {
    pub connection: Connection,
    pub credentials: Credentials,
    /// Every secret form of every credential this use has held.
    pub redactor: Redactor,
}

/// What a connector is asked.
enum ConnectorCall<'a> {
    Execute {
        operation: &'a str,
        params: &'a Value,
        idempotency_key: &'a str,
    },
    Poll {
        trigger: &'a str,
        params: &'a Value,
        cursor: Option<&'a Value>,
    },
}

/// What it answered.
enum Called {
    Output(Value),
    Polled(Polled),
}

/// Why a call failed: a message safe to show, and, for a rate limit, how long the service
/// asked to wait.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFailure {
    pub message: String,
    pub retry_after: Option<Duration>,
}

/// Opens connection `id` for a use on behalf of `workspace_id`. Errors are safe to show:
/// they name the connection, never a secret.
pub async fn open_connection(
    services: &NodeServices,
    workspace_id: WorkspaceId,
    id: ConnectionId,
) -> Result<OpenConnection, String> {
    let Some(secrets) = &services.secrets else {
        return Err(format!(
            "connection `{id}` cannot be used: connections are not available in this process"
        ));
    };
    let (connection, credentials) = secrets.open_connection(workspace_id, id).await?;
    // The port is asked for this workspace's connection only; checked again here because
    // signing a request with another tenant's secrets is the one mistake to never make.
    if connection.workspace_id != workspace_id || connection.id != id {
        tracing::error!(connection.id = %id, "the connection port answered with another connection");
        return Err(format!("connection `{id}` not found"));
    }
    let redactor = Redactor::for_credentials(&credentials);
    Ok(OpenConnection {
        connection,
        credentials,
        redactor,
    })
}

/// Runs `operation` of the connector of `opened` (see the module's retry rules).
pub async fn execute_operation(
    services: &NodeServices,
    opened: &mut OpenConnection,
    operation: &str,
    params: &Value,
    idempotency_key: &str,
) -> Result<Value, CallFailure> {
    let call = ConnectorCall::Execute {
        operation,
        params,
        idempotency_key,
    };
    match call_connector(services, opened, &call, Patience::STEP).await? {
        Called::Output(output) => Ok(output),
        Called::Polled(_) => Err(failure("the connector answered an operation with a poll")),
    }
}

/// Polls `trigger` of the connector of `opened` (see the module's retry rules).
pub async fn poll_trigger(
    services: &NodeServices,
    opened: &mut OpenConnection,
    trigger: &str,
    params: &Value,
    cursor: Option<&Value>,
) -> Result<Polled, CallFailure> {
    let call = ConnectorCall::Poll {
        trigger,
        params,
        cursor,
    };
    match call_connector(services, opened, &call, Patience::POLL).await? {
        Called::Polled(polled) => Ok(polled),
        Called::Output(_) => Err(failure("the connector answered a poll with an output")),
    }
}

/// Calls the connector of `opened` through the gate (see the module's retry rules).
async fn call_connector(
    services: &NodeServices,
    opened: &mut OpenConnection,
    call: &ConnectorCall<'_>,
    patience: Patience,
) -> Result<Called, CallFailure> {
    let key = opened.connection.connector.clone();
    let Some(connector) = services.connectors.get(&key) else {
        return Err(failure(format!("this server has no `{key}` connector")));
    };
    let mut renewed = false;
    let mut rate_limited = 0;
    loop {
        if let Err(wait) = services
            .gate
            .enter(&opened.connection, patience.max_wait)
            .await
        {
            return Err(CallFailure {
                message: format!(
                    "the service asked to wait {} before the next request of connection `{}`{}",
                    shown_wait(wait),
                    opened.connection.name.as_str(),
                    longer_than(patience)
                ),
                retry_after: Some(wait),
            });
        }
        let ctx = ConnectorContext {
            connection: &opened.connection,
            credentials: &opened.credentials,
            http: &services.http,
            idempotency_key: match call {
                ConnectorCall::Execute {
                    idempotency_key, ..
                } => Some(idempotency_key),
                ConnectorCall::Poll { .. } => None,
            },
        };
        let result = match call {
            ConnectorCall::Execute {
                operation, params, ..
            } => connector
                .execute(&ctx, operation, params)
                .await
                .map(Called::Output),
            ConnectorCall::Poll {
                trigger,
                params,
                cursor,
            } => connector
                .poll(&ctx, trigger, params, *cursor)
                .await
                .map(Called::Polled),
        };
        let error = match result {
            Ok(called) => return Ok(called),
            Err(error) => error,
        };
        match error {
            ConnectorError::Unauthorized(_) if !renewed => {
                renewed = true;
                if !renew(services, opened).await {
                    return Err(failure(opened.redactor.redact_text(&error.to_string())));
                }
            }
            ConnectorError::RateLimited { retry_after, .. } => {
                let wait = retry_after.unwrap_or(DEFAULT_RATE_LIMIT_PAUSE);
                services.gate.close_for(opened.connection.id, wait);
                rate_limited += 1;
                if rate_limited >= patience.tries || wait > patience.max_wait {
                    let gave_up = if wait > patience.max_wait {
                        longer_than(patience)
                    } else {
                        format!("; gave up after {rate_limited} tries")
                    };
                    return Err(CallFailure {
                        message: format!(
                            "{} (it asked to wait {}{gave_up})",
                            opened.redactor.redact_text(&error.to_string()),
                            shown_wait(wait)
                        ),
                        retry_after: Some(wait),
                    });
                }
            }
            other => return Err(failure(opened.redactor.redact_text(&other.to_string()))),
        }
    }
}

/// Asks for new credentials after a refusal; `false` when there are none.
async fn renew(services: &NodeServices, opened: &mut OpenConnection) -> bool {
    let Some(secrets) = &services.secrets else {
        return false;
    };
    let id = opened.connection.id;
    let workspace_id = opened.connection.workspace_id;
    match secrets
        .renew_refused(workspace_id, id, &opened.credentials)
        .await
    {
        Ok((connection, credentials))
            if connection.id == id && connection.workspace_id == workspace_id =>
        {
            opened.redactor.add(&credentials);
            opened.connection = connection;
            opened.credentials = credentials;
            true
        }
        Ok(_) => {
            tracing::error!(connection.id = %id, "the connection port renewed another connection");
            false
        }
        Err(message) => {
            tracing::debug!(connection.id = %id, %message, "the credentials could not be renewed");
            false
        }
    }
}

fn failure(message: impl Into<String>) -> CallFailure {
    CallFailure {
        message: message.into(),
        retry_after: None,
    }
}

fn longer_than(patience: Patience) -> String {
    if patience.max_wait.is_zero() {
        String::new()
    } else {
        format!(
            ", longer than a step waits ({})",
            shown_wait(patience.max_wait)
        )
    }
}

/// `2 s`, `1.5 s`, `250 ms`.
pub fn shown_wait(wait: Duration) -> String {
    if wait < Duration::from_secs(1) {
        format!("{} ms", wait.as_millis())
    } else if wait.subsec_millis() == 0 {
        format!("{} s", wait.as_secs())
    } else {
        format!("{:.1} s", wait.as_secs_f64())
    }
}
