//! The function library: a fixed set of pure functions, checked by name and number of
//! arguments at parse time.
//!
//! | function | does |
//! |---|---|
//! | `len(x)` | characters of a string, items of an array, keys of an object; `0` for `null` |
//! | `lower(s)` `upper(s)` `trim(s)` | the string changed |
//! | `contains(x, y)` | substring of a string, deep-equal item of an array, key of an object |
//! | `startsWith(s, p)` `endsWith(s, p)` | whether `s` starts or ends with `p` |
//! | `split(s, sep)` | the parts of `s`; an empty `sep` splits into characters |
//! | `join(a, sep = ",")` | the items' text forms joined |
//! | `replace(s, from, to)` | every occurrence of `from` replaced |
//! | `slice(x, start, end?)` | part of a string (by character) or array; negative counts from the end |
//! | `keys(o)` `values(o)` | an object's keys or values, in key order |
//! | `string(x)` | the text form, as interpolation writes it |
//! | `number(x)` `int(x)` | a number from a number, a numeric string or a boolean; `int` truncates |
//! | `round(x, digits = 0)` `floor(x)` `ceil(x)` `abs(x)` | rounding (half away from zero) and magnitude |
//! | `min(...)` `max(...)` | of numbers, given as arguments or as one array; `null` for an empty array |
//! | `json(x)` `parseJson(s)` | to and from JSON text |
//! | `type(x)` | `"null"`, `"boolean"`, `"number"`, `"string"`, `"array"` or `"object"` |
//! | `default(x, d)` | `d` when `x` is `null` or `""`, else `x` |
//! | `coalesce(a, b, ...)` | the first argument that is not `null` |
//! | `isEmpty(x)` | whether `x` is `null`, `""`, `[]` or `{}` |
//!
//! Policy: a function given the wrong type fails with a message naming the function, the
//! argument and the type; only `len`, `string`, `json`, `type`, `default`, `coalesce` and
//! `isEmpty` accept `null`, so a missing field surfaces instead of turning into `""`.

mod data;
mod numbers;
mod sequences;

use std::borrow::Cow;

use serde_json::Value;

use super::budget::Budget;
use super::eval::{Val, null};
use super::ops::{self, Num};
use super::{EvalError, MAX_TEXT_BYTES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Len,
    Lower,
    Upper,
    Trim,
    Contains,
    StartsWith,
    EndsWith,
    Split,
    Join,
    Replace,
    Slice,
    Keys,
    Values,
    String,
    Number,
    Int,
    Round,
    Floor,
    Ceil,
    Abs,
    Min,
    Max,
    Json,
    ParseJson,
    Type,
    Default,
    Coalesce,
    IsEmpty,
}

impl Function {
    pub(crate) const ALL: [Function; 28] = [
        Function::Len,
        Function::Lower,
        Function::Upper,
        Function::Trim,
        Function::Contains,
        Function::StartsWith,
        Function::EndsWith,
        Function::Split,
        Function::Join,
        Function::Replace,
        Function::Slice,
        Function::Keys,
        Function::Values,
        Function::String,
        Function::Number,
        Function::Int,
        Function::Round,
        Function::Floor,
        Function::Ceil,
        Function::Abs,
        Function::Min,
        Function::Max,
        Function::Json,
        Function::ParseJson,
        Function::Type,
        Function::Default,
        Function::Coalesce,
        Function::IsEmpty,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Function::Len => "len",
            Function::Lower => "lower",
            Function::Upper => "upper",
            Function::Trim => "trim",
            Function::Contains => "contains",
            Function::StartsWith => "startsWith",
            Function::EndsWith => "endsWith",
            Function::Split => "split",
            Function::Join => "join",
            Function::Replace => "replace",
            Function::Slice => "slice",
            Function::Keys => "keys",
            Function::Values => "values",
            Function::String => "string",
            Function::Number => "number",
            Function::Int => "int",
            Function::Round => "round",
            Function::Floor => "floor",
            Function::Ceil => "ceil",
            Function::Abs => "abs",
            Function::Min => "min",
            Function::Max => "max",
            Function::Json => "json",
            Function::ParseJson => "parseJson",
            Function::Type => "type",
            Function::Default => "default",
            Function::Coalesce => "coalesce",
            Function::IsEmpty => "isEmpty",
        }
    }

    /// The least and the most arguments; `None` means any number.
    pub(crate) fn arity(self) -> (usize, Option<usize>) {
        match self {
            Function::Len
            | Function::Lower
            | Function::Upper
            | Function::Trim
            | Function::Keys
            | Function::Values
            | Function::String
            | Function::Number
            | Function::Int
            | Function::Floor
            | Function::Ceil
            | Function::Abs
            | Function::Json
            | Function::ParseJson
            | Function::Type
            | Function::IsEmpty => (1, Some(1)),
            Function::Contains
            | Function::StartsWith
            | Function::EndsWith
            | Function::Split
            | Function::Default => (2, Some(2)),
            Function::Join | Function::Round => (1, Some(2)),
            Function::Slice => (2, Some(3)),
            Function::Replace => (3, Some(3)),
            Function::Min | Function::Max | Function::Coalesce => (1, None),
        }
    }

    /// "1 argument", "1 or 2 arguments", "at least 1 argument".
    pub(crate) fn arity_text(self) -> String {
        let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
        match self.arity() {
            (least, None) => format!("at least {least} {}", plural(least)),
            (least, Some(most)) if least == most => format!("{least} {}", plural(least)),
            (least, Some(most)) => format!("{least} or {most} arguments"),
        }
    }

    pub(crate) fn lookup(name: &str) -> Option<Function> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// For "did you mean" hints: `startswith` finds `startsWith`.
    pub(crate) fn lookup_ignoring_case(name: &str) -> Option<Function> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }
}

/// Calls `function` on evaluated arguments, whose number the parser has already checked.
pub(crate) fn call<'a>(
    function: Function,
    args: Vec<Val<'a>>,
    budget: &mut Budget,
) -> Result<Val<'a>, EvalError> {
    let args = Args {
        function,
        values: args,
    };
    let owned = match function {
        // These return an argument unchanged, so they keep its borrow instead of copying it.
        Function::Default => return Ok(data::default_value(args.values)),
        Function::Coalesce => {
            return Ok(args
                .values
                .into_iter()
                .find(|v| !v.is_null())
                .unwrap_or_else(null));
        }
        Function::Len => sequences::len(&args, budget)?,
        Function::Lower => sequences::map_string(&args, budget, str::to_lowercase)?,
        Function::Upper => sequences::map_string(&args, budget, str::to_uppercase)?,
        Function::Trim => sequences::map_string(&args, budget, |s| s.trim().to_owned())?,
        Function::Contains => sequences::contains(&args, budget)?,
        Function::StartsWith | Function::EndsWith => sequences::affix(&args, budget)?,
        Function::Split => sequences::split(&args, budget)?,
        Function::Join => sequences::join(&args, budget)?,
        Function::Replace => sequences::replace(&args, budget)?,
        Function::Slice => sequences::slice(&args, budget)?,
        Function::Keys => data::keys(&args, budget)?,
        Function::Values => data::values(&args, budget)?,
        Function::String => Value::String(ops::to_text(args.get(0), budget)?),
        Function::Number => args.numeric(0)?.into_value()?,
        Function::Int => numbers::int(&args)?,
        Function::Round => numbers::round(&args)?,
        Function::Floor => numbers::rounded(args.number(0)?, f64::floor)?,
        Function::Ceil => numbers::rounded(args.number(0)?, f64::ceil)?,
        Function::Abs => numbers::abs(args.number(0)?)?,
        Function::Min | Function::Max => numbers::extreme(&args, budget)?,
        Function::Json => Value::String(ops::json_text(args.get(0), MAX_TEXT_BYTES, budget)?),
        Function::ParseJson => data::parse_json(&args, budget)?,
        Function::Type => Value::from(ops::type_word(args.get(0))),
        Function::IsEmpty => Value::Bool(data::is_empty(args.get(0))),
    };
    Ok(Cow::Owned(owned))
}

struct Args<'a> {
    function: Function,
    values: Vec<Val<'a>>,
}

impl Args<'_> {
    /// Argument `i`, `null` when an optional one was left out.
    fn get(&self, i: usize) -> &Value {
        self.values.get(i).map_or(&Value::Null, |v| v.as_ref())
    }

    fn given(&self, i: usize) -> Option<&Value> {
        self.values.get(i).map(|v| v.as_ref())
    }

    fn wrong(&self, i: usize, expected: &str) -> EvalError {
        let name = self.function.name();
        let got = ops::type_name(self.get(i));
        if self.function.arity() == (1, Some(1)) {
            EvalError::new(format!("`{name}()` expects {expected}, got {got}"))
        } else {
            EvalError::new(format!(
                "`{name}()` expects {expected} as argument {}, got {got}",
                i + 1
            ))
        }
    }

    fn string(&self, i: usize) -> Result<&str, EvalError> {
        match self.get(i) {
            Value::String(s) => Ok(s),
            _ => Err(self.wrong(i, "a string")),
        }
    }

    fn array(&self, i: usize) -> Result<&Vec<Value>, EvalError> {
        match self.get(i) {
            Value::Array(items) => Ok(items),
            _ => Err(self.wrong(i, "an array")),
        }
    }

    fn object(&self, i: usize) -> Result<&serde_json::Map<String, Value>, EvalError> {
        match self.get(i) {
            Value::Object(map) => Ok(map),
            _ => Err(self.wrong(i, "an object")),
        }
    }

    fn number(&self, i: usize) -> Result<Num, EvalError> {
        Num::of(self.get(i)).ok_or_else(|| self.wrong(i, "a number"))
    }

    fn integer(&self, i: usize) -> Result<i64, EvalError> {
        ops::integer_of(self.get(i)).ok_or_else(|| self.wrong(i, "an integer"))
    }

    /// A number read from a number, a numeric string or a boolean.
    fn numeric(&self, i: usize) -> Result<Num, EvalError> {
        match self.get(i) {
            Value::Number(n) => Ok(Num::from_number(n)),
            Value::Bool(b) => Ok(Num::Int(i64::from(*b))),
            Value::String(s) => numbers::parse_number(s.trim()).ok_or_else(|| {
                EvalError::new(format!(
                    "`{}()` cannot read {} as a number",
                    self.function.name(),
                    quoted_excerpt(s)
                ))
            }),
            _ => Err(self.wrong(i, "a number, a numeric string or a boolean")),
        }
    }
}

/// A string for an error message, cut short so a huge input cannot flood it.
fn quoted_excerpt(s: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut excerpt: String = s.chars().take(MAX_CHARS).collect();
    if excerpt.len() < s.len() {
        excerpt.push('…');
    }
    format!("{excerpt:?}")
}

fn checked_text(text: String) -> Result<Value, EvalError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(ops::too_long_text());
    }
    Ok(Value::String(text))
}
