//! Properties: no input panics, well-formed expressions parse and print back to themselves,
//! and literals and arithmetic mean what they say.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::super::{parse_expression, parse_template};
use super::scope;

/// Characters that exercise the lexer and the template scanner far more than random text.
const SYNTAX_SOUP: &str = r#"[{}()\[\]'"\\a-z0-9 .+*/%!<>=&|?:,_$é-]{0,120}"#;

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..100_000).prop_map(|n| n.to_string()),
        (0.0f64..1e6).prop_map(|f| format!("{f:?}")),
        "[a-zA-Z0-9 é'\"{}\\\\]{0,10}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just("null".to_owned()),
        Just("trigger.body.name".to_owned()),
        Just("trigger.body.n".to_owned()),
        Just("trigger.body.tags[0]".to_owned()),
        Just("steps['my-step'].ok".to_owned()),
        Just("steps.list.items[-1].id".to_owned()),
        Just("vars.limit".to_owned()),
        Just("run.id".to_owned()),
    ]
}

/// Source text of a well-formed expression, built from the grammar.
fn expression() -> impl Strategy<Value = String> {
    let operators = prop_oneof![
        Just("+"),
        Just("-"),
        Just("*"),
        Just("/"),
        Just("%"),
        Just("=="),
        Just("!="),
        Just("<"),
        Just("<="),
        Just(">"),
        Just(">="),
        Just("&&"),
        Just("||"),
        Just("??"),
    ];
    leaf().prop_recursive(5, 48, 3, move |inner| {
        prop_oneof![
            (inner.clone(), operators.clone(), inner.clone())
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            inner.clone().prop_map(|a| format!("!{a}")),
            inner.clone().prop_map(|a| format!("-({a})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
            prop::collection::vec(inner.clone(), 0..3)
                .prop_map(|items| format!("[{}]", items.join(", "))),
            (inner.clone(), inner.clone()).prop_map(|(a, i)| format!("({a})[{i}]")),
            inner.clone().prop_map(|a| format!("({a}).name")),
            inner.clone().prop_map(|a| format!("len({a})")),
            inner.clone().prop_map(|a| format!("string({a})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("default({a}, {b})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("coalesce({a}, {b})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_template_never_panics_on_any_string(src in any::<String>()) {
        let _ = parse_template(&src);
        let _ = parse_expression(&src);
    }

    #[test]
    fn parse_and_render_never_panic_on_syntax_soup(src in SYNTAX_SOUP) {
        let _ = parse_expression(&src).map(|expr| expr.evaluate(&scope()));
        let wrapped = format!("x {{{{ {src} }}}} {{{{{src}");
        if let Ok(template) = parse_template(&wrapped) {
            let _ = template.render(&scope());
            let _ = template.references();
        }
    }

    #[test]
    fn parse_and_render_never_panic_on_printable_text(src in "\\PC{0,200}") {
        if let Ok(template) = parse_template(&src) {
            let _ = template.render(&scope());
        }
    }

    #[test]
    fn well_formed_expressions_parse_and_print_back_to_themselves(src in expression()) {
        let expr = parse_expression(&src)
            .map_err(|e| TestCaseError::fail(format!("`{src}` did not parse: {e}")))?;
        let printed = expr.to_string();
        let reparsed = parse_expression(&printed)
            .map_err(|e| TestCaseError::fail(format!("`{printed}` did not parse: {e}")))?;
        prop_assert_eq!(&reparsed, &expr);
        let _ = expr.evaluate(&scope());
        let in_template = parse_template(&format!("{{{{ {src} }}}}"))
            .map_err(|e| TestCaseError::fail(format!("`{src}` as a template: {e}")))?;
        prop_assert!(in_template.has_expressions());
    }

    #[test]
    fn string_literals_read_back_exactly(text in any::<String>().prop_filter("fits", |s| s.len() < 600)) {
        let literal = serde_json::to_string(&text).unwrap_or_default();
        let rendered = parse_template(&format!("{{{{ {literal} }}}}"))
            .map_err(|e| TestCaseError::fail(format!("{literal}: {e}")))?
            .render(&json!({}));
        prop_assert_eq!(rendered, Ok(Value::String(text)));
    }

    #[test]
    fn text_without_braces_renders_unchanged(text in "[^{\\\\]{0,100}") {
        let rendered = parse_template(&text)
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .render(&json!({}));
        prop_assert_eq!(rendered, Ok(Value::String(text)));
    }

    #[test]
    fn integer_arithmetic_is_exact_or_falls_back_to_float(a in any::<i64>(), b in any::<i64>()) {
        let scope = json!({"vars": {"a": a, "b": b}});
        let cases: [(&str, Option<i64>, f64); 3] = [
            ("+", a.checked_add(b), a as f64 + b as f64),
            ("-", a.checked_sub(b), a as f64 - b as f64),
            ("*", a.checked_mul(b), a as f64 * b as f64),
        ];
        for (op, exact, approximate) in cases {
            let src = format!("vars.a {op} vars.b");
            let value = parse_expression(&src)
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .evaluate(&scope)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            match exact {
                Some(n) => prop_assert_eq!(value, json!(n)),
                None => prop_assert_eq!(value.as_f64(), Some(approximate)),
            }
        }
    }

    #[test]
    fn comparisons_agree_with_rust(a in -1000i64..1000, b in -1000.0f64..1000.0) {
        let scope = json!({"vars": {"a": a, "b": b}});
        let holds = |src: &str| parse_expression(src)
            .ok()
            .and_then(|e| e.evaluate(&scope).ok());
        prop_assert_eq!(holds("vars.a < vars.b"), Some(json!((a as f64) < b)));
        prop_assert_eq!(holds("vars.a >= vars.b"), Some(json!((a as f64) >= b)));
        prop_assert_eq!(holds("vars.a == vars.a * 1.0"), Some(json!(true)));
    }
}
