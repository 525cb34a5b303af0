//! Per-workspace quotas: `workspace_quotas`, an instance administrator's overrides of the
//! instance-wide defaults (one row per workspace, each column NULL where the default
//! holds), and `usage_counters`, the metered usage of the quotas counted per period
//! (runs per calendar month, AI generations per day).
//!
//! `workspace_quotas` is set only through `automationos quotas set` and read as the
//! connecting role (by the engine's claim, too: `running_runs` and `scheduling_weight`
//! steer fair claiming). Every limit is positive or NULL, so an override can never refuse
//! everything by accident; `usage_counters` is written by scoped transactions, in the same
//! transaction as what it counts, so a refused or rolled-back creation is never counted.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, integer_null, text, timestamp_with_time_zone, uuid,
};
use sea_orm_migration::sea_orm::DbBackend;

use crate::tenancy::{protect_workspace_table, unprotect_workspace_table};

const QUOTAS: &str = "workspace_quotas";
const COUNTERS: &str = "usage_counters";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(workspace_quotas()).await?;
        manager.create_table(usage_counters()).await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            let connection = manager.get_connection();
            connection
                .execute_unprepared(&protect_workspace_table(QUOTAS, "workspace_id"))
                .await?;
            connection
                .execute_unprepared(&protect_workspace_table(COUNTERS, "workspace_id"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            let connection = manager.get_connection();
            connection
                .execute_unprepared(&unprotect_workspace_table(COUNTERS))
                .await?;
            connection
                .execute_unprepared(&unprotect_workspace_table(QUOTAS))
                .await?;
        }
        for table in [COUNTERS, QUOTAS] {
            manager
                .drop_table(
                    Table::drop()
                        .table(Alias::new(table))
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

fn positive_or_null(column: WorkspaceQuotas) -> SimpleExpr {
    Expr::col(column.clone())
        .is_null()
        .or(Expr::col(column).gt(0))
}

fn workspace_quotas() -> TableCreateStatement {
    let limits = [
        WorkspaceQuotas::ActiveWorkflows,
        WorkspaceQuotas::RunsPerMonth,
        WorkspaceQuotas::RetentionDays,
        WorkspaceQuotas::Connections,
        WorkspaceQuotas::Members,
        WorkspaceQuotas::AiGenerationsPerDay,
        WorkspaceQuotas::QueuedRuns,
        WorkspaceQuotas::RunningRuns,
    ];
    let mut table = Table::create();
    table
        .table(WorkspaceQuotas::Table)
        .col(uuid(WorkspaceQuotas::WorkspaceId).primary_key());
    for limit in limits {
        table.col(big_integer_null(limit.clone()).check(positive_or_null(limit)));
    }
    table
        .col(
            integer_null(WorkspaceQuotas::SchedulingWeight)
                .check(positive_or_null(WorkspaceQuotas::SchedulingWeight)),
        )
        .col(timestamp_with_time_zone(WorkspaceQuotas::UpdatedAt))
        .foreign_key(
            ForeignKey::create()
                .name("fk_workspace_quotas_workspace")
                .from(WorkspaceQuotas::Table, WorkspaceQuotas::WorkspaceId)
                .to(Workspaces::Table, Workspaces::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

fn usage_counters() -> TableCreateStatement {
    Table::create()
        .table(UsageCounters::Table)
        .col(uuid(UsageCounters::WorkspaceId))
        .col(text(UsageCounters::Metric))
        // "2026-11" for a month, "2026-11-30" for a day (UTC): one key per metered period.
        .col(text(UsageCounters::Period))
        .col(big_integer(UsageCounters::Used).check(Expr::col(UsageCounters::Used).gte(0)))
        .primary_key(
            Index::create()
                .col(UsageCounters::WorkspaceId)
                .col(UsageCounters::Metric)
                .col(UsageCounters::Period),
        )
        .foreign_key(
            ForeignKey::create()
                .name("fk_usage_counters_workspace")
                .from(UsageCounters::Table, UsageCounters::WorkspaceId)
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

#[derive(DeriveIden, Clone)]
enum WorkspaceQuotas {
    Table,
    WorkspaceId,
    ActiveWorkflows,
    RunsPerMonth,
    RetentionDays,
    Connections,
    Members,
    AiGenerationsPerDay,
    QueuedRuns,
    RunningRuns,
    SchedulingWeight,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UsageCounters {
    Table,
    WorkspaceId,
    Metric,
    Period,
    Used,
}
