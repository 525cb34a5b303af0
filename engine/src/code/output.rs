//! The returned JavaScript value as a `serde_json::Value`.
//!
//! Serialisation is QuickJS's own JSON.stringify, called through the C API so that author
//! code cannot have replaced it, with a native replacer that refuses what JSON would
//! otherwise silently turn into `null` or `{}` (NaN, Infinity, functions, promises,
//! errors) or cannot represent at all (BigInt, symbols). Cycles are refused by
//! JSON.stringify itself. The text is then size-checked and parsed by serde_json, whose
//! nesting limit keeps the value safe to hand to the rest of the system.

use std::cell::RefCell;
use std::rc::Rc;

use rquickjs::function::This;
use rquickjs::{Ctx, Exception, Function, Value};

/// Why the returned value could not be turned into JSON.
pub(super) enum OutputFailure {
    /// The value holds something JSON cannot say; the text says what and where.
    Refused(String),
    /// The JSON text is longer than the limit.
    TooLarge,
    /// JavaScript threw during serialisation (a cycle, a throwing `toJSON`, an
    /// interrupt, memory); the exception is still pending on the context.
    Js(rquickjs::Error),
}

pub(super) fn to_json<'js>(
    ctx: &Ctx<'js>,
    value: Value<'js>,
    max_bytes: usize,
) -> Result<serde_json::Value, OutputFailure> {
    let refusal: Rc<RefCell<Option<String>>> = Rc::default();
    let replacer = refusing_replacer(ctx, &refusal).map_err(OutputFailure::Js)?;
    let json = match ctx.json_stringify_replacer(value, replacer) {
        Ok(json) => json,
        Err(error) => {
            return Err(match refusal.borrow_mut().take() {
                Some(reason) => {
                    // The exception was only the replacer's way to stop; the reason is
                    // the message.
                    let _ = ctx.catch();
                    OutputFailure::Refused(reason)
                }
                None => OutputFailure::Js(error),
            });
        }
    };
    // JSON.stringify gives nothing for a top-level `undefined`; the contract says null.
    let Some(json) = json else {
        return Ok(serde_json::Value::Null);
    };
    let json = json.to_string().map_err(OutputFailure::Js)?;
    if json.len() > max_bytes {
        return Err(OutputFailure::TooLarge);
    }
    serde_json::from_str(&json).map_err(|error| {
        OutputFailure::Refused(if error.to_string().contains("recursion limit") {
            "it is nested too deeply (at most 127 levels of arrays and objects)".to_owned()
        } else {
            format!("its JSON text does not parse ({error})")
        })
    })
}

/// A JSON.stringify replacer that stops serialisation, leaving its reason in `refusal`,
/// at the first value with no faithful JSON form.
fn refusing_replacer<'js>(
    ctx: &Ctx<'js>,
    refusal: &Rc<RefCell<Option<String>>>,
) -> rquickjs::Result<Function<'js>> {
    let refusal = Rc::clone(refusal);
    Function::new(
        ctx.clone(),
        move |ctx: Ctx<'js>, holder: This<Value<'js>>, key: String, value: Value<'js>| {
            match unfaithful_kind(&value) {
                None => Ok(value),
                Some(kind) => {
                    *refusal.borrow_mut() = Some(format!("{} is {kind}", place(&holder.0, &key)));
                    Err(Exception::throw_message(&ctx, "value has no JSON form"))
                }
            }
        },
    )
}

/// What `value` is, if JSON cannot carry it faithfully.
fn unfaithful_kind(value: &Value<'_>) -> Option<&'static str> {
    if value.as_number().is_some_and(|number| number.is_nan()) {
        Some("NaN")
    } else if value.as_number().is_some_and(|number| number.is_infinite()) {
        Some("Infinity (non-finite numbers have no JSON form)")
    } else if value.is_big_int() {
        Some("a BigInt (convert it with Number(x) or String(x))")
    } else if value.is_symbol() {
        Some("a symbol")
    } else if value.is_promise() {
        Some("a promise (did you forget `await`?)")
    } else if value.is_function() {
        Some("a function")
    } else if value.is_error() {
        Some("an Error object (return its `message` instead)")
    } else {
        None
    }
}

/// Where in the returned value `key` of `holder` is, for a person.
fn place(holder: &Value<'_>, key: &str) -> String {
    if key.is_empty() && !holder.is_array() {
        // JSON.stringify's root holder is `{"": value}`.
        "the returned value".to_owned()
    } else if holder.is_array() {
        format!("item {key}")
    } else {
        format!("property {key:?}")
    }
}
