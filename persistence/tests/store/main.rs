//! Storage tests: each one runs against SQLite and, when `AOS_TEST_DATABASE_URL` is set,
//! against Postgres, on a fresh migrated database of its own (see `support`).

mod support;

mod audit;
mod connections;
mod data_keys;
mod fair_claims;
mod isolation;
mod oauth;
mod poll_states;
mod queue;
mod queue_gauge;
mod quotas;
mod row_level_security;
mod run_stats;
mod runs;
mod sessions;
mod setup;
mod tokens;
mod triggers;
mod users;
mod vault;
mod workflows;
mod workspaces;
