//! Request rate limits: the quota a workspace's bucket refills at, and the port through
//! which an instance administrator's per-workspace overrides are stored.
//!
//! Invariant: a `RateQuota` always admits at least one request per second and a burst of
//! at least one, so a quota can never silently refuse everything; "no limit" is expressed
//! by not limiting at all, never by a zero quota.

use std::num::NonZeroU32;

use async_trait::async_trait;

use crate::error::DomainResult;
use crate::ids::WorkspaceId;

/// A GCRA quota: `per_second` requests per second on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateQuota {
    per_second: NonZeroU32,
    burst: NonZeroU32,
}

impl RateQuota {
    /// `None` when either number is zero.
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        Some(Self {
            per_second: NonZeroU32::new(per_second)?,
            burst: NonZeroU32::new(burst)?,
        })
    }

    pub fn per_second(self) -> NonZeroU32 {
        self.per_second
    }

    pub fn burst(self) -> NonZeroU32 {
        self.burst
    }
}

/// A quota an instance administrator set for one workspace, replacing the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitOverride {
    pub workspace_id: WorkspaceId,
    pub quota: RateQuota,
}

/// Per-workspace overrides. Not scoped by a `WorkspaceScope`: only the instance's
/// operator (the CLI) writes them, and the limiter reads them for any workspace.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    async fn rate_limit_override(
        &self,
        workspace_id: WorkspaceId,
    ) -> DomainResult<Option<RateQuota>>;

    /// Sets (or replaces) the override of `workspace_id`; `NotFound` for an unknown one.
    async fn set_rate_limit_override(&self, entry: &RateLimitOverride) -> DomainResult<()>;

    /// Removes the override; `false` when there was none.
    async fn clear_rate_limit_override(&self, workspace_id: WorkspaceId) -> DomainResult<bool>;

    async fn rate_limit_overrides(&self) -> DomainResult<Vec<RateLimitOverride>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_rate_or_burst_is_no_quota() {
        assert!(RateQuota::new(0, 5).is_none());
        assert!(RateQuota::new(5, 0).is_none());
        let quota = RateQuota::new(3, 7).map(|q| (q.per_second().get(), q.burst().get()));
        assert_eq!(quota, Some((3, 7)));
    }
}
