//! Authorization: the only code that turns a caller into a `WorkspaceScope`, through
//! `aos_domain::access::authorize`. Resolvers ask here for a scope and reach workspace
//! data only through store methods that take it.
//!
//! Authorization into a workspace is also where a GraphQL request counts against that
//! workspace's rate limit (see `limits::charge` for the rule), and where every verdict is
//! noted for the audit log of the mutation being resolved (see `audit` for the rule).

use aos_domain::access::{Action, Principal, WorkspaceScope, authorize};
use aos_domain::ids::WorkspaceId;
use aos_domain::ports::ObjectRef;
use aos_domain::workspace::Role;

use crate::audit;
use crate::error::{ApiError, ApiResult};
use crate::limits::charge::count_request;
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
    let verdict = authorize(principal, workspace_id, membership, action, object);
    audit::note_verdict(principal, workspace_id, &verdict);
    let scope = verdict?;
    on_request_span(workspace_id);
    // Counted only once authorized: an outsider's probes are `NOT_FOUND` and spend no
    // workspace's budget.
    count_request(&state.rate_limits, workspace_id).await?;
    Ok(scope)
}

/// A scope from a membership the caller has just read or created (the viewer's own list,
/// a new workspace), so it is not looked up a second time.
pub fn scope_with_role(
    principal: &Principal,
    workspace_id: WorkspaceId,
    role: Role,
    action: Action,
) -> ApiResult<WorkspaceScope> {
    let verdict = authorize(principal, workspace_id, Some(role), action, "workspace");
    audit::note_verdict(principal, workspace_id, &verdict);
    let scope = verdict?;
    on_request_span(workspace_id);
    Ok(scope)
}

/// Records the workspace a request acts in on its span (`crate::http::request_span`), so
/// its log lines say whose request it was; the last scope made wins. A span without that
/// field records nothing (a WebSocket's operations run outside any request span).
fn on_request_span(workspace_id: WorkspaceId) {
    tracing::Span::current().record("workspace_id", tracing::field::display(workspace_id));
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
    audit::note_object(object);
    scope_in(state, principal, workspace_id, action, name).await
}

/// Parses an opaque id; a string that cannot be an id is an object that does not exist.
pub fn parse_id<T: std::str::FromStr>(raw: &str, object: &'static str) -> ApiResult<T> {
    raw.parse().map_err(|_| ApiError::not_found(object))
}
