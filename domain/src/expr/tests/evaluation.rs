//! Evaluation of every operator, of paths, and of the errors type mismatches raise.

use serde_json::{Value, json};

use super::super::parse_expression;
use super::{eval, eval_error, scope};

fn assert_evaluates(cases: &[(&str, Value)]) {
    for (src, expected) in cases {
        assert_eq!(&eval(src), expected, "evaluating `{src}`");
    }
}

fn assert_fails(cases: &[(&str, &str)]) {
    for (src, expected) in cases {
        assert_eq!(eval_error(src), *expected, "evaluating `{src}`");
    }
}

#[test]
fn paths_read_the_scope() {
    assert_evaluates(&[
        ("trigger.body.name", json!("Ada")),
        ("trigger.body.nested.deep.x", json!(1)),
        ("trigger.body['my-key']", json!("dash")),
        ("trigger.headers['content-type']", json!("application/json")),
        ("steps.greet.n", json!(12)),
        ("steps['my-step'].ok", json!(true)),
        ("steps[vars.key].message", json!("Hello Ada")),
        ("steps.list.items[1].id", json!(2)),
        ("steps.list.items[-1].id", json!(3)),
        ("steps.list.items[-3].id", json!(1)),
        ("steps.list.items[1.0].id", json!(2)),
        ("trigger.body.tags.length", json!(3)),
        ("trigger.body.name.length", json!(3)),
        ("'héllo'.length", json!(5)),
        ("trigger.body.name[0]", json!("A")),
        ("trigger.body.name[-1]", json!("a")),
        ("trigger.body[7]", json!("seven")),
        ("run.workflowId", json!("wf-1")),
        ("vars", json!({"region": "eu", "limit": 10, "key": "greet"})),
        ("[1, 2, 3][1]", json!(2)),
        ("[[1, 2], [3]][0][1]", json!(2)),
        ("(steps.greet).n", json!(12)),
    ]);
}

#[test]
fn missing_data_is_null_like_optional_chaining() {
    assert_evaluates(&[
        ("trigger.body.missing", json!(null)),
        ("trigger.body.missing.deeper.still", json!(null)),
        ("trigger.body.nothing.x", json!(null)),
        ("trigger.body.nothing[0]", json!(null)),
        ("steps.list.items[3]", json!(null)),
        ("steps.list.items[-4]", json!(null)),
        ("trigger.body.tags.first", json!(null)),
        ("trigger.body.n.x", json!(null)),
        ("trigger.body.flag[0]", json!(null)),
        ("trigger.body.name[10]", json!(null)),
        ("steps.nope.message", json!(null)),
    ]);
    let no_scope = parse_expression("trigger.body.name").expect("parses");
    assert_eq!(no_scope.evaluate(&json!(null)), Ok(json!(null)));
    assert_eq!(no_scope.evaluate(&json!({})), Ok(json!(null)));
}

#[test]
fn bad_indexes_are_errors() {
    assert_fails(&[
        (
            "steps.list.items['x']",
            "an index into an array must be an integer, got a string",
        ),
        (
            "steps.list.items[1.5]",
            "an index into an array must be an integer, got a number",
        ),
        (
            "trigger.body.name[true]",
            "an index into a string must be an integer, got a boolean",
        ),
        (
            "trigger.body[null]",
            "an object key must be a string, got null",
        ),
        (
            "trigger.body[[1]]",
            "an object key must be a string, got an array",
        ),
    ]);
}

#[test]
fn arithmetic_keeps_integers_exact_and_falls_back_to_floats() {
    assert_evaluates(&[
        ("1 + 2", json!(3)),
        ("trigger.body.n * 2", json!(12)),
        ("10 - 15", json!(-5)),
        ("7 / 2", json!(3.5)),
        ("8 / 2", json!(4)),
        ("-7 / 2", json!(-3.5)),
        ("7 % 3", json!(1)),
        ("-7 % 3", json!(-1)),
        ("7.5 % 2", json!(1.5)),
        ("trigger.body.price * 2", json!(5)),
        ("0.1 + 0.2", json!(0.30000000000000004)),
        ("2.5 + 1", json!(3.5)),
        ("-trigger.body.n", json!(-6)),
        ("-2.5", json!(-2.5)),
        ("9223372036854775807 + 1", json!(9.223372036854776e18)),
        ("-9223372036854775807 - 2", json!(-9.223372036854776e18)),
        ("4611686018427387904 * 4", json!(1.8446744073709552e19)),
        (
            "(-9223372036854775807 - 1) / -1",
            json!(9.223372036854776e18),
        ),
        ("(-9223372036854775807 - 1) % -1", json!(0)),
        ("-(-9223372036854775807 - 1)", json!(9.223372036854776e18)),
        ("1 + 2 * 3 - 4 / 2", json!(5)),
        ("(1 + 2) * 3", json!(9)),
    ]);
}

#[test]
fn arithmetic_errors_name_the_problem() {
    assert_fails(&[
        ("1 / 0", "division by zero"),
        ("1.5 / 0.0", "division by zero"),
        ("1 % 0", "remainder by zero"),
        ("'a' * 2", "cannot apply `*` to a string and a number"),
        ("[] - 1", "cannot apply `-` to an array and a number"),
        (
            "trigger.body - 1",
            "cannot apply `-` to an object and a number",
        ),
        (
            "trigger.body.missing + 1",
            "cannot apply `+` to null and a number",
        ),
        ("true + 1", "cannot apply `+` to a boolean and a number"),
        (
            "trigger.body + trigger.body",
            "cannot apply `+` to an object and an object",
        ),
        ("-'a'", "cannot apply `-` to a string"),
        (
            "1e308 * 10",
            "`*` overflowed: the result is not a finite number",
        ),
    ]);
}

#[test]
fn plus_concatenates_text_and_arrays() {
    assert_evaluates(&[
        ("'Hello ' + trigger.body.name", json!("Hello Ada")),
        ("'n=' + trigger.body.n", json!("n=6")),
        ("trigger.body.n + '!'", json!("6!")),
        ("'p=' + trigger.body.price", json!("p=2.5")),
        ("'x' + trigger.body.missing", json!("x")),
        ("'b=' + true", json!("b=true")),
        ("'t=' + trigger.body.tags", json!("t=[\"a\",\"b\",\"c\"]")),
        (
            "'o=' + trigger.body.nested",
            json!("o={\"deep\":{\"x\":1}}"),
        ),
        ("1 + 2 + 'x'", json!("3x")),
        ("'x' + 1 + 2", json!("x12")),
        ("[1, 2] + [3]", json!([1, 2, 3])),
        ("trigger.body.tags + ['d']", json!(["a", "b", "c", "d"])),
    ]);
}

#[test]
fn comparisons_take_two_numbers_or_two_strings() {
    assert_evaluates(&[
        ("1 < 2", json!(true)),
        ("2 < 1", json!(false)),
        ("2 <= 2", json!(true)),
        ("3 > 2.5", json!(true)),
        ("2.5 >= 2.5", json!(true)),
        ("steps.greet.n > 10", json!(true)),
        ("-1 < 0", json!(true)),
        ("'apple' < 'banana'", json!(true)),
        ("'b' > 'abc'", json!(true)),
        ("'Z' < 'a'", json!(true)),
        ("'' < 'a'", json!(true)),
        ("9223372036854775807 > 9223372036854775806", json!(true)),
    ]);
    assert_fails(&[
        (
            "1 < '2'",
            "cannot compare a number with a string using `<`: only two numbers or two strings compare",
        ),
        (
            "trigger.body.missing > 0",
            "cannot compare null with a number using `>`: only two numbers or two strings compare",
        ),
        (
            "[1] <= [2]",
            "cannot compare an array with an array using `<=`: only two numbers or two strings compare",
        ),
        (
            "true >= false",
            "cannot compare a boolean with a boolean using `>=`: only two numbers or two strings compare",
        ),
    ]);
}

#[test]
fn equality_is_deep_and_numeric() {
    assert_evaluates(&[
        ("1 == 1.0", json!(true)),
        ("1 != 1.0", json!(false)),
        ("0.5 == 0.5", json!(true)),
        ("1 == 2", json!(false)),
        ("'a' == 'a'", json!(true)),
        ("'1' == 1", json!(false)),
        ("null == null", json!(true)),
        ("trigger.body.missing == null", json!(true)),
        ("trigger.body.nothing == null", json!(true)),
        ("false == null", json!(false)),
        ("0 == false", json!(false)),
        ("[1, [2.0, 'x']] == [1.0, [2, 'x']]", json!(true)),
        ("[1, 2] == [1, 2, 3]", json!(false)),
        ("trigger.body.tags == ['a', 'b', 'c']", json!(true)),
        ("trigger.body.nested == trigger.body.nested", json!(true)),
        ("trigger.body.nested == trigger.headers", json!(false)),
        (
            "parseJson('{\"a\":1,\"b\":[2]}') == parseJson('{\"b\":[2.0],\"a\":1.0}')",
            json!(true),
        ),
        (
            "parseJson('{\"a\":1}') == parseJson('{\"b\":1}')",
            json!(false),
        ),
        (
            "parseJson('18446744073709551615') == 18446744073709551615",
            json!(true),
        ),
        (
            "parseJson('18446744073709551615') == parseJson('18446744073709551614')",
            json!(false),
        ),
    ]);
}

#[test]
fn logic_short_circuits_and_yields_booleans() {
    assert_evaluates(&[
        ("true && true", json!(true)),
        ("true && 0", json!(false)),
        ("'a' && 'b'", json!(true)),
        ("null || 'x'", json!(true)),
        ("'' || 0", json!(false)),
        ("[] && trigger.body", json!(true)),
        // The right side would fail; short-circuiting never evaluates it.
        ("false && 1 / 0", json!(false)),
        ("true || 1 / 0", json!(true)),
        ("!null", json!(true)),
        ("!0", json!(true)),
        ("!0.0", json!(true)),
        ("!''", json!(true)),
        ("!'0'", json!(false)),
        ("![]", json!(false)),
        ("!trigger.body", json!(false)),
        ("!-1", json!(false)),
    ]);
}

#[test]
fn coalesce_and_conditional_pick_one_side() {
    assert_evaluates(&[
        ("trigger.body.missing ?? 'default'", json!("default")),
        ("trigger.body.nothing ?? 3", json!(3)),
        ("trigger.body.empty ?? 'x'", json!("")),
        ("0 ?? 1", json!(0)),
        ("false ?? 1", json!(false)),
        ("trigger.body.name ?? 1 / 0", json!("Ada")),
        (
            "trigger.body.missing ?? trigger.body.nothing ?? 'last'",
            json!("last"),
        ),
        ("steps.greet.n > 10 ? 'big' : 'small'", json!("big")),
        ("steps.greet.n > 20 ? 'big' : 'small'", json!("small")),
        ("trigger.body.empty ? 1 : 2", json!(2)),
        ("true ? trigger.body.tags : 1 / 0", json!(["a", "b", "c"])),
        ("false ? 1 : true ? 2 : 3", json!(2)),
    ]);
}

#[test]
fn results_do_not_depend_on_the_scope_value_being_borrowed() {
    // Members of owned intermediate values (from a function) are moved out, not copied.
    assert_evaluates(&[
        ("parseJson('{\"a\":{\"b\":[10,20]}}').a.b[1]", json!(20)),
        ("parseJson('[1,2,3]')[-1]", json!(3)),
        ("parseJson('[1,2,3]')[5]", json!(null)),
        ("[trigger.body.n, steps.greet.n][1]", json!(12)),
    ]);
    let expr = parse_expression("steps.greet").expect("parses");
    assert_eq!(
        expr.evaluate(&scope()),
        Ok(json!({"message": "Hello Ada", "n": 12}))
    );
}
