//! The API's side of OAuth2: where authorization servers send users back, and how a
//! returning `state` finds its pending authorization.
//!
//! Invariant: a `state` is 256 random bits shown once (in the authorization URL and the
//! `startOAuth2Connection` answer); only its SHA-256 is stored, so a database reader
//! cannot complete someone else's authorization.

use sha2::{Digest, Sha256};

/// The path of the redirect target, `GET /oauth/callback` in the contract.
pub const CALLBACK_PATH: &str = "/oauth/callback";

/// The redirect URI to register with authorization servers: `{public_url}/oauth/callback`.
pub fn redirect_uri(public_url: &str) -> String {
    format!("{}{CALLBACK_PATH}", public_url.trim_end_matches('/'))
}

/// The key a pending authorization is stored under.
pub fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::{redirect_uri, state_hash};

    #[test]
    fn the_redirect_uri_is_the_callback_under_the_public_url() {
        assert_eq!(
            redirect_uri("https://aos.example.com/"),
            "https://aos.example.com/oauth/callback"
        );
    }

    #[test]
    fn a_state_is_found_by_a_hash_that_does_not_contain_it() {
        let hash = state_hash("s3cr3t-state");
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, state_hash("s3cr3t-state"));
        assert_ne!(hash, state_hash("s3cr3t-statf"));
        assert!(!hash.contains("s3cr3t"));
    }
}
