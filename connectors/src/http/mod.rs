//! The HTTP client behind the `http.request` node.
//!
//! Invariant: unless the operator passed `--http-allow-private`, a workflow cannot make the
//! server connect to a loopback, private, link-local or otherwise non-public address, by
//! any route: an IP literal in any spelling, a host name (checked on the resolved
//! addresses that are then the only ones connected to), a redirect, or a proxy (none is
//! used). Only http and https are spoken, flag or no flag. `guard` holds the rules,
//! `address` the address ranges.
//!
//! Limits that protect the worker hold for every request: a connect and a total timeout,
//! a cap on redirects and a cap on the body size that is counted, not taken from
//! `Content-Length`. Responses are not decompressed, so the cap is on what is stored.

mod address;
mod client;
mod error;
mod guard;
mod policy;
mod request;
mod resolver;
mod response;
#[cfg(test)]
mod tests;

pub use address::AddressClass;
pub use client::HttpClient;
pub use error::HttpError;
pub use policy::HttpPolicy;
pub use request::OutgoingRequest;
pub use response::{BodyEncoding, HttpResponse};
