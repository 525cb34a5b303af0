//! The audit log: one record per mutation a caller attempted in a workspace, whatever its
//! outcome.
//!
//! Invariants:
//! - Append-only. The port can add a record and list them; nothing changes a record.
//!   Records only go away whole, by age, through retention (`AuditRetention`), which
//!   the operator's process runs, never a caller.
//! - A record holds who, where, what and how it ended, never the mutation's input:
//!   inputs carry passwords, tokens and connection credentials.
//! - A record is listed only through a `WorkspaceScope` of its own workspace.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::access::{Actor, WorkspaceScope};
use crate::error::DomainResult;
use crate::ids::{InvalidId, WorkspaceId};
use crate::page::{Page, PageRequest};

/// The outcome of a mutation that did what it was asked.
pub const SUCCESS: &str = "SUCCESS";

/// Time-ordered (UUIDv7), so newest first is descending id order and the id is the cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuditEventId(Uuid);

impl AuditEventId {
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for AuditEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

impl FromStr for AuditEventId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self).map_err(|_| InvalidId)
    }
}

/// The object a mutation acted on: a kind (`Workflow`, `Run`, `User`, ...) and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditTarget {
    pub kind: String,
    pub id: String,
}

/// One mutation attempted in one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: AuditEventId,
    pub workspace_id: WorkspaceId,
    pub actor: Actor,
    /// The mutation's field name, e.g. `createWorkflow`.
    pub action: String,
    pub target: Option<AuditTarget>,
    pub client_ip: Option<IpAddr>,
    pub at: DateTime<Utc>,
    /// [`SUCCESS`] or the error code the caller got (`FORBIDDEN`, `BAD_USER_INPUT`, ...).
    pub outcome: String,
}

/// Which records to list; every field narrows, `None` does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub action: Option<String>,
    /// The acting user or API token.
    pub actor_id: Option<Uuid>,
    pub target_id: Option<String>,
    pub outcome: Option<String>,
    /// Inclusive.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
}

/// How long each workspace's records are kept: `default_days` unless the workspace has
/// its own number (the quota's, once quotas exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRetention {
    pub default_days: u32,
    pub per_workspace: HashMap<WorkspaceId, u32>,
}

impl AuditRetention {
    pub fn uniform(default_days: u32) -> Self {
        Self {
            default_days,
            per_workspace: HashMap::new(),
        }
    }

    /// Records of `workspace_id` older than this are due for deletion.
    pub fn cutoff(&self, workspace_id: Option<WorkspaceId>, now: DateTime<Utc>) -> DateTime<Utc> {
        let days = workspace_id
            .and_then(|id| self.per_workspace.get(&id).copied())
            .unwrap_or(self.default_days);
        now - Duration::days(i64::from(days))
    }
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Adds one record. Unscoped because it also records refusals, where no scope was
    /// granted; the caller (the API's audit recorder) has established the workspace.
    async fn append_audit_event(&self, event: &AuditEvent) -> DomainResult<()>;
    /// Newest first; `after` is the id of the last record of the previous page.
    async fn audit_events(
        &self,
        scope: &WorkspaceScope,
        filter: &AuditFilter,
        page: PageRequest<AuditEventId>,
    ) -> DomainResult<Page<AuditEvent>>;
    /// Deletes at most `batch` records older than `retention` allows, oldest first, and
    /// returns how many it deleted: callers repeat until fewer than `batch` go, so no
    /// statement holds its locks for long.
    async fn purge_audit_events(
        &self,
        retention: &AuditRetention,
        now: DateTime<Utc>,
        batch: u64,
    ) -> DomainResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_uses_the_workspace_number_before_the_default() {
        let now = Utc::now();
        let short = WorkspaceId::generate();
        let mut retention = AuditRetention::uniform(365);
        retention.per_workspace.insert(short, 7);
        assert_eq!(retention.cutoff(Some(short), now), now - Duration::days(7));
        assert_eq!(
            retention.cutoff(Some(WorkspaceId::generate()), now),
            now - Duration::days(365)
        );
        assert_eq!(retention.cutoff(None, now), now - Duration::days(365));
    }

    #[test]
    fn event_ids_round_trip_and_sort_by_time() {
        let first = AuditEventId::generate();
        let second = AuditEventId::generate();
        assert!(first < second);
        assert_eq!(first.to_string().parse::<AuditEventId>(), Ok(first));
        assert_eq!("nope".parse::<AuditEventId>(), Err(InvalidId));
    }
}
