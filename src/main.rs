//! `automationos`: one binary for the API server, the migrations and the schema.

mod admin_store;
mod cli;
mod engine;
mod keys;
mod limits_cli;
mod master_key;
mod metrics;
mod queue_metrics;
mod quotas_cli;
mod serve;
mod telemetry;

use anyhow::Context;
use clap::Parser;

use cli::{Cli, Command};

/// glibc's allocator spent a fifth of the server's CPU under webhook load (arena locks,
/// `malloc_consolidate`); mimalloc's thread-local heaps do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Schema = cli.command {
        print!("{}", aos_api::graphql::sdl());
        return Ok(());
    }
    // TLS code paths (Postgres with sslmode, Sentry) see two rustls crypto providers in the
    // dependency tree and would refuse to pick one; choose explicitly.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _sentry = telemetry::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Migrate(args) => {
                let db = aos_persistence::connect(&args.url())
                    .await
                    .context("connecting to the database")?;
                aos_persistence::migrate(&db)
                    .await
                    .context("migrating the database")?;
                println!("migrations applied");
                Ok(())
            }
            Command::Worker(args) => worker(args).await,
            Command::Keys(args) => keys::run(args).await,
            Command::Limits(args) => limits_cli::run(args).await,
            Command::Quotas(args) => quotas_cli::run(args).await,
            Command::Schema => Ok(()),
        }
    })
}

/// `automationos worker`: the worker pool alone, until SIGTERM or Ctrl-C.
async fn worker(args: cli::WorkerArgs) -> anyhow::Result<()> {
    let db = aos_persistence::connect(&args.database.url())
        .await
        .context("connecting to the database")?;
    let store = std::sync::Arc::new(aos_persistence::SeaStore::new(db));
    let master_keys = std::sync::Arc::new(master_key::load(&args.keys, &args.database.data_dir)?);
    let vault = std::sync::Arc::new(aos_vault::service::CredentialVault::new(
        master_keys,
        store.clone(),
    ));
    // No subscriber lives in this process: with Redis, API nodes hear this worker's
    // events at once; without, they read them back from the journal.
    let events = std::sync::Arc::new(engine::run_event_bus(args.database.redis_url.as_deref())?);
    // Likewise a connection this worker finds it can no longer renew: with Redis, its
    // `CONNECTION_NEEDS_REAUTH` reaches the API nodes' subscribers.
    let connection_events = std::sync::Arc::new(
        aos_api::connection_events::ConnectionEventBus::for_redis_url(
            args.database.redis_url.as_deref(),
        )
        .context("configuring Redis (--redis-url)")?,
    );
    let secrets = std::sync::Arc::new(aos_connectors::oauth::RefreshingSecrets::new(
        vault,
        store.clone(),
        serve::oauth_flows(&args.engine)?,
        connection_events,
        aos_connectors::oauth::RefreshTiming::default(),
    ));
    if let Some(address) = args.metrics_listen {
        metrics::serve_for_worker(address, metrics::install()?).await?;
    }
    let workers = engine::Workers::start(&args.engine, 0, store, events, secrets.clone())?;
    let (stop_refresher, refresher_stopped) = tokio::sync::watch::channel(false);
    let refresher = tokio::spawn(
        aos_connectors::oauth::BackgroundRefresher::new(secrets).run(refresher_stopped),
    );
    println!(
        "AutomationOS worker running {} workers",
        args.engine.workers
    );
    serve::shutdown_signal().await;
    let _ = stop_refresher.send(true);
    let _ = refresher.await;
    workers.stop().await;
    Ok(())
}
