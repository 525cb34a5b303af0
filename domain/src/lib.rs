//! The AutomationOS domain core.
//!
//! Invariant: this crate performs no I/O and knows no web, GraphQL or ORM types. It holds
//! the rules (validation, permissions, workflow graphs, expressions) and the ports
//! (`ports`) that the boundary crates implement.

pub mod access;
pub mod api_token;
pub mod audit;
pub mod connection;
pub mod error;
pub mod expr;
pub mod ids;
pub mod journal;
pub mod oauth;
pub mod page;
pub mod polling;
pub mod ports;
pub mod queue_gauge;
pub mod quota;
pub mod rate_limits;
pub mod run;
pub mod run_stats;
pub mod user;
pub mod workflow;
pub mod workspace;

pub use error::DomainError;
