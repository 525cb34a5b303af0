//! OAuth2 connections: starting (or restarting) the authorization-code flow, and revoking
//! a connection's grant. The flow completes at `GET /oauth/callback` (`crate::http`).
//!
//! Secrets go one way: the client secret comes in and is sealed with the PKCE verifier
//! until the user returns; the answer carries the authorization URL, whose `state` and
//! PKCE challenge are meant to be seen, and never the secret or the verifier.

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use aos_domain::access::Action;
use aos_domain::connection::{AuthKind, ConnectionEventKind, ConnectionName, ConnectionStatus};
use aos_domain::ids::ConnectionId;
use aos_domain::oauth::{OAuth2Client, OAuth2Grant, PendingAuthorization, PendingSecrets};

use super::connections::connection_scope;
use crate::authz::parse_id;
use crate::error::{ApiError, ApiResult};
use crate::graphql::connection_types::ConnectionObject;
use crate::graphql::workspace_scope;
use crate::oauth::{redirect_uri, state_hash};

#[derive(InputObject)]
#[graphql(name = "StartOAuth2ConnectionInput")]
pub struct StartOAuth2ConnectionInput {
    pub workspace_id: ID,
    /// A key of `connectorTypes` whose `authKinds` include `oauth2`.
    pub connector: String,
    pub name: String,
    /// The client registered with the authorization server, whose redirect URI must be
    /// `oauth2RedirectUrl`.
    pub client_id: String,
    /// Absent for a public client, which proves itself with PKCE alone.
    pub client_secret: Option<String>,
    /// Where the user authorizes the connection.
    pub authorization_url: String,
    /// Where codes and refresh tokens are exchanged for access tokens.
    pub token_url: String,
    /// RFC 7009 endpoint, called when the connection is revoked.
    pub revocation_url: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// The connector's non-secret options.
    pub settings: Option<Json<Value>>,
    /// Authorizes this existing connection again (e.g. one in `NEEDS_REAUTH`), keeping its
    /// id, instead of creating one.
    pub connection_id: Option<ID>,
}

#[derive(InputObject)]
pub struct RevokeConnectionInput {
    pub id: ID,
}

/// Where to send the user to authorize a connection.
#[derive(SimpleObject)]
#[graphql(name = "OAuth2Authorization")]
pub struct OAuth2Authorization {
    /// Open this in the user's browser; the server sends them back to
    /// `GET /oauth/callback`, which redirects to `/connections/{id}?oauth=connected`.
    pub authorization_url: String,
    /// The `state` in the authorization URL: single use, bound to this user and workspace.
    pub state: String,
    /// After this, the authorization can no longer complete.
    pub expires_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct OAuthMutation;

#[Object]
impl OAuthMutation {
    /// Starts the authorization-code flow (with PKCE) of a new OAuth2 connection, or of an
    /// existing one again. ADMIN and above, or a token with `CONNECTIONS_WRITE`; the user
    /// must still be allowed to manage connections when the flow completes.
    #[graphql(name = "startOAuth2Connection")]
    async fn start_oauth2_connection(
        &self,
        ctx: &Context<'_>,
        input: StartOAuth2ConnectionInput,
    ) -> ApiResult<OAuth2Authorization> {
        let (state, scope) =
            workspace_scope(ctx, &input.workspace_id, Action::ManageConnections).await?;
        let (connection_id, reauthorize) = match &input.connection_id {
            Some(raw) => {
                let id: ConnectionId = parse_id(raw, "connection")?;
                let existing = state
                    .store
                    .connection(&scope, id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("connection"))?;
                if existing.connector != input.connector {
                    return Err(ApiError::bad_input(format!(
                        "connection `{}` is a `{}` connection; its connector cannot change",
                        existing.name.as_str(),
                        existing.connector
                    )));
                }
                (id, true)
            }
            None => (ConnectionId::generate(), false),
        };
        let name = ConnectionName::parse(&input.name)?;
        let settings = input
            .settings
            .map_or_else(|| Value::Object(Default::default()), |settings| settings.0);
        state
            .connectors
            .check_connection(&input.connector, AuthKind::OAuth2, &settings)
            .map_err(ApiError::bad_input)?;
        let client = OAuth2Client {
            client_id: input.client_id,
            client_secret: input.client_secret.unwrap_or_default(),
            token_url: input.token_url,
            authorization_url: Some(input.authorization_url),
            revocation_url: input.revocation_url.filter(|url| !url.trim().is_empty()),
            scopes: input.scopes.unwrap_or_default(),
        };
        client.check(OAuth2Grant::AuthorizationCode)?;
        let redirect_uri = redirect_uri(&state.config.public_url);
        let request = state
            .oauth
            .authorization_request(&client, &redirect_uri)
            .map_err(|error| ApiError::bad_input(error.to_string()))?;
        let id = uuid::Uuid::new_v4();
        let secrets = PendingSecrets {
            pkce_verifier: request.pkce_verifier.clone(),
            client_secret: client.client_secret.clone(),
        };
        let sealed_secrets = state
            .vault
            .seal_pending(scope.workspace_id(), id, &secrets)
            .await?;
        let created_at = Utc::now();
        let expires_at =
            created_at + chrono::Duration::minutes(PendingAuthorization::LIFETIME_MINUTES);
        state
            .store
            .insert_pending_authorization(
                &scope,
                PendingAuthorization {
                    id,
                    state_hash: state_hash(&request.state),
                    workspace_id: scope.workspace_id(),
                    user_id: scope.actor().user_id(),
                    connection_id,
                    reauthorize,
                    connector: input.connector,
                    name,
                    settings,
                    client_id: client.client_id.clone(),
                    // The endpoint, not `request.url`: that one carries the state.
                    authorization_url: client.authorization_url.clone().unwrap_or_default(),
                    token_url: client.token_url.clone(),
                    revocation_url: client.revocation_url.clone(),
                    scopes: client.scopes.clone(),
                    redirect_uri,
                    sealed_secrets,
                    created_at,
                    expires_at,
                },
            )
            .await?;
        Ok(OAuth2Authorization {
            authorization_url: request.url.clone(),
            state: request.state.clone(),
            expires_at,
        })
    }

    /// Revokes an OAuth2 connection's grant: at the authorization server when its
    /// registration names a revocation endpoint (best effort), and here in any case, so
    /// steps stop using it (`REVOKED`) until it is authorized again with
    /// `startOAuth2Connection`. ADMIN and above.
    async fn revoke_connection(
        &self,
        ctx: &Context<'_>,
        input: RevokeConnectionInput,
    ) -> ApiResult<ConnectionObject> {
        let (state, scope, id) =
            connection_scope(ctx, &input.id, Action::ManageConnections).await?;
        let sealed = state
            .store
            .sealed_connection(&scope, id)
            .await?
            .ok_or_else(|| ApiError::not_found("connection"))?;
        if sealed.connection.auth_kind != AuthKind::OAuth2 {
            return Err(ApiError::bad_input(
                "only OAuth2 connections have a grant to revoke; delete this connection instead",
            ));
        }
        match state
            .vault
            .open(scope.workspace_id(), id, &sealed.sealed_credentials)
            .await
        {
            Ok(credentials) => {
                if let Some(oauth2) = credentials.oauth2()
                    && let Err(error) = state.oauth.revoke(oauth2).await
                {
                    tracing::warn!(connection.id = %id, %error, "the authorization server did not confirm a revocation");
                }
            }
            Err(error) => {
                tracing::error!(%error, connection.id = %id, "opening a connection's credentials to revoke them failed");
            }
        }
        let connection = state
            .store
            .set_connection_status(&scope, id, ConnectionStatus::Revoked)
            .await?;
        state.announce_connection(
            &connection,
            ConnectionEventKind::Revoked,
            format!("connection `{}` was revoked", connection.name.as_str()),
        );
        Ok(ConnectionObject(connection))
    }
}
