//! `Txn`, the transaction every repository method runs in. On SQLite a write transaction
//! also holds the write lane (see `SeaStore::write_lane`) for as long as it lives.

use std::ops::Deref;

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult, Statement,
};
use tokio::sync::OwnedMutexGuard;

pub struct Txn {
    // Declared before the lane, so a transaction dropped without a commit rolls back
    // before the next writer may begin.
    inner: DatabaseTransaction,
    _lane: Option<OwnedMutexGuard<()>>,
}

impl Txn {
    pub(crate) fn new(inner: DatabaseTransaction, lane: Option<OwnedMutexGuard<()>>) -> Self {
        Self { inner, _lane: lane }
    }

    pub async fn commit(self) -> Result<(), DbErr> {
        self.inner.commit().await
    }

    pub async fn rollback(self) -> Result<(), DbErr> {
        self.inner.rollback().await
    }
}

impl Deref for Txn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.inner
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Txn {
    fn get_database_backend(&self) -> DbBackend {
        self.inner.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.inner.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.inner.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.inner.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.inner.query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.inner.support_returning()
    }
}
