//! `email`: sends mail through the connection's SMTP server (lettre), authenticated with
//! `basic` credentials (the SMTP user name and password).
//!
//! Invariants:
//! - the server is reached only at an address [`HttpClient::vet_host`] returned for the
//!   configured host, so the SSRF rules hold as for HTTP steps, and TLS (implicit or
//!   STARTTLS) verifies the certificate against the configured host name, not the address;
//! - with `security: "starttls"` (the default) a server that does not offer STARTTLS is
//!   refused, never talked to in the clear: the credentials would travel unencrypted.
//!   `"none"` is for a relay on a trusted local network only, and says so;
//! - no message carries the password in any encoding SMTP uses for it (see `errors`);
//! - a call opens one SMTP session and closes it; nothing is pooled, so a changed
//!   connection takes effect at once and no session outlives its step.
//!
//! Retries: the `Message-ID` is derived from the step's idempotency key, so a message sent
//! again after a crash carries the same id and receivers that deduplicate by it see one.
//!
//! [`HttpClient::vet_host`]: crate::http::HttpClient::vet_host

mod errors;
mod message;
mod session;
mod settings;

use aos_domain::connection::{AuthKind, ConnectionTestResult};
use async_trait::async_trait;
use serde_json::{Value, json};

use crate::{Connector, ConnectorContext, ConnectorError, ConnectorInfo, OperationInfo};

use self::message::Outgoing;
use self::settings::SmtpSettings;

/// The key of the one operation.
const SEND_EMAIL: &str = "sendEmail";

pub struct EmailConnector {
    info: ConnectorInfo,
}

impl Default for EmailConnector {
    fn default() -> Self {
        Self {
            info: ConnectorInfo {
                key: "email",
                name: "Email (SMTP)",
                description: "Sends email through your SMTP server, signed in with its user name and password (`basic` credentials).",
                auth_kinds: vec![AuthKind::Basic],
                operations: vec![OperationInfo {
                    key: SEND_EMAIL,
                    name: "Send an email",
                    description: "Sends one message to its recipients (To, Cc and Bcc) through the connection's SMTP server. At least one of `text` and `html` is required; with both, mail clients show the one they prefer.",
                    parameters: send_email_parameters(),
                    output: send_email_output(),
                }],
                triggers: Vec::new(),
                settings: settings::schema(),
            },
        }
    }
}

#[async_trait]
impl Connector for EmailConnector {
    fn info(&self) -> &ConnectorInfo {
        &self.info
    }

    fn check_settings(&self, settings: &Value) -> Result<(), String> {
        settings::check_known_keys(settings)?;
        SmtpSettings::parse(settings).map(|_| ())
    }

    async fn execute(
        &self,
        ctx: &ConnectorContext<'_>,
        operation: &str,
        params: &Value,
    ) -> Result<Value, ConnectorError> {
        if operation != SEND_EMAIL {
            return Err(ConnectorError::Invalid(format!(
                "the `email` connector has no operation `{operation}`; it has `{SEND_EMAIL}`"
            )));
        }
        let settings = SmtpSettings::parse(&ctx.connection.settings)
            .map_err(|error| ConnectorError::Invalid(format!("settings: {error}")))?;
        let outgoing = Outgoing::compose(params, &settings, ctx.idempotency_key)?;
        let delivery = session::send(ctx, &settings, &outgoing).await?;
        Ok(json!({
            "messageId": outgoing.message_id,
            "accepted": delivery.accepted,
            "rejected": delivery.rejected,
            "response": delivery.response,
        }))
    }

    async fn test(&self, ctx: &ConnectorContext<'_>) -> ConnectionTestResult {
        let settings = match SmtpSettings::parse(&ctx.connection.settings) {
            Ok(settings) => settings,
            Err(error) => {
                return ConnectionTestResult {
                    ok: false,
                    message: format!("settings: {error}"),
                };
            }
        };
        match session::check(ctx, &settings).await {
            Ok(summary) => ConnectionTestResult {
                ok: true,
                message: summary,
            },
            Err(error) => ConnectionTestResult {
                ok: false,
                message: error.to_string(),
            },
        }
    }
}

/// One address or a list of them; each item may be `Name <user@example.com>` or a
/// comma-separated list.
fn recipients_schema(description: &str) -> Value {
    json!({
        "description": description,
        "oneOf": [
            {"type": "string", "minLength": 3},
            {"type": "array", "items": {"type": "string", "minLength": 3}, "minItems": 1}
        ]
    })
}

fn send_email_parameters() -> Value {
    json!({
        "type": "object",
        "required": ["to", "subject"],
        "properties": {
            "to": recipients_schema("Recipients: `user@example.com`, `Ada <ada@example.com>`, or a list of them."),
            "cc": recipients_schema("Copy recipients, shown to everyone."),
            "bcc": recipients_schema("Blind copy recipients: they receive the message but appear in no header."),
            "subject": {"type": "string", "maxLength": message::MAX_SUBJECT_CHARS},
            "text": {"type": "string", "description": "The plain-text body."},
            "html": {"type": "string", "description": "The HTML body."},
            "from": {"type": "string", "description": "The sender; the connection's `from` setting when absent. Your server may only allow addresses it owns."},
            "replyTo": {"type": "string", "description": "Where replies go, when not to the sender."}
        },
        "anyOf": [{"required": ["text"]}, {"required": ["html"]}],
        "additionalProperties": false
    })
}

fn send_email_output() -> Value {
    json!({
        "type": "object",
        "required": ["messageId", "accepted", "rejected", "response"],
        "properties": {
            "messageId": {"type": "string", "description": "The Message-ID header, angle brackets included."},
            "accepted": {"type": "array", "items": {"type": "string"}, "description": "Recipient addresses the server accepted."},
            "rejected": {
                "type": "array",
                "description": "Recipients the server refused while accepting others; the message went to the accepted ones only.",
                "items": {
                    "type": "object",
                    "properties": {
                        "address": {"type": "string"},
                        "code": {"type": "integer"},
                        "message": {"type": "string"}
                    }
                }
            },
            "response": {"type": "string", "description": "The server's reply to the message, often with its queue id."}
        }
    })
}

#[cfg(test)]
mod tests;
