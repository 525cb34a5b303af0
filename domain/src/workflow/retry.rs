//! How often a failing node is attempted, and how long the engine waits in between.

use std::time::Duration;

use serde::Serialize;

/// Invariant: `1 <= max_attempts <= MAX_ATTEMPTS`, `initial_interval_ms <=
/// MAX_INITIAL_INTERVAL_MS`, `1.0 <= backoff_multiplier <= MAX_BACKOFF_MULTIPLIER`, and a
/// cap, when present, is between the initial interval and `MAX_INTERVAL_CAP_MS`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_interval_ms: u64,
    backoff_multiplier: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_interval_ms: Option<u64>,
}

impl RetryPolicy {
    pub const MAX_ATTEMPTS: u32 = 10;
    /// One hour.
    pub const MAX_INITIAL_INTERVAL_MS: u64 = 3_600_000;
    pub const MAX_BACKOFF_MULTIPLIER: f64 = 10.0;
    /// One day: a longer pause between attempts is a schedule, not a retry.
    pub const MAX_INTERVAL_CAP_MS: u64 = 86_400_000;
    pub const DEFAULT_INITIAL_INTERVAL_MS: u64 = 1_000;
    pub const DEFAULT_BACKOFF_MULTIPLIER: f64 = 2.0;

    /// A single attempt: what a node without `retry` gets.
    pub const NO_RETRY: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        initial_interval_ms: Self::DEFAULT_INITIAL_INTERVAL_MS,
        backoff_multiplier: Self::DEFAULT_BACKOFF_MULTIPLIER,
        max_interval_ms: None,
    };

    pub fn new(
        max_attempts: u32,
        initial_interval_ms: u64,
        backoff_multiplier: f64,
        max_interval_ms: Option<u64>,
    ) -> Result<Self, String> {
        if !(1..=Self::MAX_ATTEMPTS).contains(&max_attempts) {
            return Err(format!(
                "maxAttempts must be from 1 to {}",
                Self::MAX_ATTEMPTS
            ));
        }
        if initial_interval_ms > Self::MAX_INITIAL_INTERVAL_MS {
            return Err(format!(
                "initialIntervalMs must be from 0 to {}",
                Self::MAX_INITIAL_INTERVAL_MS
            ));
        }
        if !(1.0..=Self::MAX_BACKOFF_MULTIPLIER).contains(&backoff_multiplier) {
            return Err(format!(
                "backoffMultiplier must be from 1 to {}",
                Self::MAX_BACKOFF_MULTIPLIER
            ));
        }
        if let Some(cap) = max_interval_ms
            && !(initial_interval_ms..=Self::MAX_INTERVAL_CAP_MS).contains(&cap)
        {
            return Err(format!(
                "maxIntervalMs must be from initialIntervalMs ({initial_interval_ms}) to {}",
                Self::MAX_INTERVAL_CAP_MS
            ));
        }
        Ok(Self {
            max_attempts,
            initial_interval_ms,
            backoff_multiplier,
            max_interval_ms,
        })
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    pub fn initial_interval_ms(&self) -> u64 {
        self.initial_interval_ms
    }

    pub fn backoff_multiplier(&self) -> f64 {
        self.backoff_multiplier
    }

    pub fn max_interval_ms(&self) -> Option<u64> {
        self.max_interval_ms
    }

    /// Whether a node whose attempt number `attempt` (from 1) failed gets another one.
    pub fn allows_attempt_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The pause before the attempt that follows failed attempt `attempt` (from 1):
    /// `initial * multiplier^(attempt - 1)`, capped by `maxIntervalMs`.
    pub fn delay_after_attempt(&self, attempt: u32) -> Duration {
        // No policy has more than MAX_ATTEMPTS attempts, so a larger exponent only risks
        // an infinite product; with it, the wait stays below 3.6e6 * 10^10 ms.
        let exponent = attempt.saturating_sub(1).min(Self::MAX_ATTEMPTS) as i32;
        let grown = self.initial_interval_ms as f64 * self.backoff_multiplier.powi(exponent);
        let cap = self.max_interval_ms.unwrap_or(u64::MAX) as f64;
        Duration::from_millis(grown.min(cap) as u64)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::NO_RETRY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_by_the_multiplier_up_to_the_cap() {
        let policy = RetryPolicy::new(5, 200, 2.0, Some(500)).expect("a valid policy");
        let delays: Vec<u128> = (1..=4)
            .map(|a| policy.delay_after_attempt(a).as_millis())
            .collect();
        assert_eq!(delays, [200, 400, 500, 500]);
    }

    #[test]
    fn the_last_attempt_allows_no_other() {
        let policy = RetryPolicy::new(3, 0, 1.0, None).expect("a valid policy");
        assert!(policy.allows_attempt_after(2));
        assert!(!policy.allows_attempt_after(3));
        assert!(!RetryPolicy::NO_RETRY.allows_attempt_after(1));
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert!(RetryPolicy::new(0, 0, 1.0, None).is_err());
        assert!(RetryPolicy::new(11, 0, 1.0, None).is_err());
        assert!(RetryPolicy::new(2, 3_600_001, 1.0, None).is_err());
        assert!(RetryPolicy::new(2, 0, 0.5, None).is_err());
        assert!(RetryPolicy::new(2, 0, 10.5, None).is_err());
        assert!(RetryPolicy::new(2, 100, 2.0, Some(99)).is_err());
    }

    #[test]
    fn the_largest_policy_does_not_overflow() {
        let policy = RetryPolicy::new(10, 3_600_000, 10.0, None).expect("a valid policy");
        assert_eq!(
            policy.delay_after_attempt(u32::MAX).as_millis(),
            3_600_000 * 10_000_000_000
        );
        let immediate = RetryPolicy::new(10, 0, 10.0, None).expect("a valid policy");
        assert_eq!(immediate.delay_after_attempt(u32::MAX), Duration::ZERO);
        assert_eq!(
            policy.delay_after_attempt(10).as_millis(),
            3_600_000 * 1_000_000_000
        );
    }
}
