//! OAuth2 connections: their credentials (a client registration and the tokens it was
//! issued), the pending authorizations of the authorization-code flow, and the storage
//! port for both, including the per-connection refresh lock.
//!
//! Invariants:
//! - tokens, the client secret, the PKCE verifier and the authorization code are secrets:
//!   `Debug` never shows them, `Drop` wipes the copies these types own, and they reach
//!   storage only sealed by the vault;
//! - a client never hands us tokens: an OAuth2 connection gets them from its token endpoint,
//!   through the authorization-code flow or the client-credentials grant, so the only
//!   OAuth2 shape [`ClientCredentialsRequest::parse`] accepts from a client carries no token;
//! - a pending authorization is found by the hash of its `state` only, is used at most once
//!   and expires after [`PendingAuthorization::LIFETIME_MINUTES`]; it is bound to the user,
//!   the workspace and the connection it was started for;
//! - at most one process refreshes a connection's token at a time: a refresher first takes
//!   the connection's lease ([`OAuthStore::claim_refresh`], a compare-and-set on the
//!   connection row, not a lock in memory), and its outcome is written only while it still
//!   holds that lease.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroize;

use crate::DomainError;
use crate::access::WorkspaceScope;
use crate::connection::{
    Connection, ConnectionName, ConnectionStatus, Credentials, NewConnection, describe_serde_error,
};
use crate::error::DomainResult;
use crate::ids::{ConnectionId, UserId, WorkspaceId};

/// How an OAuth2 connection obtains its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OAuth2Grant {
    /// A user authorized us in their browser; we hold a refresh token (if the server
    /// issued one) to renew the access token.
    AuthorizationCode,
    /// We authenticate as the client itself; a new token is simply requested again.
    ClientCredentials,
}

/// Limits on what a client registration may hold: generous for any real server, small
/// enough that a mistaken paste cannot bloat rows or headers.
const MAX_CLIENT_ID_LEN: usize = 1024;
const MAX_URL_LEN: usize = 2048;
const MAX_SCOPES: usize = 50;
const MAX_SCOPE_LEN: usize = 256;

/// An OAuth2 connection's credentials: the client registration and the tokens issued to
/// it. Serialized only to be sealed by the vault.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuth2Credentials {
    pub grant: OAuth2Grant,
    pub client_id: String,
    /// Empty for a public client, which proves itself with PKCE alone.
    pub client_secret: String,
    pub token_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    /// RFC 7009 endpoint, used when the connection is revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_url: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// As the server named it (`bearer`, `Bearer`); requests are always signed as Bearer.
    pub token_type: String,
    /// `None` when the server did not say (`expires_in` absent): never refreshed ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When this access token was issued to us.
    pub obtained_at: DateTime<Utc>,
}

/// What a token endpoint issued.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub token_type: String,
    pub expires_in: Option<std::time::Duration>,
    /// `None` when the server did not say, which means the scopes asked for.
    pub scopes: Option<Vec<String>>,
}

/// The client registration of a new OAuth2 connection, before any token.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuth2Client {
    pub client_id: String,
    pub client_secret: String,
    pub token_url: String,
    pub authorization_url: Option<String>,
    pub revocation_url: Option<String>,
    pub scopes: Vec<String>,
}

impl OAuth2Client {
    /// Checks every field; errors name the field, never its value. The authorization URL
    /// is required for the authorization-code grant, a client secret for client credentials.
    pub fn check(&self, grant: OAuth2Grant) -> Result<(), DomainError> {
        check_text("clientId", &self.client_id, MAX_CLIENT_ID_LEN, true)?;
        let secret_required = grant == OAuth2Grant::ClientCredentials;
        check_text(
            "clientSecret",
            &self.client_secret,
            Credentials::MAX_FIELD_LEN,
            secret_required,
        )?;
        check_url("tokenUrl", &self.token_url)?;
        match (&self.authorization_url, grant) {
            (Some(url), _) => {
                check_url("authorizationUrl", url)?;
            }
            (None, OAuth2Grant::AuthorizationCode) => {
                return Err(DomainError::invalid("authorizationUrl is required"));
            }
            (None, OAuth2Grant::ClientCredentials) => {}
        }
        if let Some(url) = &self.revocation_url {
            // RFC 7009 §2: the client must verify that the revocation URL is HTTPS.
            if check_url("revocationUrl", url)?.scheme() != "https" {
                return Err(DomainError::invalid("revocationUrl must be an https URL"));
            }
        }
        check_scopes(&self.scopes)
    }

    /// The connection's credentials once `token` was issued to this client at `now`.
    pub fn credentials(
        &self,
        grant: OAuth2Grant,
        token: &IssuedToken,
        now: DateTime<Utc>,
    ) -> OAuth2Credentials {
        OAuth2Credentials {
            grant,
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            token_url: self.token_url.clone(),
            authorization_url: self.authorization_url.clone(),
            revocation_url: self.revocation_url.clone(),
            scopes: token.scopes.clone().unwrap_or_else(|| self.scopes.clone()),
            access_token: token.access_token.clone(),
            refresh_token: token.refresh_token.clone(),
            token_type: token.token_type.clone(),
            expires_at: expiry(token, now),
            obtained_at: now,
        }
    }
}

impl OAuth2Credentials {
    /// Whether the access token expires within `margin` of `now` (or has expired). A token
    /// of unknown lifetime is used until the service refuses it.
    pub fn expires_within(&self, now: DateTime<Utc>, margin: Duration) -> bool {
        self.expires_at.is_some_and(|at| at - now <= margin)
    }

    /// Whether a refresh can work without the user: a client-credentials connection asks
    /// again, an authorization-code connection needs its refresh token.
    pub fn can_refresh(&self) -> bool {
        match self.grant {
            OAuth2Grant::ClientCredentials => true,
            OAuth2Grant::AuthorizationCode => self.refresh_token.is_some(),
        }
    }

    /// These credentials after the token endpoint answered a refresh with `token` at `now`.
    /// A refresh token the server did not rotate stays; scopes it did not restate stay.
    pub fn refreshed(&self, token: &IssuedToken, now: DateTime<Utc>) -> OAuth2Credentials {
        let mut refreshed = self.clone();
        refreshed.access_token = token.access_token.clone();
        if let Some(rotated) = &token.refresh_token {
            refreshed.refresh_token = Some(rotated.clone());
        }
        refreshed.token_type = token.token_type.clone();
        if let Some(scopes) = &token.scopes {
            refreshed.scopes = scopes.clone();
        }
        refreshed.expires_at = expiry(token, now);
        refreshed.obtained_at = now;
        refreshed
    }

    /// The client registration these credentials were issued to.
    pub fn client(&self) -> OAuth2Client {
        OAuth2Client {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            token_url: self.token_url.clone(),
            authorization_url: self.authorization_url.clone(),
            revocation_url: self.revocation_url.clone(),
            scopes: self.scopes.clone(),
        }
    }

    /// The secret values, for [`crate::connection::Credentials::secret_forms`].
    pub(crate) fn secrets(&self) -> Vec<&str> {
        let mut secrets = vec![self.access_token.as_str(), self.client_secret.as_str()];
        secrets.extend(self.refresh_token.as_deref());
        secrets
    }
}

fn expiry(token: &IssuedToken, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    token
        .expires_in
        .and_then(|lifetime| Duration::from_std(lifetime).ok())
        .and_then(|lifetime| now.checked_add_signed(lifetime))
}

impl fmt::Debug for OAuth2Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Credentials")
            .field("grant", &self.grant)
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Drop for OAuth2Credentials {
    fn drop(&mut self) {
        // Best effort: copies made earlier (by serde, by the HTTP client) are not ours.
        self.access_token.zeroize();
        self.client_secret.zeroize();
        if let Some(refresh_token) = &mut self.refresh_token {
            refresh_token.zeroize();
        }
    }
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for IssuedToken {
    fn drop(&mut self) {
        self.access_token.zeroize();
        if let Some(refresh_token) = &mut self.refresh_token {
            refresh_token.zeroize();
        }
    }
}

impl fmt::Debug for OAuth2Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Client")
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl Drop for OAuth2Client {
    fn drop(&mut self) {
        self.client_secret.zeroize();
    }
}

/// `createConnection`'s OAuth2 shape: the client-credentials grant, whose token is then
/// fetched at once.
/// `{"kind": "oauth2", "grant": "clientCredentials", "clientId", "clientSecret", "tokenUrl", "scopes"?, "revocationUrl"?}`.
#[derive(Debug)]
pub struct ClientCredentialsRequest {
    pub client: OAuth2Client,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClientCredentialsShape {
    // Checked by `is_oauth2` before parsing; named so that it is not an unknown field.
    #[serde(rename = "kind")]
    _kind: String,
    grant: OAuth2Grant,
    client_id: String,
    client_secret: String,
    token_url: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    revocation_url: Option<String>,
}

impl ClientCredentialsRequest {
    /// Whether a client sent OAuth2 credentials (`"kind": "oauth2"`).
    pub fn is_oauth2(raw: &Value) -> bool {
        raw.get("kind").and_then(Value::as_str)
            == Some(crate::connection::AuthKind::OAuth2.as_str())
    }

    /// Parses the client-credentials shape. Errors name the field at fault, never its
    /// value; tokens are refused, since a connection gets them from its token endpoint.
    pub fn parse(raw: &Value) -> Result<Self, DomainError> {
        let has_tokens = ["accessToken", "refreshToken"]
            .iter()
            .any(|field| raw.get(field).is_some());
        if has_tokens {
            return Err(DomainError::invalid(
                "credentials: OAuth2 connections get their tokens from the authorization server; \
                 start the authorization-code flow with startOAuth2Connection, or give \
                 {\"kind\": \"oauth2\", \"grant\": \"clientCredentials\", \"clientId\", \"clientSecret\", \"tokenUrl\"}",
            ));
        }
        let shape = ClientCredentialsShape::deserialize(raw).map_err(|error| {
            DomainError::invalid(format!("credentials: {}", describe_serde_error(&error)))
        })?;
        if shape.grant != OAuth2Grant::ClientCredentials {
            return Err(DomainError::invalid(
                "credentials.grant: an authorization-code connection is started with \
                 startOAuth2Connection, which returns the URL to authorize it at",
            ));
        }
        let client = OAuth2Client {
            client_id: shape.client_id,
            client_secret: shape.client_secret,
            token_url: shape.token_url,
            authorization_url: None,
            revocation_url: shape.revocation_url,
            scopes: shape.scopes,
        };
        client
            .check(OAuth2Grant::ClientCredentials)
            .map_err(|error| DomainError::invalid(format!("credentials.{error}")))?;
        Ok(Self { client })
    }
}

fn check_text(field: &str, value: &str, max: usize, required: bool) -> Result<(), DomainError> {
    if required && value.trim().is_empty() {
        return Err(DomainError::invalid(format!("{field} must not be empty")));
    }
    if value.len() > max {
        return Err(DomainError::invalid(format!(
            "{field} must be at most {max} bytes"
        )));
    }
    // They travel in headers and form bodies, where a line break would smuggle fields in.
    if value.chars().any(char::is_control) {
        return Err(DomainError::invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

/// An absolute http(s) URL without user info or fragment. Whether its host may be reached
/// is the HTTP client's call, made on every request.
fn check_url(field: &str, raw: &str) -> Result<url::Url, DomainError> {
    check_text(field, raw, MAX_URL_LEN, true)?;
    let url = url::Url::parse(raw.trim())
        .map_err(|_| DomainError::invalid(format!("{field} must be an absolute URL")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(DomainError::invalid(format!(
            "{field} must be an http or https URL"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(DomainError::invalid(format!(
            "{field} must not carry user info or a fragment"
        )));
    }
    Ok(url)
}

/// RFC 6749 §3.3: a scope token is one or more of `%x21 / %x23-5B / %x5D-7E`.
fn check_scopes(scopes: &[String]) -> Result<(), DomainError> {
    if scopes.len() > MAX_SCOPES {
        return Err(DomainError::invalid(format!(
            "scopes: at most {MAX_SCOPES} scopes"
        )));
    }
    let valid = |scope: &String| {
        !scope.is_empty()
            && scope.len() <= MAX_SCOPE_LEN
            && scope
                .bytes()
                .all(|byte| matches!(byte, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
    };
    if scopes.iter().all(valid) {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "scopes: each scope must be 1 to {MAX_SCOPE_LEN} visible ASCII characters without spaces, quotes or backslashes"
        )))
    }
}

/// An authorization-code flow between `startOAuth2Connection` and `GET /oauth/callback`.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingAuthorization {
    /// Binds the sealed secrets to this authorization (the vault's associated data).
    pub id: uuid::Uuid,
    /// SHA-256 (hex) of the `state`, which itself is never stored.
    pub state_hash: String,
    pub workspace_id: WorkspaceId,
    /// Who started it; they must still be allowed to manage connections when it completes.
    pub user_id: UserId,
    /// The connection it creates, or re-authorizes when `reauthorize`.
    pub connection_id: ConnectionId,
    pub reauthorize: bool,
    pub connector: String,
    pub name: ConnectionName,
    pub settings: Value,
    pub client_id: String,
    pub authorization_url: String,
    pub token_url: String,
    pub revocation_url: Option<String>,
    pub scopes: Vec<String>,
    /// Where the server sends the user back; the code exchange must name it again.
    pub redirect_uri: String,
    /// [`PendingSecrets`], sealed by the vault for this authorization's `id`.
    pub sealed_secrets: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl PendingAuthorization {
    /// Long enough to log in at the provider and consent; short enough that a leaked
    /// authorization link soon leads nowhere.
    pub const LIFETIME_MINUTES: i64 = 10;

    /// The client registration this authorization was started for, with its secret.
    pub fn client(&self, secrets: &PendingSecrets) -> OAuth2Client {
        OAuth2Client {
            client_id: self.client_id.clone(),
            client_secret: secrets.client_secret.clone(),
            token_url: self.token_url.clone(),
            authorization_url: Some(self.authorization_url.clone()),
            revocation_url: self.revocation_url.clone(),
            scopes: self.scopes.clone(),
        }
    }
}

/// The secrets of a pending authorization, sealed while the user is away at the provider.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PendingSecrets {
    pub pkce_verifier: String,
    pub client_secret: String,
}

impl fmt::Debug for PendingSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PendingSecrets(**redacted**)")
    }
}

impl Drop for PendingSecrets {
    fn drop(&mut self) {
        self.pkce_verifier.zeroize();
        self.client_secret.zeroize();
    }
}

/// How a refresh that held the lease ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// New credentials, sealed, and when their access token expires: the connection is
    /// `VALID` again.
    Refreshed {
        sealed_credentials: Vec<u8>,
        token_expires_at: Option<DateTime<Utc>>,
    },
    /// The grant is gone (revoked, expired): only the user can mend it.
    NeedsReauth,
    /// Nothing changed (a transient failure, or someone refreshed first): `VALID` again,
    /// and the next one to need a token tries.
    Released,
}

impl RefreshOutcome {
    /// The status the connection has after this outcome.
    pub fn status(&self) -> ConnectionStatus {
        match self {
            RefreshOutcome::Refreshed { .. } | RefreshOutcome::Released => ConnectionStatus::Valid,
            RefreshOutcome::NeedsReauth => ConnectionStatus::NeedsReauth,
        }
    }
}

/// Storage for OAuth2 flows and token refreshes.
///
/// Pending authorizations are written through a scope (the caller may manage the
/// workspace's connections) but taken back unscoped: `GET /oauth/callback` is reached by
/// the browser with the `state` alone, whose hash is the key, and re-checks the user's
/// rights before it uses what it took. The refresh methods are unscoped like
/// `CredentialStore`: they act for a run's workspace (or for the background refresher),
/// and filter by the workspace they are given as well as by the connection.
#[async_trait]
pub trait OAuthStore: Send + Sync {
    /// Stores an authorization in progress, and forgets the workspace's expired ones.
    async fn insert_pending_authorization(
        &self,
        scope: &WorkspaceScope,
        pending: PendingAuthorization,
    ) -> DomainResult<()>;

    /// Removes and returns the pending authorization whose state hashes to `state_hash`,
    /// unless it expired by `now`: of two concurrent takes of one state, one gets it.
    async fn take_pending_authorization(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> DomainResult<Option<PendingAuthorization>>;

    /// Creates an OAuth2 connection, recording when its access token expires (not a
    /// secret) for the background refresher. `Conflict` on a taken name.
    async fn create_oauth_connection(
        &self,
        scope: &WorkspaceScope,
        connection: NewConnection,
        token_expires_at: Option<DateTime<Utc>>,
    ) -> DomainResult<Connection>;

    /// Sets the connection's status (e.g. `REVOKED`), dropping any refresh lease.
    /// `NotFound` if it does not exist.
    async fn set_connection_status(
        &self,
        scope: &WorkspaceScope,
        id: ConnectionId,
        status: ConnectionStatus,
    ) -> DomainResult<Connection>;

    /// Takes the refresh lease of an OAuth2 connection of `workspace_id` for `owner` until
    /// `lease_until`: the connection becomes `REFRESHING`. Only from `VALID`, or from
    /// `REFRESHING` whose lease ran out by `now` (its refresher died); `false` otherwise.
    async fn claim_refresh(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> DomainResult<bool>;

    /// Writes the outcome of `owner`'s refresh and ends its lease, if `owner` still holds
    /// it; `false` (and nothing written) if it does not.
    async fn finish_refresh(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
        owner: &str,
        outcome: RefreshOutcome,
    ) -> DomainResult<bool>;

    /// Up to `limit` `VALID` OAuth2 connections whose access token expires before
    /// `expiring_before`, soonest first, with their workspaces.
    async fn connections_to_refresh(
        &self,
        expiring_before: DateTime<Utc>,
        limit: u64,
    ) -> DomainResult<Vec<(WorkspaceId, ConnectionId)>>;
}

#[cfg(test)]
#[path = "oauth_tests.rs"]
mod tests;
