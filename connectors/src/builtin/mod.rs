//! The connectors this build ships with.

use std::sync::Arc;

use crate::Connector;

pub mod email;
mod fields;
pub mod github;
pub mod http;
mod http_check;
pub mod openai;
pub mod postgres;
pub mod slack;
#[cfg(test)]
mod test_support;

pub use http_check::test_connection;

/// Every built-in connector, one line each.
pub fn all() -> Vec<Arc<dyn Connector>> {
    vec![
        Arc::new(http::HttpConnector::default()),
        Arc::new(slack::SlackConnector::default()),
        Arc::new(github::GithubConnector::default()),
        Arc::new(openai::OpenAiConnector::default()),
        Arc::new(email::EmailConnector::default()),
        Arc::new(postgres::PostgresConnector::default()),
    ]
}
