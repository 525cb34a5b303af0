//! Buckets in Redis, shared by every node of a cluster: one GCRA step per request in one
//! atomic Lua script, so concurrent requests on different nodes cannot both spend the
//! last token.
//!
//! A bucket is one key, `aos:rl:{key}` (`aos:rl:ws:{workspace id}` or
//! `aos:rl:ip:{address}`), holding its theoretical arrival time in microseconds of the
//! Redis server's clock (so the nodes' clocks never matter), expiring once the bucket is
//! full again. The script is loaded once (SCRIPT LOAD) and then sent by its hash (EVALSHA),
//! in full (EVAL) only when Redis has forgotten it. When Redis cannot be reached or answers with an error the request
//! is allowed (fail open), logged at warn and counted in
//! `aos_rate_limit_errors_total`: a Redis outage must not refuse all traffic.

use std::time::Duration;

use aos_domain::rate_limits::RateQuota;
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use super::rate::{RateKey, Verdict, WorkspaceRateLimiter};

/// How long one request waits for Redis before it is allowed without it.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// KEYS[1]: the bucket. ARGV[1]: the emission interval, ARGV[2]: the burst tolerance
/// (interval × (burst − 1)), both in microseconds. Returns {allowed, retry after µs}.
const GCRA_SCRIPT: &str = r"
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now_us)
if tat < now_us then tat = now_us end
local earliest = tat - tolerance
if now_us < earliest then
  return {0, earliest - now_us}
end
local new_tat = tat + interval
local ttl_ms = math.ceil((new_tat - now_us) / 1000)
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
return {1, 0}
";

pub struct RedisRateLimiter {
    client: redis::Client,
    /// Connected (and the script loaded) on first use and reconnected by the manager, so
    /// a Redis that is down at start delays nothing.
    session: OnceCell<Session>,
}

struct Session {
    connection: ConnectionManager,
    /// The script's hash as `SCRIPT LOAD` answered it.
    script_sha: String,
}

impl RedisRateLimiter {
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            session: OnceCell::new(),
        })
    }

    async fn connect(&self) -> redis::RedisResult<Session> {
        // Short timeouts and one retry: a request waits for this, and fails open after.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let mut connection =
            ConnectionManager::new_with_config(self.client.clone(), config).await?;
        let script_sha = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(GCRA_SCRIPT)
            .query_async(&mut connection)
            .await?;
        Ok(Session {
            connection,
            script_sha,
        })
    }

    async fn step(&self, key: RateKey, quota: RateQuota) -> redis::RedisResult<Verdict> {
        let session = self.session.get_or_try_init(|| self.connect()).await?;
        let mut connection = session.connection.clone();
        let interval_us = (1_000_000 / u64::from(quota.per_second().get())).max(1);
        let tolerance_us = interval_us.saturating_mul(u64::from(quota.burst().get() - 1));
        let bucket = format!("aos:rl:{key}");
        let by_hash: redis::RedisResult<(u64, u64)> = redis::cmd("EVALSHA")
            .arg(&session.script_sha)
            .arg(1)
            .arg(&bucket)
            .arg(interval_us)
            .arg(tolerance_us)
            .query_async(&mut connection)
            .await;
        let (allowed, retry_us) = match by_hash {
            // Redis forgot the script (a restart or `SCRIPT FLUSH`); EVAL caches it again.
            Err(error)
                if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                redis::cmd("EVAL")
                    .arg(GCRA_SCRIPT)
                    .arg(1)
                    .arg(&bucket)
                    .arg(interval_us)
                    .arg(tolerance_us)
                    .query_async(&mut connection)
                    .await?
            }
            other => other?,
        };
        Ok(if allowed == 1 {
            Verdict::Allowed
        } else {
            Verdict::Refused {
                retry_after: Duration::from_micros(retry_us.max(1)),
            }
        })
    }
}

#[async_trait]
impl WorkspaceRateLimiter for RedisRateLimiter {
    async fn check(&self, key: RateKey, quota: RateQuota) -> Verdict {
        match self.step(key, quota).await {
            Ok(verdict) => verdict,
            Err(error) => {
                metrics::counter!("aos_rate_limit_errors_total").increment(1);
                tracing::warn!(%error, "rate limiter: Redis failed; allowing the request");
                Verdict::Allowed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use aos_domain::ids::WorkspaceId;

    use super::*;

    fn quota(per_second: u32, burst: u32) -> RateQuota {
        RateQuota::new(per_second, burst).expect("a non-zero quota")
    }

    /// Needs the machine's Redis; without `AOS_TEST_REDIS_URL` it reports and passes.
    #[tokio::test]
    async fn two_limiters_on_one_redis_share_a_workspace_budget_and_not_another() {
        let Ok(url) = std::env::var("AOS_TEST_REDIS_URL") else {
            eprintln!("skipped: set AOS_TEST_REDIS_URL to run the Redis tests");
            return;
        };
        let node_a = RedisRateLimiter::new(&url).expect("a Redis URL");
        let node_b = RedisRateLimiter::new(&url).expect("a Redis URL");
        let busy = RateKey::Workspace(WorkspaceId::generate());
        let quiet = RateKey::Workspace(WorkspaceId::generate());
        let mut allowed = 0;
        for round in 0..10 {
            let node = if round % 2 == 0 { &node_a } else { &node_b };
            if node.check(busy, quota(1, 6)).await == Verdict::Allowed {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 6, "both nodes spend one burst of six");
        let Verdict::Refused { retry_after } = node_a.check(busy, quota(1, 6)).await else {
            panic!("the budget is spent");
        };
        assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1));
        assert_eq!(node_b.check(quiet, quota(1, 6)).await, Verdict::Allowed);
    }

    #[tokio::test]
    async fn a_forgotten_script_is_sent_again() {
        let Ok(url) = std::env::var("AOS_TEST_REDIS_URL") else {
            eprintln!("skipped: set AOS_TEST_REDIS_URL to run the Redis tests");
            return;
        };
        let limiter = RedisRateLimiter::new(&url).expect("a Redis URL");
        let key = RateKey::Workspace(WorkspaceId::generate());
        assert_eq!(limiter.check(key, quota(1, 2)).await, Verdict::Allowed);
        let client = redis::Client::open(url.as_str()).expect("a Redis URL");
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to Redis");
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut connection)
            .await
            .expect("flush scripts");
        assert_eq!(limiter.check(key, quota(1, 2)).await, Verdict::Allowed);
        assert!(matches!(
            limiter.check(key, quota(1, 2)).await,
            Verdict::Refused { .. }
        ));
    }

    #[tokio::test]
    async fn an_unreachable_redis_allows_requests() {
        // Port 1 on loopback: nothing listens there, so every connection fails at once.
        let limiter = RedisRateLimiter::new("redis://127.0.0.1:1").expect("a Redis URL");
        let key = RateKey::Workspace(WorkspaceId::generate());
        for _ in 0..3 {
            assert_eq!(limiter.check(key, quota(1, 1)).await, Verdict::Allowed);
        }
    }
}
