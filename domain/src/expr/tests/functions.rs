//! The function library: every function, its edge cases and its type errors.

use serde_json::json;

use super::super::functions::Function;
use super::super::parse_expression;
use super::{eval, eval_error};

#[test]
fn every_function_evaluates() {
    let cases = [
        ("len('héllo')", json!(5)),
        ("len(trigger.body.tags)", json!(3)),
        ("len(trigger.body.nested)", json!(1)),
        ("len(trigger.body.missing)", json!(0)),
        ("len('')", json!(0)),
        ("lower('ÀbC')", json!("àbc")),
        ("upper('straße')", json!("STRASSE")),
        ("trim('  a b \\n')", json!("a b")),
        ("contains('hello', 'ell')", json!(true)),
        ("contains('hello', 'xyz')", json!(false)),
        ("contains(trigger.body.tags, 'b')", json!(true)),
        ("contains([1, [2]], [2.0])", json!(true)),
        ("contains([1, 2], '1')", json!(false)),
        ("contains(trigger.body, 'name')", json!(true)),
        ("contains(trigger.body, 'nope')", json!(false)),
        ("startsWith('hello', 'he')", json!(true)),
        ("startsWith('hello', 'lo')", json!(false)),
        ("endsWith('hello', 'lo')", json!(true)),
        ("endsWith('hello', '')", json!(true)),
        ("split('a,b,,c', ',')", json!(["a", "b", "", "c"])),
        ("split('héy', '')", json!(["h", "é", "y"])),
        ("split('', ',')", json!([""])),
        ("join(trigger.body.tags, '-')", json!("a-b-c")),
        ("join([1, 'x', null, true, 2.5])", json!("1,x,,true,2.5")),
        ("join([], '-')", json!("")),
        (
            "join([[1], trigger.body.nested], ';')",
            json!("[1];{\"deep\":{\"x\":1}}"),
        ),
        ("replace('a-b-c', '-', '+')", json!("a+b+c")),
        ("replace('aaa', 'a', '')", json!("")),
        ("replace('abc', 'x', 'y')", json!("abc")),
        ("slice('hello', 1, 3)", json!("el")),
        ("slice('hello', -3)", json!("llo")),
        ("slice('héllo', 1, -1)", json!("éll")),
        ("slice('hello', 4, 2)", json!("")),
        ("slice('hello', 10)", json!("")),
        ("slice('hello', -10, 2)", json!("he")),
        ("slice([1, 2, 3, 4], 1, 3)", json!([2, 3])),
        ("slice([1, 2, 3], -1)", json!([3])),
        ("slice([1, 2, 3], 0, null)", json!([1, 2, 3])),
        ("keys(trigger.headers)", json!(["content-type"])),
        ("keys(parseJson('{\"b\":1,\"a\":2}'))", json!(["a", "b"])),
        ("values(parseJson('{\"b\":1,\"a\":[2]}'))", json!([[2], 1])),
        ("string(12)", json!("12")),
        ("string(2.50)", json!("2.5")),
        ("string(4.0)", json!("4")),
        ("string(null)", json!("")),
        ("string(true)", json!("true")),
        ("string([1, 'a'])", json!("[1,\"a\"]")),
        ("string('s')", json!("s")),
        ("number('42')", json!(42)),
        ("number(' 2.5 ')", json!(2.5)),
        ("number('1e3')", json!(1000)),
        ("number('-7')", json!(-7)),
        ("number(3)", json!(3)),
        ("number(true)", json!(1)),
        ("number(false)", json!(0)),
        ("int(2.9)", json!(2)),
        ("int(-2.9)", json!(-2)),
        ("int('7.8')", json!(7)),
        ("int(5)", json!(5)),
        ("int(true)", json!(1)),
        ("round(2.5)", json!(3)),
        ("round(-2.5)", json!(-3)),
        ("round(2.4)", json!(2)),
        ("round(1.23456, 2)", json!(1.23)),
        ("round(7, 2)", json!(7)),
        ("round(1e300, 15)", json!(1e300)),
        ("floor(2.7)", json!(2)),
        ("floor(-2.1)", json!(-3)),
        ("floor(4)", json!(4)),
        ("ceil(2.1)", json!(3)),
        ("ceil(-2.7)", json!(-2)),
        ("abs(-3)", json!(3)),
        ("abs(-2.5)", json!(2.5)),
        ("abs(-9223372036854775807 - 1)", json!(9.223372036854776e18)),
        ("min(3, 1, 2)", json!(1)),
        ("max(3, 1.5, 2)", json!(3)),
        ("max([4, 9, 2])", json!(9)),
        ("min([2.5])", json!(2.5)),
        ("max([])", json!(null)),
        ("min(5)", json!(5)),
        ("json(trigger.body.nested)", json!("{\"deep\":{\"x\":1}}")),
        ("json('a\"b')", json!("\"a\\\"b\"")),
        ("json(null)", json!("null")),
        (
            "parseJson('{\"a\":[1,true,null]}')",
            json!({"a": [1, true, null]}),
        ),
        ("parseJson('\"s\"')", json!("s")),
        ("type(null)", json!("null")),
        ("type(true)", json!("boolean")),
        ("type(1.5)", json!("number")),
        ("type('')", json!("string")),
        ("type([])", json!("array")),
        ("type(trigger.body)", json!("object")),
        ("default(trigger.body.missing, 'x')", json!("x")),
        ("default(trigger.body.empty, 'x')", json!("x")),
        ("default(0, 'x')", json!(0)),
        ("default(false, 'x')", json!(false)),
        ("default(trigger.body.name, 'x')", json!("Ada")),
        ("coalesce(null, trigger.body.missing, 0, 1)", json!(0)),
        ("coalesce(null)", json!(null)),
        ("coalesce(trigger.body.nested).deep.x", json!(1)),
        ("isEmpty(null)", json!(true)),
        ("isEmpty('')", json!(true)),
        ("isEmpty([])", json!(true)),
        ("isEmpty(parseJson('{}'))", json!(true)),
        ("isEmpty(' ')", json!(false)),
        ("isEmpty(0)", json!(false)),
        ("isEmpty(false)", json!(false)),
        ("isEmpty(trigger.body.tags)", json!(false)),
        ("upper(trim(trigger.body.name)) + '!'", json!("ADA!")),
    ];
    for (src, expected) in cases {
        assert_eq!(eval(src), expected, "evaluating `{src}`");
    }
}

#[test]
fn function_type_errors_name_function_argument_and_type() {
    let cases = [
        (
            "lower(trigger.body.missing)",
            "`lower()` expects a string, got null",
        ),
        ("upper(1)", "`upper()` expects a string, got a number"),
        ("trim([])", "`trim()` expects a string, got an array"),
        (
            "len(5)",
            "`len()` expects a string, an array or an object, got a number",
        ),
        (
            "contains(1, 1)",
            "`contains()` expects a string, an array or an object as argument 1, got a number",
        ),
        (
            "contains('abc', 1)",
            "`contains()` expects a string as argument 2, got a number",
        ),
        (
            "startsWith('a', null)",
            "`startsWith()` expects a string as argument 2, got null",
        ),
        (
            "split(1, ',')",
            "`split()` expects a string as argument 1, got a number",
        ),
        (
            "join('abc', ',')",
            "`join()` expects an array as argument 1, got a string",
        ),
        (
            "join([1], 2)",
            "`join()` expects a string as argument 2, got a number",
        ),
        (
            "replace('abc', '', 'x')",
            "`replace()` expects a non-empty string to find as argument 2",
        ),
        (
            "slice(1, 0)",
            "`slice()` expects a string or an array as argument 1, got a number",
        ),
        (
            "slice('abc', '1')",
            "`slice()` expects an integer as argument 2, got a string",
        ),
        ("keys([1])", "`keys()` expects an object, got an array"),
        ("values('x')", "`values()` expects an object, got a string"),
        (
            "number('abc')",
            "`number()` cannot read \"abc\" as a number",
        ),
        ("number('')", "`number()` cannot read \"\" as a number"),
        (
            "number('NaN')",
            "`number()` cannot read \"NaN\" as a number",
        ),
        (
            "number('inf')",
            "`number()` cannot read \"inf\" as a number",
        ),
        (
            "number(null)",
            "`number()` expects a number, a numeric string or a boolean, got null",
        ),
        (
            "int([])",
            "`int()` expects a number, a numeric string or a boolean, got an array",
        ),
        (
            "int(1e300)",
            "`int()` result does not fit in a 64-bit integer",
        ),
        (
            "round('1')",
            "`round()` expects a number as argument 1, got a string",
        ),
        (
            "round(1.5, 16)",
            "`round()` expects an integer from 0 to 15 as argument 2",
        ),
        (
            "round(1.5, -1)",
            "`round()` expects an integer from 0 to 15 as argument 2",
        ),
        ("floor(null)", "`floor()` expects a number, got null"),
        ("abs('1')", "`abs()` expects a number, got a string"),
        ("max(1, 'a')", "`max()` expects numbers, got a string"),
        ("min([1, null])", "`min()` expects numbers, got null"),
        (
            "parseJson('{bad')",
            "`parseJson()` got invalid JSON: key must be a string at line 1 column 2",
        ),
        (
            "parseJson(1)",
            "`parseJson()` expects a string, got a number",
        ),
    ];
    for (src, expected) in cases {
        assert_eq!(eval_error(src), expected, "evaluating `{src}`");
    }
}

#[test]
fn long_inputs_are_cut_short_in_messages() {
    let src = format!("number('{}')", "x".repeat(100));
    let message = eval_error(&src);
    assert_eq!(
        message,
        format!("`number()` cannot read \"{}…\" as a number", "x".repeat(40))
    );
}

#[test]
fn every_function_is_found_by_its_name_and_checked_for_arity() {
    for function in Function::ALL {
        assert_eq!(Function::lookup(function.name()), Some(function));
        let (least, most) = function.arity();
        let args = |n: usize| vec!["null"; n].join(", ");
        let too_few = least
            .checked_sub(1)
            .map(|n| format!("{}({})", function.name(), args(n)));
        let too_many = most.map(|n| format!("{}({})", function.name(), args(n + 1)));
        for src in too_few.into_iter().chain(too_many) {
            let error = parse_expression(&src).expect_err("wrong arity must not parse");
            assert!(
                error
                    .message
                    .starts_with(&format!("`{}` takes ", function.name())),
                "`{src}`: {}",
                error.message
            );
        }
        let just_right = format!("{}({})", function.name(), args(least));
        assert!(
            parse_expression(&just_right).is_ok(),
            "`{just_right}` should parse"
        );
    }
}
