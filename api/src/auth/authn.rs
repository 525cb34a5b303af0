//! Turns the `Authorization` header (or a WebSocket `connection_init` payload) into the
//! caller. Failure is not an error yet: public mutations (signUp, logIn) work without a
//! caller, and every field that needs one reports UNAUTHENTICATED.

use chrono::Utc;

use aos_domain::access::{Principal, TokenPrincipal};
use aos_domain::api_token::TOKEN_PREFIX;

use super::secrets;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The outcome of authentication for one request or socket.
#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    /// Credentials were presented but are not valid; the reason is safe to show.
    Rejected(&'static str),
    Authenticated(Principal),
}

impl Caller {
    pub fn principal(&self) -> ApiResult<&Principal> {
        match self {
            Caller::Authenticated(principal) => Ok(principal),
            Caller::Anonymous => Err(ApiError::unauthenticated(
                "sign in first: send `Authorization: Bearer <token>`",
            )),
            Caller::Rejected(reason) => Err(ApiError::unauthenticated(*reason)),
        }
    }
}

pub async fn authenticate(
    state: &AppState,
    authorization: Option<&str>,
) -> Result<Caller, ApiError> {
    let Some(header) = authorization.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(Caller::Anonymous);
    };
    let Some(token) = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
    else {
        return Ok(Caller::Rejected(
            "the Authorization header must be `Bearer <token>`",
        ));
    };
    if token.starts_with(TOKEN_PREFIX) {
        return api_token(state, token).await;
    }
    Ok(match state.keys.verify(token).await {
        Some(user_id) => Caller::Authenticated(Principal::User(user_id)),
        None => Caller::Rejected(
            "the access token is invalid or expired; refresh the session or log in again",
        ),
    })
}

async fn api_token(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let rejected = Caller::Rejected("the API token is invalid, revoked or expired");
    let Some(stored) = state.store.api_token_by_hash(&secrets::hash(token)).await? else {
        return Ok(rejected);
    };
    let now = Utc::now();
    if !stored.is_usable_at(now) {
        return Ok(rejected);
    }
    // Coarse on purpose: one write a minute per token is plenty for "last used" and keeps
    // a busy integration from turning every read into a write.
    if stored
        .last_used_at
        .is_none_or(|at| now - at > chrono::Duration::seconds(60))
    {
        state.store.touch_api_token(stored.id, now).await?;
    }
    Ok(Caller::Authenticated(Principal::ApiToken(TokenPrincipal {
        id: stored.id,
        workspace_id: stored.workspace_id,
        scopes: stored.scopes,
        created_by: stored.created_by,
    })))
}
