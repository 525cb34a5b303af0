//! The run model of the durable engine, as pure functions of what a run has recorded.
//!
//! Invariant: nothing here performs I/O, reads a clock or draws a random number. The
//! engine journals each step's [`StepOutcome`]; replaying that journal into a fresh
//! [`Scheduler`] reproduces every decision (ready nodes, skipped nodes, the run's end), so
//! a run resumed on another worker continues exactly where the first one stopped. Retry
//! delays take their randomness from the caller for the same reason.

mod backoff;
mod error;
mod id;
mod outcome;
mod reuse;
mod scheduler;
mod status;
#[cfg(test)]
mod tests;

pub use backoff::{RetryDecision, UnitFraction, next_attempt};
pub use error::RunError;
pub use id::{IdempotencyKey, RunId};
pub use outcome::{IfBranch, StepOutcome};
pub use reuse::outcomes_to_reuse;
pub use scheduler::{Progress, RunEnd, Scheduler};
pub use status::{RunStatus, StepStatus};
