//! Runs, their steps and their events, the durable state of the engine, plus the ticks
//! that make each cron firing happen once however many nodes run the scheduler.
//!
//! The queue columns of `runs` are epoch milliseconds (`BIGINT`), not timestamps: the
//! claim query compares and orders them on every poll, and integers compare the same way
//! on SQLite (where timestamps are text) and Postgres. A run is claimable when it has an
//! `available_at_ms` (terminal runs have none), that time has come, and no live lease holds
//! it. `fencing_token` grows with every claim; a write carrying an older token is from a
//! worker that lost its lease and must change nothing.
//!
//! Steps and events belong to their run and cascade with it, and a run cascades with its
//! workflow. Each row carries `workspace_id` for row-level security.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, boolean, integer, integer_null, json_binary, json_binary_null, pk_uuid, text,
    text_null, timestamp_with_time_zone, timestamp_with_time_zone_null, uuid, uuid_null,
};
use sea_orm_migration::sea_orm::DbBackend;

use crate::tenancy::{protect_workspace_table, unprotect_workspace_table};

const WORKSPACE_TABLES: [&str; 4] = ["runs", "run_steps", "run_events", "schedule_ticks"];

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(runs()).await?;
        for (name, columns) in [
            // The claim query: claimable runs in the order they became available.
            ("idx_runs_available_at_ms", &[Runs::AvailableAtMs][..]),
            // Live leases per workspace, for the concurrency limit and fair claiming.
            (
                "idx_runs_workspace_lease",
                &[Runs::WorkspaceId, Runs::LeaseExpiresAtMs][..],
            ),
            // Listings: a workspace's runs newest first, optionally by workflow or status.
            (
                "idx_runs_workspace_id_id",
                &[Runs::WorkspaceId, Runs::Id][..],
            ),
            (
                "idx_runs_workspace_workflow_id",
                &[Runs::WorkspaceId, Runs::WorkflowId, Runs::Id][..],
            ),
            (
                "idx_runs_workspace_status_id",
                &[Runs::WorkspaceId, Runs::Status, Runs::Id][..],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(Runs::Table);
            for column in columns {
                index.col(*column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager.create_table(run_steps()).await?;
        manager.create_table(run_events()).await?;
        manager.create_table(schedule_ticks()).await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            let db = manager.get_connection();
            for table in WORKSPACE_TABLES {
                db.execute_unprepared(&protect_workspace_table(table, "workspace_id"))
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            let db = manager.get_connection();
            for table in WORKSPACE_TABLES.iter().rev() {
                db.execute_unprepared(&unprotect_workspace_table(table))
                    .await?;
            }
        }
        for table in [
            ScheduleTicks::Table.into_iden(),
            RunEvents::Table.into_iden(),
            RunSteps::Table.into_iden(),
            Runs::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

fn runs() -> TableCreateStatement {
    Table::create()
        .table(Runs::Table)
        .col(pk_uuid(Runs::Id))
        .col(uuid(Runs::WorkspaceId))
        .col(uuid(Runs::WorkflowId))
        .col(integer(Runs::WorkflowVersion))
        .col(text(Runs::Status))
        .col(text(Runs::TriggerKind))
        .col(json_binary(Runs::Input))
        .col(json_binary_null(Runs::Output))
        .col(text_null(Runs::Error))
        .col(uuid_null(Runs::RetryOf))
        .col(text_null(Runs::RetryFromNode))
        .col(boolean(Runs::CancelRequested).default(false))
        .col(big_integer(Runs::LastSeq).default(0))
        .col(big_integer(Runs::AvailableAtMs).null())
        .col(text_null(Runs::LeaseOwner))
        .col(big_integer(Runs::LeaseExpiresAtMs).default(0))
        .col(big_integer(Runs::FencingToken).default(0))
        .col(timestamp_with_time_zone(Runs::CreatedAt))
        .col(timestamp_with_time_zone_null(Runs::StartedAt))
        .col(timestamp_with_time_zone_null(Runs::FinishedAt))
        .foreign_key(
            ForeignKey::create()
                .name("fk_runs_workflow")
                .from_tbl(Runs::Table)
                .from_col(Runs::WorkspaceId)
                .from_col(Runs::WorkflowId)
                .to_tbl(Workflows::Table)
                .to_col(Workflows::WorkspaceId)
                .to_col(Workflows::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .foreign_key(
            ForeignKey::create()
                .name("fk_runs_workflow_version")
                .from_tbl(Runs::Table)
                .from_col(Runs::WorkflowId)
                .from_col(Runs::WorkflowVersion)
                .to_tbl(WorkflowVersions::Table)
                .to_col(WorkflowVersions::WorkflowId)
                .to_col(WorkflowVersions::Version)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

fn run_steps() -> TableCreateStatement {
    Table::create()
        .table(RunSteps::Table)
        .col(uuid(RunSteps::RunId))
        .col(text(RunSteps::NodeId))
        .col(uuid(RunSteps::WorkspaceId))
        .col(text(RunSteps::Status))
        .col(integer(RunSteps::Attempt))
        .col(json_binary_null(RunSteps::Input))
        .col(json_binary_null(RunSteps::Output))
        .col(text_null(RunSteps::Error))
        .col(text_null(RunSteps::Branch))
        .col(integer_null(RunSteps::FinishOrder))
        .col(timestamp_with_time_zone_null(RunSteps::StartedAt))
        .col(timestamp_with_time_zone_null(RunSteps::FinishedAt))
        .primary_key(Index::create().col(RunSteps::RunId).col(RunSteps::NodeId))
        .foreign_key(
            ForeignKey::create()
                .name("fk_run_steps_run")
                .from(RunSteps::Table, RunSteps::RunId)
                .to(Runs::Table, Runs::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

fn run_events() -> TableCreateStatement {
    Table::create()
        .table(RunEvents::Table)
        .col(uuid(RunEvents::RunId))
        .col(big_integer(RunEvents::Seq))
        .col(uuid(RunEvents::WorkspaceId))
        .col(timestamp_with_time_zone(RunEvents::At))
        .col(text(RunEvents::Kind))
        .col(text_null(RunEvents::NodeId))
        .col(text(RunEvents::Message))
        .col(json_binary_null(RunEvents::Data))
        .primary_key(Index::create().col(RunEvents::RunId).col(RunEvents::Seq))
        .foreign_key(
            ForeignKey::create()
                .name("fk_run_events_run")
                .from(RunEvents::Table, RunEvents::RunId)
                .to(Runs::Table, Runs::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

/// One row per (workflow, cron tick) that has fired: the primary key is what lets only
/// one of several schedulers start the tick's run.
fn schedule_ticks() -> TableCreateStatement {
    Table::create()
        .table(ScheduleTicks::Table)
        .col(uuid(ScheduleTicks::WorkflowId))
        .col(big_integer(ScheduleTicks::TickAtMs))
        .col(uuid(ScheduleTicks::WorkspaceId))
        .col(uuid_null(ScheduleTicks::RunId))
        .col(timestamp_with_time_zone(ScheduleTicks::FiredAt))
        .primary_key(
            Index::create()
                .col(ScheduleTicks::WorkflowId)
                .col(ScheduleTicks::TickAtMs),
        )
        .foreign_key(
            ForeignKey::create()
                .name("fk_schedule_ticks_workflow")
                .from_tbl(ScheduleTicks::Table)
                .from_col(ScheduleTicks::WorkspaceId)
                .from_col(ScheduleTicks::WorkflowId)
                .to_tbl(Workflows::Table)
                .to_col(Workflows::WorkspaceId)
                .to_col(Workflows::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

#[derive(DeriveIden)]
enum Workflows {
    Table,
    Id,
    WorkspaceId,
}

#[derive(DeriveIden)]
enum WorkflowVersions {
    Table,
    WorkflowId,
    Version,
}

#[derive(DeriveIden, Clone, Copy)]
enum Runs {
    Table,
    Id,
    WorkspaceId,
    WorkflowId,
    WorkflowVersion,
    Status,
    TriggerKind,
    Input,
    Output,
    Error,
    RetryOf,
    RetryFromNode,
    CancelRequested,
    LastSeq,
    AvailableAtMs,
    LeaseOwner,
    LeaseExpiresAtMs,
    FencingToken,
    CreatedAt,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum RunSteps {
    Table,
    RunId,
    NodeId,
    WorkspaceId,
    Status,
    Attempt,
    Input,
    Output,
    Error,
    Branch,
    FinishOrder,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum RunEvents {
    Table,
    RunId,
    Seq,
    WorkspaceId,
    At,
    Kind,
    NodeId,
    Message,
    Data,
}

#[derive(DeriveIden)]
enum ScheduleTicks {
    Table,
    WorkflowId,
    TickAtMs,
    WorkspaceId,
    RunId,
    FiredAt,
}
