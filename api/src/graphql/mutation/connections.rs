//! Connections: create, change, test and delete. Credentials come in, are checked and
//! sealed at once, and never go out again: not in an answer, not in an error.

use async_graphql::{Context, ID, InputObject, Json, Object};
use chrono::Utc;
use serde_json::Value;

use aos_domain::access::{Action, WorkspaceScope};
use aos_domain::connection::{
    AuthKind, ConnectionChange, ConnectionName, Credentials, NewConnection,
};
use aos_domain::ids::ConnectionId;
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
    /// One of the shapes the contract documents, e.g. `{"kind": "bearer", "token": "..."}`.
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
        let credentials = Credentials::parse(&input.credentials.0)?;
        let settings = input
            .settings
            .map_or_else(|| Value::Object(Default::default()), |settings| settings.0);
        state
            .connectors
            .check_connection(&input.connector, credentials.auth_kind(), &settings)
            .map_err(ApiError::bad_input)?;
        let id = ConnectionId::generate();
        let sealed_credentials = state
            .vault
            .seal(scope.workspace_id(), id, &credentials)
            .await?;
        let connection = state
            .store
            .create_connection(
                &scope,
                NewConnection {
                    id,
                    name,
                    connector: input.connector,
                    auth_kind: credentials.auth_kind(),
                    settings,
                    sealed_credentials,
                },
            )
            .await?;
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
        };
        let mut auth_kind: AuthKind = current.auth_kind;
        let credentials = input
            .credentials
            .map(|credentials| Credentials::parse(&credentials.0))
            .transpose()?;
        if let Some(credentials) = &credentials {
            auth_kind = credentials.auth_kind();
        }
        let settings = change.settings.as_ref().unwrap_or(&current.settings);
        state
            .connectors
            .check_connection(&current.connector, auth_kind, settings)
            .map_err(ApiError::bad_input)?;
        if let Some(credentials) = &credentials {
            let sealed = state
                .vault
                .seal(scope.workspace_id(), id, credentials)
                .await?;
            change.credentials = Some((auth_kind, sealed));
        }
        let connection = state.store.update_connection(&scope, id, change).await?;
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
        let result = match state
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
                aos_domain::connection::ConnectionTestResult {
                    ok: false,
                    message: "the credentials cannot be decrypted with this server's master keys"
                        .to_owned(),
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
        state.store.delete_connection(&scope, id).await?;
        Ok(true)
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
