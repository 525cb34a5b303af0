//! Numeric functions. Results go through [`Num::into_value`], so integral results are
//! integers and non-finite ones are errors, as for the operators.

use serde_json::Value;

use super::{Args, Function};
use crate::expr::EvalError;
use crate::expr::budget::Budget;
use crate::expr::ops::{self, Num};

pub(super) fn parse_number(text: &str) -> Option<Num> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(Num::Int(i));
    }
    // Rust also reads "inf" and "NaN", which are not numbers a JSON value can hold.
    text.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Num::Float)
}

pub(super) fn int(args: &Args<'_>) -> Result<Value, EvalError> {
    match args.numeric(0)? {
        Num::Int(i) => Ok(Value::from(i)),
        Num::Float(f) => {
            let truncated = f.trunc();
            if truncated.abs() < 9.2e18 {
                Ok(Value::from(truncated as i64))
            } else {
                Err(EvalError::new(
                    "`int()` result does not fit in a 64-bit integer",
                ))
            }
        }
    }
}

pub(super) fn round(args: &Args<'_>) -> Result<Value, EvalError> {
    const MAX_DIGITS: i64 = 15;
    let digits = match args.given(1) {
        None => 0,
        Some(_) => args
            .integer(1)
            .ok()
            .filter(|d| (0..=MAX_DIGITS).contains(d))
            .ok_or_else(|| {
                EvalError::new(format!(
                    "`round()` expects an integer from 0 to {MAX_DIGITS} as argument 2"
                ))
            })?,
    };
    let x = args.number(0)?;
    let Num::Float(f) = x else {
        return x.into_value();
    };
    let factor = 10_f64.powi(i32::try_from(digits).unwrap_or(0));
    let scaled = f * factor;
    // A value too large to scale has no digits that far right to round.
    let rounded = if scaled.is_finite() {
        scaled.round() / factor
    } else {
        f
    };
    Num::Float(rounded).into_value()
}

pub(super) fn rounded(x: Num, to_integer: fn(f64) -> f64) -> Result<Value, EvalError> {
    match x {
        Num::Int(i) => Ok(Value::from(i)),
        Num::Float(f) => Num::Float(to_integer(f)).into_value(),
    }
}

pub(super) fn abs(x: Num) -> Result<Value, EvalError> {
    match x {
        Num::Int(i) => match i.checked_abs() {
            Some(a) => Ok(Value::from(a)),
            None => Num::Float((i as f64).abs()).into_value(),
        },
        Num::Float(f) => Num::Float(f.abs()).into_value(),
    }
}

pub(super) fn extreme(args: &Args<'_>, budget: &mut Budget) -> Result<Value, EvalError> {
    let candidates: Vec<&Value> = match (args.values.len(), args.get(0)) {
        (1, Value::Array(items)) => items.iter().collect(),
        _ => args.values.iter().map(|v| v.as_ref()).collect(),
    };
    let want_max = args.function == Function::Max;
    let mut best: Option<(&Value, Num)> = None;
    for candidate in candidates {
        budget.spend(1)?;
        let Some(n) = Num::of(candidate) else {
            return Err(EvalError::new(format!(
                "`{}()` expects numbers, got {}",
                args.function.name(),
                ops::type_name(candidate)
            )));
        };
        let better = best.is_none_or(|(_, current)| {
            let order = ops::compare_numbers(n, current);
            if want_max {
                order.is_gt()
            } else {
                order.is_lt()
            }
        });
        if better {
            best = Some((candidate, n));
        }
    }
    Ok(best.map_or(Value::Null, |(value, _)| value.clone()))
}
