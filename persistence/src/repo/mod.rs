//! Hand-written repositories: one file per port of `aos_domain::ports`, each implementing
//! it for `SeaStore`. Queries on workspace-owned data always filter by the scope's
//! workspace and run inside `SeaStore::begin_scoped`. The exceptions are the unscoped
//! ports, held by code that acts for no caller: `queue`, the engine's cross-tenant
//! `RunQueue`, runs as the connecting role (the tables' owner, which row-level security
//! does not bind) and keys every write on a run id and the fencing token of the worker's
//! lease instead. `triggers`, `CredentialStore` (in `connections`) and the vault's
//! `data_keys` run as that role too, and filter by the workspace wherever they act for one.

mod access;
mod audit;
mod connections;
mod data_keys;
mod oauth;
mod poll_states;
mod queue;
mod queue_gauge;
mod quotas;
mod rate_limits;
pub(crate) mod run_batch;
mod run_stats;
mod runs;
mod sessions;
mod triggers;
mod users;
mod workflows;
mod workspaces;

use aos_domain::error::DomainResult;
use aos_domain::page::Page;

/// A page out of `rows`, read with one row more than `first` asked for: that extra row
/// only tells whether another page follows.
fn page_from<M, T>(
    mut rows: Vec<M>,
    first: u64,
    convert: impl Fn(M) -> DomainResult<T>,
) -> DomainResult<Page<T>> {
    let has_next_page = rows.len() as u64 > first;
    rows.truncate(usize::try_from(first).unwrap_or(usize::MAX));
    Ok(Page {
        items: rows.into_iter().map(convert).collect::<DomainResult<_>>()?,
        has_next_page,
    })
}
