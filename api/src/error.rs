//! The error policy of the API, in one place.
//!
//! Every GraphQL error carries `extensions.code` from the contract's fixed list. Domain
//! errors map to exactly one code here; `Internal` detail is logged once, with its source
//! chain, and the client only ever sees "internal error". `ApiError` is deliberately not
//! `Display`, so async-graphql's blanket `From<impl Display>` cannot turn a domain error
//! into a code-less GraphQL error by accident: resolvers return `ApiResult`.

use async_graphql::ErrorExtensions;

use aos_domain::DomainError;

pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
pub const FORBIDDEN: &str = "FORBIDDEN";
pub const NOT_FOUND: &str = "NOT_FOUND";
pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
pub const CONFLICT: &str = "CONFLICT";
pub const RATE_LIMITED: &str = "RATE_LIMITED";
pub const QUOTA_EXCEEDED: &str = "QUOTA_EXCEEDED";
pub const INTERNAL: &str = "INTERNAL";

#[derive(Clone, Debug)]
pub struct ApiError(async_graphql::Error);

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn coded(code: &'static str, message: impl Into<String>) -> Self {
        Self(async_graphql::Error::new(message).extend_with(|_, ext| ext.set("code", code)))
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::coded(UNAUTHENTICATED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::coded(FORBIDDEN, message)
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::coded(BAD_USER_INPUT, message)
    }

    pub fn not_found(object: &str) -> Self {
        Self::coded(NOT_FOUND, format!("{object} not found"))
    }

    pub fn rate_limited(retry_after_ms: u64) -> Self {
        Self::over_limit("too many attempts; try again later", retry_after_ms)
    }

    /// `RATE_LIMITED` with a message saying which limit refused.
    pub fn over_limit(message: impl Into<String>, retry_after_ms: u64) -> Self {
        Self(async_graphql::Error::new(message).extend_with(|_, ext| {
            ext.set("code", RATE_LIMITED);
            ext.set("retryAfterMs", retry_after_ms);
        }))
    }

    /// Logs the detail and returns a message that reveals nothing.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %ErrorChain(error), "internal error");
        Self::coded(INTERNAL, "internal error")
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::Unauthenticated(message) => Self::unauthenticated(message),
            DomainError::Forbidden(message) => Self::forbidden(message),
            DomainError::NotFound(object) => Self::not_found(object),
            DomainError::Invalid(message) => Self::bad_input(message),
            DomainError::Conflict(message) => Self::coded(CONFLICT, message),
            DomainError::InvalidWorkflow(problems) => {
                let count = problems.len();
                let problems = async_graphql::Value::from_json(
                    serde_json::to_value(&problems).unwrap_or_default(),
                )
                .unwrap_or(async_graphql::Value::Null);
                Self(
                    async_graphql::Error::new(format!(
                        "the workflow definition is invalid ({count} problem(s))"
                    ))
                    .extend_with(|_, ext| {
                        ext.set("code", BAD_USER_INPUT);
                        ext.set("problems", problems.clone());
                    }),
                )
            }
            DomainError::QuotaExceeded { quota, limit } => Self(
                async_graphql::Error::new(DomainError::QuotaExceeded { quota, limit }.to_string())
                    .extend_with(|_, ext| {
                        ext.set("code", QUOTA_EXCEEDED);
                        ext.set("quota", quota.name());
                        ext.set("limit", limit);
                    }),
            ),
            DomainError::Internal(source) => Self::internal(source.as_ref()),
        }
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        error.0
    }
}

/// Errors from async-graphql itself (a missing context value) are programming errors.
impl From<async_graphql::Error> for ApiError {
    fn from(error: async_graphql::Error) -> Self {
        tracing::error!(error = %error.message, "graphql plumbing error");
        Self::coded(INTERNAL, "internal error")
    }
}

/// Displays an error with its whole `source()` chain, for logs.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}
