//! AutomationOS storage: the sea-orm implementation of the domain's ports.
//!
//! Invariants:
//! - ORM rows never leave this crate; repositories return domain types.
//! - Every method on workspace-owned data filters each query by the scope's workspace and
//!   runs in a transaction opened by [`SeaStore::begin_scoped`], which on Postgres also
//!   enters the row-level-security role, so a forgotten filter still cannot cross tenants.
//!   The exceptions are the unscoped ports, held by code that acts for no caller: the
//!   engine's `RunQueue` (workers claim across workspaces by design) and
//!   `CredentialStore`, the triggers' `TriggerStore`, and the vault's `DataKeyStore`.
//! - Database errors reach callers as `DomainError::Conflict` with a human message when the
//!   caller can fix them, and as `DomainError::Internal` otherwise; SQL never leaks.

mod convert;
mod database;
mod entities;
mod error;
mod repo;
mod scoped;
mod store;
mod timestamps;
mod txn;

pub use database::{Database, PersistenceError, connect, migrate, ping};
pub use scoped::Intent;
pub use store::SeaStore;
pub use txn::Txn;
