//! Authorization: the only code that turns a caller into a `WorkspaceScope`, through
//! `aos_domain::access::authorize`. Resolvers ask here for a scope and reach workspace
//! data only through store methods that take it.

use aos_domain::access::{Action, Principal, WorkspaceScope, authorize};
use aos_domain::ids::WorkspaceId;
use aos_domain::ports::ObjectRef;
use aos_domain::workspace::Role;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A scope in `workspace_id` for `action`; `NotFound(object)` for outsiders.
pub async fn scope_in(
    state: &AppState,
    principal: &Principal,
    workspace_id: WorkspaceId,
    action: Action,
    object: &'static str,
) -> ApiResult<WorkspaceScope> {
    let membership = match principal {
        Principal::User(user_id) => state.store.membership(*user_id, workspace_id).await?,
        // A token carries its workspace; a stored membership never widens it.
        Principal::ApiToken(_) => None,
    };
    Ok(authorize(
        principal,
        workspace_id,
        membership,
        action,
        object,
    )?)
}

/// A scope from a membership the caller has just read or created (the viewer's own list,
/// a new workspace), so it is not looked up a second time.
pub fn scope_with_role(
    principal: &Principal,
    workspace_id: WorkspaceId,
    role: Role,
    action: Action,
) -> ApiResult<WorkspaceScope> {
    Ok(authorize(
        principal,
        workspace_id,
        Some(role),
        action,
        "workspace",
    )?)
}

/// A scope in the workspace that owns `object`, or `NotFound` when the object does not
/// exist or belongs to a workspace the caller cannot see: the two are indistinguishable.
pub async fn scope_for(
    state: &AppState,
    principal: &Principal,
    object: ObjectRef,
    action: Action,
    name: &'static str,
) -> ApiResult<WorkspaceScope> {
    let workspace_id = state
        .store
        .locate(object)
        .await?
        .ok_or_else(|| ApiError::not_found(name))?;
    scope_in(state, principal, workspace_id, action, name).await
}

/// Parses an opaque id; a string that cannot be an id is an object that does not exist.
pub fn parse_id<T: std::str::FromStr>(raw: &str, object: &'static str) -> ApiResult<T> {
    raw.parse().map_err(|_| ApiError::not_found(object))
}
