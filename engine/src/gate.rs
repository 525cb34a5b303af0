//! The per-connection gate every outbound request of a connection passes: `connector`
//! steps, `http.request` steps with a `connectionId`, and polls.
//!
//! Two rules, both in process (each process keeps its own gate; across a cluster the
//! limits add up per process, like the services' own per-client limits do):
//! - a connection whose settings have `maxRequestsPerSecond` sends at most that many
//!   requests per second, evenly spaced (a GCRA with no burst, governor's): a request
//!   that comes early waits its turn;
//! - after the service answered "too many requests" with a wait (`Retry-After`), the
//!   connection is closed until then for every request of this process; one that comes
//!   meanwhile waits, unless the wait is longer than its caller will wait
//!   ([`ConnectionGate::enter`]'s `max_wait`), which then learns how long it would be.
//!
//! Memory: a connection without a rate keeps no state once its closing has passed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use aos_connectors::max_requests_per_second;
use aos_domain::connection::Connection;
use aos_domain::ids::ConnectionId;

/// Shared by every clone: one gate per process.
#[derive(Clone, Default)]
pub struct ConnectionGate {
    lanes: Arc<Mutex<HashMap<ConnectionId, Lane>>>,
    clock: DefaultClock,
}

#[derive(Default)]
struct Lane {
    /// The limiter of the connection's `maxRequestsPerSecond`, with the rate it was
    /// built for (a changed setting builds a new one).
    pacing: Option<(f64, Arc<DefaultDirectRateLimiter>)>,
    /// Closed by the service until then.
    closed_until: Option<Instant>,
}

/// What the gate has a request do now.
enum Turn {
    Go,
    /// Closed by the service for this long.
    Closed(Duration),
    /// Paced: this request's turn comes in this long.
    Paced(Duration),
}

impl std::fmt::Debug for ConnectionGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionGate")
    }
}

impl ConnectionGate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until `connection` may send one request. `Err(wait)`, at once, when the
    /// service closed the connection for longer than `max_wait` from now.
    pub async fn enter(&self, connection: &Connection, max_wait: Duration) -> Result<(), Duration> {
        let rate = max_requests_per_second(&connection.settings);
        loop {
            match self.turn(connection.id, rate) {
                Turn::Go => return Ok(()),
                Turn::Closed(wait) if wait > max_wait => return Err(wait),
                // Slept out, then asked again: the service may have closed it for longer
                // meanwhile, and the pacing counts from the reopening.
                Turn::Closed(wait) | Turn::Paced(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Closes `connection` for `wait` from now, unless it is closed for longer already.
    pub fn close_for(&self, connection: ConnectionId, wait: Duration) {
        let until = Instant::now() + wait;
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        let lane = lanes.entry(connection).or_default();
        lane.closed_until = Some(lane.closed_until.map_or(until, |known| known.max(until)));
    }

    /// How much longer the service keeps `connection` closed, if it does.
    pub fn closed_for(&self, connection: ConnectionId) -> Option<Duration> {
        let lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        let until = lanes.get(&connection)?.closed_until?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    fn turn(&self, connection: ConnectionId, rate: Option<f64>) -> Turn {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        let lane = lanes.entry(connection).or_default();
        if let Some(until) = lane.closed_until {
            let left = until.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                return Turn::Closed(left);
            }
            lane.closed_until = None;
        }
        let limiter = match (rate, &lane.pacing) {
            (None, _) => None,
            (Some(rate), Some((built_for, limiter))) if *built_for == rate => {
                Some(Arc::clone(limiter))
            }
            (Some(rate), _) => {
                let limiter = pacing(rate);
                lane.pacing = limiter.clone().map(|limiter| (rate, limiter));
                limiter
            }
        };
        if rate.is_none() {
            lane.pacing = None;
        }
        let Some(limiter) = limiter else {
            if lane.pacing.is_none() && lane.closed_until.is_none() {
                lanes.remove(&connection);
            }
            return Turn::Go;
        };
        match limiter.check() {
            Ok(()) => Turn::Go,
            Err(not_until) => Turn::Paced(not_until.wait_time_from(self.clock.now())),
        }
    }
}

/// One request every `1 / rate` seconds, no burst; `None` for a rate too high to space.
fn pacing(rate: f64) -> Option<Arc<DefaultDirectRateLimiter>> {
    let period = Duration::try_from_secs_f64(1.0 / rate).ok()?;
    Quota::with_period(period).map(|quota| Arc::new(RateLimiter::direct(quota)))
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
