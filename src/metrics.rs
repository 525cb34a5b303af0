//! The Prometheus recorder, installed the same way by `serve` and `worker`, and the small
//! HTTP listener a `worker` exports its metrics on (`--metrics-listen`).

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use aos_engine::observe;

/// Installs the process-wide recorder. Call it before anything records: what is recorded
/// before the install is lost.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&[
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ])
        .context("configuring metrics")?
        .set_buckets_for_metric(
            Matcher::Full(observe::STEP_DURATION.to_owned()),
            &observe::STEP_DURATION_BUCKETS,
        )
        .context("configuring metrics")?
        .set_buckets_for_metric(
            Matcher::Full(observe::RUN_DURATION.to_owned()),
            &observe::RUN_DURATION_BUCKETS,
        )
        .context("configuring metrics")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    observe::describe_metrics();
    Ok(handle)
}

/// Serves `GET /metrics` and `GET /healthz` on `address` until the process ends: a
/// worker has no API, but its runs and steps are what an operator most needs to see.
pub async fn serve_for_worker(address: SocketAddr, handle: PrometheusHandle) -> anyhow::Result<()> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("listening for metrics on {address}"))?;
    let local = listener.local_addr()?;
    println!("metrics: http://{local}/metrics");
    let routes = Router::new()
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move {
                    (
                        [("content-type", "text/plain; version=0.0.4")],
                        handle.render(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }));
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, routes).await {
            tracing::error!(%error, "the metrics listener stopped");
        }
    });
    Ok(())
}
