//! Parsing: precedence and associativity (shown by the canonical, fully parenthesized form),
//! literals, and errors with their positions.

use serde_json::json;

use super::super::{ExprError, parse_expression};
use super::parse_error;

fn canonical(src: &str) -> String {
    parse_expression(src)
        .unwrap_or_else(|e| panic!("`{src}` should parse: {e}"))
        .to_string()
}

#[test]
fn operators_bind_by_precedence_and_associativity() {
    let cases = [
        ("1 + 2 * 3", "(1 + (2 * 3))"),
        ("1 * 2 + 3", "((1 * 2) + 3)"),
        ("1 - 2 - 3", "((1 - 2) - 3)"),
        ("8 / 4 / 2", "((8 / 4) / 2)"),
        ("7 % 4 * 2", "((7 % 4) * 2)"),
        ("(1 + 2) * 3", "((1 + 2) * 3)"),
        ("-2 * 3", "((-2) * 3)"),
        ("- -2", "(-(-2))"),
        ("!vars.a && vars.b", "((!vars.a) && vars.b)"),
        ("!!vars.a", "(!(!vars.a))"),
        ("-vars.n.x", "(-vars.n.x)"),
        ("1 + 2 < 4", "((1 + 2) < 4)"),
        ("1 < 2 == true", "((1 < 2) == true)"),
        (
            "vars.a == 1 && vars.b != 2",
            "((vars.a == 1) && (vars.b != 2))",
        ),
        (
            "vars.a || vars.b && vars.c",
            "(vars.a || (vars.b && vars.c))",
        ),
        (
            "vars.a && vars.b || vars.c",
            "((vars.a && vars.b) || vars.c)",
        ),
        (
            "vars.a ?? vars.b || vars.c",
            "(vars.a ?? (vars.b || vars.c))",
        ),
        ("vars.a ?? vars.b ?? 1", "((vars.a ?? vars.b) ?? 1)"),
        ("vars.a ? 1 : 2", "(vars.a ? 1 : 2)"),
        (
            "vars.a ? 1 : vars.b ? 2 : 3",
            "(vars.a ? 1 : (vars.b ? 2 : 3))",
        ),
        (
            "vars.a ? vars.b ? 1 : 2 : 3",
            "(vars.a ? (vars.b ? 1 : 2) : 3)",
        ),
        (
            "vars.a || vars.b ? 1 + 1 : 2",
            "((vars.a || vars.b) ? (1 + 1) : 2)",
        ),
        ("vars.a ? 1 : vars.b ?? 2", "(vars.a ? 1 : (vars.b ?? 2))"),
        ("1 === 1", "(1 == 1)"),
        ("1 !== 2", "(1 != 2)"),
        ("trigger?.body?.name", "trigger.body.name"),
        ("trigger.body?.['my-key']", "trigger.body[\"my-key\"]"),
        ("steps['my-step'].ok", "steps[\"my-step\"].ok"),
        ("steps.list.items[0].id", "steps.list.items[0].id"),
        ("steps[vars.key]", "steps[vars.key]"),
        ("len(trigger.body.tags) + 1", "(len(trigger.body.tags) + 1)"),
        ("max(1, 2, 3,)", "max(1, 2, 3)"),
        ("[1, 'a', [true, null],]", "[1, \"a\", [true, null]]"),
        ("[]", "[]"),
        ("  run.id  ", "run.id"),
        ("trigger.body.true", "trigger.body.true"),
        ("vars.x ? 0.5 : 1", "(vars.x ? 0.5 : 1)"),
        ("vars.x?.y", "vars.x.y"),
    ];
    for (src, expected) in cases {
        assert_eq!(canonical(src), expected, "parsing `{src}`");
    }
}

#[test]
fn literals_read_as_written() {
    let cases = [
        ("42", json!(42)),
        ("0", json!(0)),
        ("2.5", json!(2.5)),
        ("1e3", json!(1000.0)),
        ("1.5E-1", json!(0.15)),
        ("99999999999999999999", json!(1e20)),
        ("'single'", json!("single")),
        ("\"double\"", json!("double")),
        (r"'it\'s'", json!("it's")),
        (r#""say \"hi\"""#, json!("say \"hi\"")),
        (r"'a\nb\tc\\d\/e\r'", json!("a\nb\tc\\d/e\r")),
        (r"'\u{1F600}'", json!("😀")),
        (r"'\u00e9\u{e9}'", json!("éé")),
        (r"'\ud83d\ude00'", json!("😀")),
        ("'é ünïcode'", json!("é ünïcode")),
        ("'}}'", json!("}}")),
        ("true", json!(true)),
        ("false", json!(false)),
        ("null", json!(null)),
        ("[1, [2, 'x']]", json!([1, [2, "x"]])),
    ];
    for (src, expected) in cases {
        assert_eq!(super::eval(src), expected, "evaluating `{src}`");
    }
}

#[test]
fn errors_say_what_is_wrong_and_where() {
    let cases: [(&str, usize, &str); 30] = [
        ("", 0, "empty expression"),
        ("   ", 3, "empty expression"),
        (
            "(1 + 2",
            6,
            "expected `)` to close the parenthesis, found the end of the expression",
        ),
        (
            "1 +",
            3,
            "unexpected end of the expression: expected a value",
        ),
        (
            "1 2",
            2,
            "unexpected number `2`: expected an operator or the end of the expression",
        ),
        (
            "trigge.body",
            0,
            "unknown name `trigge`: an expression starts from `trigger`, `steps`, `vars`, `run`",
        ),
        (
            "$json.x",
            0,
            "unexpected `$`: there are no `$` variables; start from `trigger`, `steps`, `vars` or `run`",
        ),
        ("foo(1)", 0, "unknown function `foo`"),
        (
            "startswith('a', 'b')",
            0,
            "unknown function `startswith` (did you mean `startsWith`?)",
        ),
        ("lower('a', 'b')", 0, "`lower` takes 1 argument, got 2"),
        ("contains('a')", 0, "`contains` takes 2 arguments, got 1"),
        ("slice('abc')", 0, "`slice` takes 2 or 3 arguments, got 1"),
        ("max()", 0, "`max` takes at least 1 argument, got 0"),
        ("len", 0, "`len` is a function: call it as `len(...)`"),
        (
            "trigger.body.name.toUpperCase()",
            29,
            "only library functions can be called, as in `lower(x)`; there are no methods",
        ),
        (
            "steps.0",
            6,
            "expected a member name after `.`, found number `0` (write `[0]` to index, `['my-key']` for other names)",
        ),
        (
            "trigger[1",
            9,
            "expected `]` to close the index, found the end of the expression",
        ),
        (
            "[1, 2",
            5,
            "expected `,` or `]`, found the end of the expression",
        ),
        (
            "vars.a ? 1",
            10,
            "expected `:` to continue the `? :` conditional, found the end of the expression",
        ),
        (
            "1 < 2 < 3",
            6,
            "comparisons cannot be chained: join them with `&&`, or add parentheses",
        ),
        (
            "1 == 1 != true",
            7,
            "comparisons cannot be chained: join them with `&&`, or add parentheses",
        ),
        (
            "vars.a = 1",
            7,
            "unexpected `=`: there is no assignment; compare with `==`",
        ),
        ("vars.a & 1", 7, "unexpected `&`: did you mean `&&`?"),
        (
            "{a: 1}",
            0,
            "unexpected `{`: object literals and nested `{{` are not supported",
        ),
        ("'abc", 0, "unterminated string: expected a closing '"),
        (r"'\q'", 1, r"unknown escape `\q`"),
        (
            r"'\u{110000}'",
            1,
            r"`\u{110000}` is not a unicode character",
        ),
        (
            r"'\ud800'",
            1,
            "a lone surrogate is not a unicode character",
        ),
        (
            "1e",
            0,
            "invalid number: expected digits after the exponent",
        ),
        ("12abc", 0, "invalid number: a letter follows the digits"),
    ];
    for (src, offset, message) in cases {
        let error = parse_error(src);
        assert_eq!(
            error,
            ExprError {
                message: message.to_owned(),
                offset
            },
            "parsing `{src}`"
        );
    }
}

#[test]
fn more_errors() {
    assert_eq!(parse_error("1e999").message, "number is out of range");
    assert_eq!(parse_error(")").message, "unexpected `)`: expected a value");
    assert_eq!(
        parse_error("[1,,2]").message,
        "unexpected `,`: expected a value"
    );
    assert_eq!(parse_error("vars.}").offset, 5);
    assert_eq!(
        parse_error("vars.x?.5").message,
        "expected a member name after `?.`, found number `5` (write `[0]` to index, `['my-key']` for other names)"
    );
}

#[test]
fn error_display_includes_the_position() {
    assert_eq!(
        parse_error("(vars.a").to_string(),
        "at 7: expected `)` to close the parenthesis, found the end of the expression"
    );
}

#[test]
fn error_offsets_count_characters_not_bytes() {
    // "é" is two bytes; the bad `#` is the 5th character.
    let error = parse_error("'é' #");
    assert_eq!(error.offset, 4);
    assert_eq!(error.message, "unexpected character `#`");
}

#[test]
fn chained_comparisons_are_fine_with_parentheses_or_different_levels() {
    assert_eq!(canonical("(1 < 2) == (2 < 3)"), "((1 < 2) == (2 < 3))");
    assert_eq!(canonical("(1 < 2) < 3"), "((1 < 2) < 3)");
    assert_eq!(canonical("1 < 2 && 2 < 3"), "((1 < 2) && (2 < 3))");
}
