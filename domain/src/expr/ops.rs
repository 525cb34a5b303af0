//! What operators do to values: arithmetic, comparison, equality, truthiness and the text
//! form of a value.
//!
//! Policy: no silent coercion between types. The only cross-type rules are the ones a
//! template author relies on: `+` with a string makes text, `==` compares any two values
//! (different types are simply unequal), and every value has a truthiness and a text form.
//! Everything else names both types in its error.

use std::cmp::Ordering;
use std::io;

use serde_json::{Number, Value};

use super::ast::BinaryOp;
use super::budget::Budget;
use super::{EvalError, MAX_ARRAY_LEN, MAX_TEXT_BYTES};

/// Floats up to this magnitude hold every integer exactly, so an integral float this small
/// can become an integer without changing its value.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// A number in arithmetic: integers stay exact while they can.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub(crate) fn of(value: &Value) -> Option<Num> {
        match value {
            Value::Number(n) => Some(Num::from_number(n)),
            _ => None,
        }
    }

    pub(crate) fn from_number(n: &Number) -> Num {
        match n.as_i64() {
            Some(i) => Num::Int(i),
            // u64 beyond i64 and floats; both fit f64 (the former approximately).
            None => Num::Float(n.as_f64().unwrap_or(f64::NAN)),
        }
    }

    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// The JSON number, with integral floats stored as integers.
    pub(crate) fn into_value(self) -> Result<Value, EvalError> {
        match self {
            Num::Int(i) => Ok(Value::from(i)),
            Num::Float(f) if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER => {
                Ok(Value::from(f as i64))
            }
            Num::Float(f) => Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| EvalError::new("the result is not a finite number")),
        }
    }
}

/// The article-and-type phrase used in error messages: "a string", "null".
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The bare type name, as the `type()` function returns it.
pub(crate) fn type_word(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub(crate) fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => Num::from_number(n).as_f64() != 0.0,
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// An integer, or a float with an integral value that fits in i64.
pub(crate) fn integer_of(value: &Value) -> Option<i64> {
    match Num::of(value)? {
        Num::Int(i) => Some(i),
        Num::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(f as i64),
        Num::Float(_) => None,
    }
}

/// Shortest text of a number: `2` for an integral float, JSON's form otherwise.
pub(crate) fn number_text(n: &Number) -> String {
    match Num::from_number(n) {
        Num::Int(i) => i.to_string(),
        Num::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => (f as i64).to_string(),
        Num::Float(_) => n.to_string(),
    }
}

pub(crate) fn too_long_text() -> EvalError {
    EvalError::new(format!(
        "the text would be longer than {MAX_TEXT_BYTES} bytes"
    ))
}

pub(crate) fn too_long_array() -> EvalError {
    EvalError::new(format!(
        "the array would have more than {MAX_ARRAY_LEN} items"
    ))
}

/// Appends the text form of `value` to `out`, keeping `out` within [`MAX_TEXT_BYTES`].
pub(crate) fn append_text(
    out: &mut String,
    value: &Value,
    budget: &mut Budget,
) -> Result<(), EvalError> {
    match value {
        Value::Null => Ok(()),
        Value::String(s) => append_str(out, s, budget),
        Value::Bool(b) => append_str(out, if *b { "true" } else { "false" }, budget),
        Value::Number(n) => append_str(out, &number_text(n), budget),
        Value::Array(_) | Value::Object(_) => {
            let room = MAX_TEXT_BYTES.saturating_sub(out.len());
            let json = json_text(value, room, budget)?;
            out.push_str(&json);
            Ok(())
        }
    }
}

pub(crate) fn append_str(out: &mut String, s: &str, budget: &mut Budget) -> Result<(), EvalError> {
    if out.len() + s.len() > MAX_TEXT_BYTES {
        return Err(too_long_text());
    }
    budget.spend_text(s.len())?;
    out.push_str(s);
    Ok(())
}

pub(crate) fn to_text(value: &Value, budget: &mut Budget) -> Result<String, EvalError> {
    let mut out = String::new();
    append_text(&mut out, value, budget)?;
    Ok(out)
}

/// Compact JSON of `value`, refused once it passes `limit` bytes (so a huge value is never
/// serialized in full just to be rejected).
pub(crate) fn json_text(
    value: &Value,
    limit: usize,
    budget: &mut Budget,
) -> Result<String, EvalError> {
    let mut writer = LimitedWriter {
        bytes: Vec::new(),
        limit,
        budget,
        stopped: None,
    };
    let written = serde_json::to_writer(&mut writer, value);
    if let Some(reason) = writer.stopped {
        return Err(reason);
    }
    written.map_err(|e| EvalError::new(format!("cannot write JSON: {e}")))?;
    String::from_utf8(writer.bytes).map_err(|e| EvalError::new(format!("cannot write JSON: {e}")))
}

struct LimitedWriter<'b> {
    bytes: Vec<u8>,
    limit: usize,
    budget: &'b mut Budget,
    /// Why writing stopped, if it did; the io::Error serde_json sees carries no detail.
    stopped: Option<EvalError>,
}

impl io::Write for LimitedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let refused = if self.bytes.len() + buf.len() > self.limit {
            Some(too_long_text())
        } else {
            self.budget.spend_text(buf.len()).err()
        };
        if let Some(reason) = refused {
            self.stopped = Some(reason);
            return Err(io::Error::other("limit reached"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Deep JSON equality in which numbers compare by value (`1 == 1.0`). Walks with an explicit
/// stack, so deeply nested values cannot overflow the call stack.
pub(crate) fn deep_equal(a: &Value, b: &Value, budget: &mut Budget) -> Result<bool, EvalError> {
    let mut pending = vec![(a, b)];
    while let Some((x, y)) = pending.pop() {
        budget.spend(1)?;
        let same = match (x, y) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(p), Value::Bool(q)) => p == q,
            (Value::Number(p), Value::Number(q)) => numbers_equal(p, q),
            (Value::String(p), Value::String(q)) => {
                budget.spend_text(p.len().min(q.len()))?;
                p == q
            }
            (Value::Array(p), Value::Array(q)) => {
                let same_length = p.len() == q.len();
                if same_length {
                    pending.extend(p.iter().zip(q));
                }
                same_length
            }
            (Value::Object(p), Value::Object(q)) => {
                if p.len() != q.len() {
                    return Ok(false);
                }
                for (key, left) in p {
                    let Some(right) = q.get(key) else {
                        return Ok(false);
                    };
                    pending.push((left, right));
                }
                true
            }
            _ => false,
        };
        if !same {
            return Ok(false);
        }
    }
    Ok(true)
}

fn numbers_equal(a: &Number, b: &Number) -> bool {
    let exact = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (exact(a), exact(b)) {
        (Some(x), Some(y)) => x == y,
        _ => Num::from_number(a).as_f64() == Num::from_number(b).as_f64(),
    }
}

pub(crate) fn compare_numbers(a: Num, b: Num) -> Ordering {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        // Values are finite (JSON cannot hold NaN), so this order is total.
        _ => a
            .as_f64()
            .partial_cmp(&b.as_f64())
            .unwrap_or(Ordering::Equal),
    }
}

/// Evaluates every binary operator (the short-circuiting ones live in the evaluator).
pub(crate) fn binary(
    op: BinaryOp,
    a: &Value,
    b: &Value,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    match op {
        BinaryOp::Equal => deep_equal(a, b, budget).map(Value::Bool),
        BinaryOp::NotEqual => deep_equal(a, b, budget).map(|same| Value::Bool(!same)),
        BinaryOp::Less | BinaryOp::LessEqual | BinaryOp::Greater | BinaryOp::GreaterEqual => {
            let order = order(op, a, b, budget)?;
            Ok(Value::Bool(match op {
                BinaryOp::Less => order.is_lt(),
                BinaryOp::LessEqual => order.is_le(),
                BinaryOp::Greater => order.is_gt(),
                _ => order.is_ge(),
            }))
        }
        BinaryOp::Add => add(a, b, budget),
        BinaryOp::Subtract | BinaryOp::Multiply | BinaryOp::Divide | BinaryOp::Remainder => {
            match (Num::of(a), Num::of(b)) {
                (Some(x), Some(y)) => arithmetic(op, x, y)?.into_value(),
                _ => Err(mismatch(op, a, b)),
            }
        }
    }
}

fn mismatch(op: BinaryOp, a: &Value, b: &Value) -> EvalError {
    EvalError::new(format!(
        "cannot apply `{}` to {} and {}",
        op.symbol(),
        type_name(a),
        type_name(b)
    ))
}

fn order(op: BinaryOp, a: &Value, b: &Value, budget: &mut Budget) -> Result<Ordering, EvalError> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            Ok(compare_numbers(Num::from_number(x), Num::from_number(y)))
        }
        (Value::String(x), Value::String(y)) => {
            budget.spend_text(x.len().min(y.len()))?;
            Ok(x.as_str().cmp(y.as_str()))
        }
        _ => Err(EvalError::new(format!(
            "cannot compare {} with {} using `{}`: only two numbers or two strings compare",
            type_name(a),
            type_name(b),
            op.symbol()
        ))),
    }
}

fn add(a: &Value, b: &Value, budget: &mut Budget) -> Result<Value, EvalError> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            arithmetic(BinaryOp::Add, Num::from_number(x), Num::from_number(y))?.into_value()
        }
        (Value::String(_), _) | (_, Value::String(_)) => {
            let mut text = to_text(a, budget)?;
            append_text(&mut text, b, budget)?;
            Ok(Value::String(text))
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() + y.len() > MAX_ARRAY_LEN {
                return Err(too_long_array());
            }
            budget.spend_copy(a)?;
            budget.spend_copy(b)?;
            Ok(Value::Array(x.iter().chain(y).cloned().collect()))
        }
        _ => Err(mismatch(BinaryOp::Add, a, b)),
    }
}

/// Integer arithmetic while exact, float otherwise (as JavaScript would compute it).
pub(crate) fn arithmetic(op: BinaryOp, a: Num, b: Num) -> Result<Num, EvalError> {
    if matches!(op, BinaryOp::Divide | BinaryOp::Remainder) && b.as_f64() == 0.0 {
        let what = if op == BinaryOp::Divide {
            "division"
        } else {
            "remainder"
        };
        return Err(EvalError::new(format!("{what} by zero")));
    }
    if let (Num::Int(x), Num::Int(y)) = (a, b) {
        let exact = match op {
            BinaryOp::Add => x.checked_add(y),
            BinaryOp::Subtract => x.checked_sub(y),
            BinaryOp::Multiply => x.checked_mul(y),
            BinaryOp::Divide => x
                .checked_rem(y)
                .filter(|r| *r == 0)
                .and_then(|_| x.checked_div(y)),
            BinaryOp::Remainder => x.checked_rem(y),
            _ => None,
        };
        if let Some(n) = exact {
            return Ok(Num::Int(n));
        }
    }
    let (x, y) = (a.as_f64(), b.as_f64());
    let result = match op {
        BinaryOp::Add => x + y,
        BinaryOp::Subtract => x - y,
        BinaryOp::Multiply => x * y,
        BinaryOp::Divide => x / y,
        BinaryOp::Remainder => x % y,
        other => {
            return Err(EvalError::new(format!(
                "`{}` is not arithmetic",
                other.symbol()
            )));
        }
    };
    if result.is_finite() {
        Ok(Num::Float(result))
    } else {
        Err(EvalError::new(format!(
            "`{}` overflowed: the result is not a finite number",
            op.symbol()
        )))
    }
}

pub(crate) fn negate(value: &Value) -> Result<Value, EvalError> {
    match Num::of(value) {
        Some(Num::Int(i)) => match i.checked_neg() {
            Some(n) => Ok(Value::from(n)),
            None => Num::Float(-(i as f64)).into_value(),
        },
        Some(Num::Float(f)) => Num::Float(-f).into_value(),
        None => Err(EvalError::new(format!(
            "cannot apply `-` to {}",
            type_name(value)
        ))),
    }
}
