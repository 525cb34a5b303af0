//! The sandbox behind the workflow `code` node: runs an author's JavaScript function body
//! in QuickJS and returns what it returns, as JSON.
//!
//! Policy, each point held by a test in `tests.rs`:
//! - Isolation: every run gets a fresh QuickJS runtime and context on its own blocking
//!   thread, so nothing (globals, prototypes, pending jobs) survives into another run or
//!   reaches another tenant.
//! - No I/O: the context holds only the language's own objects plus a `console` whose
//!   output is collected in memory. No module loader, no `std`/`os` modules, no timers,
//!   no network; `import()` and `require` fail.
//! - Bounds: memory (`Runtime::set_memory_limit`), native stack, wall-clock time (an
//!   interrupt handler with a deadline), the size of the returned JSON and of the logs.
//! - The source is a function body: it is compiled as the body of
//!   `async function (trigger, steps, vars, run)`, and a source that closes that function
//!   early is rejected rather than run as something else (see `wrapper.rs`).
//! - Promises: the body is an async function body, so `await` works. With no I/O and no
//!   timers, a promise can only wait for other promises, so the job queue is run until
//!   the returned promise settles; one that can never settle is an error.
//! - Output: what the body returns, serialised by JSON.stringify rules (`undefined`
//!   becomes `null`, `undefined` properties are left out, objects with `toJSON` such as
//!   `Date` use it), except that anything JSON cannot say faithfully (NaN, Infinity,
//!   BigInt, functions, symbols, promises, errors, cycles) is refused, naming the
//!   offending property or item, rather than silently turned into `null` or `{}`.
//!   Map and Set serialise as `{}`, as JSON.stringify has them.

mod console;
mod error;
mod output;
mod sandbox;
mod watchdog;
mod wrapper;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use error::CodeError;

/// How much a single run of a code node may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeLimits {
    /// Heap the JavaScript engine may allocate, inputs included.
    pub memory_bytes: usize,
    /// Wall-clock time from the moment the run starts on its thread.
    pub time: Duration,
    /// Size of the returned value serialised as JSON.
    pub max_output_bytes: usize,
    /// Native stack the engine may use; bounds recursion depth.
    pub max_stack_bytes: usize,
    /// Total size of the `console` lines kept; later lines are dropped.
    pub max_log_bytes: usize,
}

impl Default for CodeLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 32 * 1024 * 1024,
            time: Duration::from_secs(2),
            max_output_bytes: 1024 * 1024,
            // About 800 nested JavaScript calls in a release build (160 unoptimised),
            // and a quarter of the 2 MiB stack of a tokio blocking thread.
            max_stack_bytes: 512 * 1024,
            max_log_bytes: 64 * 1024,
        }
    }
}

/// The names a code node's body sees, each already a JSON value.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeInput {
    /// The trigger's output.
    pub trigger: serde_json::Value,
    /// An object of finished nodes' outputs keyed by node id.
    pub steps: serde_json::Value,
    /// The workspace variables.
    pub vars: serde_json::Value,
    /// `{id, workflowId}` of the run.
    pub run: serde_json::Value,
    /// Inside a `loop` body: the current item and its index; `null` elsewhere.
    pub item: serde_json::Value,
    pub index: serde_json::Value,
}

/// What a run produced: its result and the lines it wrote with `console.*`, kept even
/// when the run failed because they are what an author debugs with.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeOutcome {
    pub result: Result<serde_json::Value, CodeError>,
    pub logs: Vec<String>,
}

/// Runs `source` as the body of a function of `trigger, steps, vars, run` and returns
/// what it returns.
pub async fn run_code(
    source: &str,
    input: CodeInput,
    limits: &CodeLimits,
) -> Result<serde_json::Value, CodeError> {
    run_code_with_logs(source, input, limits).await.result
}

/// Like [`run_code`], and also returns the run's `console` output.
pub async fn run_code_with_logs(
    source: &str,
    input: CodeInput,
    limits: &CodeLimits,
) -> CodeOutcome {
    let source = source.to_owned();
    let limits = limits.clone();
    let time_limit = limits.time;
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let task = tokio::task::spawn_blocking(move || {
        // The receiver is gone only when the caller stopped waiting, in which case
        // nobody needs to know the run started.
        let _ = started_tx.send(());
        sandbox::execute(&source, &input, &limits)
    });
    // The interrupt handler is the real time limit. This backstop only covers a native
    // operation that never polls it: the caller gets its answer, and the thread finishes
    // on its own once the operation ends (memory bounds how long any of them can run).
    // It counts from the start of the run, not from the time spent waiting for a thread.
    let backstop = async {
        if started_rx.await.is_ok() {
            tokio::time::sleep(time_limit.saturating_add(BACKSTOP_GRACE)).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        joined = task => match joined {
            Ok(outcome) => outcome,
            Err(join_error) => CodeOutcome {
                result: Err(CodeError::Internal(format!("the sandbox thread failed: {join_error}"))),
                logs: Vec::new(),
            },
        },
        () = backstop => {
            tracing::warn!(
                time_limit_ms = time_limit.as_millis(),
                "code node outlived its interrupt deadline; abandoning its thread"
            );
            CodeOutcome { result: Err(CodeError::Timeout), logs: Vec::new() }
        }
    }
}

/// How long past its limit a run may go before the caller stops waiting for it.
const BACKSTOP_GRACE: Duration = Duration::from_secs(1);
