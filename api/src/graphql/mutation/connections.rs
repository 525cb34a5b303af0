//! Connections: create, change, test and delete. Credentials come in, are checked and
//! sealed at once, and never go out again: not in an answer, not in an error, not in an
//! event. OAuth2 client-credentials connections are the exception to "checked": their
//! token is fetched at once, and a token endpoint that refuses refuses the connection.
//! Every change is announced to `connectionEvents` subscribers.

use async_graphql::{Context, ID, InputObject, Json, Object};
use chrono::{DateTime, Utc};
use serde_json::Value;

use aos_domain::access::{Action, WorkspaceScope};
use aos_domain::connection::{
    AuthKind, ConnectionChange, ConnectionEventKind, ConnectionName, ConnectionTestResult,
    Credentials, NewConnection,
};
use aos_domain::ids::ConnectionId;
use aos_domain::oauth::{ClientCredentialsRequest, OAuth2Grant};
use aos_domain::ports::ObjectRef;

use crate::authz::{parse_id, scope_for};
use crate::error::{ApiError, ApiResult};
use crate::graphql::connection_types::{ConnectionObject, ConnectionTest};
use crate::graphql::{app, request, workspace_scope};
use crate::state::AppState;

#[derive(InputObject)]
pub struct CreateConnectionInput {
    pub workspace_id: ID,
    /// A key of `connectorTypes`.
    pub connector: String,
    pub name: String,
    /// One of the shapes the contract documents, e.g. `{"kind": "bearer", "token": "..."}`,
    /// or an OAuth2 client-credentials grant: `{"kind": "oauth2", "grant":
    /// "clientCredentials", "clientId", "clientSecret", "tokenUrl", "scopes"}`, whose first
    /// token is fetched at once. Authorization-code connections start with
    /// `startOAuth2Connection`.
    pub credentials: Json<Value>,
    /// The connector's non-secret options; see `ConnectorType.settingsSchema`.
    pub settings: Option<Json<Value>>,
}

#[derive(InputObject)]
pub struct UpdateConnectionInput {
    pub id: ID,
    pub name: Option<String>,
    /// Replaces the credentials; they can be replaced, never read.
    pub credentials: Option<Json<Value>>,
    pub settings: Option<Json<Value>>,
}

#[derive(InputObject)]
pub struct TestConnectionInput {
    pub id: ID,
}

#[derive(InputObject)]
pub struct DeleteConnectionInput {
    pub id: ID,
}

#[derive(Default)]
pub struct ConnectionMutation;

#[Object]
impl ConnectionMutation {
    /// ADMIN and above, or a token with `CONNECTIONS_WRITE`.
    async fn create_connection(
        &self,
        ctx: &Context<'_>,
        input: CreateConnectionInput,
    ) -> ApiResult<ConnectionObject> {
        let (state, scope) =
            workspace_scope(ctx, &input.workspace_id, Action::ManageConnections).await?;
        let name = ConnectionName::parse(&input.name)?;
        let wanted = WantedCredentials::parse(&input.credentials.0)?;
        let settings = input
            .settings
            .map_or_else(|| Value::Object(Default::default()), |settings| settings.0);
        state
            .connectors
            .check_connection(&input.connector, wanted.auth_kind(), &settings)
            .map_err(ApiError::bad_input)?;
        let (credentials, token_expires_at) = wanted.obtain(state).await?;
        let id = ConnectionId::generate();
        let sealed_credentials = state
            .vault
            .seal(scope.workspace_id(), id, &credentials)
            .await?;
        let new = NewConnection {
            id,
            name,
            connector: input.connector,
            auth_kind: credentials.auth_kind(),
            settings,
            sealed_credentials,
        };
        let connection = match credentials.auth_kind() {
            AuthKind::OAuth2 => {
                state
                    .store
                    .create_oauth_connection(&scope, new, token_expires_at)
                    .await?
            }
            _ => state.store.create_connection(&scope, new).await?,
        };
        state.announce_connection(
            &connection,
            ConnectionEventKind::Created,
            format!("connection `{}` was created", connection.name.as_str()),
        );
        Ok(ConnectionObject(connection))
    }

    /// Renames, re-configures or replaces the credentials of a connection.
    async fn update_connection(
        &self,
        ctx: &Context<'_>,
        input: UpdateConnectionInput,
    ) -> ApiResult<ConnectionObject> {
        let (state, scope, id) =
            connection_scope(ctx, &input.id, Action::ManageConnections).await?;
        let current = state
            .store
            .connection(&scope, id)
            .await?
            .ok_or_else(|| ApiError::not_found("connection"))?;
        let mut change = ConnectionChange {
            name: input
                .name
                .as_deref()
                .map(ConnectionName::parse)
                .transpose()?,
            settings: input.settings.map(|settings| settings.0),
            credentials: None,
            token_expires_at: None,
        };
        let wanted = input
            .credentials
            .map(|credentials| WantedCredentials::parse(&credentials.0))
            .transpose()?;
        let auth_kind = wanted
            .as_ref()
            .map_or(current.auth_kind, WantedCredentials::auth_kind);
        let settings = change.settings.as_ref().unwrap_or(&current.settings);
        state
            .connectors
            .check_connection(&current.connector, auth_kind, settings)
            .map_err(ApiError::bad_input)?;
        if let Some(wanted) = wanted {
            let (credentials, token_expires_at) = wanted.obtain(state).await?;
            let sealed = state
                .vault
                .seal(scope.workspace_id(), id, &credentials)
                .await?;
            change.credentials = Some((auth_kind, sealed));
            change.token_expires_at = token_expires_at;
        }
        let connection = state.store.update_connection(&scope, id, change).await?;
        state.announce_connection(
            &connection,
            ConnectionEventKind::Updated,
            format!("connection `{}` was changed", connection.name.as_str()),
        );
        Ok(ConnectionObject(connection))
    }

    /// Checks the credentials against the service, as the connector defines; records
    /// when, and whether it worked. EDITOR and above.
    async fn test_connection(
        &self,
        ctx: &Context<'_>,
        input: TestConnectionInput,
    ) -> ApiResult<ConnectionTest> {
        let (state, scope, id) = connection_scope(ctx, &input.id, Action::UseConnections).await?;
        let sealed = state
            .store
            .sealed_connection(&scope, id)
            .await?
            .ok_or_else(|| ApiError::not_found("connection"))?;
        let result = if sealed.connection.auth_kind == AuthKind::OAuth2 {
            // As a step would: with a token renewed first if it is due, or refused with
            // the reason the connection cannot be used (it needs to be authorized again).
            match state
                .secrets
                .open_connection(scope.workspace_id(), id)
                .await
            {
                Ok((connection, credentials)) => {
                    state
                        .connection_tester
                        .test(&connection, &credentials)
                        .await
                }
                Err(message) => ConnectionTestResult { ok: false, message },
            }
        } else {
            match state
                .vault
                .open(scope.workspace_id(), id, &sealed.sealed_credentials)
                .await
            {
                Ok(credentials) => {
                    state
                        .connection_tester
                        .test(&sealed.connection, &credentials)
                        .await
                }
                Err(error) => {
                    tracing::error!(%error, connection_id = %id, "opening a connection's credentials failed");
                    ConnectionTestResult {
                        ok: false,
                        message:
                            "the credentials cannot be decrypted with this server's master keys"
                                .to_owned(),
                    }
                }
            }
        };
        state
            .store
            .record_connection_test(&scope, id, Utc::now(), result.ok)
            .await?;
        Ok(ConnectionTest {
            ok: result.ok,
            message: result.message,
        })
    }

    /// ADMIN and above. Steps that name it fail from then on with a clear error.
    async fn delete_connection(
        &self,
        ctx: &Context<'_>,
        input: DeleteConnectionInput,
    ) -> ApiResult<bool> {
        let (state, scope, id) =
            connection_scope(ctx, &input.id, Action::ManageConnections).await?;
        let existing = state
            .store
            .connection(&scope, id)
            .await?
            .ok_or_else(|| ApiError::not_found("connection"))?;
        state.store.delete_connection(&scope, id).await?;
        state.announce_connection(
            &existing,
            ConnectionEventKind::Deleted,
            format!("connection `{}` was deleted", existing.name.as_str()),
        );
        Ok(true)
    }
}

/// Credentials as a client asked for them: one of the contract's shapes, or an OAuth2
/// client-credentials grant whose token is yet to be fetched.
enum WantedCredentials {
    Given(Credentials),
    ClientCredentials(ClientCredentialsRequest),
}

impl WantedCredentials {
    fn parse(raw: &Value) -> ApiResult<Self> {
        if ClientCredentialsRequest::is_oauth2(raw) {
            Ok(Self::ClientCredentials(ClientCredentialsRequest::parse(
                raw,
            )?))
        } else {
            Ok(Self::Given(Credentials::parse(raw)?))
        }
    }

    fn auth_kind(&self) -> AuthKind {
        match self {
            Self::Given(credentials) => credentials.auth_kind(),
            Self::ClientCredentials(_) => AuthKind::OAuth2,
        }
    }

    /// The credentials to seal, with their access token's expiry: a client-credentials
    /// grant asks its token endpoint now, and its refusal is the caller's to fix.
    async fn obtain(self, state: &AppState) -> ApiResult<(Credentials, Option<DateTime<Utc>>)> {
        match self {
            Self::Given(credentials) => Ok((credentials, None)),
            Self::ClientCredentials(request) => {
                let token = state
                    .oauth
                    .client_credentials(&request.client)
                    .await
                    .map_err(|error| {
                        ApiError::bad_input(format!(
                            "credentials: the token endpoint issued no token: {error}"
                        ))
                    })?;
                let credentials =
                    request
                        .client
                        .credentials(OAuth2Grant::ClientCredentials, &token, Utc::now());
                let expires_at = credentials.expires_at;
                Ok((Credentials::OAuth2(credentials), expires_at))
            }
        }
    }
}

/// The caller's scope in the workspace of connection `raw_id`, for `action`.
pub(crate) async fn connection_scope<'a>(
    ctx: &Context<'a>,
    raw_id: &ID,
    action: Action,
) -> ApiResult<(&'a AppState, WorkspaceScope, ConnectionId)> {
    let principal = request(ctx)?.caller.principal()?;
    let state = app(ctx)?;
    let id: ConnectionId = parse_id(raw_id, "connection")?;
    let scope = scope_for(
        state,
        principal,
        ObjectRef::Connection(id),
        action,
        "connection",
    )
    .await?;
    Ok((state, scope, id))
}
