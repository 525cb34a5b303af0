//! The credential vault's cryptography: envelope encryption of connection secrets with
//! AES-256-GCM. No I/O: storage keeps what this crate produces, and hands it back.
//!
//! Two layers. A **data key** (random, 256 bits, one per workspace) encrypts secrets; it
//! is stored only wrapped by a **master key** (`AOS_MASTER_KEY`), so a database dump alone
//! opens nothing. Rotating the master key re-wraps the data keys, a few bytes each, and
//! never touches the secrets.
//!
//! Invariants:
//! - every seal uses a fresh random nonce, and every ciphertext records the id of the key
//!   that sealed it;
//! - the associated data binds a wrapped data key to its workspace, and a sealed secret to
//!   its workspace, its connection and its data key, so a ciphertext copied to another
//!   row or tenant fails to open instead of opening as someone else's secret;
//! - key material is zeroed when dropped and never printed (`Debug` redacts it).

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;
/// The first byte of every sealed secret, so the format can change without guessing.
const FORMAT_V1: u8 = 1;
const WRAP_PURPOSE: &[u8] = b"aos/data-key/v1";
const SEAL_PURPOSE: &[u8] = b"aos/connection-secret/v1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// Damaged, sealed under another key, or copied from another row or workspace. The
    /// message says no more on purpose: it must not help anyone tell those apart.
    #[error("the ciphertext does not open: damaged, or not sealed for this row")]
    Open,
    #[error("no master key with id {0} is configured")]
    UnknownMasterKey(String),
    #[error("this secret was sealed by data key {found}, not by {expected}")]
    WrongDataKey { expected: Uuid, found: Uuid },
    #[error("a master key id must be 1 to 64 characters of [A-Za-z0-9._-]")]
    InvalidKeyId,
    #[error("encryption failed")]
    Seal,
}

/// A master key and the id every data key it wraps records.
pub struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
}

impl MasterKey {
    pub fn new(id: &str, bytes: &[u8; 32]) -> Result<Self, VaultError> {
        let valid = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte));
        if !valid {
            return Err(VaultError::InvalidKeyId);
        }
        Ok(Self {
            id: id.to_owned(),
            cipher: Aes256Gcm::new(bytes.into()),
        })
    }

    /// A key whose id is derived from its bytes, so configuration needs to carry only
    /// the key and every node names it alike. The id reveals nothing usable about it.
    pub fn derived(bytes: &[u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"aos/master-key-id/v1\0")
            .chain_update(bytes)
            .finalize();
        let id: String = digest[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Self {
            id: format!("mk-{id}"),
            cipher: Aes256Gcm::new(bytes.into()),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({}, **redacted**)", self.id)
    }
}

/// The master keys a process knows: it wraps with the current one and unwraps with any.
/// During a rotation the previous key stays here until every data key is re-wrapped;
/// then it can be retired.
#[derive(Debug)]
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Keyring {
    pub fn new(current: MasterKey) -> Self {
        Self {
            current,
            previous: Vec::new(),
        }
    }

    /// Keeps `key` for unwrapping data keys it wrapped before a rotation.
    #[must_use]
    pub fn with_previous(mut self, key: MasterKey) -> Self {
        self.previous.push(key);
        self
    }

    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// A new data key for `workspace_id`, wrapped under the current master key.
    pub fn new_data_key(
        &self,
        workspace_id: Uuid,
    ) -> Result<(DataKey, WrappedDataKey), VaultError> {
        let data_key = DataKey::generate();
        let wrapped = self.wrap(&data_key, workspace_id)?;
        Ok((data_key, wrapped))
    }

    pub fn wrap(
        &self,
        data_key: &DataKey,
        workspace_id: Uuid,
    ) -> Result<WrappedDataKey, VaultError> {
        let aad = wrap_aad(workspace_id, data_key.id);
        let sealed = seal(&self.current.cipher, data_key.bytes.as_slice(), &aad)?;
        Ok(WrappedDataKey {
            data_key_id: data_key.id,
            master_key_id: self.current.id.clone(),
            sealed,
        })
    }

    pub fn unwrap(
        &self,
        wrapped: &WrappedDataKey,
        workspace_id: Uuid,
    ) -> Result<DataKey, VaultError> {
        let master = self.master_key(&wrapped.master_key_id)?;
        let aad = wrap_aad(workspace_id, wrapped.data_key_id);
        let bytes = Zeroizing::new(open(&master.cipher, &wrapped.sealed, &aad)?);
        let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| VaultError::Open)?;
        Ok(DataKey {
            id: wrapped.data_key_id,
            bytes: Zeroizing::new(bytes),
        })
    }

    /// `wrapped` under the current master key, for a rotation; the data key, and so every
    /// secret it sealed, stays the same.
    pub fn rewrap(
        &self,
        wrapped: &WrappedDataKey,
        workspace_id: Uuid,
    ) -> Result<WrappedDataKey, VaultError> {
        let data_key = self.unwrap(wrapped, workspace_id)?;
        self.wrap(&data_key, workspace_id)
    }

    /// Seals one of the server's own secrets (a JWT signing key) directly under the
    /// current master key: `(master key id, nonce || ciphertext+tag)`.
    pub fn seal_secret(
        &self,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<(String, Vec<u8>), VaultError> {
        let sealed = seal(&self.current.cipher, plaintext, aad)?;
        Ok((self.current.id.clone(), sealed))
    }

    /// Opens what [`Keyring::seal_secret`] sealed. Without a key id (secrets sealed before
    /// keys had ids) each known key is tried, the current one first.
    pub fn open_secret(
        &self,
        master_key_id: Option<&str>,
        sealed: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        match master_key_id {
            Some(id) => open(&self.master_key(id)?.cipher, sealed, aad),
            None => self
                .keys()
                .find_map(|key| open(&key.cipher, sealed, aad).ok())
                .ok_or(VaultError::Open),
        }
    }

    /// The ids of every key, the current one first.
    pub fn ids(&self) -> Vec<String> {
        self.keys().map(|key| key.id.clone()).collect()
    }

    /// Whether a key of this id is known.
    pub fn knows(&self, id: &str) -> bool {
        self.master_key(id).is_ok()
    }

    /// Whether `wrapped` still needs a rotation's re-wrap.
    pub fn is_current(&self, wrapped: &WrappedDataKey) -> bool {
        wrapped.master_key_id == self.current.id
    }

    fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(&self.current).chain(&self.previous)
    }

    fn master_key(&self, id: &str) -> Result<&MasterKey, VaultError> {
        self.keys()
            .find(|key| key.id == id)
            .ok_or_else(|| VaultError::UnknownMasterKey(id.to_owned()))
    }
}

/// A workspace's data key, as storage keeps it: wrapped, with the ids of both keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedDataKey {
    pub data_key_id: Uuid,
    pub master_key_id: String,
    /// `nonce || ciphertext+tag`.
    pub sealed: Vec<u8>,
}

/// A plain data key: only ever in memory, zeroed when dropped.
pub struct DataKey {
    id: Uuid,
    bytes: Zeroizing<[u8; 32]>,
}

impl DataKey {
    fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut_slice());
        Self {
            id: Uuid::new_v4(),
            bytes,
        }
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Seals a connection's secret for that connection in that workspace:
    /// `version || data key id || nonce || ciphertext+tag`.
    pub fn seal(
        &self,
        plaintext: &[u8],
        workspace_id: Uuid,
        connection_id: Uuid,
    ) -> Result<Vec<u8>, VaultError> {
        let aad = seal_aad(workspace_id, connection_id, self.id);
        let sealed = seal(&self.cipher(), plaintext, &aad)?;
        Ok([&[FORMAT_V1][..], self.id.as_bytes(), &sealed].concat())
    }

    /// Opens what [`DataKey::seal`] sealed for the same connection and workspace.
    pub fn open(
        &self,
        sealed: &[u8],
        workspace_id: Uuid,
        connection_id: Uuid,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let found = sealed_by(sealed)?;
        if found != self.id {
            return Err(VaultError::WrongDataKey {
                expected: self.id,
                found,
            });
        }
        let aad = seal_aad(workspace_id, connection_id, self.id);
        open(&self.cipher(), &sealed[1 + 16..], &aad).map(Zeroizing::new)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.bytes).into())
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey({}, **redacted**)", self.id)
    }
}

/// The id of the data key that sealed `sealed`, to find which one opens it.
pub fn sealed_by(sealed: &[u8]) -> Result<Uuid, VaultError> {
    match sealed {
        [FORMAT_V1, rest @ ..] if rest.len() > 16 + NONCE_LEN => {
            let id: [u8; 16] = rest[..16].try_into().map_err(|_| VaultError::Open)?;
            Ok(Uuid::from_bytes(id))
        }
        _ => Err(VaultError::Open),
    }
}

fn wrap_aad(workspace_id: Uuid, data_key_id: Uuid) -> Vec<u8> {
    [
        WRAP_PURPOSE,
        b"\0",
        workspace_id.as_bytes(),
        data_key_id.as_bytes(),
    ]
    .concat()
}

fn seal_aad(workspace_id: Uuid, connection_id: Uuid, data_key_id: Uuid) -> Vec<u8> {
    [
        SEAL_PURPOSE,
        b"\0",
        workspace_id.as_bytes(),
        connection_id.as_bytes(),
        data_key_id.as_bytes(),
    ]
    .concat()
}

/// AES-256-GCM under `cipher` with a fresh random nonce: `nonce || ciphertext+tag`. The
/// building block of both layers, and of the server's other sealed secrets.
pub fn seal(cipher: &Aes256Gcm, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| VaultError::Seal)?;
    Ok([nonce.as_slice(), &ciphertext].concat())
}

/// Opens what [`seal`] sealed under `cipher` with the same associated data.
pub fn open(cipher: &Aes256Gcm, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
    if sealed.len() < NONCE_LEN {
        return Err(VaultError::Open);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| VaultError::Open)?;
    cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| VaultError::Open)
}

pub mod service;

#[cfg(test)]
mod tests;
