//! Logs (JSON lines on stderr, filtered by RUST_LOG) and error reporting to Sentry when
//! SENTRY_DSN is set. Nothing that could carry a secret is sent to Sentry: no request
//! bodies, headers, cookies or user data, and every event and breadcrumb passes through
//! [`scrub`] (secret-looking values in messages, errors and fields) on its way out.
//!
//! Every log line is one JSON object with the fields of the spans it happened in
//! (`spans`, outermost first, and `span`, the innermost): a request's `request.id`,
//! `route` and `workspace_id`, a run's `run_id` and `workspace_id`, a step's `node_id` and
//! `node_type`.

#[path = "scrub.rs"]
mod scrub;

use std::sync::Arc;

use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub fn init() -> Option<sentry::ClientInitGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let sentry_guard = std::env::var("SENTRY_DSN")
        .ok()
        .filter(|dsn| !dsn.trim().is_empty())
        .map(|dsn| {
            let mut options = sentry::ClientOptions::default();
            options.release = sentry::release_name!();
            options.send_default_pii = false;
            options.before_send = Some(Arc::new(|mut event| {
                scrub::event(&mut event);
                Some(event)
            }));
            options.before_breadcrumb = Some(Arc::new(|mut breadcrumb| {
                scrub::breadcrumb(&mut breadcrumb);
                Some(breadcrumb)
            }));
            sentry::init((dsn, options))
        });
    // Only ERROR events become Sentry issues; WARN/INFO ride along as breadcrumbs so an
    // issue shows what led up to it without spending the error quota on them.
    let sentry_layers = sentry_guard.as_ref().map(|_| {
        ErrorLayer::new()
            .with_filter(LevelFilter::ERROR)
            .and_then(BreadcrumbLayer::new().with_filter(LevelFilter::INFO))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_writer(std::io::stderr),
        )
        .with(sentry_layers)
        .init();
    sentry_guard
}
