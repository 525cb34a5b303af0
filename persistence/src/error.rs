//! Mapping database errors into the domain's vocabulary, once, at this edge.
//!
//! Policy: a unique or foreign-key violation the caller can act on becomes `Conflict` or
//! `NotFound` with a message written here; anything else becomes `Internal`, carrying the
//! database error (with a short note of what was being done) for the logs only. SQL text
//! and driver messages never reach `Display` of a caller-facing error.

use aos_domain::DomainError;
use sea_orm::{DbErr, SqlErr};

/// A database failure with what the store was doing when it happened.
#[derive(Debug, thiserror::Error)]
#[error("storage failed while trying to {doing}")]
pub(crate) struct StorageError {
    doing: &'static str,
    #[source]
    source: DbErr,
}

/// Stored data that breaks an invariant: a bug or a hand-edited database.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CorruptData {
    #[error("corrupt stored {what}: {detail}")]
    Value { what: &'static str, detail: String },
    #[error("corrupt stored data: {0}")]
    Row(&'static str),
}

/// Wraps any database error as `Internal`.
pub(crate) fn internal(doing: &'static str) -> impl FnOnce(DbErr) -> DomainError {
    move |source| DomainError::internal(StorageError { doing, source })
}

/// `Conflict(message)` for a unique violation, `Internal` for anything else.
pub(crate) fn conflict_on_unique(
    doing: &'static str,
    message: &'static str,
) -> impl FnOnce(DbErr) -> DomainError {
    move |source| match source.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => DomainError::Conflict(message.into()),
        _ => DomainError::internal(StorageError { doing, source }),
    }
}

/// `NotFound(object)` for a foreign-key violation (the referenced row is absent),
/// `Conflict(message)` for a unique violation, `Internal` for anything else.
pub(crate) fn missing_or_conflict(
    doing: &'static str,
    object: &'static str,
    message: impl Into<String>,
) -> impl FnOnce(DbErr) -> DomainError {
    move |source| match source.sql_err() {
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => DomainError::NotFound(object),
        Some(SqlErr::UniqueConstraintViolation(_)) => DomainError::Conflict(message.into()),
        _ => DomainError::internal(StorageError { doing, source }),
    }
}

/// `Internal` for a stored value that fails the domain's parsing.
pub(crate) fn corrupt(what: &'static str) -> impl FnOnce(DomainError) -> DomainError {
    move |error| {
        DomainError::internal(CorruptData::Value {
            what,
            detail: error.to_string(),
        })
    }
}

/// `Internal` for rows that break an invariant of the schema (e.g. a missing version).
pub(crate) fn corrupt_row(what: &'static str) -> DomainError {
    DomainError::internal(CorruptData::Row(what))
}
