//! The transaction every workspace-scoped repository method runs in.
//!
//! Invariant: on Postgres, a scoped transaction runs as the tenant role with the scope's
//! workspace as the row-level-security setting, both `LOCAL` so they end with the
//! transaction and never leak to the next user of the pooled connection. On SQLite, which
//! has no RLS, the repositories' own `workspace_id` filters are the only wall.

use aos_domain::access::WorkspaceScope;
use aos_domain::error::DomainResult;
use aos_migrations::{TENANT_ROLE, WORKSPACE_SETTING};
use std::sync::Arc;

use sea_orm::{
    AccessMode, ConnectionTrait, DbBackend, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait,
};
use tokio::sync::OwnedMutexGuard;

use crate::error::internal;
use crate::store::SeaStore;
use crate::txn::Txn;

/// What a transaction will do, so each backend can take the right locks up front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Only reads: read-only on Postgres, a deferred (lock-free in WAL) one on SQLite.
    Read,
    /// May write: on SQLite the write lock is taken at `BEGIN`, because a deferred
    /// transaction that reads and then writes fails outright (not after the busy timeout)
    /// when another writer got in between.
    Write,
}

/// Read-only where the backend can enforce it; on SQLite, a writer takes the write lock at
/// `BEGIN` (see [`Intent::Write`]).
fn transaction_options(backend: DbBackend, intent: Intent) -> TransactionOptions {
    let mut options = TransactionOptions::default();
    match (backend, intent) {
        (DbBackend::Postgres, Intent::Read) => options.access_mode = Some(AccessMode::ReadOnly),
        (DbBackend::Sqlite, Intent::Write) => {
            options.sqlite_transaction_mode = Some(SqliteTransactionMode::Immediate);
        }
        _ => {}
    }
    options
}

impl SeaStore {
    /// Opens a transaction bound to `scope`'s workspace (see the module doc).
    ///
    /// Public so that tests can prove the row-level-security wall with raw SQL; application
    /// code reaches data through the ports, never through a raw transaction.
    pub async fn begin_scoped(&self, scope: &WorkspaceScope, intent: Intent) -> DomainResult<Txn> {
        let backend = self.db.get_database_backend();
        let lane = match intent {
            Intent::Read => None,
            Intent::Write => self.take_write_lane().await,
        };
        let txn = self
            .db
            .begin_with_options(transaction_options(backend, intent))
            .await
            .map_err(internal("begin a scoped transaction"))?;
        if backend == DbBackend::Postgres {
            txn.execute_unprepared(&format!("SET LOCAL ROLE {TENANT_ROLE}"))
                .await
                .map_err(internal("enter the tenant role"))?;
            txn.query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT set_config($1, $2, true)",
                [
                    WORKSPACE_SETTING.into(),
                    scope.workspace_id().to_string().into(),
                ],
            ))
            .await
            .map_err(internal("set the current workspace"))?;
        }
        Ok(Txn::new(txn, lane))
    }

    /// Opens a transaction for unscoped writes (accounts, sessions, new workspaces), which
    /// run as the connecting user.
    pub(crate) async fn begin_unscoped_write(&self) -> DomainResult<Txn> {
        let options = transaction_options(self.db.get_database_backend(), Intent::Write);
        let lane = self.take_write_lane().await;
        let txn = self
            .db
            .begin_with_options(options)
            .await
            .map_err(internal("begin a transaction"))?;
        Ok(Txn::new(txn, lane))
    }

    async fn take_write_lane(&self) -> Option<OwnedMutexGuard<()>> {
        match &self.write_lane {
            Some(lane) => Some(Arc::clone(lane).lock_owned().await),
            None => None,
        }
    }
}
