//! `Txn`, the transaction every repository method runs in. On SQLite a write transaction
//! also holds the write lane (see `SeaStore::write_lane`) for as long as it lives.
//!
//! A transaction dropped without a commit (an early `?`) is rolled back by a spawned task
//! that holds the lane until the rollback is done. Left to itself, a dropped transaction
//! only queues its `ROLLBACK` for the connection's next use: until then its row locks stay
//! taken on Postgres (claims skip locked rows) and, on SQLite, the write lock stays with
//! a connection nobody uses while the lane already lets the next writer in. A caller that
//! must see the locks gone when it returns (a refused journal write) rolls back itself.

use std::ops::Deref;

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult, Statement,
};
use tokio::sync::OwnedMutexGuard;

pub struct Txn {
    /// `None` only once `commit`, `rollback` or `drop` took it.
    inner: Option<DatabaseTransaction>,
    lane: Option<OwnedMutexGuard<()>>,
}

impl Txn {
    pub(crate) fn new(inner: DatabaseTransaction, lane: Option<OwnedMutexGuard<()>>) -> Self {
        Self {
            inner: Some(inner),
            lane,
        }
    }

    pub async fn commit(mut self) -> Result<(), DbErr> {
        match self.inner.take() {
            Some(inner) => inner.commit().await,
            None => Ok(()),
        }
    }

    pub async fn rollback(mut self) -> Result<(), DbErr> {
        match self.inner.take() {
            Some(inner) => inner.rollback().await,
            None => Ok(()),
        }
    }

    fn transaction(&self) -> &DatabaseTransaction {
        match &self.inner {
            Some(inner) => inner,
            // Only `commit`, `rollback` and `drop` take it, and each consumes the `Txn`.
            None => unreachable!("a Txn used after it ended"),
        }
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let lane = self.lane.take();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(error) = inner.rollback().await {
                        tracing::warn!(%error, "rolling back an abandoned transaction failed");
                    }
                    drop(lane);
                });
            }
            // No runtime to roll back on (a shutdown): the driver's deferred rollback stays.
            Err(_) => drop(inner),
        }
    }
}

impl Deref for Txn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        self.transaction()
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Txn {
    fn get_database_backend(&self) -> DbBackend {
        self.transaction().get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.transaction().execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.transaction().execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.transaction().query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.transaction().query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.transaction().support_returning()
    }
}
