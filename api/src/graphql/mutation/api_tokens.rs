//! API tokens for integrators.

use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, Utc};

use aos_domain::access::Action;
use aos_domain::api_token::{ApiTokenName, Scope as DomainScope, Scopes, TOKEN_PREFIX};
use aos_domain::ids::ApiTokenId;
use aos_domain::ports::{NewApiToken as NewStoredToken, ObjectRef};

use crate::auth::secrets;
use crate::authz::{parse_id, scope_for};
use crate::error::{ApiError, ApiResult};
use crate::graphql::types::{ApiTokenObject, NewApiToken, Scope};
use crate::graphql::{app, request, workspace_scope};

#[derive(InputObject)]
pub struct CreateApiTokenInput {
    pub workspace_id: ID,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Omit for a token that lives until revoked.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct RevokeApiTokenInput {
    pub id: ID,
}

#[derive(Default)]
pub struct ApiTokenMutation;

#[Object]
impl ApiTokenMutation {
    /// The secret is in the answer, once; only its hash is stored.
    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        input: CreateApiTokenInput,
    ) -> ApiResult<NewApiToken> {
        let (state, scope) =
            workspace_scope(ctx, &input.workspace_id, Action::ManageApiTokens).await?;
        let name = ApiTokenName::parse(&input.name)?;
        let scopes = Scopes::new(input.scopes.into_iter().map(DomainScope::from))?;
        if input.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(ApiError::bad_input("`expiresAt` must be in the future"));
        }
        let token = secrets::generate(TOKEN_PREFIX);
        let stored = state
            .store
            .create_api_token(
                &scope,
                NewStoredToken {
                    name,
                    scopes,
                    token_hash: secrets::hash(&token),
                    expires_at: input.expires_at,
                },
            )
            .await?;
        Ok(NewApiToken {
            token,
            api_token: ApiTokenObject(stored),
        })
    }

    async fn revoke_api_token(
        &self,
        ctx: &Context<'_>,
        input: RevokeApiTokenInput,
    ) -> ApiResult<bool> {
        let principal = request(ctx)?.caller.principal()?;
        let state = app(ctx)?;
        let id: ApiTokenId = parse_id(&input.id, "API token")?;
        let scope = scope_for(
            state,
            principal,
            ObjectRef::ApiToken(id),
            Action::ManageApiTokens,
            "API token",
        )
        .await?;
        state.store.revoke_api_token(&scope, id, Utc::now()).await?;
        Ok(true)
    }
}
