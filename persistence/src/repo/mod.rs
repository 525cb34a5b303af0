//! Hand-written repositories: one file per port of `aos_domain::ports`, each implementing
//! it for `SeaStore`. Queries on workspace-owned data always filter by the scope's
//! workspace and run inside `SeaStore::begin_scoped`.

mod access;
mod sessions;
mod users;
mod workflows;
mod workspaces;
