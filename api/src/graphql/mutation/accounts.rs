//! Accounts and sessions: the only mutations open to anonymous callers, so each attempt
//! passes the brute-force limiter first.

use async_graphql::{Context, InputObject, Object};

use aos_domain::DomainError;
use aos_domain::user::{Email, NewPassword, UserName};

use crate::auth::{password, session};
use crate::error::{ApiError, ApiResult};
use crate::graphql::types::{AuthPayload, UserObject};
use crate::graphql::{app, request};

#[derive(InputObject)]
pub struct SignUpInput {
    pub email: String,
    pub password: String,
    pub name: String,
}

#[derive(InputObject)]
pub struct LogInInput {
    pub email: String,
    pub password: String,
}

#[derive(InputObject)]
pub struct RefreshSessionInput {
    pub refresh_token: String,
}

#[derive(InputObject)]
pub struct LogOutInput {
    pub refresh_token: String,
}

#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    async fn sign_up(&self, ctx: &Context<'_>, input: SignUpInput) -> ApiResult<AuthPayload> {
        let state = app(ctx)?;
        state
            .auth_limiter
            .check(request(ctx)?.client_ip, &input.email)?;
        let email = Email::parse(&input.email)?;
        let name = UserName::parse(&input.name)?;
        let password_hash = password::hash(NewPassword::parse(input.password)?).await?;
        let user = state
            .store
            .create_user(&email, &name, &password_hash)
            .await?;
        let issued = session::start(state, user.id).await?;
        Ok(AuthPayload {
            access_token: issued.access_token,
            refresh_token: issued.refresh_token,
            user: UserObject(user),
        })
    }

    /// Wrong password and unknown e-mail answer alike, in message and in time.
    async fn log_in(&self, ctx: &Context<'_>, input: LogInInput) -> ApiResult<AuthPayload> {
        let state = app(ctx)?;
        state
            .auth_limiter
            .check(request(ctx)?.client_ip, &input.email)?;
        let invalid = || ApiError::unauthenticated("invalid e-mail or password");
        let credentials = match Email::parse(&input.email) {
            Ok(email) => state.store.credentials_by_email(&email).await?,
            Err(_) => None,
        };
        let stored_hash = credentials.as_ref().map(|c| c.password_hash.clone());
        if !password::verify(stored_hash, input.password).await? {
            return Err(invalid());
        }
        let user = credentials.map(|c| c.user).ok_or_else(invalid)?;
        let issued = session::start(state, user.id).await?;
        Ok(AuthPayload {
            access_token: issued.access_token,
            refresh_token: issued.refresh_token,
            user: UserObject(user),
        })
    }

    /// Spends the refresh token and returns a new pair. A token presented twice revokes
    /// its whole session family.
    async fn refresh_session(
        &self,
        ctx: &Context<'_>,
        input: RefreshSessionInput,
    ) -> ApiResult<AuthPayload> {
        let state = app(ctx)?;
        let (user_id, issued) = session::refresh(state, &input.refresh_token).await?;
        let user = state.store.user(user_id).await?.ok_or_else(|| {
            ApiError::from(DomainError::Unauthenticated(
                "the account no longer exists".into(),
            ))
        })?;
        Ok(AuthPayload {
            access_token: issued.access_token,
            refresh_token: issued.refresh_token,
            user: UserObject(user),
        })
    }

    /// Ends the session family of the refresh token. Access tokens already issued stay
    /// valid until they expire (minutes), which is the price of stateless access tokens.
    async fn log_out(&self, ctx: &Context<'_>, input: LogOutInput) -> ApiResult<bool> {
        session::end(app(ctx)?, &input.refresh_token).await?;
        Ok(true)
    }
}
