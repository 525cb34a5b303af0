//! Password hashing with argon2id (the crate's defaults follow the OWASP recommendation).
//! Hashing is deliberately slow, so it runs on the blocking pool, never on a runtime thread.

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};

use aos_domain::DomainError;
use aos_domain::user::NewPassword;

pub async fn hash(password: NewPassword) -> Result<String, DomainError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| DomainError::internal(e.to_string()))
    })
    .await
    .map_err(DomainError::internal)?
}

/// Checks `candidate` against a stored hash. With no stored hash (unknown e-mail) it
/// still spends the time of one verification, so response times do not reveal which
/// addresses have accounts.
pub async fn verify(stored: Option<String>, candidate: String) -> Result<bool, DomainError> {
    tokio::task::spawn_blocking(move || {
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let parsed =
            PasswordHash::new(&stored).map_err(|e| DomainError::internal(e.to_string()))?;
        let matches = Argon2::default()
            .verify_password(candidate.as_bytes(), &parsed)
            .is_ok();
        Ok(matches && stored != DUMMY_HASH)
    })
    .await
    .map_err(DomainError::internal)?
}

/// The argon2id hash of a random password nobody knows, with the default parameters.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0k3Sf2LHZq3SZLb7mDMKeh0o+ZV7d9hTTsuW7H6x3vY";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let Ok(password) = NewPassword::parse("correct horse".into()) else {
            unreachable!()
        };
        let stored = hash(password).await.ok();
        assert!(
            stored
                .as_deref()
                .is_some_and(|h| h.starts_with("$argon2id$"))
        );
        assert_eq!(
            verify(stored.clone(), "correct horse".into()).await.ok(),
            Some(true)
        );
        assert_eq!(verify(stored, "wrong horse".into()).await.ok(), Some(false));
    }

    #[tokio::test]
    async fn an_unknown_account_never_verifies() {
        assert_eq!(verify(None, "anything".into()).await.ok(), Some(false));
    }
}
