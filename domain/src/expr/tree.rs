//! Templates inside JSON trees (node configs): every string value is a template, object keys
//! are always literal.
//!
//! Paths are JSON Pointers (RFC 6901): `/fields/message`, `/items/0`, `""` for the root, with
//! `~` and `/` in keys written `~0` and `~1`. Walks use an explicit stack or a depth limit,
//! so a deeply nested config cannot overflow the call stack.

use serde_json::{Map, Value};

use super::{EvalError, ExprError, Roots, Template, parse_template_with};

/// How deeply `render_value` descends; serde_json's parser refuses deeper JSON anyway.
const MAX_VALUE_DEPTH: usize = 128;

/// Every string in `value` that does not parse as a template, with its path and error.
pub fn check_templates(value: &Value) -> Vec<(String, ExprError)> {
    check_templates_with(value, Roots::Workflow)
}

/// Like [`check_templates`], with the names of `roots` in scope.
pub fn check_templates_with(value: &Value, roots: Roots) -> Vec<(String, ExprError)> {
    let mut problems = Vec::new();
    for_each_string(value, |path, s| {
        if let Err(error) = parse_template_with(s, roots) {
            problems.push((path.to_owned(), error));
        }
    });
    problems
}

/// Every string in `value` that holds at least one expression, parsed, with its path.
/// Strings that do not parse are left out: [`check_templates`] reports them.
pub fn templates_in(value: &Value) -> Vec<(String, Template)> {
    templates_in_with(value, Roots::Workflow)
}

/// Like [`templates_in`], with the names of `roots` in scope.
pub fn templates_in_with(value: &Value, roots: Roots) -> Vec<(String, Template)> {
    let mut templates = Vec::new();
    for_each_string(value, |path, s| {
        if let Ok(template) = parse_template_with(s, roots)
            && template.has_expressions()
        {
            templates.push((path.to_owned(), template));
        }
    });
    templates
}

/// `value` with every string rendered against `scope`; keys stay as they are. The error
/// names the path of the string that failed.
pub fn render_value(value: &Value, scope: &Value) -> Result<Value, EvalError> {
    render_value_with(value, scope, Roots::Workflow)
}

/// Like [`render_value`], with the names of `roots` in scope (`scope` carries them).
pub fn render_value_with(value: &Value, scope: &Value, roots: Roots) -> Result<Value, EvalError> {
    let mut path = String::new();
    render_at(value, &Renderer { scope, roots }, &mut path, 0)
}

struct Renderer<'a> {
    scope: &'a Value,
    roots: Roots,
}

fn render_at(
    value: &Value,
    renderer: &Renderer<'_>,
    path: &mut String,
    depth: usize,
) -> Result<Value, EvalError> {
    if depth > MAX_VALUE_DEPTH {
        return Err(EvalError::new(format!(
            "{}: nested more than {MAX_VALUE_DEPTH} levels deep",
            shown_path(path)
        )));
    }
    match value {
        Value::String(s) => {
            let template = parse_template_with(s, renderer.roots).map_err(|e| {
                EvalError::new(format!("{}: invalid template: {e}", shown_path(path)))
            })?;
            template
                .render(renderer.scope)
                .map_err(|e| EvalError::new(format!("{}: {}", shown_path(path), e.message)))
        }
        Value::Array(items) => {
            let mut rendered = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                rendered.push(render_at(item, renderer, path, depth + 1)?);
                path.truncate(len);
            }
            Ok(Value::Array(rendered))
        }
        Value::Object(map) => {
            let mut rendered = Map::new();
            for (key, item) in map {
                let len = path.len();
                push_key(path, key);
                rendered.insert(key.clone(), render_at(item, renderer, path, depth + 1)?);
                path.truncate(len);
            }
            Ok(Value::Object(rendered))
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(value.clone()),
    }
}

fn shown_path(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

fn push_key(path: &mut String, key: &str) {
    path.push('/');
    for c in key.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            other => path.push(other),
        }
    }
}

/// Calls `visit` with the path and text of every string in `value`, in document order.
fn for_each_string(value: &Value, mut visit: impl FnMut(&str, &str)) {
    let mut pending = vec![(String::new(), value)];
    while let Some((path, node)) = pending.pop() {
        match node {
            Value::String(s) => visit(&path, s),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate().rev() {
                    pending.push((format!("{path}/{i}"), item));
                }
            }
            Value::Object(map) => {
                for (key, item) in map.iter().rev() {
                    let mut child = path.clone();
                    push_key(&mut child, key);
                    pending.push((child, item));
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}
