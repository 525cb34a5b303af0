//! Postgres failures sorted into what the caller does next, quoting the server, which says
//! best what is wrong with a statement.
//!
//! By SQLSTATE class: 28 (invalid authorization: a wrong password, an unknown user, a
//! refused host) is `Unauthorized`; 42 (syntax errors, undefined tables and columns,
//! missing privileges), 22 (bad data), 23 (constraint violations), 0A (unsupported),
//! 21, 25, 2B and 3D/3F (no such database or schema) are `Invalid`: the same statement will
//! fail the same way. Everything else (the statement timeout, serialization failures,
//! deadlocks, a server shutting down, lost connections) is `Failed`.
//!
//! Policy: every message passes through [`Secrets::scrub`]; Postgres does not quote
//! passwords, but a message is also free text from whatever answered on that port.

use aos_domain::connection::{Credentials, REDACTED};
use sqlx::postgres::{PgDatabaseError, PgErrorPosition};

use crate::ConnectorError;

/// The password of the connection, to keep out of messages.
pub(super) struct Secrets {
    password: Option<String>,
}

impl Secrets {
    pub(super) fn of(credentials: &Credentials) -> Self {
        let password = match credentials {
            Credentials::Basic { password, .. } if !password.is_empty() => Some(password.clone()),
            _ => None,
        };
        Self { password }
    }

    pub(super) fn scrub(&self, text: &str) -> String {
        match &self.password {
            Some(password) => text.replace(password.as_str(), REDACTED),
            None => text.to_owned(),
        }
    }
}

/// A failure while connecting and signing in to `target` (`host:port`).
pub(super) fn connect_failure(
    error: &sqlx::Error,
    target: &str,
    secrets: &Secrets,
) -> ConnectorError {
    if let Some(refusal) = database_failure(error, secrets) {
        return refusal;
    }
    ConnectorError::Failed(secrets.scrub(&format!(
        "could not connect to the database at {target}: {}",
        describe(error)
    )))
}

/// A failure while preparing or running the statement.
pub(super) fn statement_failure(error: &sqlx::Error, secrets: &Secrets) -> ConnectorError {
    if let Some(refusal) = database_failure(error, secrets) {
        return refusal;
    }
    ConnectorError::Failed(secrets.scrub(&format!("the query failed: {}", describe(error))))
}

/// The error the server reported, if it reported one.
fn database_failure(error: &sqlx::Error, secrets: &Secrets) -> Option<ConnectorError> {
    let reported = error
        .as_database_error()?
        .try_downcast_ref::<PgDatabaseError>()?;
    let code = reported.code();
    let mut message = format!("{} (SQLSTATE {code})", reported.message());
    if let Some(PgErrorPosition::Original(position)) = reported.position() {
        message.push_str(&format!(" at character {position}"));
    }
    if let Some(detail) = reported.detail() {
        message.push_str(&format!("; {detail}"));
    }
    if let Some(hint) = reported.hint() {
        message.push_str(&format!("; hint: {hint}"));
    }
    let message = secrets.scrub(&message);
    let class = code.get(..2).unwrap_or_default();
    Some(match class {
        "28" => ConnectorError::Unauthorized(message),
        "42" | "22" | "23" | "0A" | "21" | "25" | "2B" | "3D" | "3F" => {
            ConnectorError::Invalid(message)
        }
        _ => ConnectorError::Failed(message),
    })
}

/// sqlx's message and its causes on one line.
fn describe(error: &sqlx::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut current = std::error::Error::source(error);
    while let Some(cause) = current {
        let part = cause.to_string();
        if !parts.iter().any(|seen| seen.contains(&part)) {
            parts.push(part);
        }
        current = cause.source();
    }
    parts.join(": ")
}
