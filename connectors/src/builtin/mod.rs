//! The connectors this build ships with.

use std::sync::Arc;

use crate::Connector;

pub mod email;
pub mod github;
pub mod http;
mod http_check;
pub mod openai;
pub mod postgres;
pub mod slack;

pub use http_check::test_connection;

/// Every built-in connector, one line each.
pub fn all() -> Vec<Arc<dyn Connector>> {
    vec![Arc::new(http::HttpConnector::default())]
}
