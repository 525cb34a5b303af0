//! OAuth2 for connections: the exchanges with authorization servers ([`OAuthFlows`]: the
//! authorization URL with PKCE, the code exchange, the client-credentials grant, refresh and
//! revocation) and the [`ConnectionSecrets`](aos_domain::ports::ConnectionSecrets) that keeps
//! OAuth2 access tokens fresh ([`RefreshingSecrets`], with its [`BackgroundRefresher`]).
//!
//! Invariants:
//! - every request to an authorization server goes through the guarded HTTP client
//!   (`adapter`), so the SSRF rules of `http.request` hold for token, and revocation URLs
//!   too, and no redirect is followed (a redirected token request would carry the client
//!   secret and the code to wherever the redirect points);
//! - nothing here puts a token, a client secret, a code or a PKCE verifier in an error, a
//!   log line or an event: errors carry the server's OAuth2 error code at most
//!   ([`OAuthError`]);
//! - a connection's token is refreshed by one process at a time, whichever asks first
//!   holding the connection's lease in the database; the others wait for it and re-read.

mod adapter;
mod error;
mod flows;
mod refresh;
#[cfg(test)]
mod tests;

pub use error::{OAuthError, safe_code};
pub use flows::{AuthorizationRequest, OAuthFlows};
pub use refresh::{BackgroundRefresher, RefreshStorage, RefreshTiming, RefreshingSecrets};
