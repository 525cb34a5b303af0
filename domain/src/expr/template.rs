//! Strings with `{{ expr }}` segments: parsing, the references they make, and rendering.
//!
//! Invariant: a [`Template`] only exists for a string whose every segment parsed, so
//! rendering can fail only at evaluation (a type error, a budget or size limit).

use std::borrow::Cow;

use serde_json::Value;

use super::ast::Expr;
use super::budget::Budget;
use super::lexer::{self, Mode, SyntaxError};
use super::{EvalError, ExprError, MAX_TEXT_BYTES, Reference, Roots, eval, ops, parser};

/// A parsed template string.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// Literal text, with `\{{` already turned into `{{`.
    Text(String),
    Expression {
        expr: Expr,
        /// The source between the braces, trimmed, for error messages.
        source: String,
    },
}

/// Parses a string with zero or more `{{ expr }}` segments, whose expressions start from
/// the workflow's [`ROOT_NAMES`](super::ROOT_NAMES).
pub fn parse_template(src: &str) -> Result<Template, ExprError> {
    parse_template_with(src, Roots::Workflow)
}

/// Like [`parse_template`], with the names of `roots` in scope.
pub fn parse_template_with(src: &str, roots: Roots) -> Result<Template, ExprError> {
    parse(src, roots).map_err(|e| e.locate(src))
}

fn parse(src: &str, roots: Roots) -> Result<Template, SyntaxError> {
    let mut segments = Vec::new();
    let mut text = String::new();
    let mut pos = 0;
    while let Some(found) = src[pos..].find("{{") {
        let open = pos + found;
        if open > pos && src.as_bytes()[open - 1] == b'\\' {
            text.push_str(&src[pos..open - 1]);
            text.push_str("{{");
            pos = open + 2;
            continue;
        }
        text.push_str(&src[pos..open]);
        if !text.is_empty() {
            segments.push(Segment::Text(std::mem::take(&mut text)));
        }
        let body_start = open + 2;
        let lexed = lexer::lex(src, body_start, Mode::Template { open })?;
        let expr = parser::parse_tokens(lexed.tokens, roots)?;
        let source = src[body_start..lexed.end - 2].trim().to_owned();
        segments.push(Segment::Expression { expr, source });
        pos = lexed.end;
    }
    text.push_str(&src[pos..]);
    if !text.is_empty() {
        segments.push(Segment::Text(text));
    }
    Ok(Template { segments })
}

impl Template {
    pub fn has_expressions(&self) -> bool {
        self.expressions().next().is_some()
    }

    /// Every root path the template's expressions read, in order, without repeats.
    pub fn references(&self) -> Vec<Reference> {
        let mut found = Vec::new();
        for expr in self.expressions() {
            expr.collect_references(&mut found);
        }
        found
    }

    /// The value of a template that is exactly one expression, otherwise the text with every
    /// expression interpolated. `scope` is an object keyed by [`ROOT_NAMES`](super::ROOT_NAMES).
    pub fn render(&self, scope: &Value) -> Result<Value, EvalError> {
        let mut budget = Budget::new();
        if let [Segment::Expression { expr, source }] = self.segments.as_slice() {
            return eval::evaluate_with(expr, scope, &mut budget)
                .map(Cow::into_owned)
                .map_err(|e| in_expression(source, e));
        }
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => {
                    if out.len() + text.len() > MAX_TEXT_BYTES {
                        return Err(ops::too_long_text());
                    }
                    out.push_str(text);
                }
                Segment::Expression { expr, source } => {
                    eval::evaluate_with(expr, scope, &mut budget)
                        .and_then(|value| ops::append_text(&mut out, &value, &mut budget))
                        .map_err(|e| in_expression(source, e))?;
                }
            }
        }
        Ok(Value::String(out))
    }

    fn expressions(&self) -> impl Iterator<Item = &Expr> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Expression { expr, .. } => Some(expr),
            Segment::Text(_) => None,
        })
    }
}

/// Says which expression failed, with long sources cut short.
fn in_expression(source: &str, error: EvalError) -> EvalError {
    const MAX_CHARS: usize = 80;
    let mut shown: String = source.chars().take(MAX_CHARS).collect();
    if shown.len() < source.len() {
        shown.push('…');
    }
    EvalError::new(format!("in `{{{{ {shown} }}}}`: {}", error.message))
}
