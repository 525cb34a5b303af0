//! The credential vault's storage: each workspace's data key, its connections with their
//! sealed credentials, and which master key sealed each JWT signing key.
//!
//! A workspace has at most one data key (`data_keys.workspace_id` is unique), so two
//! processes racing to create it insert with `ON CONFLICT (workspace_id) DO NOTHING` and
//! both read back the winner's. The key is stored only wrapped by a master key, named by
//! `master_key_id` (indexed, so a rotation finds the keys still under an old master key).
//! A connection's credentials are stored only sealed under its workspace's data key.
//! Connection names are unique per workspace. Both tables cascade with their workspace
//! and carry `workspace_id` for row-level security.
//!
//! `signing_keys.master_key_id` is nullable: keys sealed before master keys had ids keep
//! `NULL` until a rotation reseals them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    blob, boolean_null, json_binary, pk_uuid, text, text_null, timestamp_with_time_zone,
    timestamp_with_time_zone_null, uuid, uuid_uniq,
};
use sea_orm_migration::sea_orm::DbBackend;

use crate::tenancy::{protect_workspace_table, unprotect_workspace_table};

const WORKSPACE_TABLES: [&str; 2] = ["data_keys", "connections"];

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(data_keys()).await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_data_keys_master_key_id")
                    .table(DataKeys::Table)
                    .col(DataKeys::MasterKeyId)
                    .to_owned(),
            )
            .await?;
        manager.create_table(connections()).await?;
        // The name is the caller's handle on a connection; it also serves the listing of
        // one workspace's connections by name.
        manager
            .create_index(
                Index::create()
                    .name("idx_connections_workspace_id_name")
                    .table(Connections::Table)
                    .col(Connections::WorkspaceId)
                    .col(Connections::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SigningKeys::Table)
                    .add_column(text_null(SigningKeys::MasterKeyId))
                    .to_owned(),
            )
            .await?;
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
        manager
            .alter_table(
                Table::alter()
                    .table(SigningKeys::Table)
                    .drop_column(SigningKeys::MasterKeyId)
                    .to_owned(),
            )
            .await?;
        for table in [Connections::Table.into_iden(), DataKeys::Table.into_iden()] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

fn data_keys() -> TableCreateStatement {
    Table::create()
        .table(DataKeys::Table)
        .col(pk_uuid(DataKeys::Id))
        .col(uuid_uniq(DataKeys::WorkspaceId))
        .col(text(DataKeys::MasterKeyId))
        .col(blob(DataKeys::Wrapped))
        .col(timestamp_with_time_zone(DataKeys::CreatedAt))
        .col(timestamp_with_time_zone(DataKeys::UpdatedAt))
        .foreign_key(
            ForeignKey::create()
                .name("fk_data_keys_workspace")
                .from(DataKeys::Table, DataKeys::WorkspaceId)
                .to(Workspaces::Table, Workspaces::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

fn connections() -> TableCreateStatement {
    Table::create()
        .table(Connections::Table)
        .col(pk_uuid(Connections::Id))
        .col(uuid(Connections::WorkspaceId))
        .col(text(Connections::Name))
        .col(text(Connections::Connector))
        .col(text(Connections::AuthKind))
        .col(text(Connections::Status))
        .col(json_binary(Connections::Settings))
        .col(blob(Connections::SealedCredentials))
        .col(timestamp_with_time_zone(Connections::CreatedAt))
        .col(timestamp_with_time_zone(Connections::UpdatedAt))
        .col(timestamp_with_time_zone_null(Connections::LastTestedAt))
        .col(boolean_null(Connections::LastTestOk))
        .foreign_key(
            ForeignKey::create()
                .name("fk_connections_workspace")
                .from(Connections::Table, Connections::WorkspaceId)
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
enum SigningKeys {
    Table,
    MasterKeyId,
}

#[derive(DeriveIden)]
enum DataKeys {
    Table,
    Id,
    WorkspaceId,
    MasterKeyId,
    Wrapped,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Connections {
    Table,
    Id,
    WorkspaceId,
    Name,
    Connector,
    AuthKind,
    Status,
    Settings,
    SealedCredentials,
    CreatedAt,
    UpdatedAt,
    LastTestedAt,
    LastTestOk,
}
