//! Brute-force protection for the unauthenticated entry points (`logIn`, `signUp`):
//! attempts are limited per e-mail address and, ten times more loosely, per client IP, so
//! one address cannot be guessed at and one host cannot spray many addresses.
//!
//! These attempt limits stay in process (per node). The request rate limits per workspace
//! and per client IP, shared through Redis when `REDIS_URL` is set, are the submodules.

pub mod charge;
pub mod in_process;
pub mod policy;
pub mod rate;
pub mod redis_gcra;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

pub struct AuthLimiter {
    per_email: DefaultKeyedRateLimiter<String>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl AuthLimiter {
    pub fn new(attempts_per_minute: u32) -> Self {
        let per_email = NonZeroU32::new(attempts_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let per_ip = per_email.saturating_mul(NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN));
        Self {
            per_email: RateLimiter::keyed(Quota::per_minute(per_email)),
            per_ip: RateLimiter::keyed(Quota::per_minute(per_ip)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one attempt; `RATE_LIMITED` with the wait when over either limit.
    pub fn check(&self, ip: IpAddr, email: &str) -> Result<(), ApiError> {
        let wait = |not_until: governor::NotUntil<_>| not_until.wait_time_from(self.clock.now());
        if let Err(not_until) = self.per_ip.check_key(&ip) {
            return Err(rate_limited(wait(not_until)));
        }
        if let Err(not_until) = self.per_email.check_key(&email.trim().to_lowercase()) {
            return Err(rate_limited(wait(not_until)));
        }
        Ok(())
    }

    /// Drops buckets that are full again, so memory stays bounded by recent traffic.
    pub fn forget_idle(&self) {
        self.per_email.retain_recent();
        self.per_ip.retain_recent();
        self.per_email.shrink_to_fit();
        self.per_ip.shrink_to_fit();
    }
}

fn rate_limited(wait: Duration) -> ApiError {
    ApiError::rate_limited(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_limited_per_email_and_per_ip() {
        let limiter = AuthLimiter::new(2);
        let ip: IpAddr = [127, 0, 0, 1].into();
        assert!(limiter.check(ip, "a@example.com").is_ok());
        assert!(limiter.check(ip, "A@example.com ").is_ok());
        assert!(
            limiter.check(ip, "a@example.com").is_err(),
            "third attempt for one address"
        );
        // Other addresses from the same host still get through, up to the host's limit.
        let allowed = (0..40)
            .filter(|i| limiter.check(ip, &format!("u{i}@example.com")).is_ok())
            .count();
        assert_eq!(allowed, 20 - 3);
    }
}
