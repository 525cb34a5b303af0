//! The run model's catalogue: status lifecycles, scheduler scenarios, the retry-from-node
//! reuse set, retry backoff, and properties of the scheduler over random graphs.

mod backoff;
mod keys;
mod properties;
mod reuse;
mod scheduler;
mod status;

use serde_json::{Value, json};

use crate::workflow::{Definition, validate_definition};

use super::{IfBranch, Scheduler, StepOutcome};

/// A definition the validator accepts; panics with its problems otherwise.
pub(super) fn definition(raw: Value) -> Definition {
    match validate_definition(&raw) {
        Ok(definition) => definition,
        Err(problems) => panic!("test definition is invalid: {problems:#?}"),
    }
}

/// A node of type `kind` with a minimal valid config.
pub(super) fn node(id: &str, kind: &str) -> Value {
    let config = match kind {
        "trigger.manual" => json!({}),
        "set" => json!({"fields": {"from": id}}),
        "if" => json!({"condition": true}),
        "respond" => json!({"status": 200}),
        "fail" => json!({"message": "stop"}),
        "delay" => json!({"ms": 1}),
        other => panic!("no test config for `{other}`"),
    };
    json!({"id": id, "type": kind, "config": config})
}

pub(super) fn edge(from: &str, to: &str) -> Value {
    json!({"from": from, "to": to})
}

pub(super) fn branch(from: &str, to: &str, label: &str) -> Value {
    json!({"from": from, "to": to, "branch": label})
}

pub(super) fn ok(value: Value) -> StepOutcome {
    StepOutcome::Succeeded(value)
}

pub(super) fn chose(condition: bool) -> StepOutcome {
    StepOutcome::Branched {
        output: json!({"passed": "through"}),
        branch: IfBranch::of(condition),
    }
}

pub(super) fn failed(message: &str) -> StepOutcome {
    StepOutcome::Failed(message.to_owned())
}

/// The ids of the nodes `scheduler` offers as ready.
pub(super) fn ready_ids(scheduler: &Scheduler) -> Vec<String> {
    scheduler.ready().map(|n| n.id().to_string()).collect()
}

pub(super) fn skipped_ids(scheduler: &Scheduler) -> Vec<String> {
    scheduler.skipped().map(|n| n.id().to_string()).collect()
}
