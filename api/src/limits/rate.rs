//! The port every request-rate limiter implements, and what it is asked and answers.
//!
//! A bucket is named by a `RateKey`: one per workspace for authenticated traffic, one per
//! client IP for unauthenticated traffic. Buckets never share state across keys, so one
//! workspace's traffic can never spend another's budget.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use aos_domain::ids::WorkspaceId;
use aos_domain::rate_limits::RateQuota;
use async_trait::async_trait;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKey {
    Workspace(WorkspaceId),
    ClientIp(IpAddr),
}

impl fmt::Display for RateKey {
    /// The Redis key suffix: `ws:{id}` or `ip:{address}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateKey::Workspace(id) => write!(f, "ws:{id}"),
            RateKey::ClientIp(ip) => write!(f, "ip:{ip}"),
        }
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over the limit: the earliest moment another request would be allowed.
    Refused {
        retry_after: Duration,
    },
}

/// Counts one request against `key`'s bucket refilled at `quota`, and says whether it may
/// go on. Implementations must not fail: a limiter that cannot decide allows the request
/// (and says so in its logs and metrics), because refusing everything while a backing
/// service is down would turn its outage into ours.
#[async_trait]
pub trait WorkspaceRateLimiter: Send + Sync {
    async fn check(&self, key: RateKey, quota: RateQuota) -> Verdict;
}
