//! Which quota a request counts against, and what a refusal looks like.
//!
//! Authenticated traffic counts against its workspace's bucket, at the default quota
//! (`--rate-limit-rps` / `--rate-limit-burst`) or the override an instance administrator
//! set for that workspace; unauthenticated traffic counts against its client IP's bucket
//! at the default quota. Overrides are read through a cache of `OVERRIDE_TTL`, so a change
//! applies on every node within that time without a restart. With no default quota
//! (`--rate-limit-rps 0`) nothing is limited and nothing is read.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use aos_domain::ids::WorkspaceId;
use aos_domain::rate_limits::{RateLimitStore, RateQuota};

use super::rate::{RateKey, Verdict, WorkspaceRateLimiter};
use crate::error::ApiError;
use crate::ttl_cache::TtlCache;

/// How long an override (or its absence) is trusted before it is read again.
const OVERRIDE_TTL: Duration = Duration::from_secs(10);

/// A request refused for its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    pub retry_after: Duration,
}

impl RateLimited {
    /// Never zero: a client told to retry after 0 ms would retry at once.
    pub fn retry_after_ms(self) -> u64 {
        u64::try_from(self.retry_after.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// `Retry-After` counts whole seconds: rounded up, so a client that waits exactly
    /// that long is not refused again.
    pub fn retry_after_secs(self) -> u64 {
        self.retry_after_ms().div_ceil(1000)
    }
}

impl From<RateLimited> for ApiError {
    fn from(refusal: RateLimited) -> Self {
        ApiError::rate_limited(refusal.retry_after_ms())
    }
}

pub struct RateLimits {
    limiter: Arc<dyn WorkspaceRateLimiter>,
    /// `None`: limiting is off.
    default_quota: Option<RateQuota>,
    overrides: Arc<dyn RateLimitStore>,
    cached: TtlCache<WorkspaceId, Option<RateQuota>>,
}

impl RateLimits {
    pub fn new(
        limiter: Arc<dyn WorkspaceRateLimiter>,
        default_quota: Option<RateQuota>,
        overrides: Arc<dyn RateLimitStore>,
    ) -> Self {
        Self {
            limiter,
            default_quota,
            overrides,
            cached: TtlCache::new(OVERRIDE_TTL),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.default_quota.is_some()
    }

    /// Counts one request of `workspace_id`.
    pub async fn check_workspace(&self, workspace_id: WorkspaceId) -> Result<(), RateLimited> {
        let Some(default_quota) = self.default_quota else {
            return Ok(());
        };
        let quota = self
            .override_of(workspace_id)
            .await
            .unwrap_or(default_quota);
        let verdict = self
            .limiter
            .check(RateKey::Workspace(workspace_id), quota)
            .await;
        refused(verdict).inspect_err(|_| {
            metrics::counter!("aos_rate_limited_total", "workspace" => workspace_id.to_string())
                .increment(1);
        })
    }

    /// Counts one unauthenticated request from `ip`.
    pub async fn check_client_ip(&self, ip: IpAddr) -> Result<(), RateLimited> {
        let Some(default_quota) = self.default_quota else {
            return Ok(());
        };
        let verdict = self
            .limiter
            .check(RateKey::ClientIp(ip), default_quota)
            .await;
        // Not labelled by address: that would be one time series per client.
        refused(verdict).inspect_err(|_| {
            metrics::counter!("aos_rate_limited_total", "workspace" => "").increment(1);
        })
    }

    async fn override_of(&self, workspace_id: WorkspaceId) -> Option<RateQuota> {
        if let Some(quota) = self.cached.fresh(&workspace_id) {
            return quota;
        }
        let quota = match self.overrides.rate_limit_override(workspace_id).await {
            Ok(quota) => quota,
            Err(error) => {
                // The default still limits the workspace; retried after the TTL.
                tracing::warn!(%error, workspace.id = %workspace_id, "reading a rate-limit override failed");
                None
            }
        };
        self.cached.insert(workspace_id, quota);
        quota
    }

    /// Drops cached overrides past their TTL, so memory stays bounded by recent traffic.
    pub fn forget_idle(&self) {
        self.cached.forget_stale();
    }
}

fn refused(verdict: Verdict) -> Result<(), RateLimited> {
    match verdict {
        Verdict::Allowed => Ok(()),
        Verdict::Refused { retry_after } => Err(RateLimited { retry_after }),
    }
}
