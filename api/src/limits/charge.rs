//! Counting one GraphQL request (or one subscription) once per workspace it touches.
//!
//! The rule: a request counts once against each distinct workspace it is authorized in,
//! at its first authorization there (`authz::scope_in`, which every workspace-scoped
//! resolver goes through). An API token's request is counted before GraphQL runs, against
//! the token's workspace, and that workspace is not counted again. A refusal is
//! remembered for the rest of the request, so every resolver of that workspace in it gets
//! the same `RATE_LIMITED`.
//!
//! The request's tally travels as a task-local set by the entry points (the GraphQL HTTP
//! handler, each WebSocket subscription) rather than as an argument: authorization is
//! called from every resolver with only the state and the principal. Outside such a
//! scope nothing is counted (the OAuth2 callback, internal re-authorization).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use aos_domain::ids::WorkspaceId;
use futures::Stream;
use tokio::sync::OnceCell;

use super::policy::{RateLimited, RateLimits};

type Outcome = Arc<OnceCell<Result<(), RateLimited>>>;

/// The workspaces one request has been counted against so far, and the verdicts.
#[derive(Clone, Default)]
pub struct RequestTally(Arc<Mutex<HashMap<WorkspaceId, Outcome>>>);

tokio::task_local! {
    static TALLY: RequestTally;
}

impl RequestTally {
    /// A tally in which `workspace_id` was already counted, and allowed.
    pub fn counted(workspace_id: WorkspaceId) -> Self {
        let tally = Self::default();
        tally.outcome(workspace_id).set(Ok(())).ok();
        tally
    }

    fn outcome(&self, workspace_id: WorkspaceId) -> Outcome {
        let mut counted = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(counted.entry(workspace_id).or_default())
    }

    /// Runs `request` with this tally in force.
    pub async fn scope<F: Future>(self, request: F) -> F::Output {
        TALLY.scope(self, request).await
    }

    /// A stream whose every poll runs with this tally in force: a subscription resolves
    /// lazily, as its stream is polled.
    pub fn scope_stream<S: Stream + Unpin>(self, stream: S) -> TalliedStream<S> {
        TalliedStream {
            tally: self,
            stream,
        }
    }
}

/// Counts the current request against `workspace_id` unless it already was.
pub async fn count_request(
    limits: &RateLimits,
    workspace_id: WorkspaceId,
) -> Result<(), RateLimited> {
    if !limits.is_enabled() {
        return Ok(());
    }
    let Ok(outcome) = TALLY.try_with(|tally| tally.outcome(workspace_id)) else {
        return Ok(());
    };
    *outcome
        .get_or_init(|| limits.check_workspace(workspace_id))
        .await
}

pub struct TalliedStream<S> {
    tally: RequestTally,
    stream: S,
}

impl<S: Stream + Unpin> Stream for TalliedStream<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        let tally = this.tally.clone();
        TALLY.sync_scope(tally, || Pin::new(&mut this.stream).poll_next(cx))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aos_domain::rate_limits::RateQuota;

    use super::*;
    use crate::limits::in_process::InProcessRateLimiter;
    use crate::limits::rate::WorkspaceRateLimiter;

    struct NoOverrides;

    #[async_trait::async_trait]
    impl aos_domain::rate_limits::RateLimitStore for NoOverrides {
        async fn rate_limit_override(
            &self,
            _: WorkspaceId,
        ) -> aos_domain::error::DomainResult<Option<RateQuota>> {
            Ok(None)
        }
        async fn set_rate_limit_override(
            &self,
            _: &aos_domain::rate_limits::RateLimitOverride,
        ) -> aos_domain::error::DomainResult<()> {
            Ok(())
        }
        async fn clear_rate_limit_override(
            &self,
            _: WorkspaceId,
        ) -> aos_domain::error::DomainResult<bool> {
            Ok(false)
        }
        async fn rate_limit_overrides(
            &self,
        ) -> aos_domain::error::DomainResult<Vec<aos_domain::rate_limits::RateLimitOverride>>
        {
            Ok(Vec::new())
        }
    }

    fn limits(burst: u32) -> RateLimits {
        let limiter: Arc<dyn WorkspaceRateLimiter> = Arc::new(InProcessRateLimiter::default());
        RateLimits::new(limiter, RateQuota::new(1, burst), Arc::new(NoOverrides))
    }

    #[tokio::test]
    async fn a_request_counts_once_per_workspace_however_often_it_is_authorized() {
        let limits = limits(2);
        let workspace = WorkspaceId::generate();
        for _ in 0..2 {
            let counted = RequestTally::default()
                .scope(async {
                    for _ in 0..5 {
                        count_request(&limits, workspace).await?;
                    }
                    Ok::<_, RateLimited>(())
                })
                .await;
            assert!(counted.is_ok());
        }
        let third = RequestTally::default()
            .scope(count_request(&limits, workspace))
            .await;
        let refusal = third.expect_err("the third request is over the burst of two");
        assert!(refusal.retry_after > Duration::ZERO);
        assert!(refusal.retry_after_secs() >= 1);
    }

    #[tokio::test]
    async fn a_workspace_counted_before_graphql_is_not_counted_again() {
        let limits = limits(1);
        let workspace = WorkspaceId::generate();
        assert!(limits.check_workspace(workspace).await.is_ok());
        let inside = RequestTally::counted(workspace)
            .scope(count_request(&limits, workspace))
            .await;
        assert!(inside.is_ok());
    }

    #[tokio::test]
    async fn nothing_is_counted_outside_a_request() {
        let limits = limits(1);
        let workspace = WorkspaceId::generate();
        for _ in 0..3 {
            assert!(count_request(&limits, workspace).await.is_ok());
        }
    }
}
