//! Errors of exchanges with authorization servers.
//!
//! Policy: every message may be shown to the user (as a step's error, a
//! `createConnection` refusal or the reason of a failed authorization). It names at most
//! the server's OAuth2 error code (RFC 6749 §5.2), reduced to the characters such codes
//! use; never a token, secret, code or verifier, never the server's free-text
//! `error_description`, and never the body of an answer that did not parse (it may hold
//! a token).

use std::fmt::Display;

use oauth2::{ErrorResponseType, RequestTokenError, StandardErrorResponse};

use crate::http::HttpError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// The authorization server answered with an OAuth2 error.
    #[error("the authorization server refused the request ({code})")]
    Refused { code: String },
    /// No answer: the server could not be reached, or the request was not allowed.
    #[error("the authorization server could not be reached: {0}")]
    Unreachable(HttpError),
    /// An answer that is not what RFC 6749 describes.
    #[error("the authorization server's answer is not a valid OAuth2 response")]
    Malformed,
    /// A URL of the client registration is not usable.
    #[error("{0}")]
    Config(String),
}

/// Codes after which the same grant will never work again: the user must authorize anew
/// (or fix the client registration).
const PERMANENT: [&str; 5] = [
    "invalid_grant",
    "invalid_client",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
];

impl OAuthError {
    /// Whether retrying is pointless until the user reconnects: the grant was revoked or
    /// expired, or the client is no longer accepted.
    pub fn needs_reauth(&self) -> bool {
        matches!(self, OAuthError::Refused { code } if PERMANENT.contains(&code.as_str()))
    }

    /// The server's OAuth2 error code, when it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            OAuthError::Refused { code } => Some(code),
            _ => None,
        }
    }

    pub(crate) fn refused(code: &str) -> Self {
        OAuthError::Refused {
            code: safe_code(code),
        }
    }
}

/// An OAuth2 error code as far as it can be shown: codes are `[a-z_]` by RFC 6749 (§A.7
/// allows a little more); anything else a server sends is not shown.
pub fn safe_code(code: &str) -> String {
    let shown = code.len() <= 64
        && !code.is_empty()
        && code
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'));
    if shown {
        code.to_owned()
    } else {
        "unrecognized_error".to_owned()
    }
}

/// What an exchange's failure shows: the server's error code, the transport error, or
/// that the answer was malformed (never its body).
pub(crate) fn from_request_error<T>(
    error: RequestTokenError<HttpError, StandardErrorResponse<T>>,
) -> OAuthError
where
    T: ErrorResponseType + Display + AsRef<str> + 'static,
{
    match error {
        RequestTokenError::ServerResponse(response) => {
            OAuthError::refused(response.error().as_ref())
        }
        RequestTokenError::Request(http) => OAuthError::Unreachable(http),
        // Either carries the body or a message about it: neither is shown.
        RequestTokenError::Parse(..) | RequestTokenError::Other(_) => OAuthError::Malformed,
    }
}
