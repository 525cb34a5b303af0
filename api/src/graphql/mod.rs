//! The GraphQL schema: queries, mutations, subscriptions and the guards around them.

pub mod connection_types;
pub mod extensions;
pub mod mutation;
pub mod query;
pub mod run_streams;
pub mod run_types;
pub mod stats_types;
pub mod subscription;
pub mod types;
pub mod usage_types;

use std::net::IpAddr;

use async_graphql::{Context, Schema};

use aos_domain::access::{Action, WorkspaceScope};
use aos_domain::ids::WorkspaceId;

use crate::auth::authn::Caller;
use crate::authz::{parse_id, scope_in};
use crate::config::GraphqlLimits;
use crate::error::ApiResult;
use crate::state::AppState;

pub type AppSchema = Schema<query::Query, mutation::Mutation, subscription::Subscription>;

/// Who sent one HTTP request or opened one socket.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub caller: Caller,
    pub client_ip: IpAddr,
}

pub fn build_schema(state: Option<AppState>, limits: GraphqlLimits) -> AppSchema {
    let mut builder = Schema::build(
        query::Query,
        mutation::Mutation::default(),
        subscription::Subscription,
    )
    .limit_depth(limits.max_depth)
    .limit_complexity(limits.max_complexity)
    .limit_directives(20)
    .extension(extensions::DocumentLimits {
        max_aliases: limits.max_aliases,
        max_expanded_fields: limits.max_complexity,
    })
    .extension(extensions::Metrics)
    .extension(extensions::AuditLog)
    .extension(extensions::ErrorCodes);
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder.finish()
}

/// The SDL of the schema, as `automationos schema` prints it.
pub fn sdl() -> String {
    build_schema(None, crate::config::ApiConfig::default().graphql).sdl()
}

pub(crate) fn app<'a>(ctx: &Context<'a>) -> ApiResult<&'a AppState> {
    Ok(ctx.data::<AppState>()?)
}

/// The caller's scope in the workspace a GraphQL id names, for `action`; `NOT_FOUND`
/// when the id is malformed or the workspace is not the caller's.
pub(crate) async fn workspace_scope<'a>(
    ctx: &Context<'a>,
    workspace_id: &async_graphql::ID,
    action: Action,
) -> ApiResult<(&'a AppState, WorkspaceScope)> {
    let principal = request(ctx)?.caller.principal()?;
    let state = app(ctx)?;
    let workspace_id: WorkspaceId = parse_id(workspace_id, "workspace")?;
    let scope = scope_in(state, principal, workspace_id, action, "workspace").await?;
    Ok((state, scope))
}

pub(crate) fn request<'a>(ctx: &Context<'a>) -> ApiResult<&'a RequestCtx> {
    Ok(ctx.data::<RequestCtx>()?)
}
