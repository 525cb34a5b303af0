//! The vault at work: the master keys a process holds, and the sealing and opening of
//! connection credentials with each workspace's data key, fetched from storage.
//!
//! Invariants:
//! - a workspace has one data key, created on first use; of two processes creating it at
//!   once, both end up using the one storage kept (`DataKeyStore::insert_data_key`);
//! - unwrapped data keys stay in this process's memory only, and never change once
//!   created, so caching them needs no invalidation (a rotation re-wraps, never replaces);
//! - a master key id this process does not know makes it re-read its key source once
//!   (a `keys rotate` in another process may have just added the key), so a rotation
//!   runs while every node keeps serving;
//! - what is sealed is bound to its workspace and to the one thing it belongs to: a
//!   connection's credentials to the connection, the secrets of a pending OAuth2
//!   authorization to that authorization, so neither opens as the other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use aos_domain::connection::{Connection, ConnectionStatus, Credentials, StoredDataKey};
use aos_domain::error::{DomainError, DomainResult};
use aos_domain::ids::{ConnectionId, WorkspaceId};
use aos_domain::oauth::PendingSecrets;
use aos_domain::ports::{ConnectionSecrets, CredentialStore, DataKeyStore};
use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::{DataKey, Keyring, VaultError, WrappedDataKey};

/// Reads the key source again (the key file, whose rotation another process may have done).
pub type KeyringLoader = Box<dyn Fn() -> Result<Keyring, String> + Send + Sync>;

/// The master keys of this process, re-read from their source when a key turns up that
/// this process has not seen yet.
pub struct MasterKeys {
    keyring: RwLock<Arc<Keyring>>,
    reload: Option<KeyringLoader>,
}

impl MasterKeys {
    /// Keys given in the environment: they cannot change under a running process.
    pub fn fixed(keyring: Keyring) -> Self {
        Self {
            keyring: RwLock::new(Arc::new(keyring)),
            reload: None,
        }
    }

    pub fn reloadable(keyring: Keyring, reload: KeyringLoader) -> Self {
        Self {
            keyring: RwLock::new(Arc::new(keyring)),
            reload: Some(reload),
        }
    }

    pub fn keyring(&self) -> Arc<Keyring> {
        Arc::clone(&self.keyring.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The keyring, re-read first if it does not know `id`.
    pub fn knowing(&self, id: &str) -> Arc<Keyring> {
        let keyring = self.keyring();
        if keyring.knows(id) {
            return keyring;
        }
        self.refresh()
    }

    /// Re-reads the key source, so new data keys are wrapped under the newest key.
    pub fn refresh(&self) -> Arc<Keyring> {
        let Some(reload) = &self.reload else {
            return self.keyring();
        };
        match reload() {
            Ok(keyring) => {
                let keyring = Arc::new(keyring);
                *self.keyring.write().unwrap_or_else(PoisonError::into_inner) =
                    Arc::clone(&keyring);
                keyring
            }
            Err(error) => {
                tracing::error!(%error, "re-reading the master keys failed; keeping the ones loaded");
                self.keyring()
            }
        }
    }
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKeys({:?})", self.keyring().ids())
    }
}

/// What the vault needs from storage.
pub trait VaultStorage: DataKeyStore + CredentialStore {}
impl<T: DataKeyStore + CredentialStore + ?Sized> VaultStorage for T {}

/// Seals and opens connection credentials.
pub struct CredentialVault {
    keys: Arc<MasterKeys>,
    store: Arc<dyn VaultStorage>,
    data_keys: Mutex<HashMap<WorkspaceId, Arc<DataKey>>>,
}

/// What a rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rewrapped {
    pub data_keys: u64,
}

impl CredentialVault {
    pub fn new(keys: Arc<MasterKeys>, store: Arc<dyn VaultStorage>) -> Self {
        Self {
            keys,
            store,
            data_keys: Mutex::new(HashMap::new()),
        }
    }

    pub fn master_keys(&self) -> &Arc<MasterKeys> {
        &self.keys
    }

    /// `credentials`, sealed for connection `connection_id` of `workspace_id`.
    pub async fn seal(
        &self,
        workspace_id: WorkspaceId,
        connection_id: ConnectionId,
        credentials: &Credentials,
    ) -> DomainResult<Vec<u8>> {
        let data_key = self.data_key(workspace_id).await?;
        let plaintext =
            Zeroizing::new(serde_json::to_vec(credentials).map_err(|error| {
                DomainError::internal(format!("serializing credentials: {error}"))
            })?);
        data_key
            .seal(&plaintext, workspace_id.as_uuid(), connection_id.as_uuid())
            .map_err(vault_error)
    }

    /// Opens what [`CredentialVault::seal`] sealed for the same connection.
    pub async fn open(
        &self,
        workspace_id: WorkspaceId,
        connection_id: ConnectionId,
        sealed: &[u8],
    ) -> DomainResult<Credentials> {
        let data_key = self.data_key(workspace_id).await?;
        let plaintext = data_key
            .open(sealed, workspace_id.as_uuid(), connection_id.as_uuid())
            .map_err(vault_error)?;
        serde_json::from_slice(&plaintext).map_err(|_| {
            DomainError::internal("sealed credentials opened but are not of a known shape")
        })
    }

    /// The secrets of pending OAuth2 authorization `authorization_id` of `workspace_id`,
    /// sealed while the user is away at the authorization server.
    pub async fn seal_pending(
        &self,
        workspace_id: WorkspaceId,
        authorization_id: uuid::Uuid,
        secrets: &PendingSecrets,
    ) -> DomainResult<Vec<u8>> {
        let data_key = self.data_key(workspace_id).await?;
        let plaintext = Zeroizing::new(serde_json::to_vec(secrets).map_err(|error| {
            DomainError::internal(format!("serializing OAuth2 secrets: {error}"))
        })?);
        data_key
            .seal(&plaintext, workspace_id.as_uuid(), authorization_id)
            .map_err(vault_error)
    }

    /// Opens what [`CredentialVault::seal_pending`] sealed for the same authorization.
    pub async fn open_pending(
        &self,
        workspace_id: WorkspaceId,
        authorization_id: uuid::Uuid,
        sealed: &[u8],
    ) -> DomainResult<PendingSecrets> {
        let data_key = self.data_key(workspace_id).await?;
        let plaintext = data_key
            .open(sealed, workspace_id.as_uuid(), authorization_id)
            .map_err(vault_error)?;
        serde_json::from_slice(&plaintext).map_err(|_| {
            DomainError::internal("sealed OAuth2 secrets opened but are not of a known shape")
        })
    }

    /// Re-wraps every data key not wrapped by the current master key, `batch` at a time,
    /// while other processes go on using them. A data key another process re-wrapped in
    /// the meantime is skipped.
    pub async fn rewrap_all(&self, batch: u64) -> DomainResult<Rewrapped> {
        let keyring = self.keys.refresh();
        let current = keyring.current_id().to_owned();
        let mut done = Rewrapped::default();
        loop {
            let stale = self
                .store
                .data_keys_not_under(&current, batch.max(1))
                .await?;
            if stale.is_empty() {
                return Ok(done);
            }
            for (workspace_id, stored) in stale {
                let rewrapped = keyring
                    .rewrap(&wrapped(&stored), workspace_id.as_uuid())
                    .map_err(vault_error)?;
                let rewrapped = stored_data_key(rewrapped);
                if self
                    .store
                    .rewrap_data_key(workspace_id, &stored, &rewrapped)
                    .await?
                {
                    done.data_keys += 1;
                }
            }
        }
    }

    async fn data_key(&self, workspace_id: WorkspaceId) -> DomainResult<Arc<DataKey>> {
        if let Some(key) = self.cached(workspace_id) {
            return Ok(key);
        }
        let stored = match self.store.data_key(workspace_id).await? {
            Some(stored) => stored,
            None => {
                let keyring = self.keys.refresh();
                let (_, wrapped) = keyring
                    .new_data_key(workspace_id.as_uuid())
                    .map_err(vault_error)?;
                self.store
                    .insert_data_key(workspace_id, stored_data_key(wrapped))
                    .await?
            }
        };
        let key = Arc::new(self.unwrap(workspace_id, &stored)?);
        self.data_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(workspace_id, Arc::clone(&key));
        Ok(key)
    }

    fn cached(&self, workspace_id: WorkspaceId) -> Option<Arc<DataKey>> {
        self.data_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&workspace_id)
            .cloned()
    }

    fn unwrap(&self, workspace_id: WorkspaceId, stored: &StoredDataKey) -> DomainResult<DataKey> {
        self.keys
            .knowing(&stored.master_key_id)
            .unwrap(&wrapped(stored), workspace_id.as_uuid())
            .map_err(vault_error)
    }
}

#[async_trait]
impl ConnectionSecrets for CredentialVault {
    async fn open_connection(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
    ) -> Result<(Connection, Credentials), String> {
        let not_found = || format!("connection `{id}` not found in this workspace");
        let sealed = match self.store.sealed_connection_of(workspace_id, id).await {
            Ok(Some(sealed)) => sealed,
            Ok(None) => return Err(not_found()),
            Err(error) => {
                tracing::error!(%error, connection_id = %id, "reading a connection failed");
                return Err(format!("connection `{id}` could not be read; try again"));
            }
        };
        let connection = sealed.connection;
        let name = connection.name.as_str().to_owned();
        match connection.status {
            ConnectionStatus::Valid | ConnectionStatus::Refreshing => {}
            ConnectionStatus::NeedsReauth => {
                return Err(format!(
                    "connection `{name}` needs to be authorized again before it can be used: reconnect it"
                ));
            }
            ConnectionStatus::Revoked => {
                return Err(format!(
                    "connection `{name}` was revoked: reconnect it to use it again"
                ));
            }
        }
        match self
            .open(workspace_id, id, &sealed.sealed_credentials)
            .await
        {
            Ok(credentials) => Ok((connection, credentials)),
            Err(error) => {
                tracing::error!(%error, connection_id = %id, "opening a connection's credentials failed");
                Err(format!(
                    "connection `{name}` cannot be decrypted with this server's master keys"
                ))
            }
        }
    }
}

fn wrapped(stored: &StoredDataKey) -> WrappedDataKey {
    WrappedDataKey {
        data_key_id: stored.id,
        master_key_id: stored.master_key_id.clone(),
        sealed: stored.wrapped.clone(),
    }
}

fn stored_data_key(wrapped: WrappedDataKey) -> StoredDataKey {
    StoredDataKey {
        id: wrapped.data_key_id,
        master_key_id: wrapped.master_key_id,
        wrapped: wrapped.sealed,
    }
}

fn vault_error(error: VaultError) -> DomainError {
    DomainError::internal(error)
}
