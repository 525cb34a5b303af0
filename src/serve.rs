//! `automationos serve`: the composition root. It builds the adapters, hands them to the
//! API as ports, and runs until SIGTERM or Ctrl-C, finishing requests in flight.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use aos_api::auth::jwt::SigningKeys;
use aos_api::config::{ApiConfig, GraphqlLimits};
use aos_api::connection_events::ConnectionEventBus;
use aos_api::events::WorkflowEventBus;
use aos_api::http::{HttpState, router};
use aos_api::limits::AuthLimiter;
use aos_api::limits::in_process::InProcessRateLimiter;
use aos_api::limits::policy::RateLimits;
use aos_api::limits::rate::WorkspaceRateLimiter;
use aos_api::limits::redis_gcra::RedisRateLimiter;
use aos_api::state::{AppState, Inner};
use aos_api::ws::SubscriptionSlots;
use aos_connectors::Registry;
use aos_connectors::http::HttpPolicy;
use aos_connectors::oauth::{BackgroundRefresher, OAuthFlows, RefreshTiming, RefreshingSecrets};
use aos_domain::ports::{ConnectionSecrets, RunExecutor, Store};
use aos_domain::rate_limits::{RateLimitStore, RateQuota};
use aos_domain::workflow::DefinitionCache;
use aos_engine::worker::InPlaceExecutor;
use aos_vault::service::CredentialVault;

use crate::cli::{EngineArgs, ServeArgs};
use crate::engine::Workers;
use crate::master_key;
use aos_engine::scheduler::Scheduler;

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let master_keys = Arc::new(master_key::load(&args.keys, &args.database.data_dir)?);
    let db = aos_persistence::connect(&args.database.url())
        .await
        .context("connecting to the database")?;
    if args.no_migrate {
        tracing::info!("skipping migrations (--no-migrate)");
    } else {
        aos_persistence::migrate(&db)
            .await
            .context("migrating the database")?;
    }
    let sea_store = Arc::new(
        aos_persistence::SeaStore::new(db.clone()).with_quota_defaults(args.quotas.limits()),
    );
    let store: Arc<dyn Store> = sea_store.clone();
    let vault = Arc::new(CredentialVault::new(
        Arc::clone(&master_keys),
        sea_store.clone(),
    ));
    let run_events = crate::engine::run_event_bus(args.database.redis_url.as_deref())?;
    let connection_events = Arc::new(
        ConnectionEventBus::for_redis_url(args.database.redis_url.as_deref())
            .context("configuring Redis (--redis-url)")?,
    );
    let oauth = oauth_flows(&args.engine)?;
    let secrets = Arc::new(RefreshingSecrets::new(
        vault.clone(),
        sea_store.clone(),
        oauth.clone(),
        connection_events.clone(),
        RefreshTiming::default(),
    ));
    // Before anything records: what a worker counted before the install would be lost.
    let metrics = crate::metrics::install()?;
    let workers = Workers::start(
        &args.engine,
        args.runs_in_place,
        sea_store.clone(),
        Arc::new(run_events.clone()),
        secrets.clone(),
    )?;
    let (stop_refresher, refresher_stopped) = tokio::sync::watch::channel(false);
    let refresher = tokio::spawn(BackgroundRefresher::new(secrets.clone()).run(refresher_stopped));
    let engine = Arc::clone(&workers.engine);
    let wake_workers: Arc<dyn Fn() + Send + Sync> = Arc::new(move || engine.wake());
    let (stop_scheduler, scheduler_stopped) = tokio::sync::watch::channel(false);
    // Like the scheduler, in every `serve` (and not in `worker`): leases keep each poll
    // to one process per interval however many run it.
    let poller = tokio::spawn(
        workers
            .poller(
                sea_store.clone(),
                Arc::new(run_events.clone()),
                Arc::clone(&wake_workers),
                args.poll_interval_override_ms.map(Duration::from_millis),
            )
            .run(scheduler_stopped.clone()),
    );
    let scheduler = tokio::spawn(
        Scheduler::new(
            sea_store,
            Arc::new(run_events.clone()),
            Arc::clone(&wake_workers),
        )
        .run(scheduler_stopped),
    );
    let queue_metrics = crate::queue_metrics::spawn(store.clone());

    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr()?;
    let config = api_config(&args, address);
    let keys = SigningKeys::load_or_create(store.clone(), master_keys)
        .await
        .context("loading the signing keys")?;
    let (rate_limits, local_buckets) = rate_limits(&args, store.clone())?;
    let retention = tokio::spawn(aos_api::retention::run(store.clone(), args.quotas.limits()));
    let run_meter = aos_api::quota_meter::RunMeter::new(store.clone());
    let run_metering = tokio::spawn(Arc::clone(&run_meter).run());
    let readiness_db = db.clone();
    let connectors = Registry::builtin();
    let app = AppState::new(Inner {
        store,
        auth_limiter: AuthLimiter::new(config.auth_attempts_per_minute),
        rate_limits: Arc::clone(&rate_limits),
        workflow_events: WorkflowEventBus::for_redis_url(args.database.redis_url.as_deref())?,
        run_events,
        subscription_slots: SubscriptionSlots::new(
            config.ws_max_subscriptions_per_node,
            config.ws_max_subscriptions_per_workspace,
        ),
        wake_workers,
        // An API-only node (no workers) executes no runs, not even in place.
        run_now: (args.runs_in_place > 0 && args.engine.workers > 0).then(|| {
            Arc::new(InPlaceExecutor(Arc::clone(&workers.engine))) as Arc<dyn RunExecutor>
        }),
        run_meter: Arc::clone(&run_meter),
        definitions: DefinitionCache::default(),
        connection_tester: Arc::new(workers.connection_tester(connectors.clone())),
        connection_events,
        oauth,
        secrets: secrets as Arc<dyn ConnectionSecrets>,
        vault,
        connectors,
        keys,
        readiness: Arc::new(move || {
            let db = readiness_db.clone();
            Box::pin(async move { aos_persistence::ping(&db).await })
        }),
        config: config.clone(),
    });
    spawn_limiter_cleanup(app.clone(), local_buckets);
    let schema = aos_api::graphql::build_schema(Some(app.clone()), config.graphql);
    let routes = router(HttpState {
        app,
        schema,
        metrics,
    });

    println!("AutomationOS listening on http://{address}");
    println!("GraphiQL: http://{address}/graphql");
    tracing::info!(%address, "listening");
    axum::serve(
        listener,
        routes.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("serving")?;
    let _ = stop_scheduler.send(true);
    let _ = scheduler.await;
    let _ = stop_refresher.send(true);
    let _ = refresher.await;
    let _ = poller.await;
    retention.abort();
    run_metering.abort();
    run_meter.flush().await;
    queue_metrics.abort();
    workers.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// The OAuth2 exchanges, under the same address rules as workflow HTTP steps: a token
/// URL is as much an author's choice as a step's URL.
pub fn oauth_flows(engine: &EngineArgs) -> anyhow::Result<OAuthFlows> {
    OAuthFlows::new(HttpPolicy {
        allow_private: engine.http_allow_private,
        ..HttpPolicy::default()
    })
    .context("building the OAuth2 client")
}

fn api_config(args: &ServeArgs, address: SocketAddr) -> ApiConfig {
    ApiConfig {
        public_url: args
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}"))
            .trim_end_matches('/')
            .to_owned(),
        max_body_bytes: args.max_body_bytes,
        auth_attempts_per_minute: args.auth_attempts_per_minute,
        access_token_ttl: Duration::from_secs(args.access_token_ttl_secs),
        refresh_token_ttl: Duration::from_secs(args.refresh_token_ttl_secs),
        graphql: GraphqlLimits {
            max_depth: args.graphql_max_depth,
            max_complexity: args.graphql_max_complexity,
            max_aliases: args.graphql_max_aliases,
            max_batch: args.graphql_max_batch,
        },
        ws_init_timeout: Duration::from_millis(args.ws_init_timeout_ms),
        ws_max_subscriptions: args.ws_max_subscriptions,
        ws_max_subscriptions_per_node: args.ws_max_subscriptions_per_node,
        ws_max_subscriptions_per_workspace: args.ws_max_subscriptions_per_workspace,
        ws_idle_timeout: Duration::from_millis(args.ws_idle_timeout_ms),
    }
}

/// The request rate limits: buckets in Redis when there is one, so every node shares
/// them, else in this process (returned too, for the idle-bucket cleanup).
fn rate_limits(
    args: &ServeArgs,
    store: Arc<dyn Store>,
) -> anyhow::Result<(Arc<RateLimits>, Option<Arc<InProcessRateLimiter>>)> {
    let default_quota = RateQuota::new(args.rate_limit_rps, args.rate_limit_burst.max(1));
    let (limiter, local): (Arc<dyn WorkspaceRateLimiter>, _) = match &args.database.redis_url {
        Some(url) => (
            Arc::new(RedisRateLimiter::new(url).context("configuring Redis (--redis-url)")?),
            None,
        ),
        None => {
            let local = Arc::new(InProcessRateLimiter::default());
            (local.clone(), Some(local))
        }
    };
    let overrides: Arc<dyn RateLimitStore> = store;
    Ok((
        Arc::new(RateLimits::new(limiter, default_quota, overrides)),
        local,
    ))
}

fn spawn_limiter_cleanup(app: AppState, local_buckets: Option<Arc<InProcessRateLimiter>>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            app.auth_limiter.forget_idle();
            app.rate_limits.forget_idle();
            if let Some(buckets) = &local_buckets {
                buckets.forget_idle();
            }
        }
    });
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}
