//! The audit log: `audit_events`, one row per mutation attempted in a workspace.
//!
//! Append-only: the tenant role may insert and read its workspace's rows (row-level
//! security by `workspace_id`) but has no UPDATE or DELETE on the table; only the owner
//! role, running retention outside any request, deletes rows, and only by age. There is
//! no foreign key to `workspaces` on purpose: a deleted workspace's record of who deleted
//! it stays until retention removes it. The time is epoch milliseconds (`at_ms`), which
//! compare alike on SQLite and Postgres, for the filters and for retention. No column
//! holds a mutation's input.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, pk_uuid, text, text_null, uuid};
use sea_orm_migration::sea_orm::DbBackend;

use crate::tenancy::{TENANT_ROLE, protect_workspace_table, unprotect_workspace_table};

const TABLE: &str = "audit_events";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(audit_events()).await?;
        // A workspace's log, newest first, is a walk down this index.
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_workspace_id_id")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::WorkspaceId)
                    .col(AuditEvents::Id)
                    .to_owned(),
            )
            .await?;
        // Retention deletes the oldest rows first, in small batches.
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_at_ms")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::AtMs)
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&format!(
                    "{}\nREVOKE UPDATE, DELETE ON {TABLE} FROM {TENANT_ROLE};",
                    protect_workspace_table(TABLE, "workspace_id")
                ))
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
                    .table(AuditEvents::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

fn audit_events() -> TableCreateStatement {
    Table::create()
        .table(AuditEvents::Table)
        .col(pk_uuid(AuditEvents::Id))
        .col(uuid(AuditEvents::WorkspaceId))
        .col(text(AuditEvents::ActorKind))
        .col(uuid(AuditEvents::ActorId))
        .col(uuid(AuditEvents::ActorUserId))
        .col(text(AuditEvents::Action))
        .col(text_null(AuditEvents::TargetKind))
        .col(text_null(AuditEvents::TargetId))
        .col(text_null(AuditEvents::ClientIp))
        .col(big_integer(AuditEvents::AtMs))
        .col(text(AuditEvents::Outcome))
        .to_owned()
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    WorkspaceId,
    ActorKind,
    ActorId,
    ActorUserId,
    Action,
    TargetKind,
    TargetId,
    ClientIp,
    AtMs,
    Outcome,
}
