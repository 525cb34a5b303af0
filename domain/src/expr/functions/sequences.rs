//! Functions over strings and arrays.

use serde_json::Value;

use super::{Args, Function, checked_text};
use crate::expr::budget::Budget;
use crate::expr::ops;
use crate::expr::{EvalError, MAX_ARRAY_LEN, MAX_TEXT_BYTES};

pub(super) fn len(args: &Args<'_>, budget: &mut Budget) -> Result<Value, EvalError> {
    let n = match args.get(0) {
        Value::String(s) => {
            budget.spend_text(s.len())?;
            s.chars().count()
        }
        Value::Array(items) => items.len(),
        Value::Object(map) => map.len(),
        Value::Null => 0,
        _ => return Err(args.wrong(0, "a string, an array or an object")),
    };
    Ok(Value::from(n))
}

pub(super) fn map_string(
    args: &Args<'_>,
    budget: &mut Budget,
    change: impl Fn(&str) -> String,
) -> Result<Value, EvalError> {
    let s = args.string(0)?;
    budget.spend_text(s.len())?;
    checked_text(change(s))
}

pub(super) fn contains(args: &Args<'_>, budget: &mut Budget) -> Result<Value, EvalError> {
    let found = match args.get(0) {
        Value::String(haystack) => {
            let needle = args.string(1)?;
            budget.spend_text(haystack.len())?;
            haystack.contains(needle)
        }
        Value::Array(items) => {
            let needle = args.get(1);
            let mut found = false;
            for item in items {
                if ops::deep_equal(item, needle, budget)? {
                    found = true;
                    break;
                }
            }
            found
        }
        Value::Object(map) => map.contains_key(args.string(1)?),
        _ => return Err(args.wrong(0, "a string, an array or an object")),
    };
    Ok(Value::Bool(found))
}

pub(super) fn affix(args: &Args<'_>, budget: &mut Budget) -> Result<Value, EvalError> {
    let (s, affix) = (args.string(0)?, args.string(1)?);
    budget.spend_text(affix.len())?;
    Ok(Value::Bool(if args.function == Function::StartsWith {
        s.starts_with(affix)
    } else {
        s.ends_with(affix)
    }))
}

pub(super) fn split(args: &Args<'_>, budget: &mut Budget) -> Result<Value, EvalError> {
    let (s, separator) = (args.string(0)?, args.string(1)?);
    budget.spend_text(s.len())?;
    let mut parts = Vec::new();
    let mut push = |part: &str| {
        if parts.len() >= MAX_ARRAY_LEN {
            return Err(ops::too_long_array());
        }
        budget.spend(1)?;
        parts.push(Value::from(part));
        Ok(())
    };
    if separator.is_empty() {
        let mut buf = [0; 4];
        for c in s.chars() {
            push(c.encode_utf8(&mut buf))?;
        }
    } else {
        for part in s.split(separator) {
            push(part)?;
        }
    }
    Ok(Value::Array(parts))
}

pub(super) fn join(args: &Args<'_>, budget: &mut Budget) -> Result<Value, EvalError> {
    let items = args.array(0)?;
    let separator = match args.given(1) {
        None => ",",
        Some(_) => args.string(1)?,
    };
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            ops::append_str(&mut out, separator, budget)?;
        }
        ops::append_text(&mut out, item, budget)?;
    }
    Ok(Value::String(out))
}

pub(super) fn replace(args: &Args<'_>, budget: &mut Budget) -> Result<Value, EvalError> {
    let (s, from, to) = (args.string(0)?, args.string(1)?, args.string(2)?);
    if from.is_empty() {
        return Err(EvalError::new(
            "`replace()` expects a non-empty string to find as argument 2",
        ));
    }
    budget.spend_text(s.len())?;
    let count = s.matches(from).count();
    // Checked before building, so a small input cannot make a huge output first.
    let new_len = (s.len() - count * from.len()).saturating_add(count.saturating_mul(to.len()));
    if new_len > MAX_TEXT_BYTES {
        return Err(ops::too_long_text());
    }
    budget.spend_text(new_len)?;
    Ok(Value::String(s.replace(from, to)))
}

/// A `slice` bound: negative counts from the end, and it is clamped to `0..=len`.
pub(super) fn bound(position: i64, len: usize) -> usize {
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let resolved = if position < 0 {
        len_i.saturating_add(position).max(0)
    } else {
        position.min(len_i)
    };
    usize::try_from(resolved).unwrap_or(0)
}

pub(super) fn slice(args: &Args<'_>, budget: &mut Budget) -> Result<Value, EvalError> {
    let start = args.integer(1)?;
    let end = match args.given(2) {
        None | Some(Value::Null) => None,
        Some(_) => Some(args.integer(2)?),
    };
    let range = |len: usize| {
        let from = bound(start, len);
        let to = end.map_or(len, |e| bound(e, len));
        (from, to.max(from))
    };
    match args.get(0) {
        Value::String(s) => {
            budget.spend_text(s.len())?;
            let (from, to) = range(s.chars().count());
            Ok(Value::String(
                s.chars().skip(from).take(to - from).collect(),
            ))
        }
        Value::Array(items) => {
            let (from, to) = range(items.len());
            let part = &items[from..to];
            for item in part {
                budget.spend_copy(item)?;
            }
            Ok(Value::Array(part.to_vec()))
        }
        _ => Err(args.wrong(0, "a string or an array")),
    }
}
