//! Connections: a workspace's stored credentials for an outside service, and the rules
//! that keep their secrets secret.
//!
//! Invariants:
//! - a [`Credentials`] value exists in memory only between opening it from the vault and
//!   using it; it never reaches storage unsealed, and `Debug` and `Serialize` for the API
//!   never show it (`Debug` redacts; only the vault serializes it, to seal it);
//! - a [`Connection`] carries no secret at all, so anything may print or return it;
//! - every value of a used connection's secrets that shows up in a step's output, error or
//!   log is replaced by [`REDACTED`] (see [`Redactor`]) before it is stored or streamed;
//! - a client never hands over OAuth2 tokens: [`Credentials::parse`] refuses the `oauth2`
//!   kind, whose credentials come from the connection's token endpoint (`crate::oauth`).

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroize;

use crate::DomainError;
use crate::ids::{ConnectionId, WorkspaceId};
use crate::oauth::OAuth2Credentials;

/// What replaces a secret wherever it would otherwise be shown.
pub const REDACTED: &str = "[REDACTED]";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionName(String);

impl ConnectionName {
    pub const MAX_LEN: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(DomainError::invalid("connection name must not be empty"));
        }
        if name.chars().count() > Self::MAX_LEN || name.chars().any(char::is_control) {
            return Err(DomainError::invalid(format!(
                "connection name must be at most {} printable characters",
                Self::MAX_LEN
            )));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a connection stands. Only OAuth2 connections leave `Valid`: while a process
/// refreshes the token (`Refreshing`), when no refresh can work any more (`NeedsReauth`),
/// or when the provider or a user revoked the grant (`Revoked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionStatus {
    Valid,
    Refreshing,
    NeedsReauth,
    Revoked,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Valid => "VALID",
            ConnectionStatus::Refreshing => "REFRESHING",
            ConnectionStatus::NeedsReauth => "NEEDS_REAUTH",
            ConnectionStatus::Revoked => "REVOKED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            ConnectionStatus::Valid,
            ConnectionStatus::Refreshing,
            ConnectionStatus::NeedsReauth,
            ConnectionStatus::Revoked,
        ]
        .into_iter()
        .find(|status| status.as_str() == raw)
    }
}

/// How a connection authenticates, as named in `credentials.kind` and `ConnectorType.authKinds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthKind {
    Bearer,
    ApiKey,
    Basic,
    OAuth2,
}

impl AuthKind {
    pub const ALL: [AuthKind; 4] = [
        AuthKind::Bearer,
        AuthKind::ApiKey,
        AuthKind::Basic,
        AuthKind::OAuth2,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Bearer => "bearer",
            AuthKind::ApiKey => "apiKey",
            AuthKind::Basic => "basic",
            AuthKind::OAuth2 => "oauth2",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }
}

/// Where an API key travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyPlacement {
    Header,
    Query,
}

/// A connection's secrets, in the shapes the contract documents, or an OAuth2 connection's
/// client registration and tokens. Serialized only to be sealed by the vault.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum Credentials {
    Bearer {
        token: String,
    },
    ApiKey {
        #[serde(rename = "in")]
        placement: KeyPlacement,
        name: String,
        value: String,
    },
    Basic {
        username: String,
        password: String,
    },
    #[serde(rename = "oauth2")]
    OAuth2(OAuth2Credentials),
}

impl Credentials {
    /// Longer than any real credential; a cap so a mistaken paste cannot bloat rows.
    pub const MAX_FIELD_LEN: usize = 8 * 1024;

    /// Credentials as a client sent them. Errors name the field at fault, never its value.
    pub fn parse(raw: &Value) -> Result<Self, DomainError> {
        if !raw.is_object() {
            return Err(DomainError::invalid(
                "credentials must be an object with a `kind`",
            ));
        }
        if crate::oauth::ClientCredentialsRequest::is_oauth2(raw) {
            return Err(DomainError::invalid(
                "credentials: OAuth2 connections get their tokens from the authorization server: \
                 start the authorization-code flow with startOAuth2Connection, or create a \
                 client-credentials connection with {\"kind\": \"oauth2\", \"grant\": \"clientCredentials\", ...}",
            ));
        }
        let credentials = Credentials::deserialize(raw).map_err(|error| {
            // serde's message quotes the offending value for some errors ("invalid type:
            // string \"hunter2\""); show only the category and the field.
            DomainError::invalid(format!("credentials: {}", describe_serde_error(&error)))
        })?;
        credentials.check()?;
        Ok(credentials)
    }

    pub fn auth_kind(&self) -> AuthKind {
        match self {
            Credentials::Bearer { .. } => AuthKind::Bearer,
            Credentials::ApiKey { .. } => AuthKind::ApiKey,
            Credentials::Basic { .. } => AuthKind::Basic,
            Credentials::OAuth2(_) => AuthKind::OAuth2,
        }
    }

    /// The OAuth2 part, for the code that refreshes tokens.
    pub fn oauth2(&self) -> Option<&OAuth2Credentials> {
        match self {
            Credentials::OAuth2(oauth2) => Some(oauth2),
            _ => None,
        }
    }

    fn check(&self) -> Result<(), DomainError> {
        let fields: Vec<(&str, &str, bool)> = match self {
            Credentials::Bearer { token } => vec![("token", token, true)],
            Credentials::ApiKey {
                placement,
                name,
                value,
            } => {
                if *placement == KeyPlacement::Header && !is_header_name(name) {
                    return Err(DomainError::invalid(
                        "credentials.name must be a valid HTTP header name",
                    ));
                }
                vec![("name", name, true), ("value", value, true)]
            }
            Credentials::Basic { username, password } => {
                if username.contains(':') {
                    return Err(DomainError::invalid(
                        "credentials.username must not contain `:` (HTTP basic auth cannot carry it)",
                    ));
                }
                vec![("username", username, true), ("password", password, false)]
            }
            // Never parsed from a client (see `parse`); checked where it is built.
            Credentials::OAuth2(_) => Vec::new(),
        };
        for (field, value, required) in fields {
            if required && value.is_empty() {
                return Err(DomainError::invalid(format!(
                    "credentials.{field} must not be empty"
                )));
            }
            if value.len() > Self::MAX_FIELD_LEN {
                return Err(DomainError::invalid(format!(
                    "credentials.{field} must be at most {} bytes",
                    Self::MAX_FIELD_LEN
                )));
            }
            // They end up in headers, where a line break would let one smuggle headers in.
            if value.chars().any(char::is_control) {
                return Err(DomainError::invalid(format!(
                    "credentials.{field} must not contain control characters"
                )));
            }
        }
        Ok(())
    }

    /// Every form in which these secrets could travel, and so could come back in a
    /// response: the values themselves and their encodings on the wire.
    pub fn secret_forms(&self) -> Vec<String> {
        let mut forms = match self {
            Credentials::Bearer { token } => vec![token.clone()],
            Credentials::ApiKey { value, .. } => vec![
                value.clone(),
                url::form_urlencoded::byte_serialize(value.as_bytes()).collect(),
            ],
            Credentials::Basic { username, password } => vec![
                password.clone(),
                STANDARD.encode(format!("{username}:{password}")),
            ],
            // The access token travels as a Bearer token; the refresh token and the client
            // secret only to the token endpoint, the secret also in HTTP Basic form there.
            Credentials::OAuth2(oauth2) => {
                let mut forms: Vec<String> =
                    oauth2.secrets().into_iter().map(str::to_owned).collect();
                if !oauth2.client_secret.is_empty() {
                    let encode = |text: &str| -> String {
                        url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
                    };
                    forms.push(encode(&oauth2.client_secret));
                    forms.push(STANDARD.encode(format!(
                        "{}:{}",
                        encode(&oauth2.client_id),
                        encode(&oauth2.client_secret)
                    )));
                }
                forms
            }
        };
        forms.retain(|form| !form.is_empty());
        forms.sort();
        forms.dedup();
        forms
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credentials({}, **redacted**)",
            self.auth_kind().as_str()
        )
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        let secrets: Vec<&mut String> = match self {
            Credentials::Bearer { token } => vec![token],
            Credentials::ApiKey { value, .. } => vec![value],
            Credentials::Basic { password, .. } => vec![password],
            // Wipes its own secrets when dropped.
            Credentials::OAuth2(_) => Vec::new(),
        };
        // Best effort: copies made earlier (by serde, by the HTTP client) are not ours.
        for secret in secrets {
            secret.zeroize();
        }
    }
}

pub(crate) fn describe_serde_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    // Messages about unknown or missing fields and variants name only keys: keep them.
    let safe = ["unknown field", "missing field", "unknown variant"];
    if safe.iter().any(|prefix| message.starts_with(prefix)) {
        message
    } else {
        "each field must be a string of the documented shape".to_owned()
    }
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

/// A workspace's connection, as anyone who may see it sees it: no secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub id: ConnectionId,
    pub workspace_id: WorkspaceId,
    pub name: ConnectionName,
    /// The connector's key in the registry (`http`, `slack`, ...).
    pub connector: String,
    pub auth_kind: AuthKind,
    pub status: ConnectionStatus,
    /// Non-secret options of the connector (a base URL, a test path).
    pub settings: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_tested_at: Option<DateTime<Utc>>,
    pub last_test_ok: Option<bool>,
}

/// A connection to create; its credentials are already sealed for `id`.
#[derive(Debug, Clone)]
pub struct NewConnection {
    pub id: ConnectionId,
    pub name: ConnectionName,
    pub connector: String,
    pub auth_kind: AuthKind,
    pub settings: Value,
    pub sealed_credentials: Vec<u8>,
}

/// What `updateConnection` changes; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct ConnectionChange {
    pub name: Option<ConnectionName>,
    pub settings: Option<Value>,
    /// New credentials, sealed for the connection, with their kind. They make the
    /// connection `VALID` again (an OAuth2 connection re-authorized).
    pub credentials: Option<(AuthKind, Vec<u8>)>,
    /// With `credentials`: when their OAuth2 access token expires (not a secret; the
    /// background refresher looks for it). Ignored without `credentials`.
    pub token_expires_at: Option<DateTime<Utc>>,
}

/// A connection with its sealed credentials, for the code that opens them to use them.
#[derive(Debug, Clone)]
pub struct SealedConnection {
    pub connection: Connection,
    pub sealed_credentials: Vec<u8>,
}

/// A workspace's data key as storage keeps it: wrapped by the master key `master_key_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDataKey {
    pub id: uuid::Uuid,
    pub master_key_id: String,
    pub wrapped: Vec<u8>,
}

/// What happened to a connection, for `connectionEvents` subscribers. Carries no secret:
/// `message` is written for the user and names the connection at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionEvent {
    pub workspace_id: WorkspaceId,
    pub connection_id: ConnectionId,
    pub kind: ConnectionEventKind,
    /// The connection's status after the change; for a deletion, its last status.
    pub status: ConnectionStatus,
    pub at: DateTime<Utc>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionEventKind {
    Created,
    Updated,
    Deleted,
    /// Its OAuth2 access token was renewed.
    Refreshed,
    /// Its OAuth2 grant cannot be refreshed any more: the user must authorize it again.
    NeedsReauth,
    Revoked,
}

impl ConnectionEventKind {
    pub const ALL: [ConnectionEventKind; 6] = [
        ConnectionEventKind::Created,
        ConnectionEventKind::Updated,
        ConnectionEventKind::Deleted,
        ConnectionEventKind::Refreshed,
        ConnectionEventKind::NeedsReauth,
        ConnectionEventKind::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionEventKind::Created => "CONNECTION_CREATED",
            ConnectionEventKind::Updated => "CONNECTION_UPDATED",
            ConnectionEventKind::Deleted => "CONNECTION_DELETED",
            ConnectionEventKind::Refreshed => "CONNECTION_REFRESHED",
            ConnectionEventKind::NeedsReauth => "CONNECTION_NEEDS_REAUTH",
            ConnectionEventKind::Revoked => "CONNECTION_REVOKED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }
}

impl ConnectionEvent {
    /// An event about `connection` as it stands after the change made `at`.
    pub fn of(
        connection: &Connection,
        kind: ConnectionEventKind,
        at: DateTime<Utc>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            workspace_id: connection.workspace_id,
            connection_id: connection.id,
            kind,
            status: connection.status,
            at,
            message: message.into(),
        }
    }
}

/// The outcome of `testConnection`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionTestResult {
    pub ok: bool,
    pub message: String,
}

/// Replaces known secret values in text and JSON with [`REDACTED`].
#[derive(Default, Clone)]
pub struct Redactor {
    /// Longest first, so a secret containing another is replaced whole.
    needles: Vec<String>,
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn for_credentials(credentials: &Credentials) -> Self {
        let mut redactor = Self::new();
        redactor.add(credentials);
        redactor
    }

    pub fn add(&mut self, credentials: &Credentials) {
        self.needles.extend(credentials.secret_forms());
        self.needles
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.needles.dedup();
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    pub fn redact_text<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut result = Cow::Borrowed(text);
        for needle in &self.needles {
            if result.contains(needle.as_str()) {
                result = Cow::Owned(result.replace(needle.as_str(), REDACTED));
            }
        }
        result
    }

    /// Redacts every string and object key in `value`, in place.
    pub fn redact_value(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(text) => {
                if let Cow::Owned(redacted) = self.redact_text(text) {
                    *text = redacted;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.redact_value(item)),
            Value::Object(fields) => {
                let needs_key_change = fields
                    .keys()
                    .any(|key| matches!(self.redact_text(key), Cow::Owned(_)));
                if needs_key_change {
                    *fields = std::mem::take(fields)
                        .into_iter()
                        .map(|(key, value)| (self.redact_text(&key).into_owned(), value))
                        .collect();
                }
                fields.values_mut().for_each(|item| self.redact_value(item));
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secret forms)", self.needles.len())
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
