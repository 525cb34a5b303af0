//! The pause before a failed step's next attempt.
//!
//! Policy: exponential growth as [`RetryPolicy::delay_after_attempt`] computes it
//! (`initialIntervalMs * backoffMultiplier^(attempt - 1)`, capped by `maxIntervalMs`),
//! then "equal jitter": half of that delay is kept and the other half is scaled by a
//! random fraction, so the pause lies in `[ceil(delay / 2), delay]`. Jitter spreads the
//! retries of many runs that failed together (an outage of the service they call), and
//! unlike "full jitter" it never retries at once, so a configured interval still means a
//! real pause. The random fraction comes from the caller to keep this module pure.

use std::time::Duration;

use crate::workflow::retry::RetryPolicy;

/// A number in `[0, 1)`, such as `rand::random::<f64>()` returns.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct UnitFraction(f64);

impl UnitFraction {
    pub const ZERO: UnitFraction = UnitFraction(0.0);

    /// `None` for anything outside `[0, 1)`, NaN included.
    pub fn new(value: f64) -> Option<Self> {
        (0.0..1.0).contains(&value).then_some(Self(value))
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Attempt number `attempt` (from 1) starts after `delay`.
    Retry { attempt: u32, delay: Duration },
    /// That was the last attempt the policy allows: the step has failed.
    GiveUp,
}

/// What follows the failure of attempt `failed_attempt` (from 1; 0 is read as 1).
pub fn next_attempt(
    policy: &RetryPolicy,
    failed_attempt: u32,
    random: UnitFraction,
) -> RetryDecision {
    let failed_attempt = failed_attempt.max(1);
    if !policy.allows_attempt_after(failed_attempt) {
        return RetryDecision::GiveUp;
    }
    let delay_ms =
        u64::try_from(policy.delay_after_attempt(failed_attempt).as_millis()).unwrap_or(u64::MAX);
    let spread = delay_ms / 2;
    // `spread` may exceed f64's exact integers; the `min` keeps rounding from adding
    // more than the spread.
    let jitter = ((spread as f64 * random.value()) as u64).min(spread);
    RetryDecision::Retry {
        attempt: failed_attempt + 1,
        delay: Duration::from_millis(delay_ms - spread + jitter),
    }
}
