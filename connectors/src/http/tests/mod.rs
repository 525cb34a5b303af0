//! Tests of the workflow HTTP client. The SSRF ones (`classifier`, `guard`, `refusals`)
//! protect the invariant in the module doc of `http`: without `--http-allow-private`, no
//! spelling, name or redirect lets a workflow reach a non-public address.

mod classifier;
mod guard;
mod refusals;
mod requests;
mod responses;
mod support;
