//! Evaluates a parsed expression against a scope.
//!
//! Values flow as `Cow`s: reading `steps.fetch.body.items[0]` borrows from the scope all the
//! way down and copies nothing, and a copy happens (and is paid for in the [`Budget`]) only
//! where a new value has to own its parts, such as an array literal. Recursion follows the
//! expression tree, whose depth the parser bounds.

use std::borrow::Cow;

use serde_json::Value;

use super::ast::{Expr, ExprKind, LogicalOp, UnaryOp};
use super::budget::Budget;
use super::{EvalError, functions, ops};

pub(crate) type Val<'a> = Cow<'a, Value>;

static NULL: Value = Value::Null;

pub(crate) fn null<'a>() -> Val<'a> {
    Cow::Borrowed(&NULL)
}

/// Evaluates one expression with a budget of its own.
pub(crate) fn evaluate(expr: &Expr, scope: &Value) -> Result<Value, EvalError> {
    let mut budget = Budget::new();
    evaluate_with(expr, scope, &mut budget).map(Cow::into_owned)
}

/// Evaluates one expression, spending from a budget shared with others (one template).
pub(crate) fn evaluate_with<'a>(
    expr: &'a Expr,
    scope: &'a Value,
    budget: &mut Budget,
) -> Result<Val<'a>, EvalError> {
    Evaluator { scope, budget }.eval(expr)
}

struct Evaluator<'a, 'b> {
    scope: &'a Value,
    budget: &'b mut Budget,
}

impl<'a> Evaluator<'a, '_> {
    fn eval(&mut self, expr: &'a Expr) -> Result<Val<'a>, EvalError> {
        self.budget.spend(1)?;
        match &expr.kind {
            ExprKind::Literal(value) => Ok(Cow::Borrowed(value)),
            ExprKind::Root(name) => Ok(self.scope.get(*name).map_or_else(null, Cow::Borrowed)),
            ExprKind::Array(items) => {
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    let value = self.eval(item)?;
                    values.push(self.own(value)?);
                }
                Ok(Cow::Owned(Value::Array(values)))
            }
            ExprKind::Member { object, name } => {
                let base = self.eval(object)?;
                member(base, name, self.budget)
            }
            ExprKind::Index { object, index } => {
                let base = self.eval(object)?;
                let key = self.eval(index)?;
                index_into(base, &key, self.budget)
            }
            ExprKind::Unary { op, operand } => {
                let value = self.eval(operand)?;
                let result = match op {
                    UnaryOp::Not => Value::Bool(!ops::is_truthy(&value)),
                    UnaryOp::Negate => ops::negate(&value)?,
                };
                Ok(Cow::Owned(result))
            }
            ExprKind::Binary { op, left, right } => {
                let a = self.eval(left)?;
                let b = self.eval(right)?;
                ops::binary(*op, &a, &b, self.budget).map(Cow::Owned)
            }
            ExprKind::Logical { op, left, right } => {
                let a = self.eval(left)?;
                match op {
                    LogicalOp::Coalesce if a.is_null() => self.eval(right),
                    LogicalOp::Coalesce => Ok(a),
                    LogicalOp::And if !ops::is_truthy(&a) => Ok(Cow::Owned(Value::Bool(false))),
                    LogicalOp::Or if ops::is_truthy(&a) => Ok(Cow::Owned(Value::Bool(true))),
                    LogicalOp::And | LogicalOp::Or => {
                        let b = self.eval(right)?;
                        Ok(Cow::Owned(Value::Bool(ops::is_truthy(&b))))
                    }
                }
            }
            ExprKind::Conditional {
                condition,
                then,
                otherwise,
            } => {
                let condition = self.eval(condition)?;
                let chosen = if ops::is_truthy(&condition) {
                    then
                } else {
                    otherwise
                };
                self.eval(chosen)
            }
            ExprKind::Call { function, args } => {
                let mut values = Vec::with_capacity(args.len());
                for arg in args {
                    values.push(self.eval(arg)?);
                }
                functions::call(*function, values, self.budget)
            }
        }
    }

    fn own(&mut self, value: Val<'a>) -> Result<Value, EvalError> {
        match value {
            Cow::Owned(owned) => Ok(owned),
            Cow::Borrowed(borrowed) => {
                self.budget.spend_copy(borrowed)?;
                Ok(borrowed.clone())
            }
        }
    }
}

/// Where a part of a value sits.
enum Slot<'k> {
    Key(&'k str),
    Position(usize),
}

/// The part of `base` at `slot`, or `null`; borrowed from a borrowed base, moved out of an
/// owned one, never copied.
fn take<'a>(base: Val<'a>, slot: Slot<'_>) -> Val<'a> {
    match base {
        Cow::Borrowed(value) => {
            let part = match (value, slot) {
                (Value::Object(map), Slot::Key(key)) => map.get(key),
                (Value::Array(items), Slot::Position(i)) => items.get(i),
                _ => None,
            };
            part.map_or_else(null, Cow::Borrowed)
        }
        Cow::Owned(value) => {
            let part = match (value, slot) {
                (Value::Object(mut map), Slot::Key(key)) => map.remove(key),
                (Value::Array(mut items), Slot::Position(i)) if i < items.len() => {
                    Some(items.swap_remove(i))
                }
                _ => None,
            };
            part.map_or_else(null, Cow::Owned)
        }
    }
}

/// `base.name`: an object's member, the `length` of an array or string, otherwise `null`.
fn member<'a>(base: Val<'a>, name: &str, budget: &mut Budget) -> Result<Val<'a>, EvalError> {
    let length = match base.as_ref() {
        Value::Object(_) => return Ok(take(base, Slot::Key(name))),
        Value::Array(items) if name == "length" => items.len(),
        Value::String(s) if name == "length" => {
            budget.spend_text(s.len())?;
            s.chars().count()
        }
        _ => return Ok(null()),
    };
    Ok(Cow::Owned(Value::from(length)))
}

/// `base[key]`: arrays and strings by integer (negative from the end), objects by string
/// (or integer, as its text), `null` for anything read from `null`, a number or a boolean.
fn index_into<'a>(base: Val<'a>, key: &Value, budget: &mut Budget) -> Result<Val<'a>, EvalError> {
    match base.as_ref() {
        Value::Array(items) => {
            let position = position_in(key, items.len(), "an array")?;
            Ok(position.map_or_else(null, |i| take(base, Slot::Position(i))))
        }
        Value::Object(_) => match key {
            Value::String(name) => Ok(take(base, Slot::Key(name))),
            _ => match ops::integer_of(key) {
                Some(i) => Ok(take(base, Slot::Key(&i.to_string()))),
                None => Err(EvalError::new(format!(
                    "an object key must be a string, got {}",
                    ops::type_name(key)
                ))),
            },
        },
        Value::String(s) => {
            budget.spend_text(s.len())?;
            let position = position_in(key, s.chars().count(), "a string")?;
            Ok(position
                .and_then(|i| s.chars().nth(i))
                .map_or_else(null, |c| Cow::Owned(Value::String(c.to_string()))))
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(null()),
    }
}

/// The position `key` names in a sequence of `len`, `None` when out of range.
fn position_in(key: &Value, len: usize, what: &str) -> Result<Option<usize>, EvalError> {
    let Some(i) = ops::integer_of(key) else {
        return Err(EvalError::new(format!(
            "an index into {what} must be an integer, got {}",
            ops::type_name(key)
        )));
    };
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let resolved = if i < 0 { len + i } else { i };
    Ok(usize::try_from(resolved).ok().filter(|_| resolved < len))
}
