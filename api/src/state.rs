//! What every request shares: the store, the keys, the limiters and the event bus.

use std::sync::Arc;

use aos_connectors::Registry;
use aos_connectors::oauth::OAuthFlows;
use aos_domain::connection::{Connection, ConnectionEvent, ConnectionEventKind};
use aos_domain::journal::Run;
use aos_domain::ports::{ConnectionSecrets, ConnectionTester, RunEventSink, RunExecutor, Store};
use aos_domain::workflow::DefinitionCache;
use aos_vault::service::CredentialVault;

use crate::auth::jwt::SigningKeys;
use crate::config::ApiConfig;
use crate::connection_events::ConnectionEventBus;
use crate::events::WorkflowEventBus;
use crate::limits::AuthLimiter;
use crate::limits::policy::RateLimits;
use crate::run_events::RunEventBus;
use crate::ws::SubscriptionSlots;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Arc<dyn Store>,
    pub config: ApiConfig,
    pub keys: SigningKeys,
    pub auth_limiter: AuthLimiter,
    /// Request rate limits per workspace and, for unauthenticated requests, per client IP.
    pub rate_limits: Arc<RateLimits>,
    pub workflow_events: WorkflowEventBus,
    pub run_events: RunEventBus,
    /// Caps on the live subscriptions of this node, in all and per workspace.
    pub subscription_slots: SubscriptionSlots,
    /// Tells this node's workers that a run was queued (or asked to cancel), so one picks
    /// it up without waiting for its next poll.
    pub wake_workers: Arc<dyn Fn() + Send + Sync>,
    /// Executes webhook runs at once on this node, when it executes runs at all.
    pub run_now: Option<Arc<dyn RunExecutor>>,
    /// Admits runs executed in place against the month's runs.
    pub run_meter: Arc<crate::quota_meter::RunMeter>,
    pub definitions: DefinitionCache,
    /// Seals credentials as connections are created or changed, and opens them to test one.
    pub vault: Arc<CredentialVault>,
    pub connectors: Registry,
    pub connection_tester: Arc<dyn ConnectionTester>,
    /// Live connection changes; the token refresher publishes on it too.
    pub connection_events: Arc<ConnectionEventBus>,
    /// Exchanges with authorization servers: the code exchange, client credentials,
    /// revocation.
    pub oauth: OAuthFlows,
    /// Opens a connection as steps do, renewing an OAuth2 access token that is due first
    /// (for `testConnection`).
    pub secrets: Arc<dyn ConnectionSecrets>,
    /// Answers /readyz: whether the database can be reached now.
    pub readiness: Arc<dyn Fn() -> futures::future::BoxFuture<'static, bool> + Send + Sync>,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// After a run was queued: tells live subscribers and wakes a worker of this node.
    pub fn announce_queued(&self, run: &Run) {
        self.run_events.publish(&[run.queued_event()]);
        (self.wake_workers)();
    }

    /// After `connection` changed: tells `connectionEvents` subscribers on every node.
    pub fn announce_connection(
        &self,
        connection: &Connection,
        kind: ConnectionEventKind,
        message: impl Into<String>,
    ) {
        self.connection_events.publish(ConnectionEvent::of(
            connection,
            kind,
            chrono::Utc::now(),
            message,
        ));
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
