//! Tests of the expression language, against one fixture scope shaped like a real run.

mod bounds;
mod evaluation;
mod functions;
mod parsing;
mod properties;
mod templates;

use serde_json::{Value, json};

use super::{ExprError, parse_expression};

/// A scope as the engine builds it: a webhook trigger, two finished steps, variables, run.
pub(super) fn scope() -> Value {
    json!({
        "trigger": {
            "body": {
                "name": "Ada",
                "n": 6,
                "price": 2.5,
                "tags": ["a", "b", "c"],
                "empty": "",
                "nothing": null,
                "flag": true,
                "nested": {"deep": {"x": 1}},
                "my-key": "dash",
                "7": "seven"
            },
            "headers": {"content-type": "application/json"},
            "method": "POST"
        },
        "steps": {
            "greet": {"message": "Hello Ada", "n": 12},
            "my-step": {"ok": true},
            "list": {"items": [{"id": 1}, {"id": 2}, {"id": 3}]}
        },
        "vars": {"region": "eu", "limit": 10, "key": "greet"},
        "run": {"id": "run-1", "workflowId": "wf-1"}
    })
}

/// Parses and evaluates `src` against [`scope`], failing the test on any error.
pub(super) fn eval(src: &str) -> Value {
    parse_expression(src)
        .unwrap_or_else(|e| panic!("`{src}` should parse: {e}"))
        .evaluate(&scope())
        .unwrap_or_else(|e| panic!("`{src}` should evaluate: {e}"))
}

/// The evaluation error of `src`, which must parse.
pub(super) fn eval_error(src: &str) -> String {
    let expr = parse_expression(src).unwrap_or_else(|e| panic!("`{src}` should parse: {e}"));
    match expr.evaluate(&scope()) {
        Ok(value) => panic!("`{src}` should fail to evaluate, got {value}"),
        Err(e) => e.message,
    }
}

/// The parse error of `src`, which must not parse.
pub(super) fn parse_error(src: &str) -> ExprError {
    match parse_expression(src) {
        Ok(expr) => panic!("`{src}` should not parse, got {expr}"),
        Err(e) => e,
    }
}
