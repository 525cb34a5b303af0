//! Turning the author's function body into a function, and locations in the compiled
//! script back into locations in the author's source.
//!
//! QuickJS has no way to compile a function body on its own: its `new Function` also
//! pastes the body between `{` and `}` and evaluates the result. So a body such as
//! `}); evil(); (function(){` closes the wrapping function early, and the script's value
//! is then some other function. QuickJS keeps every function's source text, and a
//! function whose text is the whole wrapper can only come from parsing the whole body as
//! that function's body. So the script's value is accepted only if its text, read with
//! the `Function.prototype.toString` captured before any author code ran, is exactly the
//! wrapper. Code outside the function may still have run during that evaluation; it had
//! the same (I/O-free, bounded) powers as the body itself, and its result is discarded.

/// The file name QuickJS puts in stack traces; locations in it are the author's.
pub(super) const FILE_NAME: &str = "code";

/// The names the body sees, in the order the function is called with.
const PARAMETERS: &str = "trigger, steps, vars, run, item, index";

/// The author's body inside an async function of [`PARAMETERS`].
pub(super) struct WrappedSource {
    function_text: String,
}

impl WrappedSource {
    pub(super) fn new(body: &str) -> Self {
        // The body starts on its own line so that its line numbers are off by exactly
        // one, and ends with a newline so that a trailing `//` comment cannot swallow
        // the closing brace.
        Self {
            function_text: format!("async function ({PARAMETERS}) {{\n{body}\n}}"),
        }
    }

    /// The script to evaluate: the function as an expression, so that it is the
    /// script's value.
    pub(super) fn script(&self) -> String {
        format!("({})", self.function_text)
    }

    /// Whether `text` is the source text of the wrapping function itself.
    pub(super) fn is_the_function(&self, text: &str) -> bool {
        text == self.function_text
    }
}

/// Lines in `body` as QuickJS numbers them (it counts line feeds).
pub(super) fn line_count(body: &str) -> u64 {
    let line_feeds = body.bytes().filter(|byte| *byte == b'\n').count();
    u64::try_from(line_feeds).map_or(u64::MAX, |count| count.saturating_add(1))
}

/// " (line L, column C)" for the first frame of `stack` that lies in the author's body of
/// `body_lines` lines, " (at the end of the code)" for a location past it, or "" when no
/// frame is in the body.
pub(super) fn describe_location(stack: &str, body_lines: u64) -> String {
    match stack.lines().find_map(location_in_line) {
        Some((line, _)) if line > body_lines => " (at the end of the code)".to_owned(),
        Some((line, column)) => format!(" (line {line}, column {column})"),
        None => String::new(),
    }
}

/// The first `code:LINE:COLUMN` in one stack frame, translated to the body's numbering.
fn location_in_line(frame: &str) -> Option<(u64, u64)> {
    let marker = format!("{FILE_NAME}:");
    frame.match_indices(&marker).find_map(|(at, _)| {
        let rest = &frame[at + marker.len()..];
        let (line, rest) = leading_number(rest)?;
        let (column, _) = leading_number(rest.strip_prefix(':')?)?;
        // Line 1 of the script is the function header, so body line N is script
        // line N + 1. A location on the header itself points at nothing the author wrote.
        Some((line.checked_sub(1).filter(|line| *line > 0)?, column))
    })
}

fn leading_number(text: &str) -> Option<(u64, &str)> {
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let number = text[..digits].parse().ok()?;
    Some((number, &text[digits..]))
}
