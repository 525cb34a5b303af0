//! Encryption of secrets the server keeps in the database (JWT signing keys) under the
//! master key, with AES-256-GCM. A fresh random nonce per seal; the associated data binds
//! a ciphertext to its purpose and row, so it cannot be moved to another row and opened.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;

#[derive(Clone)]
pub struct MasterKey(Aes256Gcm);

#[derive(Debug, thiserror::Error)]
pub enum SealingError {
    #[error("ciphertext is damaged or was sealed under another key or for another row")]
    Open,
    #[error("encryption failed")]
    Seal,
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(Aes256Gcm::new(bytes.into()))
    }

    /// `nonce || ciphertext+tag`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealingError> {
        aos_vault::seal(&self.0, plaintext, aad).map_err(|_| SealingError::Seal)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealingError> {
        aos_vault::open(&self.0, sealed, aad).map_err(|_| SealingError::Open)
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(**redacted**)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_its_key_and_aad() {
        let key = MasterKey::from_bytes(&[7; 32]);
        let other = MasterKey::from_bytes(&[8; 32]);
        let Ok(sealed) = key.seal(b"secret", b"row-1") else {
            unreachable!()
        };
        assert_eq!(
            key.open(&sealed, b"row-1").ok().as_deref(),
            Some(b"secret".as_slice())
        );
        assert!(key.open(&sealed, b"row-2").is_err());
        assert!(other.open(&sealed, b"row-1").is_err());
        assert!(key.open(&sealed[..5], b"row-1").is_err());
        assert_ne!(
            key.seal(b"secret", b"row-1").ok(),
            Some(sealed),
            "nonces must be fresh"
        );
    }
}
