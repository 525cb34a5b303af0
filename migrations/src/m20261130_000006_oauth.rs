//! OAuth2: pending authorizations, and what a connection needs to have its token renewed
//! by one process at a time.
//!
//! `oauth_authorizations` holds an authorization-code flow between its start and its
//! callback. Its key is the SHA-256 of the `state` (the state itself is never stored), the
//! PKCE verifier and the client secret are sealed by the vault, and a row lives at most
//! until `expires_at_ms`; taking it deletes it, so a state is used once. It cascades with
//! its workspace and its user and is under row-level security by `workspace_id`.
//!
//! On `connections`: `token_expires_at_ms` (when the access token expires; not a secret)
//! lets the background refresher find tokens coming due, by an index; `refresh_owner` and
//! `refresh_lease_until_ms` are the refresh lease that a compare-and-set takes. Times that
//! queries compare are milliseconds, as for the run queue: the backends store timestamps
//! differently, and integers compare the same on both.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, blob, boolean, json_binary, text, text_null,
    timestamp_with_time_zone, uuid,
};
use sea_orm_migration::sea_orm::DbBackend;

use crate::tenancy::{protect_workspace_table, unprotect_workspace_table};

const WORKSPACE_TABLE: &str = "oauth_authorizations";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        for column in [
            big_integer_null(Connections::TokenExpiresAtMs),
            text_null(Connections::RefreshOwner),
            big_integer_null(Connections::RefreshLeaseUntilMs),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Connections::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_connections_token_expires_at_ms")
                    .table(Connections::Table)
                    .col(Connections::TokenExpiresAtMs)
                    .to_owned(),
            )
            .await?;
        manager.create_table(oauth_authorizations()).await?;
        // Expired authorizations of a workspace are swept when it starts a new one.
        manager
            .create_index(
                Index::create()
                    .name("idx_oauth_authorizations_workspace_id_expires_at_ms")
                    .table(OauthAuthorizations::Table)
                    .col(OauthAuthorizations::WorkspaceId)
                    .col(OauthAuthorizations::ExpiresAtMs)
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&protect_workspace_table(WORKSPACE_TABLE, "workspace_id"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&unprotect_workspace_table(WORKSPACE_TABLE))
                .await?;
        }
        manager
            .drop_table(
                Table::drop()
                    .table(OauthAuthorizations::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_connections_token_expires_at_ms")
                    .table(Connections::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            Connections::RefreshLeaseUntilMs,
            Connections::RefreshOwner,
            Connections::TokenExpiresAtMs,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Connections::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

fn oauth_authorizations() -> TableCreateStatement {
    Table::create()
        .table(OauthAuthorizations::Table)
        .col(text(OauthAuthorizations::StateHash).primary_key())
        .col(uuid(OauthAuthorizations::Id))
        .col(uuid(OauthAuthorizations::WorkspaceId))
        .col(uuid(OauthAuthorizations::UserId))
        // Not a foreign key: a new connection does not exist until the callback.
        .col(uuid(OauthAuthorizations::ConnectionId))
        .col(boolean(OauthAuthorizations::Reauthorize))
        .col(text(OauthAuthorizations::Connector))
        .col(text(OauthAuthorizations::Name))
        .col(json_binary(OauthAuthorizations::Settings))
        .col(text(OauthAuthorizations::ClientId))
        .col(text(OauthAuthorizations::AuthorizationUrl))
        .col(text(OauthAuthorizations::TokenUrl))
        .col(text_null(OauthAuthorizations::RevocationUrl))
        .col(json_binary(OauthAuthorizations::Scopes))
        .col(text(OauthAuthorizations::RedirectUri))
        .col(blob(OauthAuthorizations::SealedSecrets))
        .col(timestamp_with_time_zone(OauthAuthorizations::CreatedAt))
        .col(big_integer(OauthAuthorizations::ExpiresAtMs))
        .foreign_key(
            ForeignKey::create()
                .name("fk_oauth_authorizations_workspace")
                .from(OauthAuthorizations::Table, OauthAuthorizations::WorkspaceId)
                .to(Workspaces::Table, Workspaces::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .foreign_key(
            ForeignKey::create()
                .name("fk_oauth_authorizations_user")
                .from(OauthAuthorizations::Table, OauthAuthorizations::UserId)
                .to(Users::Table, Users::Id)
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
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Connections {
    Table,
    TokenExpiresAtMs,
    RefreshOwner,
    RefreshLeaseUntilMs,
}

#[derive(DeriveIden)]
enum OauthAuthorizations {
    Table,
    StateHash,
    Id,
    WorkspaceId,
    UserId,
    ConnectionId,
    Reauthorize,
    Connector,
    Name,
    Settings,
    ClientId,
    AuthorizationUrl,
    TokenUrl,
    RevocationUrl,
    Scopes,
    RedirectUri,
    SealedSecrets,
    CreatedAt,
    ExpiresAtMs,
}
