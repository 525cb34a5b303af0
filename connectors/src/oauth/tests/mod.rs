//! Tests of the OAuth2 exchanges (`flows`) and of token renewal over real storage
//! (`refresh`), both against a local fake authorization server.

mod flows;
mod refresh;

use aos_domain::oauth::{IssuedToken, OAuth2Client, OAuth2Credentials, OAuth2Grant};
use chrono::Utc;

use crate::http::HttpPolicy;
use crate::oauth::OAuthFlows;

/// The exchanges; `allow_private` lets them reach the fake server on loopback.
fn flows(allow_private: bool) -> OAuthFlows {
    OAuthFlows::new(HttpPolicy {
        allow_private,
        ..HttpPolicy::default()
    })
    .expect("the OAuth2 client builds")
}

/// A client registered with the authorization server at `base`. Its id and secret hold
/// characters that Basic authentication must encode.
fn client_at(base: &str) -> OAuth2Client {
    OAuth2Client {
        client_id: "client one".into(),
        client_secret: "s3cret:/+=".into(),
        token_url: format!("{base}/token"),
        authorization_url: Some(format!("{base}/authorize")),
        revocation_url: None,
        scopes: vec!["read".into(), "write:all".into()],
    }
}

/// Credentials as if `client` had just been issued a token expiring in `expires_in_secs`.
fn issued_at(
    client: &OAuth2Client,
    grant: OAuth2Grant,
    refresh_token: Option<&str>,
    expires_in_secs: u64,
) -> OAuth2Credentials {
    let token = IssuedToken {
        access_token: "acc-0".into(),
        refresh_token: refresh_token.map(str::to_owned),
        token_type: "bearer".into(),
        expires_in: Some(std::time::Duration::from_secs(expires_in_secs)),
        scopes: None,
    };
    client.credentials(grant, &token, Utc::now())
}
