//! Bearer secrets (refresh tokens, API tokens): 256 random bits, stored only as a hash.
//! SHA-256 suffices (no salt or slow hash) because the secrets have full entropy: there is
//! no dictionary to attack, unlike passwords.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Refresh tokens carry their own prefix so they can never be mistaken for API tokens.
pub const REFRESH_TOKEN_PREFIX: &str = "aosr_";

pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A random path segment (webhook keys): unguessable, URL-safe.
pub fn url_key() -> String {
    generate("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_unique_and_hash_stably() {
        let a = generate("aos_");
        let b = generate("aos_");
        assert!(a.starts_with("aos_") && a.len() == 4 + 43);
        assert_ne!(a, b);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert!(!generate(REFRESH_TOKEN_PREFIX).starts_with(aos_domain::api_token::TOKEN_PREFIX));
    }
}
