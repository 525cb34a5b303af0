//! Functions over whole values: objects, JSON text, emptiness and defaults.

use serde_json::Value;

use super::Args;
use crate::expr::EvalError;
use crate::expr::budget::Budget;
use crate::expr::eval::{Val, null};

/// `default(x, d)`: `d` when `x` is `null` or `""`.
pub(super) fn default_value(args: Vec<Val<'_>>) -> Val<'_> {
    let mut args = args.into_iter();
    let first = args.next().unwrap_or_else(null);
    let blank = match first.as_ref() {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    };
    if blank {
        args.next().unwrap_or_else(null)
    } else {
        first
    }
}

pub(super) fn keys(args: &Args<'_>, budget: &mut Budget) -> Result<Value, EvalError> {
    let map = args.object(0)?;
    let mut keys = Vec::with_capacity(map.len());
    for key in map.keys() {
        budget.spend_text(key.len())?;
        keys.push(Value::from(key.as_str()));
    }
    Ok(Value::Array(keys))
}

pub(super) fn values(args: &Args<'_>, budget: &mut Budget) -> Result<Value, EvalError> {
    let map = args.object(0)?;
    let mut values = Vec::with_capacity(map.len());
    for value in map.values() {
        budget.spend_copy(value)?;
        values.push(value.clone());
    }
    Ok(Value::Array(values))
}

pub(super) fn parse_json(args: &Args<'_>, budget: &mut Budget) -> Result<Value, EvalError> {
    let text = args.string(0)?;
    budget.spend_text(text.len())?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| EvalError::new(format!("`parseJson()` got invalid JSON: {e}")))?;
    budget.spend_copy(&value)?;
    Ok(value)
}

pub(super) fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}
