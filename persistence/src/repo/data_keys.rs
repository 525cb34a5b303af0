//! `DataKeyStore`: the vault's one wrapped data key per workspace, and what master-key
//! rotation needs to find and rewrap them. Instance-level and unscoped: the vault serves
//! every workspace, and a rotation walks all of them, so these run as the connecting role.
//!
//! Invariants: a workspace has at most one data key (unique `workspace_id`); creating it
//! is `INSERT ... ON CONFLICT (workspace_id) DO NOTHING` followed by a read, so of two
//! racing creators both get the row that won, on either backend. A rewrap is one `UPDATE`
//! conditional on the master key that wrapped the key before, so two rotations racing on
//! one key cannot both rewrite it, and neither overwrites a wrapping it did not read.

use std::collections::BTreeMap;

use aos_domain::connection::StoredDataKey;
use aos_domain::error::{DomainError, DomainResult};
use aos_domain::ids::WorkspaceId;
use aos_domain::ports::DataKeyStore;
use async_trait::async_trait;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use crate::convert;
use crate::entities::{data_keys, signing_keys};
use crate::error::{corrupt_row, internal, missing_or_conflict};
use crate::store::SeaStore;
use crate::timestamps;

async fn stored_key(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
) -> DomainResult<Option<StoredDataKey>> {
    Ok(data_keys::Entity::find()
        .filter(data_keys::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await
        .map_err(internal("read a data key"))?
        .map(convert::data_key))
}

/// A `COUNT(*)` as the `u64` the port speaks; a negative count would be a driver bug.
fn count(counted: i64) -> DomainResult<u64> {
    u64::try_from(counted).map_err(|_| corrupt_row("negative count"))
}

#[async_trait]
impl DataKeyStore for SeaStore {
    async fn data_key(&self, workspace_id: WorkspaceId) -> DomainResult<Option<StoredDataKey>> {
        stored_key(&self.db, workspace_id.as_uuid()).await
    }

    async fn insert_data_key(
        &self,
        workspace_id: WorkspaceId,
        key: StoredDataKey,
    ) -> DomainResult<StoredDataKey> {
        let now = timestamps::now();
        let row = data_keys::Model {
            id: key.id,
            workspace_id: workspace_id.as_uuid(),
            master_key_id: key.master_key_id,
            wrapped: key.wrapped,
            created_at: now,
            updated_at: now,
        };
        let txn = self.begin_unscoped_write().await?;
        // On Postgres a conflicting insert that is not yet committed makes this wait for
        // its outcome, so the read below sees the winner (each statement of a READ
        // COMMITTED transaction reads what was committed before it began). On SQLite the
        // write lock taken at `BEGIN` already orders the two.
        data_keys::Entity::insert(row.into_active_model())
            .on_conflict(
                OnConflict::column(data_keys::Column::WorkspaceId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(missing_or_conflict(
                "store a data key",
                "workspace",
                "this data key id is already in use",
            ))?;
        let stored = stored_key(&txn, workspace_id.as_uuid())
            .await?
            .ok_or_else(|| corrupt_row("data key missing right after its insert"))?;
        txn.commit().await.map_err(internal("commit a data key"))?;
        Ok(stored)
    }

    async fn data_keys_not_under(
        &self,
        master_key_id: &str,
        limit: u64,
    ) -> DomainResult<Vec<(WorkspaceId, StoredDataKey)>> {
        let rows = data_keys::Entity::find()
            .filter(data_keys::Column::MasterKeyId.ne(master_key_id))
            .order_by_asc(data_keys::Column::WorkspaceId)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(internal("find data keys under an old master key"))?;
        Ok(rows
            .into_iter()
            .map(|row| {
                (
                    WorkspaceId::from_uuid(row.workspace_id),
                    convert::data_key(row),
                )
            })
            .collect())
    }

    async fn rewrap_data_key(
        &self,
        workspace_id: WorkspaceId,
        previous: &StoredDataKey,
        rewrapped: &StoredDataKey,
    ) -> DomainResult<bool> {
        // Rewrapping changes how the key is stored, never which key it is: data sealed
        // under it must stay openable.
        if rewrapped.id != previous.id {
            return Err(DomainError::internal(
                "a rewrapped data key must keep its id",
            ));
        }
        let txn = self.begin_unscoped_write().await?;
        let rewritten = data_keys::Entity::update_many()
            .col_expr(
                data_keys::Column::MasterKeyId,
                Expr::value(rewrapped.master_key_id.as_str()),
            )
            .col_expr(
                data_keys::Column::Wrapped,
                Expr::value(rewrapped.wrapped.clone()),
            )
            .col_expr(data_keys::Column::UpdatedAt, Expr::value(timestamps::now()))
            .filter(data_keys::Column::WorkspaceId.eq(workspace_id.as_uuid()))
            .filter(data_keys::Column::Id.eq(previous.id))
            .filter(data_keys::Column::MasterKeyId.eq(previous.master_key_id.as_str()))
            .exec(&txn)
            .await
            .map_err(internal("rewrap a data key"))?;
        txn.commit()
            .await
            .map_err(internal("commit a rewrapped data key"))?;
        Ok(rewritten.rows_affected == 1)
    }

    async fn master_key_usage(&self) -> DomainResult<Vec<(Option<String>, u64)>> {
        let data_keys: Vec<(String, i64)> = data_keys::Entity::find()
            .select_only()
            .column(data_keys::Column::MasterKeyId)
            .column_as(data_keys::Column::Id.count(), "uses")
            .group_by(data_keys::Column::MasterKeyId)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(internal("count data keys by master key"))?;
        let signing_keys: Vec<(Option<String>, i64)> = signing_keys::Entity::find()
            .select_only()
            .column(signing_keys::Column::MasterKeyId)
            .column_as(signing_keys::Column::Kid.count(), "uses")
            .group_by(signing_keys::Column::MasterKeyId)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(internal("count signing keys by master key"))?;
        let mut usage: BTreeMap<Option<String>, u64> = BTreeMap::new();
        let counted = data_keys
            .into_iter()
            .map(|(id, uses)| (Some(id), uses))
            .chain(signing_keys);
        for (master_key_id, uses) in counted {
            *usage.entry(master_key_id).or_default() += count(uses)?;
        }
        Ok(usage.into_iter().collect())
    }
}
