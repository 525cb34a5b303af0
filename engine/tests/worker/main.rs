//! The engine's worker against the real store (SQLite, and Postgres when
//! `AOS_TEST_DATABASE_URL` is set) and real HTTP servers on loopback.
//!
//! Runs are driven deterministically: a test claims with an explicit time and calls
//! `Engine::drive`; only the pool tests let workers claim on their own. Every test checks
//! the run, its steps, and that its events are numbered from 1 without gaps and are what
//! the event sink received.

mod harness;
mod support;

mod batching;
mod cancel;
mod code;
mod flow;
mod poller;
mod pool;
mod recovery;
mod retries;
mod waits;
