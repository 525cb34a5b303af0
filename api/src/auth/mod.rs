//! Authentication: who is calling. Passwords, JWT access tokens, rotating refresh tokens
//! and API tokens. Authorization (what the caller may do) is `crate::authz`.

pub mod authn;
pub mod jwt;
pub mod password;
pub mod secrets;
pub mod session;
