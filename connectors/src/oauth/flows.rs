//! The exchanges with an authorization server, through the `oauth2` crate: the
//! authorization URL (with a PKCE S256 challenge and a 256-bit `state`), the code exchange,
//! the client-credentials grant, refresh, and revocation (RFC 7009).
//!
//! Clients authenticate with HTTP Basic (RFC 6749 §2.3.1) when they have a secret, and by
//! `client_id` in the body when they are public (PKCE is then their only proof).

use std::fmt;
use std::time::Duration;

use aos_domain::oauth::{IssuedToken, OAuth2Client, OAuth2Credentials, OAuth2Grant};
use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RevocationUrl, Scope, StandardRevocableToken,
    TokenResponse, TokenUrl,
};
use zeroize::Zeroize;

use super::adapter::GuardedTransport;
use super::error::{OAuthError, from_request_error};
use crate::http::{HttpClient, HttpError, HttpPolicy};

/// The bytes of randomness in a `state`: 256 bits, like our other secrets.
const STATE_BYTES: u32 = 32;

/// The exchanges this server makes with authorization servers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OAuthFlows {
    transport: GuardedTransport,
}

/// Where to send the user to authorize a connection, and what to keep until they return.
pub struct AuthorizationRequest {
    pub url: String,
    /// Comes back with the user; only its hash is stored.
    pub state: String,
    /// Proves at the code exchange that we started this authorization (PKCE).
    pub pkce_verifier: String,
}

impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthorizationRequest(**redacted**)")
    }
}

impl Drop for AuthorizationRequest {
    fn drop(&mut self) {
        self.state.zeroize();
        self.pkce_verifier.zeroize();
    }
}

impl OAuthFlows {
    /// Exchanges under `policy`'s address rules (`--http-allow-private`), but never
    /// following a redirect, and with their own time and size limits.
    pub fn new(policy: HttpPolicy) -> Result<Self, HttpError> {
        let timeout = policy.total_timeout.min(Duration::from_secs(20));
        let http = HttpClient::new(HttpPolicy {
            max_redirects: 0,
            max_response_bytes: super::adapter::MAX_RESPONSE_BYTES,
            ..policy
        })?;
        Ok(Self {
            transport: GuardedTransport { http, timeout },
        })
    }

    /// The authorization URL for `client`, returning the user to `redirect_uri`.
    pub fn authorization_request(
        &self,
        client: &OAuth2Client,
        redirect_uri: &str,
    ) -> Result<AuthorizationRequest, OAuthError> {
        let authorization_url = client
            .authorization_url
            .as_deref()
            .ok_or_else(|| OAuthError::Config("authorizationUrl is required".to_owned()))?;
        let registration = BasicClient::new(ClientId::new(client.client_id.clone()))
            .set_auth_uri(
                AuthUrl::new(authorization_url.to_owned()).map_err(config("authorizationUrl"))?,
            )
            .set_redirect_uri(
                RedirectUrl::new(redirect_uri.to_owned()).map_err(config("redirect URL"))?,
            );
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = registration
            .authorize_url(|| CsrfToken::new_random_len(STATE_BYTES))
            .add_scopes(client.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge)
            .url();
        Ok(AuthorizationRequest {
            url: url.into(),
            state: state.into_secret(),
            pkce_verifier: verifier.into_secret(),
        })
    }

    /// Trades an authorization code for tokens, proving with the PKCE verifier that this
    /// server started the authorization.
    pub async fn exchange_code(
        &self,
        client: &OAuth2Client,
        redirect_uri: &str,
        code: &str,
        pkce_verifier: &str,
    ) -> Result<IssuedToken, OAuthError> {
        let registration = with_secret(
            BasicClient::new(ClientId::new(client.client_id.clone())),
            client,
        )
        .set_token_uri(token_url(&client.token_url)?)
        .set_redirect_uri(
            RedirectUrl::new(redirect_uri.to_owned()).map_err(config("redirect URL"))?,
        );
        let answer = registration
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.transport)
            .await
            .map_err(from_request_error)?;
        Ok(issued(&answer))
    }

    /// A token for the client itself (the client-credentials grant).
    pub async fn client_credentials(
        &self,
        client: &OAuth2Client,
    ) -> Result<IssuedToken, OAuthError> {
        let registration = with_secret(
            BasicClient::new(ClientId::new(client.client_id.clone())),
            client,
        )
        .set_token_uri(token_url(&client.token_url)?);
        let answer = registration
            .exchange_client_credentials()
            .add_scopes(client.scopes.iter().cloned().map(Scope::new))
            .request_async(&self.transport)
            .await
            .map_err(from_request_error)?;
        Ok(issued(&answer))
    }

    /// A new access token for `credentials`: with the refresh token, or, for client
    /// credentials, by asking again. `Refused { invalid_grant }` when there is no refresh
    /// token to use, as the server would answer for a missing one.
    pub async fn refresh(
        &self,
        credentials: &OAuth2Credentials,
    ) -> Result<IssuedToken, OAuthError> {
        let client = credentials.client();
        match (credentials.grant, &credentials.refresh_token) {
            (OAuth2Grant::ClientCredentials, _) => self.client_credentials(&client).await,
            (OAuth2Grant::AuthorizationCode, Some(refresh_token)) => {
                let registration = with_secret(
                    BasicClient::new(ClientId::new(client.client_id.clone())),
                    &client,
                )
                .set_token_uri(token_url(&client.token_url)?);
                let refresh_token = RefreshToken::new(refresh_token.clone());
                let answer = registration
                    .exchange_refresh_token(&refresh_token)
                    .request_async(&self.transport)
                    .await
                    .map_err(from_request_error)?;
                Ok(issued(&answer))
            }
            (OAuth2Grant::AuthorizationCode, None) => Err(OAuthError::refused("invalid_grant")),
        }
    }

    /// Tells the server to revoke the grant (its refresh token, or else the access token),
    /// if the registration names a revocation endpoint; `false` when it names none.
    pub async fn revoke(&self, credentials: &OAuth2Credentials) -> Result<bool, OAuthError> {
        let Some(revocation_url) = &credentials.revocation_url else {
            return Ok(false);
        };
        let client = credentials.client();
        let registration = with_secret(
            BasicClient::new(ClientId::new(client.client_id.clone())),
            &client,
        )
        .set_revocation_url(
            RevocationUrl::new(revocation_url.clone()).map_err(config("revocationUrl"))?,
        );
        let token = match &credentials.refresh_token {
            Some(refresh_token) => {
                StandardRevocableToken::RefreshToken(RefreshToken::new(refresh_token.clone()))
            }
            None => StandardRevocableToken::AccessToken(oauth2::AccessToken::new(
                credentials.access_token.clone(),
            )),
        };
        registration
            .revoke_token(token)
            .map_err(|_| OAuthError::Config("revocationUrl must be an https URL".to_owned()))?
            .request_async(&self.transport)
            .await
            .map_err(from_request_error)?;
        Ok(true)
    }
}

fn with_secret<A, B, C, D, E>(
    registration: BasicClient<A, B, C, D, E>,
    client: &OAuth2Client,
) -> BasicClient<A, B, C, D, E>
where
    A: oauth2::EndpointState,
    B: oauth2::EndpointState,
    C: oauth2::EndpointState,
    D: oauth2::EndpointState,
    E: oauth2::EndpointState,
{
    if client.client_secret.is_empty() {
        registration
    } else {
        registration.set_client_secret(ClientSecret::new(client.client_secret.clone()))
    }
}

fn token_url(raw: &str) -> Result<TokenUrl, OAuthError> {
    TokenUrl::new(raw.to_owned()).map_err(config("tokenUrl"))
}

fn config(field: &'static str) -> impl Fn(url::ParseError) -> OAuthError {
    move |_| OAuthError::Config(format!("{field} must be an absolute URL"))
}

fn issued(answer: &BasicTokenResponse) -> IssuedToken {
    IssuedToken {
        access_token: answer.access_token().secret().clone(),
        refresh_token: answer.refresh_token().map(|token| token.secret().clone()),
        token_type: answer.token_type().as_ref().to_owned(),
        expires_in: answer.expires_in(),
        scopes: answer
            .scopes()
            .map(|scopes| scopes.iter().map(|scope| scope.to_string()).collect()),
    }
}
