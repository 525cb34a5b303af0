//! The `connector` node: one operation of a connector of the registry, with a connection
//! of that connector.
//!
//! An attempt renders `params` and `connectionId`, checks that the server has the
//! connector and the operation, opens the connection for the run's workspace, refuses a
//! connection of another connector (its credentials were given for another service), and
//! calls `execute` with the step's idempotency key (`{runId}:{nodeId}`, per item in a
//! loop), through the connection's gate: once more with renewed credentials after the
//! service refused them, and after rate limits within
//! [`crate::connector_call::Patience::STEP`]. Its output is
//! what the operation returns; output and error are redacted with every credential the
//! attempt used.

use aos_domain::ids::WorkspaceId;
use aos_domain::run::{IdempotencyKey, StepOutcome};
use aos_domain::workflow::node_types::ConnectorConfig;
use serde_json::Value;

use crate::connector_call::{execute_operation, open_connection};
use crate::step::{NodeServices, Scope, connection_id_of, redact};

pub(crate) async fn execute(
    config: &ConnectorConfig,
    scope: Scope<'_>,
    workspace_id: WorkspaceId,
    idempotency_key: &IdempotencyKey,
    services: &NodeServices,
) -> Result<StepOutcome, String> {
    let params = scope
        .render(&Value::Object(config.params.clone()))
        .map_err(|error| format!("params: {}", error.message))?;
    let Some(connector) = services.connectors.get(&config.connector) else {
        return Err(format!(
            "this server has no `{}` connector",
            config.connector
        ));
    };
    let info = connector.info();
    if info.operation(&config.operation).is_none() {
        let offered: Vec<&str> = info.operations.iter().map(|op| op.key).collect();
        return Err(format!(
            "the `{}` connector has no operation `{}`; it has {}",
            config.connector,
            config.operation,
            offered.join(", ")
        ));
    }
    // Opened last, once everything else rendered: a template error never opens it.
    let id = connection_id_of(&config.connection_id, scope)?;
    let mut opened = open_connection(services, workspace_id, id).await?;
    if opened.connection.connector != config.connector {
        return Err(format!(
            "connection `{}` is a `{}` connection, and this step needs a `{}` one",
            opened.connection.name.as_str(),
            opened.connection.connector,
            config.connector
        ));
    }
    let key = idempotency_key.to_string();
    let result = execute_operation(services, &mut opened, &config.operation, &params, &key)
        .await
        .map(StepOutcome::Succeeded)
        .map_err(|failure| failure.message);
    redact(result, &opened.redactor)
}

#[cfg(test)]
#[path = "connector_node_tests.rs"]
mod tests;
