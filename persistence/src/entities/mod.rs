//! sea-orm entities, one file per table, in the shape `sea-orm-cli generate entity` gives.
//!
//! Invariant: these rows never leave the crate. Repositories convert them into domain types
//! (`crate::convert`) at the edge; behaviour belongs in `crate::repo`, not here.

pub mod api_tokens;
pub mod audit_events;
pub mod connections;
pub mod data_keys;
pub mod members;
pub mod oauth_authorizations;
pub mod poll_states;
pub mod rate_limits;
pub mod refresh_tokens;
pub mod run_events;
pub mod run_steps;
pub mod runs;
pub mod schedule_ticks;
pub mod session_families;
pub mod signing_keys;
pub mod users;
pub mod workflow_versions;
pub mod workflows;
pub mod workspace_quotas;
pub mod workspaces;
