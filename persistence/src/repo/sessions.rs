//! `SessionStore`: refresh-token rotation with reuse detection, and JWT signing keys.
//!
//! Invariants: a refresh token is spent by one conditional `UPDATE ... WHERE spent_at IS
//! NULL`; the database decides which of two concurrent spends wins, and the loser is told
//! `Reused`, which makes the caller revoke the whole family. Likewise a signing key is
//! resealed by one `UPDATE` conditional on the master key that sealed it before, so of
//! two rotations racing on one key exactly one rewrites it, and neither overwrites a
//! secret it did not read.

use aos_domain::error::DomainResult;
use aos_domain::ids::{SessionFamilyId, UserId};
use aos_domain::ports::{NewRefreshToken, RefreshSpend, SessionStore, StoredSigningKey};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
};

use crate::convert;
use crate::entities::{refresh_tokens, session_families, signing_keys};
use crate::error::internal;
use crate::store::SeaStore;
use crate::timestamps;

/// Whether the family is revoked; a missing family counts as revoked, so a token
/// whose family is gone can never mint a successor.
async fn family_revoked(db: &impl ConnectionTrait, family_id: uuid::Uuid) -> DomainResult<bool> {
    let family = session_families::Entity::find_by_id(family_id)
        .one(db)
        .await
        .map_err(internal("read a session family"))?;
    Ok(family.is_none_or(|family| family.revoked_at.is_some()))
}

#[async_trait]
impl SessionStore for SeaStore {
    async fn insert_refresh_token(&self, token: NewRefreshToken) -> DomainResult<()> {
        let now = timestamps::now();
        let txn = self.begin_unscoped_write().await?;
        let family = session_families::Model {
            id: token.family_id.as_uuid(),
            user_id: token.user_id.as_uuid(),
            created_at: now,
            revoked_at: None,
        };
        session_families::Entity::insert(family.into_active_model())
            .on_conflict_do_nothing_on([session_families::Column::Id])
            .exec_without_returning(&txn)
            .await
            .map_err(internal("create a session family"))?;
        let row = refresh_tokens::Model {
            id: token.id.as_uuid(),
            family_id: token.family_id.as_uuid(),
            user_id: token.user_id.as_uuid(),
            token_hash: token.token_hash,
            created_at: now,
            expires_at: timestamps::stored(token.expires_at),
            spent_at: None,
        };
        refresh_tokens::Entity::insert(row.into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(internal("store a refresh token"))?;
        txn.commit()
            .await
            .map_err(internal("commit a refresh token"))
    }

    async fn spend_refresh_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> DomainResult<RefreshSpend> {
        let Some(token) = refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::TokenHash.eq(token_hash))
            .one(&self.db)
            .await
            .map_err(internal("find a refresh token"))?
        else {
            return Ok(RefreshSpend::Unknown);
        };
        let family_id = SessionFamilyId::from_uuid(token.family_id);
        if token.expires_at <= now || family_revoked(&self.db, token.family_id).await? {
            return Ok(RefreshSpend::Dead);
        }
        if token.spent_at.is_some() {
            return Ok(RefreshSpend::Reused { family_id });
        }
        let spent = refresh_tokens::Entity::update_many()
            .col_expr(
                refresh_tokens::Column::SpentAt,
                Expr::value(timestamps::stored(now)),
            )
            .filter(refresh_tokens::Column::Id.eq(token.id))
            .filter(refresh_tokens::Column::SpentAt.is_null())
            .exec(&self.db)
            .await
            .map_err(internal("spend a refresh token"))?;
        if spent.rows_affected == 1 {
            return Ok(RefreshSpend::Spent {
                user_id: UserId::from_uuid(token.user_id),
                family_id,
            });
        }
        // Someone spent it between our read and our update: a replay, unless the family
        // was revoked meanwhile, which already ended the session.
        if family_revoked(&self.db, token.family_id).await? {
            Ok(RefreshSpend::Dead)
        } else {
            Ok(RefreshSpend::Reused { family_id })
        }
    }

    async fn revoke_session_family(
        &self,
        family_id: SessionFamilyId,
        now: DateTime<Utc>,
    ) -> DomainResult<()> {
        // Revoking twice keeps the first time: it says when the session really ended.
        session_families::Entity::update_many()
            .col_expr(
                session_families::Column::RevokedAt,
                Expr::value(timestamps::stored(now)),
            )
            .filter(session_families::Column::Id.eq(family_id.as_uuid()))
            .filter(session_families::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(internal("revoke a session family"))?;
        Ok(())
    }

    async fn signing_keys(&self) -> DomainResult<Vec<StoredSigningKey>> {
        let rows = signing_keys::Entity::find()
            .order_by_asc(signing_keys::Column::CreatedAt)
            .order_by_asc(signing_keys::Column::Kid)
            .all(&self.db)
            .await
            .map_err(internal("read signing keys"))?;
        Ok(rows.into_iter().map(convert::signing_key).collect())
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> DomainResult<()> {
        let row = signing_keys::Model {
            kid: key.kid.clone(),
            encrypted_secret: key.encrypted_secret.clone(),
            created_at: timestamps::stored(key.created_at),
            master_key_id: key.master_key_id.clone(),
        };
        signing_keys::Entity::insert(row.into_active_model())
            .exec_without_returning(&self.db)
            .await
            .map_err(internal("store a signing key"))?;
        Ok(())
    }

    async fn reseal_signing_key(
        &self,
        kid: &str,
        previous_master_key_id: Option<&str>,
        master_key_id: &str,
        encrypted_secret: &[u8],
    ) -> DomainResult<bool> {
        // `IS NOT DISTINCT FROM` spelled portably: NULL (sealed before master keys had
        // ids) must match NULL, which `=` never does.
        let sealed_by = match previous_master_key_id {
            Some(previous) => signing_keys::Column::MasterKeyId.eq(previous),
            None => signing_keys::Column::MasterKeyId.is_null(),
        };
        let txn = self.begin_unscoped_write().await?;
        let resealed = signing_keys::Entity::update_many()
            .col_expr(
                signing_keys::Column::EncryptedSecret,
                Expr::value(encrypted_secret.to_vec()),
            )
            .col_expr(
                signing_keys::Column::MasterKeyId,
                Expr::value(master_key_id),
            )
            .filter(signing_keys::Column::Kid.eq(kid))
            .filter(sealed_by)
            .exec(&txn)
            .await
            .map_err(internal("reseal a signing key"))?;
        txn.commit()
            .await
            .map_err(internal("commit a resealed signing key"))?;
        Ok(resealed.rows_affected == 1)
    }
}
