//! The AutomationOS database schema, as an ordered list of migrations.
//!
//! Policy: a migration, once released, is never edited; a change is a new file. Every
//! migration runs on both SQLite (the embedded default) and Postgres; anything only one of
//! them supports (row-level security) is guarded by the backend and documented as such.
//! A later migration that adds a workspace-owned table must also put it under row-level
//! security, with `tenancy::protect_workspace_table`.

use sea_orm_migration::prelude::*;

mod m20261122_000001_foundation;
mod m20261122_000002_row_level_security;
mod m20261129_000003_runs;
mod m20261130_000004_connections;
mod m20261130_000005_poll_states;
mod m20261130_000006_oauth;
mod m20261130_000007_rate_limits;
mod m20261130_000008_audit_log;
mod m20261130_000009_quotas;
mod m20261130_000010_run_stats;
mod m20261130_000011_fair_claiming;
mod tenancy;

pub use tenancy::{TENANT_ROLE, WORKSPACE_SETTING};

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_foundation::Migration),
            Box::new(m20261122_000002_row_level_security::Migration),
            Box::new(m20261129_000003_runs::Migration),
            Box::new(m20261130_000004_connections::Migration),
            Box::new(m20261130_000005_poll_states::Migration),
            Box::new(m20261130_000006_oauth::Migration),
            Box::new(m20261130_000007_rate_limits::Migration),
            Box::new(m20261130_000008_audit_log::Migration),
            Box::new(m20261130_000009_quotas::Migration),
            Box::new(m20261130_000010_run_stats::Migration),
            Box::new(m20261130_000011_fair_claiming::Migration),
        ]
    }
}
