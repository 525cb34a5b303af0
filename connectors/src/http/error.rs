//! Errors of workflow HTTP steps.
//!
//! Policy: every message may be shown to the workflow author as the step's error. None
//! echoes a header value, a full URL (its query or user info may hold a credential) or a
//! request body; hosts and header names are fine.

use std::error::Error as StdError;

use super::address::AddressClass;
use super::guard::{Refusal, TooManyRedirects};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error(
        "refused to reach {host}: it is a {reason} address, which workflow HTTP steps may not reach"
    )]
    Forbidden { host: String, reason: AddressClass },
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("invalid header {name:?}: {reason}")]
    InvalidHeader { name: String, reason: &'static str },
    #[error("the request timed out")]
    Timeout,
    #[error("the response body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("redirect refused: {0}")]
    Redirect(String),
    #[error("HTTP error: {0}")]
    Protocol(String),
    /// The client could not be built (TLS set-up, an invalid user agent): a start-up
    /// problem of the operator, not of a workflow.
    #[error("could not set up the HTTP client: {0}")]
    Setup(String),
}

impl HttpError {
    /// Whether trying the same request again may succeed: true for network trouble, false
    /// for requests that the policy or the URL rule out.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            HttpError::Timeout | HttpError::Connect(_) | HttpError::Protocol(_)
        )
    }

    pub(crate) fn from_reqwest(error: reqwest::Error) -> Self {
        if let Some(refusal) = find_in_chain::<Refusal>(&error) {
            return refusal.clone().into();
        }
        if let Some(too_many) = find_in_chain::<TooManyRedirects>(&error) {
            return HttpError::Redirect(too_many.to_string());
        }
        if error.is_timeout() {
            return HttpError::Timeout;
        }
        let is_connect = error.is_connect();
        let is_redirect = error.is_redirect();
        let message = describe(&error.without_url());
        if is_connect {
            HttpError::Connect(message)
        } else if is_redirect {
            HttpError::Redirect(message)
        } else {
            HttpError::Protocol(message)
        }
    }
}

impl From<Refusal> for HttpError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Address { host, class } => HttpError::Forbidden {
                host,
                reason: class,
            },
            other @ (Refusal::Scheme { .. } | Refusal::NoHost) => {
                HttpError::InvalidUrl(other.to_string())
            }
        }
    }
}

fn find_in_chain<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// The error and its causes on one line; reqwest's own message is generic, the useful
/// part ("Connection refused", "dns error: ...") is in the causes.
fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(error) = current {
        let part = error.to_string();
        if parts.last() != Some(&part) {
            parts.push(part);
        }
        current = error.source();
    }
    parts.join(": ")
}
