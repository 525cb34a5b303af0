//! `RateLimitStore`: per-workspace rate-limit overrides. Instance-level and unscoped: an
//! instance administrator sets them from the CLI and the limiter reads them for every
//! workspace, so these run as the connecting role.
//!
//! Invariants: one row per workspace (its primary key), replaced by one
//! `INSERT ... ON CONFLICT DO UPDATE`; an override of an unknown workspace is `NotFound`
//! (the foreign key), never a dangling row.

use aos_domain::error::DomainResult;
use aos_domain::ids::WorkspaceId;
use aos_domain::rate_limits::{RateLimitOverride, RateLimitStore, RateQuota};
use async_trait::async_trait;
use sea_orm::sea_query::OnConflict;
use sea_orm::{EntityTrait, QueryOrder};

use crate::entities::rate_limits;
use crate::error::{corrupt_row, internal, missing_or_conflict};
use crate::store::SeaStore;
use crate::timestamps;

fn quota(row: &rate_limits::Model) -> DomainResult<RateQuota> {
    let per_second = u32::try_from(row.rps).map_err(|_| corrupt_row("negative rate"))?;
    let burst = u32::try_from(row.burst).map_err(|_| corrupt_row("negative burst"))?;
    RateQuota::new(per_second, burst).ok_or_else(|| corrupt_row("zero rate or burst"))
}

/// The column type is a signed 32-bit integer; larger quotas are stored as its maximum,
/// which is far beyond any rate one node can serve.
fn column(value: std::num::NonZeroU32) -> i32 {
    i32::try_from(value.get()).unwrap_or(i32::MAX)
}

#[async_trait]
impl RateLimitStore for SeaStore {
    async fn rate_limit_override(
        &self,
        workspace_id: WorkspaceId,
    ) -> DomainResult<Option<RateQuota>> {
        rate_limits::Entity::find_by_id(workspace_id.as_uuid())
            .one(&self.db)
            .await
            .map_err(internal("read a rate-limit override"))?
            .as_ref()
            .map(quota)
            .transpose()
    }

    async fn set_rate_limit_override(&self, entry: &RateLimitOverride) -> DomainResult<()> {
        let row = rate_limits::ActiveModel {
            workspace_id: sea_orm::Set(entry.workspace_id.as_uuid()),
            rps: sea_orm::Set(column(entry.quota.per_second())),
            burst: sea_orm::Set(column(entry.quota.burst())),
            updated_at: sea_orm::Set(timestamps::now()),
        };
        rate_limits::Entity::insert(row)
            .on_conflict(
                OnConflict::column(rate_limits::Column::WorkspaceId)
                    .update_columns([
                        rate_limits::Column::Rps,
                        rate_limits::Column::Burst,
                        rate_limits::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map_err(missing_or_conflict(
                "set a rate-limit override",
                "workspace",
                "the override changed meanwhile",
            ))?;
        Ok(())
    }

    async fn clear_rate_limit_override(&self, workspace_id: WorkspaceId) -> DomainResult<bool> {
        let deleted = rate_limits::Entity::delete_by_id(workspace_id.as_uuid())
            .exec(&self.db)
            .await
            .map_err(internal("clear a rate-limit override"))?;
        Ok(deleted.rows_affected > 0)
    }

    async fn rate_limit_overrides(&self) -> DomainResult<Vec<RateLimitOverride>> {
        rate_limits::Entity::find()
            .order_by_asc(rate_limits::Column::WorkspaceId)
            .all(&self.db)
            .await
            .map_err(internal("list rate-limit overrides"))?
            .iter()
            .map(|row| {
                Ok(RateLimitOverride {
                    workspace_id: WorkspaceId::from_uuid(row.workspace_id),
                    quota: quota(row)?,
                })
            })
            .collect()
    }
}
