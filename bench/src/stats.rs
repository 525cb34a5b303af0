//! Latency samples and their percentiles. Samples are kept whole and sorted once: the
//! runs here take at most a few hundred thousand of them.

use std::fmt;
use std::time::Duration;

#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    pub fn push(&mut self, sample: Duration) {
        self.0.push(sample);
    }

    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn total(&self) -> Duration {
        self.0.iter().sum()
    }

    pub fn summary(&self) -> Summary {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let at = |fraction: f64| -> Duration {
            if sorted.is_empty() {
                return Duration::ZERO;
            }
            // Nearest rank: the smallest sample with at least `fraction` of them at or below.
            let rank = (fraction * sorted.len() as f64).ceil() as usize;
            sorted[rank.clamp(1, sorted.len()) - 1]
        };
        let count = sorted.len();
        let mean = if count == 0 {
            Duration::ZERO
        } else {
            self.total() / u32::try_from(count).unwrap_or(u32::MAX)
        };
        Summary {
            count,
            mean,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: sorted.last().copied().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub count: usize,
    pub mean: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n={} mean={} p50={} p90={} p99={} max={}",
            self.count,
            micros(self.mean),
            micros(self.p50),
            micros(self.p90),
            micros(self.p99),
            micros(self.max)
        )
    }
}

/// A duration in the unit that reads best for these figures.
pub fn micros(duration: Duration) -> String {
    let us = duration.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.1}µs")
    } else {
        format!("{:.2}ms", us / 1_000.0)
    }
}

/// Events (or runs, or requests) per second.
pub fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}
