//! Fresh OAuth2 access tokens: [`RefreshingSecrets`] opens connections for steps as the
//! vault does, and renews an OAuth2 connection's access token first when it is about to
//! expire, or when the service refused it (HTTP 401); [`BackgroundRefresher`] renews tokens
//! ahead of time, so that steps rarely wait for a token endpoint.
//!
//! Policy:
//! - a step renews a token that expires within `margin` plus a random part of `jitter`, so
//!   that connections authorized together do not all come due at the same instant; the
//!   background refresher renews tokens `ahead` of expiry. Either leads by at most half
//!   the token's lifetime, so a short-lived token is not renewed on every use or pass;
//! - one process at a time renews a connection: it takes the connection's lease in the
//!   database ([`OAuthStore::claim_refresh`]), re-reads the credentials (someone may have
//!   just renewed them), asks the token endpoint, and stores the answer sealed, a rotated
//!   refresh token included, while it still holds the lease. Others wait (up to `wait`)
//!   and use what it stored; a background refresher that finds a lease taken moves on;
//! - after a refusal, a token other than the refused one will do (or, when the caller
//!   does not say which it was, one issued since it asked), so steps refused at once
//!   cause one renewal, not one each;
//! - a grant the server refuses for good (`invalid_grant` and the like) makes the connection
//!   `NEEDS_REAUTH`, which is announced as a `CONNECTION_NEEDS_REAUTH` event; steps then fail
//!   with a message that says to reconnect it. A transient failure changes nothing;
//! - messages name the connection and at most an OAuth2 error code, never a secret.

use std::sync::Arc;
use std::time::Duration;

use aos_domain::connection::{
    Connection, ConnectionEvent, ConnectionEventKind, ConnectionStatus, Credentials, Redactor,
};
use aos_domain::error::DomainError;
use aos_domain::ids::{ConnectionId, WorkspaceId};
use aos_domain::oauth::{OAuth2Credentials, OAuthStore, RefreshOutcome};
use aos_domain::ports::{ConnectionEventSink, ConnectionSecrets, CredentialStore};
use aos_vault::service::CredentialVault;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::sync::watch;

use super::flows::OAuthFlows;

/// What the refresher needs from storage: the connections and their refresh leases.
pub trait RefreshStorage: CredentialStore + OAuthStore {}
impl<T: CredentialStore + OAuthStore + ?Sized> RefreshStorage for T {}

/// When tokens are renewed, and how long renewals may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTiming {
    /// A step renews a token that expires within this (plus jitter) before using it.
    pub margin: Duration,
    /// Up to this much is added, at random, to `margin` and to `interval`.
    pub jitter: Duration,
    /// The background refresher renews tokens this long before they expire, or half their
    /// lifetime before if that is shorter.
    pub ahead: Duration,
    /// How often the background refresher looks for tokens coming due.
    pub interval: Duration,
    /// How long a renewal holds the connection's lease: longer than a token request may
    /// take, so a live renewal never loses it; a dead one frees it after this.
    pub lease: Duration,
    /// How long a step waits for another process's renewal before giving up.
    pub wait: Duration,
}

impl Default for RefreshTiming {
    fn default() -> Self {
        Self {
            margin: Duration::from_secs(60),
            jitter: Duration::from_secs(30),
            ahead: Duration::from_secs(5 * 60),
            interval: Duration::from_secs(30),
            lease: Duration::from_secs(30),
            wait: Duration::from_secs(25),
        }
    }
}

/// How often a waiting step looks whether the renewal it waits for is done.
const WAIT_POLL: Duration = Duration::from_millis(100);
/// How many connections the background refresher takes on per pass.
const BACKGROUND_BATCH: u64 = 100;

/// Why a token is being renewed, which says when the current one is good enough.
#[derive(Debug, Clone, Copy)]
enum Need<'a> {
    /// A step is about to use it: it must last at least `margin`, or have been issued
    /// since `since` (a token living shorter than the margin is as good as it gets).
    Lasting {
        margin: chrono::Duration,
        since: DateTime<Utc>,
    },
    /// The service refused `refused`: any other token will do. Without it (the caller
    /// did not say), a token issued since `since` will.
    Refused {
        refused: Option<&'a str>,
        since: DateTime<Utc>,
    },
    /// The background refresher: renew ahead of expiry.
    Ahead,
}

/// The steps' [`ConnectionSecrets`]: the vault's, plus OAuth2 token renewal.
pub struct RefreshingSecrets {
    vault: Arc<CredentialVault>,
    store: Arc<dyn RefreshStorage>,
    flows: OAuthFlows,
    events: Arc<dyn ConnectionEventSink>,
    timing: RefreshTiming,
}

impl RefreshingSecrets {
    pub fn new(
        vault: Arc<CredentialVault>,
        store: Arc<dyn RefreshStorage>,
        flows: OAuthFlows,
        events: Arc<dyn ConnectionEventSink>,
        timing: RefreshTiming,
    ) -> Self {
        Self {
            vault,
            store,
            flows,
            events,
            timing,
        }
    }

    /// Renews the tokens of this pass's connections coming due, skipping any another
    /// process is renewing; returns how many this process renewed.
    pub async fn renew_due(&self) -> usize {
        let horizon = Utc::now() + to_chrono(self.timing.ahead);
        let due = match self
            .store
            .connections_to_refresh(horizon, BACKGROUND_BATCH)
            .await
        {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(%error, "listing OAuth2 connections to renew failed");
                return 0;
            }
        };
        let mut renewed = 0;
        for (workspace_id, id) in due {
            let owner = lease_owner();
            let now = Utc::now();
            let claimed = self
                .store
                .claim_refresh(
                    workspace_id,
                    id,
                    &owner,
                    now,
                    now + to_chrono(self.timing.lease),
                )
                .await;
            match claimed {
                Ok(true) => match self
                    .renew_holding(workspace_id, id, &owner, Need::Ahead)
                    .await
                {
                    Ok(_) => renewed += 1,
                    Err(message) => tracing::warn!(
                        workspace.id = %workspace_id,
                        connection.id = %id,
                        reason = %message,
                        "renewing an OAuth2 access token ahead of expiry failed"
                    ),
                },
                // Another process is renewing it.
                Ok(false) => {}
                Err(error) => {
                    tracing::error!(%error, connection.id = %id, "taking an OAuth2 refresh lease failed");
                }
            }
        }
        renewed
    }

    /// Renews `id`'s token unless the current one meets `need`, waiting for another
    /// process's renewal rather than racing it.
    async fn renew(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
        need: Need<'_>,
    ) -> Result<(Connection, Credentials), String> {
        let deadline = tokio::time::Instant::now() + self.timing.wait;
        loop {
            let owner = lease_owner();
            let now = Utc::now();
            let claimed = self
                .store
                .claim_refresh(
                    workspace_id,
                    id,
                    &owner,
                    now,
                    now + to_chrono(self.timing.lease),
                )
                .await
                .map_err(|error| storage_failed(id, &error))?;
            if claimed {
                return self.renew_holding(workspace_id, id, &owner, need).await;
            }
            // Someone else renews it, or it cannot be renewed (its status says why, and
            // opening it refuses with that reason).
            let (connection, credentials) = self.vault.open_connection(workspace_id, id).await?;
            let Some(oauth2) = credentials.oauth2() else {
                return Ok((connection, credentials));
            };
            if self.satisfies(oauth2, need) {
                return Ok((connection, credentials));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "connection `{}`: another process is renewing its access token and has not finished; try again",
                    connection.name.as_str()
                ));
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// The renewal itself, under the lease `owner` holds; the lease ends with it, however
    /// it ends.
    async fn renew_holding(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
        owner: &str,
        need: Need<'_>,
    ) -> Result<(Connection, Credentials), String> {
        // Read again under the lease: another process may have renewed it just before.
        let (mut connection, credentials) = match self.vault.open_connection(workspace_id, id).await
        {
            Ok(opened) => opened,
            Err(message) => {
                self.finish(workspace_id, id, owner, RefreshOutcome::Released)
                    .await;
                return Err(message);
            }
        };
        connection.status = ConnectionStatus::Valid;
        let oauth2 = match credentials.oauth2() {
            Some(oauth2) if !self.satisfies(oauth2, need) => oauth2,
            _ => {
                self.finish(workspace_id, id, owner, RefreshOutcome::Released)
                    .await;
                return Ok((connection, credentials));
            }
        };
        let name = connection.name.as_str().to_owned();
        match self.flows.refresh(oauth2).await {
            Ok(token) => {
                let renewed = oauth2.refreshed(&token, Utc::now());
                let token_expires_at = renewed.expires_at;
                let renewed = Credentials::OAuth2(renewed);
                let sealed_credentials = match self.vault.seal(workspace_id, id, &renewed).await {
                    Ok(sealed) => sealed,
                    Err(error) => {
                        tracing::error!(%error, connection.id = %id, "sealing a renewed OAuth2 token failed");
                        self.finish(workspace_id, id, owner, RefreshOutcome::Released)
                            .await;
                        return Err(format!(
                            "connection `{name}`: its renewed access token could not be stored; try again"
                        ));
                    }
                };
                let outcome = RefreshOutcome::Refreshed {
                    sealed_credentials,
                    token_expires_at,
                };
                if self.finish(workspace_id, id, owner, outcome).await {
                    tracing::info!(
                        workspace.id = %workspace_id,
                        connection.id = %id,
                        "renewed a connection's OAuth2 access token"
                    );
                    self.publish(
                        &connection,
                        ConnectionEventKind::Refreshed,
                        format!("connection `{name}` renewed its access token"),
                    );
                } else {
                    // The token is good for this step; the next one renews again.
                    tracing::warn!(
                        connection.id = %id,
                        "an OAuth2 renewal outlived its lease; its token was not stored"
                    );
                }
                Ok((connection, renewed))
            }
            Err(error) if error.needs_reauth() => {
                let code = error.code().unwrap_or("refused");
                let message = format!(
                    "connection `{name}` needs to be authorized again: the authorization server refused to renew its access token ({code}); reconnect it"
                );
                tracing::warn!(
                    workspace.id = %workspace_id,
                    connection.id = %id,
                    oauth.error = %code,
                    "an OAuth2 connection can no longer renew its token"
                );
                if self
                    .finish(workspace_id, id, owner, RefreshOutcome::NeedsReauth)
                    .await
                {
                    connection.status = ConnectionStatus::NeedsReauth;
                    self.publish(
                        &connection,
                        ConnectionEventKind::NeedsReauth,
                        message.clone(),
                    );
                }
                Err(message)
            }
            Err(error) => {
                self.finish(workspace_id, id, owner, RefreshOutcome::Released)
                    .await;
                let message = format!(
                    "connection `{name}`: renewing its access token failed: {error}; try again"
                );
                Err(Redactor::for_credentials(&credentials)
                    .redact_text(&message)
                    .into_owned())
            }
        }
    }

    /// Renews an OAuth2 connection's token for `need`; other credentials cannot be renewed.
    async fn renew_if_oauth2(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
        need: Need<'_>,
    ) -> Result<(Connection, Credentials), String> {
        let (_, credentials) = self.vault.open_connection(workspace_id, id).await?;
        if credentials.oauth2().is_none() {
            return Err("the service refused the connection's credentials".to_owned());
        }
        self.renew(workspace_id, id, need).await
    }

    /// Whether the current token will do for `need` as it stands now.
    fn satisfies(&self, oauth2: &OAuth2Credentials, need: Need<'_>) -> bool {
        let now = Utc::now();
        match need {
            Need::Lasting { margin, since } => {
                !oauth2.expires_within(now, margin) || oauth2.obtained_at >= since
            }
            Need::Refused {
                refused: Some(refused),
                ..
            } => oauth2.access_token != refused,
            Need::Refused {
                refused: None,
                since,
            } => oauth2.obtained_at >= since,
            Need::Ahead => !oauth2.expires_within(now, lead(oauth2, self.timing.ahead)),
        }
    }

    /// Ends `owner`'s lease with `outcome`; whether it still held it.
    async fn finish(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
        owner: &str,
        outcome: RefreshOutcome,
    ) -> bool {
        match self
            .store
            .finish_refresh(workspace_id, id, owner, outcome)
            .await
        {
            Ok(held) => held,
            Err(error) => {
                tracing::error!(%error, connection.id = %id, "ending an OAuth2 refresh lease failed");
                false
            }
        }
    }

    fn publish(&self, connection: &Connection, kind: ConnectionEventKind, message: String) {
        self.events
            .publish(ConnectionEvent::of(connection, kind, Utc::now(), message));
    }

    /// The margin a step's token must outlast: `margin` plus a random part of `jitter`,
    /// at most half the token's lifetime.
    fn step_margin(&self, oauth2: &OAuth2Credentials) -> chrono::Duration {
        lead(oauth2, self.timing.margin + random_part(self.timing.jitter))
    }
}

#[async_trait]
impl ConnectionSecrets for RefreshingSecrets {
    async fn open_connection(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
    ) -> Result<(Connection, Credentials), String> {
        let (connection, credentials) = self.vault.open_connection(workspace_id, id).await?;
        let Some(oauth2) = credentials.oauth2() else {
            return Ok((connection, credentials));
        };
        let margin = self.step_margin(oauth2);
        if !oauth2.expires_within(Utc::now(), margin) {
            return Ok((connection, credentials));
        }
        let since = Utc::now();
        self.renew(workspace_id, id, Need::Lasting { margin, since })
            .await
    }

    async fn renew_after_refusal(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
    ) -> Result<(Connection, Credentials), String> {
        let since = Utc::now();
        self.renew_if_oauth2(
            workspace_id,
            id,
            Need::Refused {
                refused: None,
                since,
            },
        )
        .await
    }

    async fn renew_refused(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
        refused: &Credentials,
    ) -> Result<(Connection, Credentials), String> {
        let need = Need::Refused {
            refused: refused.oauth2().map(|oauth2| oauth2.access_token.as_str()),
            since: Utc::now(),
        };
        self.renew_if_oauth2(workspace_id, id, need).await
    }
}

/// Renews tokens ahead of expiry, every `interval` (plus jitter), until stopped.
pub struct BackgroundRefresher {
    secrets: Arc<RefreshingSecrets>,
}

impl BackgroundRefresher {
    pub fn new(secrets: Arc<RefreshingSecrets>) -> Self {
        Self { secrets }
    }

    /// Runs until `stop` turns true (or its sender is dropped).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            let pause = self.secrets.timing.interval + random_part(self.secrets.timing.jitter);
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                changed = stop.changed() => if changed.is_err() || *stop.borrow() {
                    return;
                },
            }
            let renewed = self.secrets.renew_due().await;
            if renewed > 0 {
                tracing::debug!(renewed, "renewed OAuth2 access tokens ahead of expiry");
            }
        }
    }
}

/// How long before expiry to renew, wanting `wanted`: at most half the token's lifetime,
/// so that a token living shorter than `wanted` is not renewed on every use.
fn lead(oauth2: &OAuth2Credentials, wanted: Duration) -> chrono::Duration {
    let wanted = to_chrono(wanted);
    match oauth2.expires_at {
        Some(expires_at) => wanted.min((expires_at - oauth2.obtained_at) / 2),
        None => wanted,
    }
}

fn lease_owner() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn random_part(jitter: Duration) -> Duration {
    let most = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::thread_rng().gen_range(0..=most))
}

fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

fn storage_failed(id: ConnectionId, error: &DomainError) -> String {
    tracing::error!(%error, connection.id = %id, "reading an OAuth2 refresh lease failed");
    format!("connection `{id}` could not be read; try again")
}
