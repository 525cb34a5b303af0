//! The `postgres` connection's non-secret settings: where the database is and how the
//! channel to it is protected.
//!
//! Parsing is lenient about keys it does not know, because stored settings may hold keys
//! the registry adds; `check_settings` refuses them up front with [`check_known_keys`].

use serde_json::{Map, Value, json};

use crate::builtin::fields::server_address;

const DEFAULT_PORT: u16 = 5432;

/// Postgres truncates identifiers, database names included, to 63 bytes.
const MAX_DATABASE_NAME_BYTES: usize = 63;

const KNOWN_KEYS: [&str; 4] = ["host", "port", "database", "sslMode"];

/// libpq's `sslmode`, the values people know, minus `allow` and `verify-ca`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, without checking its certificate; plain otherwise.
    Prefer,
    /// TLS or nothing, without checking the certificate: encrypted, not authenticated.
    Require,
    /// TLS, with a certificate a trusted authority issued for the configured host name.
    VerifyFull,
}

#[derive(Debug, Clone)]
pub(super) struct PgSettings {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) database: String,
    pub(super) ssl_mode: SslMode,
}

impl PgSettings {
    pub(super) fn parse(settings: &Value) -> Result<Self, String> {
        let empty = Map::new();
        let fields = match settings {
            Value::Object(fields) => fields,
            Value::Null => &empty,
            _ => return Err("settings must be an object".to_owned()),
        };
        let present = |key: &str| fields.get(key).filter(|value| !value.is_null());
        let (host, port) = server_address(fields, DEFAULT_PORT, "the database server")?;
        let database = match present("database") {
            Some(Value::String(name))
                if !name.is_empty()
                    && name.len() <= MAX_DATABASE_NAME_BYTES
                    && !name.contains('\0') =>
            {
                name.clone()
            }
            _ => {
                return Err(format!(
                    "database is required: the database's name, at most {MAX_DATABASE_NAME_BYTES} bytes"
                ));
            }
        };
        let ssl_mode = match present("sslMode").map(Value::as_str) {
            None | Some(Some("prefer")) => SslMode::Prefer,
            Some(Some("disable")) => SslMode::Disable,
            Some(Some("require")) => SslMode::Require,
            Some(Some("verify-full")) => SslMode::VerifyFull,
            Some(_) => {
                return Err(
                    "sslMode must be \"disable\", \"prefer\", \"require\" or \"verify-full\""
                        .to_owned(),
                );
            }
        };
        Ok(Self {
            host,
            port,
            database,
            ssl_mode,
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
        "required": ["host", "database"],
        "properties": {
            "host": {"type": "string", "description": "The database server's host name, such as db.example.com."},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": DEFAULT_PORT},
            "database": {"type": "string", "maxLength": MAX_DATABASE_NAME_BYTES, "description": "The database to connect to."},
            "sslMode": {
                "enum": ["disable", "prefer", "require", "verify-full"],
                "default": "prefer",
                "description": "As libpq's sslmode: prefer uses TLS when the server offers it; require insists on TLS but, like prefer, does not check the certificate; verify-full also checks that a trusted authority issued the certificate for this host name; disable never uses TLS."
            }
        },
        "additionalProperties": false
    })
}
