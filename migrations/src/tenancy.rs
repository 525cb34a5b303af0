//! Row-level security for workspace-owned tables (Postgres only).
//!
//! Invariant: a session running as [`TENANT_ROLE`] sees and writes only the rows of the
//! workspace named by the transaction-local setting [`WORKSPACE_SETTING`]; with the
//! setting absent or empty it sees nothing. The role has no BYPASSRLS. The tables' owner
//! (the role that runs migrations and the unscoped authentication look-ups) is not bound,
//! which is why RLS is enabled but not forced: forcing it would hide every row from those
//! look-ups. The application enters the role with `SET LOCAL ROLE` in each scoped
//! transaction, so the policies are a second wall behind the repositories' own filters.

/// The role that scoped transactions run as.
pub const TENANT_ROLE: &str = "aos_tenant";

/// The setting that names the current workspace for the policies.
pub const WORKSPACE_SETTING: &str = "aos.workspace_id";

/// SQL that grants `TENANT_ROLE` data access to `table` and confines it to the current
/// workspace through `key_column` (the table's workspace id).
pub fn protect_workspace_table(table: &str, key_column: &str) -> String {
    let current_workspace =
        format!("NULLIF(current_setting('{WORKSPACE_SETTING}', true), '')::uuid");
    format!(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {TENANT_ROLE};\n\
         ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n\
         CREATE POLICY {table}_workspace_isolation ON {table}\n\
         USING ({key_column} = {current_workspace})\n\
         WITH CHECK ({key_column} = {current_workspace});"
    )
}

/// SQL that undoes [`protect_workspace_table`].
pub fn unprotect_workspace_table(table: &str) -> String {
    format!(
        "DROP POLICY IF EXISTS {table}_workspace_isolation ON {table};\n\
         ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;\n\
         REVOKE ALL ON {table} FROM {TENANT_ROLE};"
    )
}
