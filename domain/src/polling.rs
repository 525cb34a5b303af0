//! Polling triggers: the state of each `trigger.poll` node of an active workflow (its
//! cursor and when it polls next), kept so exactly one process polls it per interval.

use async_trait::async_trait;

/// Storage of polling state. (Filled in by the polling work.)
#[async_trait]
pub trait PollStore: Send + Sync {}
