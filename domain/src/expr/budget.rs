//! The work limit of one render.
//!
//! Expressions have no loops, so the number of operations is bounded by the source length;
//! what is not bounded is the size of the data they touch (`steps == steps` on a large run,
//! `[steps, steps]`, `len(huge)` repeated a thousand times). Every operation whose cost
//! grows with its data therefore pays for that data here, so one render stays cheap whatever
//! the scope holds.

use serde_json::Value;

use super::{EvalError, MAX_EVAL_STEPS};

/// How many bytes of text one step pays for.
const TEXT_BYTES_PER_STEP: usize = 16;

#[derive(Debug)]
pub(crate) struct Budget {
    remaining: u64,
}

impl Budget {
    pub(crate) fn new() -> Self {
        Self::with_steps(MAX_EVAL_STEPS)
    }

    pub(crate) fn with_steps(steps: u64) -> Self {
        Self { remaining: steps }
    }

    pub(crate) fn spend(&mut self, steps: u64) -> Result<(), EvalError> {
        match self.remaining.checked_sub(steps) {
            Some(left) => {
                self.remaining = left;
                Ok(())
            }
            None => {
                self.remaining = 0;
                Err(EvalError::new(format!(
                    "the expression does too much work (more than {MAX_EVAL_STEPS} steps)"
                )))
            }
        }
    }

    /// Pays for scanning or copying `bytes` of text.
    pub(crate) fn spend_text(&mut self, bytes: usize) -> Result<(), EvalError> {
        self.spend(1 + (bytes / TEXT_BYTES_PER_STEP) as u64)
    }

    /// Pays for copying `value`: one step per node plus its text. Stops walking as soon as
    /// the budget runs out, so a huge value costs no more than the budget to reject.
    pub(crate) fn spend_copy(&mut self, value: &Value) -> Result<(), EvalError> {
        let mut pending = vec![value];
        while let Some(node) = pending.pop() {
            match node {
                Value::String(s) => self.spend_text(s.len())?,
                Value::Array(items) => {
                    self.spend(1)?;
                    pending.extend(items);
                }
                Value::Object(map) => {
                    self.spend(1)?;
                    for (key, item) in map {
                        self.spend_text(key.len())?;
                        pending.push(item);
                    }
                }
                Value::Null | Value::Bool(_) | Value::Number(_) => self.spend(1)?,
            }
        }
        Ok(())
    }
}
