//! Hand-written repositories: one file per port of `aos_domain::ports`, each implementing
//! it for `SeaStore`. Queries on workspace-owned data always filter by the scope's
//! workspace and run inside `SeaStore::begin_scoped`. The one exception is `queue`, the
//! engine's cross-tenant `RunQueue`: it has no scope, so it runs as the connecting role
//! (the tables' owner, which row-level security does not bind) and keys every write on a
//! run id and the fencing token of the worker's lease instead.

mod access;
mod queue;
pub(crate) mod run_batch;
mod runs;
mod sessions;
mod triggers;
mod users;
mod workflows;
mod workspaces;
