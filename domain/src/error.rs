//! The domain's error vocabulary. Each variant maps to exactly one public error code at
//! the API boundary; internal detail (`Internal`) is logged there and never returned.

use crate::quota::Quota;
use crate::workflow::Problem;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The caller is not known (no, bad, expired or revoked credentials).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known and may see the object, but may not do this to it.
    #[error("{0}")]
    Forbidden(String),
    /// The object does not exist, or belongs to a workspace the caller cannot see.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The input is wrong; the message says how.
    #[error("{0}")]
    Invalid(String),
    /// The workflow definition has problems; every one of them is listed.
    #[error("the workflow definition is invalid ({} problem(s))", .0.len())]
    InvalidWorkflow(Vec<Problem>),
    /// The input clashes with what exists (a taken email, the last owner).
    #[error("{0}")]
    Conflict(String),
    /// One more would pass the workspace's `quota`, whose limit is `limit`.
    #[error("the workspace's {quota} quota ({limit}) is used up")]
    QuotaExceeded { quota: Quota, limit: u64 },
    /// Something failed that the caller cannot fix; the detail is for the logs only.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl DomainError {
    pub fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(error.into())
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
