//! Sessions: an access JWT plus a rotating refresh token. Each log-in starts a family;
//! each refresh spends the presented token and issues its successor in the same family.
//! Presenting a spent token means it was copied: the whole family is revoked, so both the
//! thief and the victim must log in again (OAuth 2.0 Security BCP, refresh token rotation).

use chrono::Utc;

use aos_domain::DomainError;
use aos_domain::ids::{RefreshTokenId, SessionFamilyId, UserId};
use aos_domain::ports::{NewRefreshToken, RefreshSpend};

use super::secrets;
use crate::state::AppState;

pub struct IssuedSession {
    pub access_token: String,
    pub refresh_token: String,
}

pub async fn start(state: &AppState, user_id: UserId) -> Result<IssuedSession, DomainError> {
    issue(state, user_id, SessionFamilyId::generate()).await
}

/// Spends `refresh_token` and issues the next session of its family.
pub async fn refresh(
    state: &AppState,
    refresh_token: &str,
) -> Result<(UserId, IssuedSession), DomainError> {
    let expired = || {
        DomainError::Unauthenticated("the refresh token is invalid or expired; log in again".into())
    };
    if !refresh_token.starts_with(secrets::REFRESH_TOKEN_PREFIX) {
        return Err(expired());
    }
    let now = Utc::now();
    match state
        .store
        .spend_refresh_token(&secrets::hash(refresh_token), now)
        .await?
    {
        RefreshSpend::Spent { user_id, family_id } => {
            Ok((user_id, issue(state, user_id, family_id).await?))
        }
        RefreshSpend::Reused { family_id } => {
            tracing::warn!(family.id = %family_id, "refresh token reused: revoking its session family");
            state.store.revoke_session_family(family_id, now).await?;
            Err(expired())
        }
        RefreshSpend::Dead | RefreshSpend::Unknown => Err(expired()),
    }
}

/// Ends the session the refresh token belongs to. Unknown tokens are ignored: logging out
/// twice is not an error.
pub async fn end(state: &AppState, refresh_token: &str) -> Result<(), DomainError> {
    let now = Utc::now();
    match state
        .store
        .spend_refresh_token(&secrets::hash(refresh_token), now)
        .await?
    {
        RefreshSpend::Spent { family_id, .. } | RefreshSpend::Reused { family_id } => {
            state.store.revoke_session_family(family_id, now).await
        }
        RefreshSpend::Dead | RefreshSpend::Unknown => Ok(()),
    }
}

async fn issue(
    state: &AppState,
    user_id: UserId,
    family_id: SessionFamilyId,
) -> Result<IssuedSession, DomainError> {
    let refresh_token = secrets::generate(secrets::REFRESH_TOKEN_PREFIX);
    let ttl = chrono::Duration::from_std(state.config.refresh_token_ttl)
        .map_err(DomainError::internal)?;
    state
        .store
        .insert_refresh_token(NewRefreshToken {
            id: RefreshTokenId::generate(),
            family_id,
            user_id,
            token_hash: secrets::hash(&refresh_token),
            expires_at: Utc::now() + ttl,
        })
        .await?;
    let access_token = state
        .keys
        .sign(user_id, state.config.access_token_ttl)
        .await?;
    Ok(IssuedSession {
        access_token,
        refresh_token,
    })
}
