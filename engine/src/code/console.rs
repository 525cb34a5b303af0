//! `console.log` and friends, writing to an in-memory log book with a size cap instead of
//! to any stream: the sandbox has no I/O, and the author still gets their debug output.

use std::cell::RefCell;
use std::rc::Rc;

use rquickjs::function::Rest;
use rquickjs::{Coerced, Ctx, FromJs, Function, Object, Value};

/// Appended once when later lines were dropped for lack of room.
const DROPPED_MARKER: &str = "[further console output dropped: log limit reached]";

/// The `console` lines of one run, at most `capacity` bytes of them.
pub(super) struct LogBook {
    lines: Vec<String>,
    bytes_left: usize,
    full: bool,
}

impl LogBook {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            lines: Vec::new(),
            bytes_left: capacity,
            full: false,
        }
    }

    pub(super) fn into_lines(self) -> Vec<String> {
        self.lines
    }

    fn is_full(&self) -> bool {
        self.full
    }

    pub(super) fn write(&mut self, mut line: String) {
        if self.full {
            return;
        }
        if line.len() > self.bytes_left {
            line.truncate(floor_char_boundary(&line, self.bytes_left));
            if !line.is_empty() {
                self.lines.push(line);
            }
            self.lines.push(DROPPED_MARKER.to_owned());
            self.bytes_left = 0;
            self.full = true;
            return;
        }
        self.bytes_left -= line.len();
        self.lines.push(line);
    }
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    (0..=at.min(text.len()))
        .rev()
        .find(|index| text.is_char_boundary(*index))
        .unwrap_or(0)
}

/// Defines `console` with `log`, `info`, `warn`, `error` and `debug`, all writing to `book`.
pub(super) fn install<'js>(ctx: &Ctx<'js>, book: &Rc<RefCell<LogBook>>) -> rquickjs::Result<()> {
    let console = Object::new(ctx.clone())?;
    for name in ["log", "info", "warn", "error", "debug"] {
        let book = Rc::clone(book);
        let write = Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
            // Describing a value can run author code (toJSON, toString), which may log in
            // turn, so the line is built before the book is borrowed.
            if book.borrow().is_full() {
                return;
            }
            let line = args
                .0
                .iter()
                .map(|value| describe(&ctx, value))
                .collect::<Vec<_>>()
                .join(" ");
            book.borrow_mut().write(line);
        })?;
        write.set_name(name)?;
        console.set(name, write)?;
    }
    ctx.globals().set("console", console)
}

/// A value as a person wants to read it in a log: strings bare, errors as
/// `Name: message`, everything else as JSON where it has a JSON form.
fn describe<'js>(ctx: &Ctx<'js>, value: &Value<'js>) -> String {
    if let Some(text) = value.as_string().and_then(|text| text.to_string().ok()) {
        return text;
    }
    if value.is_undefined() {
        return "undefined".to_owned();
    }
    if let Some(error) = value.as_exception() {
        let name = error
            .get::<_, Coerced<String>>("name")
            .map(|name| name.0)
            .unwrap_or_else(|_| "Error".to_owned());
        return format!("{name}: {}", error.message().unwrap_or_default());
    }
    if !value.is_function()
        && let Ok(Some(json)) = ctx.json_stringify(value.clone())
        && let Ok(json) = json.to_string()
    {
        return json;
    }
    // JSON had no form for it (a function, a BigInt, a cycle): drop that exception and
    // fall back to the language's own string conversion.
    let _ = ctx.catch();
    match Coerced::<String>::from_js(ctx, value.clone()) {
        Ok(text) => text.0,
        Err(_) => {
            let _ = ctx.catch();
            "[value that cannot be printed]".to_owned()
        }
    }
}
