//! The index fair claiming reads instead of the runs themselves.
//!
//! A claim picks a workspace first and then that workspace's oldest due run (see
//! `persistence::repo::queue`). Both steps walk `idx_runs_workspace_due`: the distinct
//! workspaces with queued work by skipping from one workspace id to the next, and one
//! workspace's runs in the order they became available. Partial, over the runs still in the
//! queue (`available_at_ms` is NULL once a run has finished), so finished runs, the bulk of
//! the table, cost it nothing. Plain SQL: SQLite and Postgres spell a partial index alike.

use sea_orm_migration::prelude::*;

const CREATE: &str = "CREATE INDEX idx_runs_workspace_due \
     ON runs (workspace_id, available_at_ms, id) \
     WHERE available_at_ms IS NOT NULL";
const DROP: &str = "DROP INDEX IF EXISTS idx_runs_workspace_due";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(CREATE).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(DROP).await?;
        Ok(())
    }
}
