//! `GET /oauth/callback`: where an authorization server sends the user back with a `code`
//! (or an `error`) and the `state` of an authorization `startOAuth2Connection` began.
//!
//! Policy:
//! - the `state` is looked up by its hash and used up at once: an unknown, expired or
//!   already used state is refused with 400 and changes nothing;
//! - the user who started the authorization must still be allowed to manage the
//!   workspace's connections; the code is then exchanged with the PKCE verifier, and the
//!   connection created (or, for a re-authorization, given its new credentials, `VALID`);
//! - the answer is a redirect to `{public_url}/connections/{id}?oauth=connected`, or
//!   `?oauth=error&reason=<code>`, where the reason is an OAuth2 error code or one of ours
//!   (`forbidden`, `missing_code`, `name_taken`, `connection_not_found`, `server_error`),
//!   never a message of the authorization server and never a secret;
//! - neither the code nor the state is logged (the request span records the path only),
//!   and the answer is not cached and sends no `Referer` onward.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;

use aos_connectors::oauth::OAuthError;
use aos_domain::DomainError;
use aos_domain::access::{Action, Principal};
use aos_domain::connection::{
    AuthKind, Connection, ConnectionChange, ConnectionEventKind, Credentials, NewConnection,
};
use aos_domain::oauth::{OAuth2Grant, PendingAuthorization};

use super::HttpState;
use crate::authz::scope_in;
use crate::oauth::state_hash;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Why an authorization did not complete, as the redirect names it.
struct Failure(String);

impl Failure {
    fn ours(reason: &str) -> Self {
        Self(reason.to_owned())
    }

    fn server(error: &OAuthError) -> Self {
        Self(
            error
                .code()
                .map_or_else(|| "token_exchange_failed".to_owned(), str::to_owned),
        )
    }
}

pub async fn callback(
    State(http): State<HttpState>,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let app = &http.app;
    let Some(state) = query.state.as_deref().filter(|state| !state.is_empty()) else {
        return refuse("the request carries no `state`; start connecting again");
    };
    let pending = match app
        .store
        .take_pending_authorization(&state_hash(state), Utc::now())
        .await
    {
        Ok(Some(pending)) => pending,
        Ok(None) => {
            return refuse(
                "this authorization is unknown, has expired or was already used; start connecting again",
            );
        }
        Err(error) => {
            tracing::error!(%error, "reading an OAuth2 authorization failed");
            return no_store(
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; start connecting again",
                )
                    .into_response(),
            );
        }
    };
    let destination = format!(
        "{}/connections/{}",
        app.config.public_url, pending.connection_id
    );
    let outcome = complete(app, &pending, &query).await;
    let location = match outcome {
        Ok(()) => format!("{destination}?oauth=connected"),
        Err(Failure(reason)) => {
            let reason = aos_connectors::oauth::safe_code(&reason);
            tracing::info!(
                workspace.id = %pending.workspace_id,
                connection.id = %pending.connection_id,
                %reason,
                "an OAuth2 authorization did not complete"
            );
            format!("{destination}?oauth=error&reason={reason}")
        }
    };
    no_store(Redirect::to(&location).into_response())
}

async fn complete(
    app: &AppState,
    pending: &PendingAuthorization,
    query: &CallbackQuery,
) -> Result<(), Failure> {
    if let Some(error) = &query.error {
        return Err(Failure(error.clone()));
    }
    let code = query
        .code
        .as_deref()
        .filter(|code| !code.is_empty())
        .ok_or_else(|| Failure::ours("missing_code"))?;
    let scope = scope_in(
        app,
        &Principal::User(pending.user_id),
        pending.workspace_id,
        Action::ManageConnections,
        "workspace",
    )
    .await
    .map_err(|_| Failure::ours("forbidden"))?;
    let secrets = app
        .vault
        .open_pending(pending.workspace_id, pending.id, &pending.sealed_secrets)
        .await
        .map_err(|error| {
            tracing::error!(%error, "opening an OAuth2 authorization's secrets failed");
            Failure::ours("server_error")
        })?;
    let client = pending.client(&secrets);
    let token = app
        .oauth
        .exchange_code(&client, &pending.redirect_uri, code, &secrets.pkce_verifier)
        .await
        .map_err(|error| {
            tracing::warn!(%error, connection.id = %pending.connection_id, "an OAuth2 code exchange failed");
            Failure::server(&error)
        })?;
    let credentials = client.credentials(OAuth2Grant::AuthorizationCode, &token, Utc::now());
    let token_expires_at = credentials.expires_at;
    let sealed_credentials = app
        .vault
        .seal(
            pending.workspace_id,
            pending.connection_id,
            &Credentials::OAuth2(credentials),
        )
        .await
        .map_err(|error| {
            tracing::error!(%error, "sealing an OAuth2 connection's credentials failed");
            Failure::ours("server_error")
        })?;
    let stored = if pending.reauthorize {
        app.store
            .update_connection(
                &scope,
                pending.connection_id,
                ConnectionChange {
                    name: Some(pending.name.clone()),
                    settings: Some(pending.settings.clone()),
                    credentials: Some((AuthKind::OAuth2, sealed_credentials)),
                    token_expires_at,
                },
            )
            .await
    } else {
        app.store
            .create_oauth_connection(
                &scope,
                NewConnection {
                    id: pending.connection_id,
                    name: pending.name.clone(),
                    connector: pending.connector.clone(),
                    auth_kind: AuthKind::OAuth2,
                    settings: pending.settings.clone(),
                    sealed_credentials,
                },
                token_expires_at,
            )
            .await
    };
    let connection: Connection = stored.map_err(|error| match error {
        DomainError::Conflict(_) => Failure::ours("name_taken"),
        DomainError::NotFound(_) => Failure::ours("connection_not_found"),
        other => {
            // Logs the detail, with an error id, once.
            let _ = crate::error::ApiError::internal(&other);
            Failure::ours("server_error")
        }
    })?;
    let (kind, done) = if pending.reauthorize {
        (ConnectionEventKind::Updated, "was authorized again")
    } else {
        (ConnectionEventKind::Created, "was connected")
    };
    app.announce_connection(
        &connection,
        kind,
        format!("connection `{}` {done}", connection.name.as_str()),
    );
    Ok(())
}

fn refuse(message: &'static str) -> Response {
    no_store((StatusCode::BAD_REQUEST, message).into_response())
}

/// The answer carries the outcome of a one-time authorization: nobody keeps it, and the
/// page it leads to learns nothing of this URL (whose query held the code).
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
