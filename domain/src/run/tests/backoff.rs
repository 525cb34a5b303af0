use std::time::Duration;

use proptest::prelude::*;

use crate::run::{RetryDecision, UnitFraction, next_attempt};
use crate::workflow::retry::RetryPolicy;

fn policy(attempts: u32, initial: u64, multiplier: f64, cap: Option<u64>) -> RetryPolicy {
    RetryPolicy::new(attempts, initial, multiplier, cap).expect("a valid policy")
}

fn fraction(value: f64) -> UnitFraction {
    UnitFraction::new(value).expect("in [0, 1)")
}

fn delay_ms(decision: RetryDecision) -> u128 {
    match decision {
        RetryDecision::Retry { delay, .. } => delay.as_millis(),
        RetryDecision::GiveUp => panic!("expected another attempt"),
    }
}

#[test]
fn delays_grow_by_the_multiplier_up_to_the_cap() {
    let policy = policy(6, 200, 2.0, Some(1_000));
    // With no jitter drawn, the pause is the lower bound: half of the grown delay.
    let lowest: Vec<u128> = (1..=5)
        .map(|attempt| delay_ms(next_attempt(&policy, attempt, UnitFraction::ZERO)))
        .collect();
    assert_eq!(lowest, [100, 200, 400, 500, 500]);
    let highest: Vec<u128> = (1..=5)
        .map(|attempt| delay_ms(next_attempt(&policy, attempt, fraction(0.999_999))))
        .collect();
    assert_eq!(highest, [199, 399, 799, 999, 999]);
}

#[test]
fn the_next_attempt_is_numbered_and_the_last_one_gives_up() {
    let policy = policy(3, 10, 1.0, None);
    let expected = [
        (
            1,
            RetryDecision::Retry {
                attempt: 2,
                delay: Duration::from_millis(5),
            },
        ),
        (
            2,
            RetryDecision::Retry {
                attempt: 3,
                delay: Duration::from_millis(5),
            },
        ),
        (3, RetryDecision::GiveUp),
        (4, RetryDecision::GiveUp),
    ];
    for (failed, decision) in expected {
        assert_eq!(
            next_attempt(&policy, failed, UnitFraction::ZERO),
            decision,
            "after {failed}"
        );
    }
    assert_eq!(
        next_attempt(&RetryPolicy::NO_RETRY, 1, UnitFraction::ZERO),
        RetryDecision::GiveUp
    );
    // Attempts count from 1; a 0 is read as the first.
    assert_eq!(
        next_attempt(&policy, 0, UnitFraction::ZERO),
        next_attempt(&policy, 1, UnitFraction::ZERO)
    );
}

#[test]
fn a_zero_interval_retries_at_once() {
    let policy = policy(2, 0, 3.0, None);
    assert_eq!(delay_ms(next_attempt(&policy, 1, fraction(0.5))), 0);
}

#[test]
fn only_fractions_in_the_unit_interval_are_accepted() {
    for value in [0.0, 0.5, 0.999_999_9] {
        assert_eq!(
            UnitFraction::new(value).map(UnitFraction::value),
            Some(value)
        );
    }
    for value in [-0.1, 1.0, 1.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(UnitFraction::new(value), None, "{value}");
    }
}

#[test]
fn the_largest_policy_does_not_overflow() {
    let policy = policy(10, RetryPolicy::MAX_INITIAL_INTERVAL_MS, 10.0, None);
    let grown = policy.delay_after_attempt(9).as_millis();
    let delay = delay_ms(next_attempt(&policy, 9, fraction(0.999_999_999)));
    assert!(delay <= grown && delay >= grown / 2, "{delay} of {grown}");
}

proptest! {
    #[test]
    fn the_pause_lies_between_half_the_grown_delay_and_all_of_it(
        attempts in 2u32..=10,
        initial in 0u64..=RetryPolicy::MAX_INITIAL_INTERVAL_MS,
        multiplier in 1.0f64..=10.0,
        capped in any::<bool>(),
        failed in 1u32..10,
        random in 0.0f64..1.0,
    ) {
        let cap = capped.then_some(initial.max(1) * 3);
        let policy = policy(attempts, initial, multiplier, cap);
        let decision = next_attempt(&policy, failed, fraction(random));
        if failed >= attempts {
            prop_assert_eq!(decision, RetryDecision::GiveUp);
        } else {
            let grown = policy.delay_after_attempt(failed).as_millis();
            let delay = delay_ms(decision);
            prop_assert!(delay <= grown, "{} > {}", delay, grown);
            prop_assert!(delay >= grown.div_ceil(2), "{} < half of {}", delay, grown);
            if let Some(cap) = cap {
                prop_assert!(delay <= u128::from(cap));
            }
        }
    }

    #[test]
    fn more_randomness_never_shortens_the_pause(
        failed in 1u32..5,
        low in 0.0f64..1.0,
        high in 0.0f64..1.0,
    ) {
        let policy = policy(5, 1_000, 2.0, None);
        let (low, high) = if low <= high { (low, high) } else { (high, low) };
        prop_assert!(
            delay_ms(next_attempt(&policy, failed, fraction(low)))
                <= delay_ms(next_attempt(&policy, failed, fraction(high)))
        );
    }
}
