//! The API: the only crate that knows HTTP and GraphQL. It authenticates callers, mints
//! workspace scopes through the domain's `authorize`, and reaches data only through the
//! domain's storage ports.

pub mod audit;
pub mod auth;
pub mod authz;
pub mod config;
pub mod connection_events;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod limits;
pub mod live_bus;
pub mod oauth;
pub mod quota_meter;
pub mod redis_fanout;
pub mod retention;
pub mod run_events;
pub mod state;
pub mod ttl_cache;
pub mod ws;
