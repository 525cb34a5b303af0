//! Access tokens: short-lived HS256 JWTs whose signing keys live in the database, sealed
//! under the master key, so every node of a cluster signs and verifies with the same keys
//! and a token issued by one node is accepted by all.
//!
//! Tokens name their key in the `kid` header. Only HS256 is accepted: `alg: none` and
//! algorithm confusion are refused by construction, and expiry has no leeway.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use aos_domain::DomainError;
use aos_domain::ids::UserId;
use aos_domain::ports::{Store, StoredSigningKey};

use aos_vault::service::MasterKeys;

#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    sub: String,
    iat: i64,
    exp: i64,
    /// Guards against a token of another kind (were we ever to sign one) passing as access.
    typ: String,
}

const ACCESS_TYPE: &str = "access";

struct Keys {
    /// kid -> secret
    secrets: HashMap<String, Vec<u8>>,
    /// The key new tokens are signed with: the newest one.
    current: String,
}

pub struct SigningKeys {
    store: Arc<dyn Store>,
    master_keys: Arc<MasterKeys>,
    keys: RwLock<Keys>,
}

impl SigningKeys {
    /// Loads the keys, creating the first one on a fresh database.
    pub async fn load_or_create(
        store: Arc<dyn Store>,
        master_keys: Arc<MasterKeys>,
    ) -> Result<Self, DomainError> {
        let mut keys = load(store.as_ref(), &master_keys).await?;
        if keys.is_none() {
            let mut secret = vec![0u8; 64];
            rand::rngs::OsRng.fill_bytes(&mut secret);
            let kid = uuid::Uuid::now_v7().simple().to_string();
            let (master_key_id, encrypted_secret) = master_keys
                .keyring()
                .seal_secret(&secret, &aad(&kid))
                .map_err(DomainError::internal)?;
            store
                .insert_signing_key(&StoredSigningKey {
                    kid,
                    encrypted_secret,
                    master_key_id: Some(master_key_id),
                    created_at: Utc::now(),
                })
                .await?;
            // Another node may have raced us to create a key; reading back keeps us in step.
            keys = load(store.as_ref(), &master_keys).await?;
        }
        let keys =
            keys.ok_or_else(|| DomainError::internal("no signing key after creating one"))?;
        Ok(Self {
            store,
            master_keys,
            keys: RwLock::new(keys),
        })
    }

    pub async fn sign(&self, user_id: UserId, ttl: Duration) -> Result<String, DomainError> {
        let keys = self.keys.read().await;
        let secret = keys
            .secrets
            .get(&keys.current)
            .ok_or_else(|| DomainError::internal("current key missing"))?;
        let now = Utc::now().timestamp();
        let claims = AccessClaims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
            typ: ACCESS_TYPE.into(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(keys.current.clone());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret))
            .map_err(DomainError::internal)
    }

    /// The user an access token was issued to, or `None` for any token that is not one of
    /// ours, is expired, or was tampered with.
    pub async fn verify(&self, token: &str) -> Option<UserId> {
        let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
        if !self.keys.read().await.secrets.contains_key(&kid) {
            // A key created by another node since we loaded: look once more.
            self.reload().await;
        }
        let keys = self.keys.read().await;
        let secret = keys.secrets.get(&kid)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        let data = jsonwebtoken::decode::<AccessClaims>(
            token,
            &DecodingKey::from_secret(secret),
            &validation,
        )
        .ok()?;
        if data.claims.typ != ACCESS_TYPE {
            return None;
        }
        data.claims.sub.parse().ok()
    }

    async fn reload(&self) {
        match load(self.store.as_ref(), &self.master_keys).await {
            Ok(Some(keys)) => *self.keys.write().await = keys,
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "could not reload signing keys"),
        }
    }
}

fn aad(kid: &str) -> Vec<u8> {
    format!("aos:jwt-signing-key:{kid}").into_bytes()
}

/// Seals every signing key still sealed by an older master key under the current one, so
/// the older key can be retired; returns how many it re-sealed. Keys re-sealed meanwhile
/// by another process are skipped.
pub async fn reseal_signing_keys(
    store: &dyn Store,
    master_keys: &MasterKeys,
) -> Result<u64, DomainError> {
    let keyring = master_keys.refresh();
    let current = keyring.current_id().to_owned();
    let mut resealed = 0;
    for key in store.signing_keys().await? {
        if key.master_key_id.as_deref() == Some(current.as_str()) {
            continue;
        }
        let secret = open_signing_key(master_keys, &key)?;
        let (master_key_id, encrypted_secret) = keyring
            .seal_secret(&secret, &aad(&key.kid))
            .map_err(DomainError::internal)?;
        if store
            .reseal_signing_key(
                &key.kid,
                key.master_key_id.as_deref(),
                &master_key_id,
                &encrypted_secret,
            )
            .await?
        {
            resealed += 1;
        }
    }
    Ok(resealed)
}

fn open_signing_key(
    master_keys: &MasterKeys,
    key: &StoredSigningKey,
) -> Result<Vec<u8>, DomainError> {
    let keyring = match &key.master_key_id {
        Some(id) => master_keys.knowing(id),
        None => master_keys.keyring(),
    };
    keyring
        .open_secret(key.master_key_id.as_deref(), &key.encrypted_secret, &aad(&key.kid))
        .map_err(|_| {
            DomainError::internal(format!(
                "signing key {} cannot be decrypted: is the master key the one this database was created with?",
                key.kid
            ))
        })
}

async fn load(store: &dyn Store, master_keys: &MasterKeys) -> Result<Option<Keys>, DomainError> {
    let mut stored = store.signing_keys().await?;
    stored.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.kid.cmp(&b.kid))
    });
    let Some(current) = stored.last().map(|k| k.kid.clone()) else {
        return Ok(None);
    };
    let mut secrets = HashMap::new();
    for key in stored {
        let secret = open_signing_key(master_keys, &key)?;
        secrets.insert(key.kid, secret);
    }
    Ok(Some(Keys { secrets, current }))
}
