//! The `loop` node: one attempt runs the node's body once per element of `items`, with at
//! most `concurrency` iterations in flight, and outputs the last body step's output of
//! each iteration, in element order (see `LoopConfig` in the domain for the semantics).
//!
//! Durability: a loop whose body has a side effect reports each finished iteration
//! ([`LoopProgress`]), and the worker journals them with the loop's RUNNING step, at most
//! every [`ITEM_JOURNAL_INTERVAL`]. A worker that resumes the loop after a crash reuses
//! the journaled iterations and runs only the others; those that finished after the last
//! write run again, and each body `http.request` or `connector` step carries the per-item key
//! `{runId}:{loopNodeId}:{index}:{bodyStepId}` so receivers can tell repeats apart. A
//! retry of the loop node (a new attempt after it failed) runs every iteration again.
//!
//! Bounds: at most `maxItems` iterations; a body step's `retry` pauses inside the attempt,
//! at most `LoopConfig::MAX_BODY_RETRY_PAUSE_MS` each (the validator's limit), while the
//! worker's heartbeat keeps the run's lease. Each iteration copies the loop's scope once.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesOrdered;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use aos_domain::expr::type_name;
use aos_domain::run::{RetryDecision, StepOutcome, UnitFraction, next_attempt};
use aos_domain::workflow::node_types::{LoopConfig, LoopStep};

use crate::step::{Attempt, NodeServices, Scope, execute_body_step};

/// How often, at most, finished iterations are journaled while a loop runs.
pub const ITEM_JOURNAL_INTERVAL: Duration = Duration::from_millis(100);

/// The key under which a running loop's step output keeps its finished iterations.
const DONE_ITEMS: &str = "doneItems";

/// What a loop attempt knows of its iterations beyond its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopProgress<'a> {
    /// Iterations journaled by an attempt that did not see the loop through, by index.
    pub done: Option<&'a BTreeMap<usize, Value>>,
    /// Where each iteration this attempt finishes is reported, for journaling.
    pub report: Option<&'a mpsc::UnboundedSender<(usize, Value)>>,
}

/// The iterations a running loop reports as they finish, held until they are due for a
/// write, at most every [`ITEM_JOURNAL_INTERVAL`].
pub(crate) struct FinishedItems {
    reported: mpsc::UnboundedReceiver<(usize, Value)>,
    done: BTreeMap<usize, Value>,
    unwritten: Vec<usize>,
    due: tokio::time::Interval,
}

/// Iterations due for a write: the new ones, and the loop's step output with all of them.
pub(crate) struct DueItems {
    pub(crate) new: Vec<usize>,
    pub(crate) done: usize,
    pub(crate) output: Value,
}

impl FinishedItems {
    /// Starts from the iterations journaled before; the sender is for [`LoopProgress`].
    pub(crate) fn new(
        journaled: BTreeMap<usize, Value>,
    ) -> (Self, mpsc::UnboundedSender<(usize, Value)>) {
        let (report, reported) = mpsc::unbounded_channel();
        let mut due = tokio::time::interval(ITEM_JOURNAL_INTERVAL);
        due.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let items = Self {
            reported,
            done: journaled,
            unwritten: Vec::new(),
            due,
        };
        (items, report)
    }

    /// Waits for finished iterations to be due for a write. Cancel-safe: what arrived
    /// before a cancel stays for the next call.
    pub(crate) async fn next_due(&mut self) -> DueItems {
        loop {
            tokio::select! {
                Some((index, output)) = self.reported.recv() => {
                    self.done.insert(index, output);
                    self.unwritten.push(index);
                }
                _ = self.due.tick(), if !self.unwritten.is_empty() => {
                    let items: Map<String, Value> = self
                        .done
                        .iter()
                        .map(|(index, output)| (index.to_string(), output.clone()))
                        .collect();
                    return DueItems {
                        new: std::mem::take(&mut self.unwritten),
                        done: self.done.len(),
                        output: json!({ DONE_ITEMS: items }),
                    };
                }
                // The attempt that reports dropped its sender: nothing more will come.
                else => std::future::pending().await,
            }
        }
    }
}

/// Waits on `items` when the loop journals its iterations; forever otherwise.
pub(crate) async fn next_due(items: &mut Option<FinishedItems>) -> DueItems {
    match items {
        Some(items) => items.next_due().await,
        None => std::future::pending().await,
    }
}

/// The finished iterations in the output of a loop step journaled RUNNING.
pub fn done_items(running_output: Option<&Value>) -> BTreeMap<usize, Value> {
    running_output
        .and_then(|output| output.get(DONE_ITEMS))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(index, output)| Some((index.parse().ok()?, output.clone())))
        .collect()
}

pub(crate) async fn execute(
    config: &LoopConfig,
    attempt: &Attempt<'_>,
    services: &NodeServices,
) -> StepOutcome {
    let items = match items(config, attempt.scope) {
        Ok(items) => items,
        Err(error) => return StepOutcome::Failed(error),
    };
    let concurrency = usize::try_from(config.concurrency).unwrap_or(1).max(1);
    let mut pending = items.iter().enumerate();
    // Ordered: results come out in element order (whatever order they finish in), so the
    // output is in element order and the failure reported is that of the earliest
    // element among those started.
    let mut in_flight = FuturesOrdered::new();
    let mut outputs = Vec::with_capacity(items.len());
    loop {
        while in_flight.len() < concurrency {
            let Some((index, item)) = pending.next() else {
                break;
            };
            in_flight.push_back(iteration(config, attempt, services, index, item));
        }
        match in_flight.next().await {
            None => return StepOutcome::Succeeded(Value::Array(outputs)),
            Some(Ok(output)) => outputs.push(output),
            // Returning drops the iterations still in flight, which abandons them.
            Some(Err(error)) => return StepOutcome::Failed(error),
        }
    }
}

/// The elements to iterate over: `items` rendered in the loop node's own scope.
fn items(config: &LoopConfig, scope: &Value) -> Result<Vec<Value>, String> {
    let rendered = Scope::workflow(scope)
        .render(&Value::String(config.items.clone()))
        .map_err(|error| format!("items: {}", error.message))?;
    let Value::Array(items) = rendered else {
        return Err(format!(
            "items: `{}` must evaluate to an array, and it evaluated to {}",
            config.items,
            type_name(&rendered)
        ));
    };
    let limit = usize::try_from(config.max_items).unwrap_or(usize::MAX);
    if items.len() > limit {
        return Err(format!(
            "items: {} elements, more than the loop's limit of {} (`maxItems`)",
            items.len(),
            config.max_items
        ));
    }
    Ok(items)
}

/// Runs the body for element `index`; the output of its last step, or an error naming the
/// element and the step.
async fn iteration(
    config: &LoopConfig,
    attempt: &Attempt<'_>,
    services: &NodeServices,
    index: usize,
    item: &Value,
) -> Result<Value, String> {
    if let Some(done) = attempt.loop_progress.done.and_then(|done| done.get(&index)) {
        return Ok(done.clone());
    }
    let mut scope = iteration_scope(attempt.scope, index, item);
    let mut last = Value::Null;
    for step in &config.steps {
        let output = body_step(step, &scope, attempt, services, index)
            .await
            .map_err(|error| format!("item {index}, step {}: {error}", step.id))?;
        if let Some(Value::Object(steps)) = scope.get_mut("steps") {
            steps.insert(step.id.to_string(), output.clone());
        }
        last = output;
    }
    if let Some(report) = attempt.loop_progress.report {
        // Only the attempt's end closes the receiver, and then nobody needs the report.
        let _ = report.send((index, last.clone()));
    }
    Ok(last)
}

/// The loop's scope plus `item` and `index`, also under `run` for `code` steps (whose
/// function only has `trigger, steps, vars, run`).
fn iteration_scope(loop_scope: &Value, index: usize, item: &Value) -> Value {
    let mut scope = match loop_scope {
        Value::Object(values) => values.clone(),
        _ => Map::new(),
    };
    if !matches!(scope.get("steps"), Some(Value::Object(_))) {
        scope.insert("steps".to_owned(), Value::Object(Map::new()));
    }
    if let Some(Value::Object(run)) = scope.get_mut("run") {
        run.insert("item".to_owned(), item.clone());
        run.insert("index".to_owned(), json!(index));
    }
    scope.insert("item".to_owned(), item.clone());
    scope.insert("index".to_owned(), json!(index));
    Value::Object(scope)
}

/// One body step with its own retry policy, waited out here.
async fn body_step(
    step: &LoopStep,
    scope: &Value,
    attempt: &Attempt<'_>,
    services: &NodeServices,
    index: usize,
) -> Result<Value, String> {
    let key = attempt.idempotency_key.for_iteration(index, &step.id);
    let mut attempt_number = 1;
    loop {
        let outcome = execute_body_step(
            &step.kind,
            Scope::loop_body(scope),
            attempt.workspace_id,
            &key,
            services,
        )
        .await;
        match outcome {
            StepOutcome::Succeeded(output) | StepOutcome::Branched { output, .. } => {
                return Ok(output);
            }
            StepOutcome::Failed(error) => {
                let random = UnitFraction::new(rand::random::<f64>()).unwrap_or(UnitFraction::ZERO);
                match next_attempt(&step.retry, attempt_number, random) {
                    RetryDecision::Retry { attempt, delay } => {
                        tracing::debug!(
                            loop.index = index,
                            step.id = %step.id,
                            %error,
                            "a loop body step failed; retrying"
                        );
                        tokio::time::sleep(delay).await;
                        attempt_number = attempt;
                    }
                    RetryDecision::GiveUp if attempt_number > 1 => {
                        return Err(format!("{error} (after {attempt_number} attempts)"));
                    }
                    RetryDecision::GiveUp => return Err(error),
                }
            }
        }
    }
}
