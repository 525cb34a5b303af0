//! The `email` connection's non-secret settings: where the SMTP server is and how to talk
//! to it.
//!
//! Parsing is lenient about keys it does not know, because stored settings may hold keys
//! the registry adds; `check_settings` refuses them up front with [`check_known_keys`].

use std::net::IpAddr;

use lettre::message::Mailbox;
use lettre::transport::smtp::extension::ClientId;
use serde_json::{Map, Value, json};

use crate::builtin::fields::server_address;

/// The submission port (RFC 6409), which expects STARTTLS.
const DEFAULT_PORT: u16 = 587;

const KNOWN_KEYS: [&str; 5] = ["host", "port", "security", "from", "heloName"];

/// How the session is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Security {
    /// Plain connect, then `STARTTLS` before anything else; required, never skipped.
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption at all: for a relay on a trusted local network.
    None,
}

#[derive(Debug, Clone)]
pub(super) struct SmtpSettings {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) security: Security,
    /// The sender when a step names none.
    pub(super) from: Mailbox,
    /// What the client calls itself in `EHLO`.
    pub(super) helo: ClientId,
}

impl SmtpSettings {
    pub(super) fn parse(settings: &Value) -> Result<Self, String> {
        let empty = Map::new();
        let fields = match settings {
            Value::Object(fields) => fields,
            Value::Null => &empty,
            _ => return Err("settings must be an object".to_owned()),
        };
        let present = |key: &str| fields.get(key).filter(|value| !value.is_null());
        let (host, port) = server_address(fields, DEFAULT_PORT, "the SMTP server")?;
        let security = match present("security").map(Value::as_str) {
            None => Security::StartTls,
            Some(Some("starttls")) => Security::StartTls,
            Some(Some("tls")) => Security::Tls,
            Some(Some("none")) => Security::None,
            Some(_) => return Err("security must be \"starttls\", \"tls\" or \"none\"".to_owned()),
        };
        let from = match present("from") {
            Some(Value::String(from)) => from
                .trim()
                .parse::<Mailbox>()
                .map_err(|_| "from must be an email address, such as `Ada <ada@example.com>`")?,
            Some(_) | None => {
                return Err(
                    "from is required: the sender address used when a step names none".to_owned(),
                );
            }
        };
        let helo = match present("heloName") {
            None => ClientId::default(),
            Some(Value::String(name)) => helo_name(name.trim())?,
            Some(_) => return Err("heloName must be a host name".to_owned()),
        };
        Ok(Self {
            host,
            port,
            security,
            from,
            helo,
        })
    }
}

/// Refuses keys this connector does not know, listing the ones it does.
pub(super) fn check_known_keys(settings: &Value) -> Result<(), String> {
    if let Some(unknown) = settings
        .as_object()
        .into_iter()
        .flat_map(|fields| fields.keys())
        .find(|key| !KNOWN_KEYS.contains(&key.as_str()))
    {
        return Err(format!(
            "unknown setting `{unknown}`; known: {}",
            KNOWN_KEYS.join(", ")
        ));
    }
    Ok(())
}

pub(super) fn schema() -> Value {
    json!({
        "type": "object",
        "required": ["host", "from"],
        "properties": {
            "host": {"type": "string", "description": "The SMTP server's host name, such as smtp.example.com."},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": DEFAULT_PORT, "description": "587 for STARTTLS, 465 for TLS."},
            "security": {
                "enum": ["starttls", "tls", "none"],
                "default": "starttls",
                "description": "starttls: upgrade the connection before signing in (required, never skipped); tls: TLS from the start (SMTPS); none: no encryption, for a relay on a trusted local network only, since the password would travel in the clear."
            },
            "from": {"type": "string", "description": "The default sender, such as `Billing <billing@example.com>`."},
            "heloName": {"type": "string", "description": "The name the client gives in EHLO; some servers want the sending host's name."}
        },
        "additionalProperties": false
    })
}

fn helo_name(name: &str) -> Result<ClientId, String> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(match ip {
            IpAddr::V4(v4) => ClientId::Ipv4(v4),
            IpAddr::V6(v6) => ClientId::Ipv6(v6),
        });
    }
    // It goes on the EHLO line as it is: only host name characters may.
    let is_host_name = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if is_host_name {
        Ok(ClientId::Domain(name.to_owned()))
    } else {
        Err(
            "heloName must be a host name (letters, digits, `-` and `.`) or an IP address"
                .to_owned(),
        )
    }
}
