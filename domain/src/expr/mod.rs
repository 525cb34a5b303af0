//! The expression language of workflow templates: `{{ expr }}` inside any string of a node
//! config.
//!
//! # Templates
//!
//! A template is a string with zero or more `{{ expr }}` segments; whitespace inside the
//! braces is free. A string that is exactly one `{{ expr }}`, with nothing else around it (not
//! even spaces), renders to the expression's value with its JSON type. Any other string
//! renders to text: literal parts as written, values interpolated as text (strings as-is,
//! `null` as nothing, numbers in shortest form so `2` never prints as `2.0`, booleans as
//! `true`/`false`, arrays and objects as compact JSON). A literal `{{` in text is written
//! `\{{`; no other backslash in text is special. An unclosed `{{` is a parse error.
//!
//! # Expressions
//!
//! The syntax is a small, JavaScript-like subset:
//!
//! - Names: an expression starts from one of [`ROOT_NAMES`] (`trigger`, `steps`, `vars`,
//!   `run`; in a loop body also `item` and `index`, see [`Roots`]), a literal or a function call. Any other name is a parse error, so typos are
//!   caught when a workflow is saved. Member access `a.b` (or `a?.b`, the same thing) and
//!   indexing `a[expr]` (`a?.[expr]`); names that are not identifiers, such as a step id with
//!   a dash, are written `steps['my-step']`.
//! - Literals: integers, floats (`1.5`, `2e3`), strings in `'single'` or `"double"` quotes
//!   with JSON's escapes plus `\'` and `\u{1F600}`, `true`, `false`, `null`, arrays `[a, b]`.
//! - Operators, loosest first: `c ? a : b`; `??`; `||`; `&&`; `==` `!=` (also spelled `===`
//!   `!==`); `<` `<=` `>` `>=`; `+` `-`; `*` `/` `%`; prefix `!` `-`. Comparisons do not
//!   chain (`a < b < c` is a parse error).
//! - Functions: a fixed, pure library (listed in `functions/mod.rs`); an unknown function
//!   or a wrong number of arguments is a parse error.
//!
//! # Evaluation
//!
//! Like JavaScript's optional chaining, a missing member, an out-of-range index and anything
//! read from `null` are `null`; arrays and strings have a `length`, and negative indexes count
//! from the end. `+` concatenates text when either side is a string, joins two arrays, and
//! otherwise adds numbers. Arithmetic stays in 64-bit integers while the result is exact and
//! falls back to floating point (like JavaScript) when it is not or when it overflows; an
//! integral floating result is stored as an integer, and a non-finite one is an error.
//! Division or remainder by zero is an error. `<` and friends compare two numbers or two
//! strings (by code point) and nothing else. `==` is deep JSON equality in which `1 == 1.0`.
//! `&&` and `||` short-circuit and yield booleans; falsy values are `null`, `false`, `0` and
//! `""`. `a ?? b` is `a` unless `a` is `null`. Any other mixing of types is an error that
//! names the types, never a silent coercion.
//!
//! # Bounds
//!
//! No input panics, recurses without limit or runs long: an expression is at most
//! [`MAX_EXPRESSION_BYTES`] long, brackets, parentheses and prefix operators nest at most
//! [`MAX_NESTING`] deep, an expression tree is at most [`MAX_TREE_DEPTH`] deep, strings made
//! while rendering are at most [`MAX_TEXT_BYTES`], arrays at most [`MAX_ARRAY_LEN`] items,
//! and one template render spends at most [`MAX_EVAL_STEPS`] steps (one per operation, per
//! value node copied or compared, and per 16 bytes of text scanned or copied).

mod ast;
mod budget;
mod eval;
mod functions;
mod lexer;
mod ops;
mod parser;
mod template;
mod tree;

#[cfg(test)]
mod tests;

pub use ast::Expr;
pub use ops::type_name;
pub use template::{Template, parse_template, parse_template_with};
pub use tree::{
    check_templates, check_templates_with, render_value, render_value_with, templates_in,
    templates_in_with,
};

/// The names an expression may start from; `scope` objects carry these keys.
pub const ROOT_NAMES: [&str; 4] = ["trigger", "steps", "vars", "run"];

/// Which names are in scope where a template is written. A name outside its scope is a
/// parse error, so `item` in a node that is not in a loop body is caught when the
/// workflow is saved, exactly like a typo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Roots {
    /// Node configs: [`ROOT_NAMES`].
    #[default]
    Workflow,
    /// The steps of a `loop` node's body: [`ROOT_NAMES`] plus
    /// [`Roots::LOOP_BODY_NAMES`], the current element and its position.
    LoopBody,
}

impl Roots {
    pub const LOOP_BODY_NAMES: [&'static str; 2] = ["item", "index"];

    pub fn names(self) -> impl Iterator<Item = &'static str> {
        let extra: &'static [&'static str] = match self {
            Roots::Workflow => &[],
            Roots::LoopBody => &Self::LOOP_BODY_NAMES,
        };
        ROOT_NAMES.iter().chain(extra).copied()
    }
}

/// The longest source of one expression (the text between `{{` and `}}`), in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4 * 1024;
/// How deep parentheses, brackets, calls, prefix operators and `?:` may nest.
pub const MAX_NESTING: usize = 64;
/// How deep a parsed expression tree may be (long operator chains count too).
pub const MAX_TREE_DEPTH: usize = 256;
/// The largest string an evaluation may produce, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;
/// The longest array an evaluation may produce.
pub const MAX_ARRAY_LEN: usize = 100_000;
/// The work one template render may do.
pub const MAX_EVAL_STEPS: u64 = 1_000_000;

/// A template or expression that does not parse. `offset` counts characters (not bytes)
/// from the start of the string that was parsed, from 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {offset}: {message}")]
pub struct ExprError {
    pub message: String,
    pub offset: usize,
}

/// An expression that parsed but could not be evaluated against a scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    pub message: String,
}

impl EvalError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// A root path that an expression reads: `steps.greet.n` reads root `steps` with first
/// member `greet`. `first` is `None` when the root is used whole or indexed dynamically.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub root: String,
    pub first: Option<String>,
}

/// Parses a bare expression, without `{{ }}`.
pub fn parse_expression(src: &str) -> Result<Expr, ExprError> {
    parser::parse_bare(src, Roots::Workflow).map_err(|e| e.locate(src))
}
