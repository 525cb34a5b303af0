//! Per-workspace request rate-limit overrides: at most one row per workspace, replacing
//! the instance's default quota (`--rate-limit-rps` / `--rate-limit-burst`) for it.
//!
//! Set only by an instance administrator through `automationos limits set`, and read by
//! the limiter as the connecting role; the row cascades with its workspace. Both numbers
//! are positive (a check constraint), so an override can never refuse everything.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{integer, timestamp_with_time_zone, uuid};
use sea_orm_migration::sea_orm::DbBackend;

use crate::tenancy::{protect_workspace_table, unprotect_workspace_table};

const TABLE: &str = "rate_limits";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(rate_limits()).await?;
        // Workspace-keyed, so under row-level security like every such table, although
        // only the connecting role (which it does not bind) reads and writes it.
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&protect_workspace_table(TABLE, "workspace_id"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&unprotect_workspace_table(TABLE))
                .await?;
        }
        manager
            .drop_table(
                Table::drop()
                    .table(RateLimits::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

fn rate_limits() -> TableCreateStatement {
    Table::create()
        .table(RateLimits::Table)
        .col(uuid(RateLimits::WorkspaceId).primary_key())
        .col(integer(RateLimits::Rps).check(Expr::col(RateLimits::Rps).gt(0)))
        .col(integer(RateLimits::Burst).check(Expr::col(RateLimits::Burst).gt(0)))
        .col(timestamp_with_time_zone(RateLimits::UpdatedAt))
        .foreign_key(
            ForeignKey::create()
                .name("fk_rate_limits_workspace")
                .from(RateLimits::Table, RateLimits::WorkspaceId)
                .to(Workspaces::Table, Workspaces::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

#[derive(DeriveIden)]
enum Workspaces {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum RateLimits {
    Table,
    WorkspaceId,
    Rps,
    Burst,
    UpdatedAt,
}
