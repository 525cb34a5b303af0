//! `ConnectionStore`: a workspace's connections, always through a scope; and
//! `CredentialStore`, the engine's unscoped read of one connection of a run's workspace.
//!
//! Invariants: every scoped query filters by `scope.workspace_id()` inside
//! `SeaStore::begin_scoped`, and the unscoped read filters by the workspace the run names
//! as well as by id, so neither reaches another workspace's connection. Credentials go in
//! and come out exactly as sealed: this store never sees them in the clear, and only
//! `sealed_connection*` return the sealed bytes at all. Names are unique per workspace
//! (a unique index), so two concurrent creates of one name cannot both succeed. New
//! credentials end any refresh lease and set the token's expiry anew, so a lease or an
//! expiry never outlives the credentials it was about.

use aos_domain::access::WorkspaceScope;
use aos_domain::connection::{
    Connection, ConnectionChange, ConnectionName, ConnectionStatus, NewConnection, SealedConnection,
};
use aos_domain::error::{DomainError, DomainResult};
use aos_domain::ids::{ConnectionId, WorkspaceId};
use aos_domain::ports::{ConnectionStore, CredentialStore};
use aos_domain::quota::Quota;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
};
use uuid::Uuid;

use super::quotas::refuse_past_limit;
use crate::convert;
use crate::entities::connections;
use crate::error::{internal, missing_or_conflict};
use crate::scoped::Intent;
use crate::store::SeaStore;
use crate::timestamps;
use crate::txn::Txn;

/// What a create or rename that hits the unique name answers; names are not secret.
fn name_taken(name: &ConnectionName) -> String {
    format!(
        "a connection named \"{}\" already exists in this workspace",
        name.as_str()
    )
}

pub(super) async fn row(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    id: ConnectionId,
) -> DomainResult<Option<connections::Model>> {
    connections::Entity::find_by_id(id.as_uuid())
        .filter(connections::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await
        .map_err(internal("read a connection"))
}

pub(super) async fn commit(txn: Txn) -> DomainResult<()> {
    txn.commit()
        .await
        .map_err(internal("commit a connection change"))
}

/// The connection as a change left it, and the change committed; `NotFound` if the
/// change found no row of the workspace to change.
pub(super) async fn changed_row(
    txn: Txn,
    workspace_id: Uuid,
    id: ConnectionId,
    rows_affected: u64,
) -> DomainResult<Connection> {
    if rows_affected == 0 {
        return Err(DomainError::NotFound("connection"));
    }
    let stored = row(&txn, workspace_id, id)
        .await?
        .ok_or(DomainError::NotFound("connection"))?;
    commit(txn).await?;
    convert::connection(stored)
}

/// Creates a connection; `token_expires_at` is its OAuth2 access token's expiry, if any.
pub(super) async fn insert_connection(
    store: &SeaStore,
    scope: &WorkspaceScope,
    connection: NewConnection,
    token_expires_at: Option<DateTime<Utc>>,
) -> DomainResult<Connection> {
    let now = timestamps::now();
    let row = connections::Model {
        id: connection.id.as_uuid(),
        workspace_id: scope.workspace_id().as_uuid(),
        name: connection.name.as_str().to_owned(),
        connector: connection.connector,
        auth_kind: connection.auth_kind.as_str().to_owned(),
        status: ConnectionStatus::Valid.as_str().to_owned(),
        settings: connection.settings,
        sealed_credentials: connection.sealed_credentials,
        created_at: now,
        updated_at: now,
        last_tested_at: None,
        last_test_ok: None,
        token_expires_at_ms: token_expires_at.map(|at| at.timestamp_millis()),
        refresh_owner: None,
        refresh_lease_until_ms: None,
    };
    let txn = store.begin_scoped(scope, Intent::Write).await?;
    // The workspace is gone only if it was deleted while this request ran.
    connections::Entity::insert(row.clone().into_active_model())
        .exec_without_returning(&txn)
        .await
        .map_err(missing_or_conflict(
            "create a connection",
            "workspace",
            name_taken(&connection.name),
        ))?;
    refuse_past_limit(
        &txn,
        &store.quota_defaults,
        row.workspace_id,
        Quota::Connections,
    )
    .await?;
    commit(txn).await?;
    convert::connection(row)
}

#[async_trait]
impl ConnectionStore for SeaStore {
    async fn create_connection(
        &self,
        scope: &WorkspaceScope,
        connection: NewConnection,
    ) -> DomainResult<Connection> {
        insert_connection(self, scope, connection, None).await
    }

    async fn connection(
        &self,
        scope: &WorkspaceScope,
        id: ConnectionId,
    ) -> DomainResult<Option<Connection>> {
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        let found = row(&txn, scope.workspace_id().as_uuid(), id).await?;
        commit(txn).await?;
        found.map(convert::connection).transpose()
    }

    async fn connections(&self, scope: &WorkspaceScope) -> DomainResult<Vec<Connection>> {
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        let rows = connections::Entity::find()
            .filter(connections::Column::WorkspaceId.eq(scope.workspace_id().as_uuid()))
            .order_by_asc(connections::Column::Name)
            .order_by_asc(connections::Column::Id)
            .all(&txn)
            .await
            .map_err(internal("list connections"))?;
        commit(txn).await?;
        rows.into_iter().map(convert::connection).collect()
    }

    async fn sealed_connection(
        &self,
        scope: &WorkspaceScope,
        id: ConnectionId,
    ) -> DomainResult<Option<SealedConnection>> {
        let txn = self.begin_scoped(scope, Intent::Read).await?;
        let found = row(&txn, scope.workspace_id().as_uuid(), id).await?;
        commit(txn).await?;
        found.map(convert::sealed_connection).transpose()
    }

    async fn update_connection(
        &self,
        scope: &WorkspaceScope,
        id: ConnectionId,
        change: ConnectionChange,
    ) -> DomainResult<Connection> {
        let workspace_id = scope.workspace_id().as_uuid();
        let mut update = connections::Entity::update_many()
            .col_expr(
                connections::Column::UpdatedAt,
                Expr::value(timestamps::now()),
            )
            .filter(connections::Column::Id.eq(id.as_uuid()))
            .filter(connections::Column::WorkspaceId.eq(workspace_id));
        if let Some(name) = &change.name {
            update = update.col_expr(connections::Column::Name, Expr::value(name.as_str()));
        }
        if let Some(settings) = change.settings {
            update = update.col_expr(connections::Column::Settings, Expr::value(settings));
        }
        if let Some((auth_kind, sealed)) = change.credentials {
            update = update
                .col_expr(
                    connections::Column::AuthKind,
                    Expr::value(auth_kind.as_str()),
                )
                .col_expr(connections::Column::SealedCredentials, Expr::value(sealed))
                // New credentials start afresh: the last test and any OAuth2 trouble
                // were about the old ones.
                .col_expr(
                    connections::Column::Status,
                    Expr::value(ConnectionStatus::Valid.as_str()),
                )
                .col_expr(
                    connections::Column::LastTestedAt,
                    Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
                )
                .col_expr(
                    connections::Column::LastTestOk,
                    Expr::value(Option::<bool>::None),
                )
                .col_expr(
                    connections::Column::TokenExpiresAtMs,
                    Expr::value(change.token_expires_at.map(|at| at.timestamp_millis())),
                )
                .col_expr(
                    connections::Column::RefreshOwner,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(
                    connections::Column::RefreshLeaseUntilMs,
                    Expr::value(Option::<i64>::None),
                );
        }
        // Only a rename can hit a unique index: the id and the workspace never change.
        let taken = change.name.as_ref().map(name_taken).unwrap_or_default();
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        let updated = update.exec(&txn).await.map_err(missing_or_conflict(
            "update a connection",
            "connection",
            taken,
        ))?;
        changed_row(txn, workspace_id, id, updated.rows_affected).await
    }

    async fn record_connection_test(
        &self,
        scope: &WorkspaceScope,
        id: ConnectionId,
        at: DateTime<Utc>,
        ok: bool,
    ) -> DomainResult<Connection> {
        let workspace_id = scope.workspace_id().as_uuid();
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        // A test changes nothing the user configured, so `updated_at` stays.
        let updated = connections::Entity::update_many()
            .col_expr(
                connections::Column::LastTestedAt,
                Expr::value(timestamps::stored(at)),
            )
            .col_expr(connections::Column::LastTestOk, Expr::value(ok))
            .filter(connections::Column::Id.eq(id.as_uuid()))
            .filter(connections::Column::WorkspaceId.eq(workspace_id))
            .exec(&txn)
            .await
            .map_err(internal("record a connection test"))?;
        changed_row(txn, workspace_id, id, updated.rows_affected).await
    }

    async fn delete_connection(
        &self,
        scope: &WorkspaceScope,
        id: ConnectionId,
    ) -> DomainResult<()> {
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        let deleted = connections::Entity::delete_many()
            .filter(connections::Column::Id.eq(id.as_uuid()))
            .filter(connections::Column::WorkspaceId.eq(scope.workspace_id().as_uuid()))
            .exec(&txn)
            .await
            .map_err(internal("delete a connection"))?;
        if deleted.rows_affected == 0 {
            return Err(DomainError::NotFound("connection"));
        }
        commit(txn).await
    }
}

#[async_trait]
impl CredentialStore for SeaStore {
    async fn sealed_connection_of(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
    ) -> DomainResult<Option<SealedConnection>> {
        // Unscoped, as the connecting role: the run being executed names the workspace,
        // and filtering by it keeps a run from using another workspace's connection.
        row(&self.db, workspace_id.as_uuid(), id)
            .await?
            .map(convert::sealed_connection)
            .transpose()
    }
}
