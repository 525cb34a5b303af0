//! Polling triggers: one row per `trigger.poll` node of a workflow, with the connector's
//! cursor, when the node is due next, the lease of the process polling it, and what went
//! wrong last.
//!
//! Like the run queue, times the poller compares on every look are epoch milliseconds
//! (`BIGINT`), which compare alike on SQLite and Postgres. A row is due when its
//! `next_poll_at_ms` has come and no live lease holds it; `fencing_token` grows with every
//! claim, and a write carrying an older one changes nothing. The row belongs to its
//! workflow and node (not to a version), cascades with the workflow, and carries
//! `workspace_id` for row-level security.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, integer, json_binary_null, text, text_null, timestamp_with_time_zone,
    timestamp_with_time_zone_null, uuid,
};
use sea_orm_migration::sea_orm::DbBackend;

use crate::tenancy::{protect_workspace_table, unprotect_workspace_table};

const TABLE: &str = "poll_states";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(poll_states()).await?;
        // The claim: due rows in the order they fell due.
        manager
            .create_index(
                Index::create()
                    .name("idx_poll_states_next_poll_at_ms")
                    .table(PollStates::Table)
                    .col(PollStates::NextPollAtMs)
                    .to_owned(),
            )
            .await?;
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
                    .table(PollStates::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

fn poll_states() -> TableCreateStatement {
    Table::create()
        .table(PollStates::Table)
        .col(uuid(PollStates::WorkflowId))
        .col(text(PollStates::NodeId))
        .col(uuid(PollStates::WorkspaceId))
        .col(json_binary_null(PollStates::Cursor))
        .col(big_integer(PollStates::NextPollAtMs))
        .col(text_null(PollStates::LeaseOwner))
        .col(big_integer(PollStates::LeaseExpiresAtMs).default(0))
        .col(big_integer(PollStates::FencingToken).default(0))
        .col(integer(PollStates::Failures).default(0))
        .col(text_null(PollStates::LastError))
        .col(timestamp_with_time_zone_null(PollStates::LastPolledAt))
        .col(timestamp_with_time_zone(PollStates::CreatedAt))
        .col(timestamp_with_time_zone(PollStates::UpdatedAt))
        .primary_key(
            Index::create()
                .col(PollStates::WorkflowId)
                .col(PollStates::NodeId),
        )
        .foreign_key(
            ForeignKey::create()
                .name("fk_poll_states_workflow")
                .from_tbl(PollStates::Table)
                .from_col(PollStates::WorkspaceId)
                .from_col(PollStates::WorkflowId)
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
enum PollStates {
    Table,
    WorkflowId,
    NodeId,
    WorkspaceId,
    Cursor,
    NextPollAtMs,
    LeaseOwner,
    LeaseExpiresAtMs,
    FencingToken,
    Failures,
    LastError,
    LastPolledAt,
    CreatedAt,
    UpdatedAt,
}
