//! Postgres row-level security as a second wall behind the repositories' workspace filters
//! (see `tenancy` for the invariant). A no-op on SQLite, which has no roles or policies.
//!
//! The role is cluster-wide while migrations run per database, possibly several at once
//! (tests create a database each): creating the role and joining it tolerate losing that
//! race. Users carry no workspace id; the tenant role may read only the public columns of
//! users who are members of the current workspace, and never the password hash.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::tenancy::{TENANT_ROLE, protect_workspace_table, unprotect_workspace_table};

/// Workspace-owned tables and the column that names their workspace.
const WORKSPACE_TABLES: [(&str, &str); 5] = [
    ("workspaces", "id"),
    ("members", "workspace_id"),
    ("api_tokens", "workspace_id"),
    ("workflows", "workspace_id"),
    ("workflow_versions", "workspace_id"),
];

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(&create_tenant_role()).await?;
        for (table, key_column) in WORKSPACE_TABLES {
            db.execute_unprepared(&protect_workspace_table(table, key_column))
                .await?;
        }
        db.execute_unprepared(&format!(
            "GRANT SELECT (id, email, name, created_at) ON users TO {TENANT_ROLE};\n\
             ALTER TABLE users ENABLE ROW LEVEL SECURITY;\n\
             CREATE POLICY users_fellow_members ON users FOR SELECT\n\
             USING (id IN (SELECT user_id FROM members));"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(&format!(
            "DROP POLICY IF EXISTS users_fellow_members ON users;\n\
             ALTER TABLE users DISABLE ROW LEVEL SECURITY;\n\
             REVOKE ALL ON users FROM {TENANT_ROLE};"
        ))
        .await?;
        for (table, _) in WORKSPACE_TABLES.iter().rev() {
            db.execute_unprepared(&unprotect_workspace_table(table))
                .await?;
        }
        // The role stays: it is cluster-wide and other databases may rely on it.
        db.execute_unprepared(&format!(
            "DO $$ BEGIN\n\
             EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM {TENANT_ROLE}', current_schema());\n\
             END $$;"
        ))
        .await?;
        Ok(())
    }
}

/// Creates the role unless it exists, lets the migrating user `SET ROLE` to it, and lets
/// it use the current schema.
fn create_tenant_role() -> String {
    format!(
        "DO $$\n\
         BEGIN\n\
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{TENANT_ROLE}') THEN\n\
             BEGIN\n\
               CREATE ROLE {TENANT_ROLE} NOLOGIN NOBYPASSRLS;\n\
             EXCEPTION WHEN duplicate_object OR unique_violation THEN\n\
               NULL; -- another database's migration created it at the same moment\n\
             END;\n\
           END IF;\n\
           IF NOT pg_has_role(current_user, '{TENANT_ROLE}', 'MEMBER') THEN\n\
             BEGIN\n\
               EXECUTE format('GRANT {TENANT_ROLE} TO %I', current_user);\n\
             EXCEPTION WHEN duplicate_object OR unique_violation THEN\n\
               NULL; -- granted by a concurrent migration\n\
             END;\n\
           END IF;\n\
           EXECUTE format('GRANT USAGE ON SCHEMA %I TO {TENANT_ROLE}', current_schema());\n\
         END\n\
         $$;"
    )
}
