//! Why the server closes a socket: the close codes of `graphql-transport-ws`, used for the
//! legacy protocol too (its clients only see that the socket closed). One code is our
//! own, in the 4000-4999 range RFC 6455 leaves to applications: 4410 "Idle timeout", for a
//! socket that held no operation for `WsLimits::idle_timeout` (reconnect when needed).
//!
//! A close reason is at most 123 bytes (RFC 6455 §5.5), so reasons built from client
//! input are cut at a character boundary instead of failing the close frame.

use std::fmt;

use axum::extract::ws::CloseFrame;

const MAX_REASON_BYTES: usize = 123;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CloseReason {
    code: u16,
    reason: String,
}

impl CloseReason {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        if reason.len() > MAX_REASON_BYTES {
            let mut end = MAX_REASON_BYTES;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        Self { code, reason }
    }

    /// The legacy `connection_terminate`: the client asked to end the socket.
    pub(super) fn normal() -> Self {
        Self::new(1000, "")
    }

    pub(super) fn invalid_message(reason: impl Into<String>) -> Self {
        Self::new(4400, reason)
    }

    pub(super) fn unauthorized(reason: impl Into<String>) -> Self {
        Self::new(4401, reason)
    }

    pub(super) fn init_timeout() -> Self {
        Self::new(4408, "Connection initialisation timeout")
    }

    pub(super) fn idle_timeout() -> Self {
        Self::new(4410, "Idle timeout")
    }

    pub(super) fn subscriber_exists(id: &str) -> Self {
        Self::new(4409, format!("Subscriber for {id} already exists"))
    }

    pub(super) fn too_many_init_requests() -> Self {
        Self::new(4429, "Too many initialisation requests")
    }

    pub(super) fn internal() -> Self {
        Self::new(4500, "Internal server error")
    }

    pub(super) fn into_frame(self) -> CloseFrame {
        CloseFrame {
            code: self.code,
            reason: self.reason.into(),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_reason_is_cut_at_a_char_boundary_within_the_frame_limit() {
        let id = format!("a{}", "é".repeat(100));

        let close = CloseReason::subscriber_exists(&id);

        assert_eq!(close.code, 4409);
        assert!(close.reason.len() <= MAX_REASON_BYTES);
        assert_eq!(
            close.reason.len(),
            122,
            "'é' is two bytes: the 123rd is mid-character"
        );
        assert!(close.reason.starts_with("Subscriber for aéé"));
    }
}
