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

use std::future::Future;

use aos_domain::audit::AuditRetention;
use aos_domain::error::DomainResult;
use aos_domain::ids::WorkspaceId;
use aos_domain::page::Page;
use chrono::{DateTime, Utc};
use uuid::Uuid;

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

/// Which workspaces one retention pass covers.
pub(super) enum Retained {
    /// One workspace with a retention of its own.
    Only(Uuid),
    /// Every workspace but these, under the default retention.
    AllBut(Vec<Uuid>),
}

/// Deletes up to `batch` expired rows: first those of each workspace with a retention of
/// its own, then everyone else's under the default. `delete(which, cutoff, limit)` deletes
/// up to `limit` rows of `which` older than `cutoff` and says how many went.
pub(super) async fn purge_by_retention<F, Fut>(
    retention: &AuditRetention,
    now: DateTime<Utc>,
    batch: u64,
    mut delete: F,
) -> DomainResult<u64>
where
    F: FnMut(Retained, DateTime<Utc>, u64) -> Fut,
    Fut: Future<Output = DomainResult<u64>>,
{
    let mut deleted = 0;
    for &workspace_id in retention.per_workspace.keys() {
        if deleted >= batch {
            return Ok(deleted);
        }
        let cutoff = retention.cutoff(Some(workspace_id), now);
        deleted += delete(
            Retained::Only(workspace_id.as_uuid()),
            cutoff,
            batch - deleted,
        )
        .await?;
    }
    if deleted >= batch {
        return Ok(deleted);
    }
    let others = retention
        .per_workspace
        .keys()
        .map(WorkspaceId::as_uuid)
        .collect();
    let cutoff = retention.cutoff(None, now);
    Ok(deleted + delete(Retained::AllBut(others), cutoff, batch - deleted).await?)
}
