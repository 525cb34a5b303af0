//! Buckets held in this process (governor's GCRA), for a single node without Redis.
//!
//! governor keys share one quota per limiter, so there is one keyed limiter per distinct
//! quota: the default and each distinct override. Overrides are few, so this map stays
//! small; idle buckets are dropped by [`InProcessRateLimiter::forget_idle`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use aos_domain::rate_limits::RateQuota;
use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::rate::{RateKey, Verdict, WorkspaceRateLimiter};

type Buckets = Arc<DefaultKeyedRateLimiter<RateKey>>;

#[derive(Default)]
pub struct InProcessRateLimiter {
    by_quota: Mutex<HashMap<RateQuota, Buckets>>,
    clock: DefaultClock,
}

impl InProcessRateLimiter {
    fn buckets(&self, quota: RateQuota) -> Buckets {
        // A poisoned map still holds valid limiters: a panic elsewhere cannot corrupt them.
        let mut by_quota = self.by_quota.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(by_quota.entry(quota).or_insert_with(|| {
            let governed = Quota::per_second(quota.per_second()).allow_burst(quota.burst());
            Arc::new(RateLimiter::keyed(governed))
        }))
    }

    /// Drops buckets that are full again, so memory stays bounded by recent traffic.
    pub fn forget_idle(&self) {
        let by_quota = self.by_quota.lock().unwrap_or_else(PoisonError::into_inner);
        for buckets in by_quota.values() {
            buckets.retain_recent();
            buckets.shrink_to_fit();
        }
    }
}

#[async_trait]
impl WorkspaceRateLimiter for InProcessRateLimiter {
    async fn check(&self, key: RateKey, quota: RateQuota) -> Verdict {
        match self.buckets(quota).check_key(&key) {
            Ok(()) => Verdict::Allowed,
            Err(not_until) => Verdict::Refused {
                retry_after: not_until.wait_time_from(self.clock.now()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aos_domain::ids::WorkspaceId;

    use super::*;

    fn quota(per_second: u32, burst: u32) -> RateQuota {
        RateQuota::new(per_second, burst).expect("a non-zero quota")
    }

    #[tokio::test]
    async fn a_workspace_over_its_burst_is_refused_with_a_wait_and_others_are_not() {
        let limiter = InProcessRateLimiter::default();
        let busy = RateKey::Workspace(WorkspaceId::generate());
        let quiet = RateKey::Workspace(WorkspaceId::generate());
        for _ in 0..3 {
            assert_eq!(limiter.check(busy, quota(1, 3)).await, Verdict::Allowed);
        }
        let Verdict::Refused { retry_after } = limiter.check(busy, quota(1, 3)).await else {
            panic!("the fourth request within the burst of three must be refused");
        };
        assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1));
        assert_eq!(limiter.check(quiet, quota(1, 3)).await, Verdict::Allowed);
    }

    #[tokio::test]
    async fn a_larger_quota_for_one_key_allows_more() {
        let limiter = InProcessRateLimiter::default();
        let key = RateKey::ClientIp([127, 0, 0, 1].into());
        let mut allowed = 0;
        for _ in 0..10 {
            if limiter.check(key, quota(1, 5)).await == Verdict::Allowed {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5);
        let other = RateKey::ClientIp([127, 0, 0, 2].into());
        for _ in 0..8 {
            assert_eq!(limiter.check(other, quota(1, 8)).await, Verdict::Allowed);
        }
    }
}
