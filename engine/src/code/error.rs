//! What can go wrong running a code node, worded for the workflow author who must fix it.

/// Why a code node produced no value. Messages name the author's mistake and, where
/// QuickJS reports one, the line and column in the author's source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// The source is not a valid function body.
    #[error("the code is not valid JavaScript: {0}")]
    Syntax(String),
    /// The code threw (or its promise rejected) and did not catch it.
    #[error("the code threw an error: {0}")]
    Thrown(String),
    /// The code ran past its time limit: an endless loop, or too much work for one step.
    #[error("the code ran past its time limit (an endless loop, or too much work for one step)")]
    Timeout,
    /// The code allocated more memory than its limit.
    #[error("the code used more memory than its limit allows")]
    OutOfMemory,
    /// The returned value, as JSON, is larger than the output limit.
    #[error("the code returned a value larger than the output limit allows")]
    OutputTooLarge,
    /// The returned value has no faithful JSON form.
    #[error("the code returned a value that is not JSON: {0}")]
    NotJson(String),
    /// The code returned a promise that nothing is left to settle.
    #[error(
        "the code returned a promise that never settles (there are no timers or I/O to wait for)"
    )]
    NeverSettled,
    /// The sandbox itself failed; not the author's doing.
    #[error("the code sandbox failed: {0}")]
    Internal(String),
}
