//! `OAuthStore`: pending OAuth2 authorizations, OAuth2 connections' token expiry and the
//! refresh lease.
//!
//! Invariants:
//! - a pending authorization is written through its scope and taken back by its state hash
//!   alone, in one write transaction that deletes it: of two takes of one state, only the
//!   one whose delete removed the row returns it (on Postgres the second delete waits for
//!   the first to commit and then finds nothing), and an expired one is deleted unreturned;
//! - the refresh lease is one conditional `UPDATE` of the connection row: it takes the
//!   lease only from `VALID`, or from `REFRESHING` whose lease ran out, so two processes
//!   never both hold it; a refresh's outcome is written only where the row still names the
//!   refresher as the lease's owner;
//! - the unscoped methods run as the connecting role, like `CredentialStore`, and filter
//!   by the workspace they are given as well as by the connection.

use aos_domain::access::WorkspaceScope;
use aos_domain::connection::{AuthKind, Connection, ConnectionStatus, NewConnection};
use aos_domain::error::DomainResult;
use aos_domain::ids::{ConnectionId, WorkspaceId};
use aos_domain::oauth::{OAuthStore, PendingAuthorization, RefreshOutcome};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::connections::{changed_row, commit, insert_connection};
use crate::convert;
use crate::entities::{connections, oauth_authorizations};
use crate::error::{internal, missing_or_conflict};
use crate::scoped::Intent;
use crate::store::SeaStore;
use crate::timestamps;

/// The rows of `workspace_id`'s OAuth2 connection `id`.
fn oauth2_connection(workspace_id: WorkspaceId, id: ConnectionId) -> Condition {
    Condition::all()
        .add(connections::Column::Id.eq(id.as_uuid()))
        .add(connections::Column::WorkspaceId.eq(workspace_id.as_uuid()))
        .add(connections::Column::AuthKind.eq(AuthKind::OAuth2.as_str()))
}

/// `VALID`, or `REFRESHING` under a lease that ran out by `now_ms`.
fn refreshable(now_ms: i64) -> Condition {
    Condition::any()
        .add(connections::Column::Status.eq(ConnectionStatus::Valid.as_str()))
        .add(
            Condition::all()
                .add(connections::Column::Status.eq(ConnectionStatus::Refreshing.as_str()))
                .add(
                    Condition::any()
                        .add(connections::Column::RefreshLeaseUntilMs.is_null())
                        .add(connections::Column::RefreshLeaseUntilMs.lte(now_ms)),
                ),
        )
}

#[async_trait]
impl OAuthStore for SeaStore {
    async fn insert_pending_authorization(
        &self,
        scope: &WorkspaceScope,
        pending: PendingAuthorization,
    ) -> DomainResult<()> {
        let workspace_id = scope.workspace_id().as_uuid();
        let row = convert::pending_authorization_row(workspace_id, pending);
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        oauth_authorizations::Entity::delete_many()
            .filter(oauth_authorizations::Column::WorkspaceId.eq(workspace_id))
            .filter(oauth_authorizations::Column::ExpiresAtMs.lt(Utc::now().timestamp_millis()))
            .exec(&txn)
            .await
            .map_err(internal("forget expired OAuth2 authorizations"))?;
        // The workspace or the user is gone only if deleted while this request ran; the
        // state is 256 random bits, so its hash cannot be taken.
        oauth_authorizations::Entity::insert(row.into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(missing_or_conflict(
                "store an OAuth2 authorization",
                "workspace",
                "this authorization was started already",
            ))?;
        commit(txn).await
    }

    async fn take_pending_authorization(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> DomainResult<Option<PendingAuthorization>> {
        let txn = self.begin_unscoped_write().await?;
        let Some(row) = oauth_authorizations::Entity::find_by_id(state_hash.to_owned())
            .one(&txn)
            .await
            .map_err(internal("read an OAuth2 authorization"))?
        else {
            return Ok(None);
        };
        let deleted = oauth_authorizations::Entity::delete_many()
            .filter(oauth_authorizations::Column::StateHash.eq(state_hash))
            .exec(&txn)
            .await
            .map_err(internal("use up an OAuth2 authorization"))?;
        commit(txn).await?;
        if deleted.rows_affected == 0 || row.expires_at_ms <= now.timestamp_millis() {
            return Ok(None);
        }
        convert::pending_authorization(row).map(Some)
    }

    async fn create_oauth_connection(
        &self,
        scope: &WorkspaceScope,
        connection: NewConnection,
        token_expires_at: Option<DateTime<Utc>>,
    ) -> DomainResult<Connection> {
        insert_connection(self, scope, connection, token_expires_at).await
    }

    async fn set_connection_status(
        &self,
        scope: &WorkspaceScope,
        id: ConnectionId,
        status: ConnectionStatus,
    ) -> DomainResult<Connection> {
        let workspace_id = scope.workspace_id().as_uuid();
        let txn = self.begin_scoped(scope, Intent::Write).await?;
        let updated = connections::Entity::update_many()
            .col_expr(connections::Column::Status, Expr::value(status.as_str()))
            .col_expr(
                connections::Column::RefreshOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                connections::Column::RefreshLeaseUntilMs,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(
                connections::Column::UpdatedAt,
                Expr::value(timestamps::now()),
            )
            .filter(connections::Column::Id.eq(id.as_uuid()))
            .filter(connections::Column::WorkspaceId.eq(workspace_id))
            .exec(&txn)
            .await
            .map_err(internal("change a connection's status"))?;
        changed_row(txn, workspace_id, id, updated.rows_affected).await
    }

    async fn claim_refresh(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> DomainResult<bool> {
        let txn = self.begin_unscoped_write().await?;
        let claimed = connections::Entity::update_many()
            .col_expr(
                connections::Column::Status,
                Expr::value(ConnectionStatus::Refreshing.as_str()),
            )
            .col_expr(connections::Column::RefreshOwner, Expr::value(owner))
            .col_expr(
                connections::Column::RefreshLeaseUntilMs,
                Expr::value(lease_until.timestamp_millis()),
            )
            .filter(oauth2_connection(workspace_id, id))
            .filter(refreshable(now.timestamp_millis()))
            .exec(&txn)
            .await
            .map_err(internal("take a refresh lease"))?;
        commit(txn).await?;
        Ok(claimed.rows_affected == 1)
    }

    async fn finish_refresh(
        &self,
        workspace_id: WorkspaceId,
        id: ConnectionId,
        owner: &str,
        outcome: RefreshOutcome,
    ) -> DomainResult<bool> {
        // A refresh changes nothing the user configured, so `updated_at` stays.
        let mut update = connections::Entity::update_many()
            .col_expr(
                connections::Column::Status,
                Expr::value(outcome.status().as_str()),
            )
            .col_expr(
                connections::Column::RefreshOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                connections::Column::RefreshLeaseUntilMs,
                Expr::value(Option::<i64>::None),
            )
            .filter(oauth2_connection(workspace_id, id))
            .filter(connections::Column::Status.eq(ConnectionStatus::Refreshing.as_str()))
            .filter(connections::Column::RefreshOwner.eq(owner));
        if let RefreshOutcome::Refreshed {
            sealed_credentials,
            token_expires_at,
        } = outcome
        {
            update = update
                .col_expr(
                    connections::Column::SealedCredentials,
                    Expr::value(sealed_credentials),
                )
                .col_expr(
                    connections::Column::TokenExpiresAtMs,
                    Expr::value(token_expires_at.map(|at| at.timestamp_millis())),
                );
        }
        let txn = self.begin_unscoped_write().await?;
        let finished = update
            .exec(&txn)
            .await
            .map_err(internal("end a refresh lease"))?;
        commit(txn).await?;
        Ok(finished.rows_affected == 1)
    }

    async fn connections_to_refresh(
        &self,
        expiring_before: DateTime<Utc>,
        limit: u64,
    ) -> DomainResult<Vec<(WorkspaceId, ConnectionId)>> {
        let due: Vec<(Uuid, Uuid)> = connections::Entity::find()
            .select_only()
            .column(connections::Column::WorkspaceId)
            .column(connections::Column::Id)
            .filter(connections::Column::AuthKind.eq(AuthKind::OAuth2.as_str()))
            .filter(refreshable(Utc::now().timestamp_millis()))
            .filter(connections::Column::TokenExpiresAtMs.lt(expiring_before.timestamp_millis()))
            .order_by_asc(connections::Column::TokenExpiresAtMs)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(internal("list connections whose token expires"))?;
        Ok(due
            .into_iter()
            .map(|(workspace_id, id)| {
                (
                    WorkspaceId::from_uuid(workspace_id),
                    ConnectionId::from_uuid(id),
                )
            })
            .collect())
    }
}
