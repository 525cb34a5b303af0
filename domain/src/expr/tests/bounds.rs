//! The bounds: hostile inputs get an error, never a stack overflow, a panic or a long run.

use std::thread;

use serde_json::{Value, json};

use super::super::{
    MAX_ARRAY_LEN, MAX_EXPRESSION_BYTES, MAX_NESTING, MAX_TREE_DEPTH, parse_expression,
    parse_template,
};
use super::parse_error;

/// Runs `check` on a thread with a small stack (tokio workers get 2 MiB), so a recursion
/// that the bounds fail to stop overflows here instead of in production.
fn on_small_stack(check: impl FnOnce() + Send + 'static) {
    thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(check)
        .expect("spawn a test thread")
        .join()
        .expect("the check must not overflow the stack or panic");
}

fn wrapped(open: &str, inner: &str, close: &str, times: usize) -> String {
    format!("{}{inner}{}", open.repeat(times), close.repeat(times))
}

fn big_scope() -> Value {
    json!({
        "vars": {
            "numbers": (0..200_000).collect::<Vec<i64>>(),
            "text": "x".repeat(600_000),
        }
    })
}

#[test]
fn nesting_up_to_the_limit_parses_and_beyond_it_is_refused() {
    on_small_stack(|| {
        let kinds: [(&str, &str, &str); 5] = [
            ("(", "1", ")"),
            ("[", "1", "]"),
            ("!", "true", ""),
            ("-", "1", ""),
            ("len(", "'x'", ")"),
        ];
        for (open, inner, close) in kinds {
            let deepest = wrapped(open, inner, close, MAX_NESTING);
            let expr = parse_expression(&deepest)
                .unwrap_or_else(|e| panic!("{MAX_NESTING} levels of `{open}` should parse: {e}"));
            let _ = expr.evaluate(&json!({}));
            let _ = expr.to_string();
            let error = parse_error(&wrapped(open, inner, close, MAX_NESTING + 1));
            assert_eq!(
                error.message,
                format!("expression is nested more than {MAX_NESTING} levels deep"),
                "too many `{open}`"
            );
        }
        let conditionals = format!("{}3", "true ? 1 : false ? 2 : ".repeat(MAX_NESTING + 1));
        assert_eq!(
            parse_error(&conditionals).message,
            format!("expression is nested more than {MAX_NESTING} levels deep")
        );
    });
}

#[test]
fn a_hundred_thousand_open_parentheses_are_an_error_not_a_crash() {
    on_small_stack(|| {
        let deep = wrapped("(", "1", ")", 100_000);
        assert_eq!(
            parse_error(&deep).message,
            format!("expression is longer than {MAX_EXPRESSION_BYTES} bytes")
        );
        let in_template = format!("{{{{ {deep} }}}}");
        let error = parse_template(&in_template).expect_err("too long");
        assert_eq!(error.offset, 2);
        // Within the length limit, nesting is what stops it.
        let within = "(".repeat(MAX_EXPRESSION_BYTES - 10);
        assert_eq!(
            parse_error(&within).message,
            format!("expression is nested more than {MAX_NESTING} levels deep")
        );
    });
}

#[test]
fn long_operator_chains_are_bounded_by_tree_depth() {
    on_small_stack(|| {
        let longest = vec!["1"; MAX_TREE_DEPTH].join("+");
        let expr = parse_expression(&longest).expect("a chain at the depth limit parses");
        assert_eq!(expr.evaluate(&json!({})), Ok(json!(MAX_TREE_DEPTH)));
        assert_eq!(expr.references(), vec![]);
        let too_long = vec!["1"; MAX_TREE_DEPTH + 1].join("+");
        assert_eq!(
            parse_error(&too_long).message,
            format!("expression is too complex (more than {MAX_TREE_DEPTH} levels of operations)")
        );
        let members = format!("vars{}", ".a".repeat(MAX_TREE_DEPTH));
        assert!(parse_expression(&members).is_err());
        let in_template = format!("{{{{ {} }}}}", vec!["1"; 2000].join("+"));
        assert!(parse_template(&in_template).is_err());
    });
}

#[test]
fn the_expression_length_limit_is_exact() {
    let fits = format!("'{}'", "x".repeat(MAX_EXPRESSION_BYTES - 2));
    assert!(parse_expression(&fits).is_ok());
    let over = format!("'{}'", "x".repeat(MAX_EXPRESSION_BYTES - 1));
    assert_eq!(
        parse_error(&over).message,
        format!("expression is longer than {MAX_EXPRESSION_BYTES} bytes")
    );
    assert!(parse_template(&format!("{{{{{fits}}}}}")).is_ok());
    assert!(parse_template(&format!("{{{{{over}}}}}")).is_err());
    // Long literal text around expressions is fine; only expressions are limited.
    let text = "t".repeat(1_000_000);
    assert!(parse_template(&format!("{text}{{{{ run.id }}}}{text}")).is_ok());
}

#[test]
fn an_unclosed_brace_in_a_huge_string_is_found_quickly() {
    let huge = format!("{{{{ {}", "a ".repeat(500_000));
    let error = parse_template(&huge).expect_err("unclosed");
    assert_eq!(
        error.message,
        format!("expression is longer than {MAX_EXPRESSION_BYTES} bytes")
    );
    let unterminated = format!("{{{{ '{}", "é".repeat(500_000));
    let error = parse_template(&unterminated).expect_err("unclosed");
    assert_eq!(
        error.message,
        format!("expression is longer than {MAX_EXPRESSION_BYTES} bytes")
    );
}

#[test]
fn many_expressions_in_one_string_are_fine() {
    let src = "{{ 1 }}".repeat(20_000);
    let template = parse_template(&src).expect("parses");
    assert_eq!(template.render(&json!({})), Ok(json!("1".repeat(20_000))));
}

#[test]
fn heavy_work_runs_out_of_budget() {
    let scope = big_scope();
    let src = ["contains(vars.numbers, -1)"; 6].join(" || ");
    let expr = parse_expression(&src).expect("parses");
    assert_eq!(
        expr.evaluate(&scope).map_err(|e| e.message),
        Err("the expression does too much work (more than 1000000 steps)".to_owned())
    );
    let copies = format!("[{}]", ["vars.numbers"; 6].join(", "));
    assert!(
        parse_expression(&copies)
            .expect("parses")
            .evaluate(&scope)
            .is_err()
    );
    let comparisons = ["vars.numbers == vars.numbers"; 6].join(" && ");
    assert!(
        parse_expression(&comparisons)
            .expect("parses")
            .evaluate(&scope)
            .is_err()
    );
    // Reading a large value whole is not work: nothing is copied until the result.
    let whole = parse_template("{{ vars.numbers }}").expect("parses");
    assert_eq!(
        whole.render(&scope).map(|v| v.as_array().map(Vec::len)),
        Ok(Some(200_000))
    );
}

#[test]
fn produced_text_and_arrays_are_capped() {
    let scope = big_scope();
    let cases = [
        (
            "{{ vars.text + vars.text }}",
            "the text would be longer than 1048576 bytes",
        ),
        (
            "{{ replace(vars.text, 'x', 'xx') }}",
            "the text would be longer than 1048576 bytes",
        ),
        (
            "{{ vars.text }}{{ vars.text }}",
            "the text would be longer than 1048576 bytes",
        ),
        (
            "{{ json(vars.numbers) }}",
            "the text would be longer than 1048576 bytes",
        ),
        (
            "list: {{ vars.numbers }}",
            "the text would be longer than 1048576 bytes",
        ),
        (
            "{{ join([vars.text, vars.text]) }}",
            "the text would be longer than 1048576 bytes",
        ),
        (
            "{{ split(vars.text, '') }}",
            "the array would have more than 100000 items",
        ),
        (
            "{{ vars.numbers + vars.numbers }}",
            "the array would have more than 100000 items",
        ),
    ];
    for (src, expected) in cases {
        let error = parse_template(src)
            .expect("parses")
            .render(&scope)
            .expect_err("over a cap");
        assert!(
            error.message.ends_with(expected),
            "`{src}`: {}",
            error.message
        );
    }
    assert_eq!(MAX_ARRAY_LEN, 100_000);
    let fits = parse_template("{{ len(split(slice(vars.text, 0, 100000), '')) }}").expect("parses");
    assert_eq!(fits.render(&scope), Ok(json!(100_000)));
}
