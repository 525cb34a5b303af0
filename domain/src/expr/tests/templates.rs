//! Templates: whole-string typing versus interpolation, escapes, references, and the JSON
//! tree helpers used on node configs.

use serde_json::{Value, json};

use super::super::{
    ExprError, Reference, Template, check_templates, parse_template, render_value, templates_in,
};
use super::scope;

fn template(src: &str) -> Template {
    parse_template(src).unwrap_or_else(|e| panic!("`{src}` should parse: {e}"))
}

fn render(src: &str) -> Value {
    template(src)
        .render(&scope())
        .unwrap_or_else(|e| panic!("`{src}` should render: {e}"))
}

fn reference(root: &str, first: Option<&str>) -> Reference {
    Reference {
        root: root.to_owned(),
        first: first.map(str::to_owned),
    }
}

#[test]
fn a_lone_expression_keeps_its_type() {
    let cases = [
        ("{{ trigger.body.n * 2 }}", json!(12)),
        ("{{trigger.body.n}}", json!(6)),
        ("{{   trigger.body.flag   }}", json!(true)),
        ("{{ trigger.body.tags }}", json!(["a", "b", "c"])),
        ("{{ trigger.body.nested }}", json!({"deep": {"x": 1}})),
        ("{{ trigger.body.missing }}", json!(null)),
        ("{{ trigger.body.price }}", json!(2.5)),
        ("{{ '}}' }}", json!("}}")),
        ("{{\n  steps.greet.n > 10\n}}", json!(true)),
    ];
    for (src, expected) in cases {
        assert_eq!(render(src), expected, "rendering `{src}`");
    }
}

#[test]
fn anything_else_is_interpolated_as_text() {
    let cases = [
        ("Hello {{ trigger.body.name }}", "Hello Ada"),
        (
            "Hello {{ trigger.body.name }} and {{ run.id }}!",
            "Hello Ada and run-1!",
        ),
        ("{{ trigger.body.name }}{{ trigger.body.n }}", "Ada6"),
        (" {{ trigger.body.n }}", " 6"),
        ("{{ trigger.body.n }} ", "6 "),
        ("n={{ trigger.body.n * 2 }}", "n=12"),
        ("[{{ trigger.body.missing }}]", "[]"),
        ("p={{ trigger.body.price * 2 }}", "p=5"),
        ("f={{ 4.0 }}", "f=4"),
        ("f={{ 0.1 + 0.2 }}", "f=0.30000000000000004"),
        ("big={{ 1e21 }}", "big=1e+21"),
        ("b={{ trigger.body.flag }}", "b=true"),
        ("t={{ trigger.body.tags }}", "t=[\"a\",\"b\",\"c\"]"),
        ("o={{ trigger.body.nested }}", "o={\"deep\":{\"x\":1}}"),
        ("plain text", "plain text"),
        ("", ""),
        ("a }} b", "a }} b"),
        ("single { brace }", "single { brace }"),
    ];
    for (src, expected) in cases {
        assert_eq!(render(src), json!(expected), "rendering `{src}`");
    }
}

#[test]
fn backslash_brace_brace_writes_a_literal_opening() {
    let cases = [
        (r"\{{ not an expression }}", "{{ not an expression }}"),
        (r"a \{{ b {{ trigger.body.n }}", "a {{ b 6"),
        (r"{{ trigger.body.n }}\{{", "6{{"),
        (r"back\slash \n stays", r"back\slash \n stays"),
        (r"\\{{", r"\{{"),
    ];
    for (src, expected) in cases {
        assert_eq!(render(src), json!(expected), "rendering `{src}`");
    }
    assert!(!template(r"\{{ x }}").has_expressions());
}

#[test]
fn bad_templates_are_parse_errors_at_the_right_place() {
    let cases = [
        (
            "Hello {{ trigger.body.name",
            6,
            "unclosed `{{`: expected `}}` to end the expression",
        ),
        (
            "{{",
            0,
            "unclosed `{{`: expected `}}` to end the expression",
        ),
        ("a {{ }} b", 5, "empty expression"),
        (
            "{{ trigger.body.n + }}",
            20,
            "unexpected end of the expression: expected a value",
        ),
        (
            "ok {{ run.id }} then {{ trigge }}",
            24,
            "unknown name `trigge`: an expression starts from `trigger`, `steps`, `vars`, `run`",
        ),
        (
            "{{ {{ x }} }}",
            3,
            "unexpected `{`: object literals and nested `{{` are not supported",
        ),
        (
            "{{ a } }}",
            5,
            "unexpected `}`: object literals and nested `{{` are not supported",
        ),
        (
            "{{ run.id } }}",
            10,
            "unexpected `}`: object literals and nested `{{` are not supported",
        ),
        ("{{ 'abc }}", 3, "unterminated string: expected a closing '"),
        ("héllo {{ foo() }}", 9, "unknown function `foo`"),
    ];
    for (src, offset, message) in cases {
        assert_eq!(
            parse_template(src),
            Err(ExprError {
                message: message.to_owned(),
                offset
            }),
            "parsing `{src}`"
        );
    }
}

#[test]
fn has_expressions_tells_templates_from_plain_strings() {
    assert!(template("{{ run.id }}").has_expressions());
    assert!(template("x {{ run.id }} y").has_expressions());
    assert!(!template("https://example.com/x").has_expressions());
    assert!(!template("").has_expressions());
}

#[test]
fn references_list_every_root_path_read() {
    let cases: [(&str, Vec<Reference>); 9] = [
        (
            "{{ steps.greet.n }}",
            vec![reference("steps", Some("greet"))],
        ),
        (
            "{{ trigger.body }}",
            vec![reference("trigger", Some("body"))],
        ),
        (
            "{{ steps[vars.key] }}",
            vec![reference("steps", None), reference("vars", Some("key"))],
        ),
        (
            "{{ steps['my-step'].ok }}",
            vec![reference("steps", Some("my-step"))],
        ),
        ("{{ steps }}", vec![reference("steps", None)]),
        (
            "{{ steps.a.x }} and {{ steps.b }} and {{ steps.a.y }}",
            vec![reference("steps", Some("a")), reference("steps", Some("b"))],
        ),
        (
            "{{ len(steps.a.items) > 0 ? upper(trigger.body.name) : vars.fallback ?? run.id }}",
            vec![
                reference("steps", Some("a")),
                reference("trigger", Some("body")),
                reference("vars", Some("fallback")),
                reference("run", Some("id")),
            ],
        ),
        (
            "{{ [steps.a, -steps.b.n, !vars.x][0] }}",
            vec![
                reference("steps", Some("a")),
                reference("steps", Some("b")),
                reference("vars", Some("x")),
            ],
        ),
        ("no expressions", vec![]),
    ];
    for (src, expected) in cases {
        assert_eq!(
            template(src).references(),
            expected,
            "references of `{src}`"
        );
    }
}

#[test]
fn check_templates_reports_every_bad_string_with_its_path() {
    let config = json!({
        "fields": {
            "message": "Hello {{ trigger.body.name",
            "ok": "{{ run.id }}",
            "a/b": "{{ nope }}",
            "t~": "{{ 1 + }}"
        },
        "list": ["fine", "{{ ) }}", {"deep": "{{ x"}],
        "count": 3,
        "{{ keys are literal": true
    });
    let problems: Vec<(String, String)> = check_templates(&config)
        .into_iter()
        .map(|(path, error)| (path, error.to_string()))
        .collect();
    assert_eq!(
        problems,
        vec![
            (
                "/fields/a~1b".to_owned(),
                "at 3: unknown name `nope`: an expression starts from `trigger`, `steps`, `vars`, `run`".to_owned()
            ),
            (
                "/fields/message".to_owned(),
                "at 6: unclosed `{{`: expected `}}` to end the expression".to_owned()
            ),
            (
                "/fields/t~0".to_owned(),
                "at 7: unexpected end of the expression: expected a value".to_owned()
            ),
            ("/list/1".to_owned(), "at 3: unexpected `)`: expected a value".to_owned()),
            (
                "/list/2/deep".to_owned(),
                "at 0: unclosed `{{`: expected `}}` to end the expression".to_owned()
            ),
        ]
    );
    assert!(check_templates(&json!("{{ run.id }}")).is_empty());
    assert_eq!(check_templates(&json!("{{")).len(), 1);
    assert_eq!(check_templates(&json!("{{"))[0].0, "");
}

#[test]
fn templates_in_finds_every_string_with_an_expression() {
    let config = json!({
        "url": "https://example.com/x",
        "body": {"m": "{{ steps.greet.message }}", "items": ["a", "n={{ trigger.body.n }}"]},
        "broken": "{{ x"
    });
    let found: Vec<(String, Vec<Reference>)> = templates_in(&config)
        .into_iter()
        .map(|(path, t)| (path, t.references()))
        .collect();
    assert_eq!(
        found,
        vec![
            (
                "/body/items/1".to_owned(),
                vec![reference("trigger", Some("body"))]
            ),
            (
                "/body/m".to_owned(),
                vec![reference("steps", Some("greet"))]
            ),
        ]
    );
}

#[test]
fn render_value_renders_the_contract_example() {
    let greet = json!({"fields": {
        "message": "Hello {{ trigger.body.name }}",
        "n": "{{ trigger.body.n * 2 }}"
    }});
    assert_eq!(
        render_value(&greet, &scope()),
        Ok(json!({"fields": {"message": "Hello Ada", "n": 12}}))
    );
    let call = json!({
        "method": "POST",
        "url": "https://example.com/x",
        "body": {"m": "{{ steps.greet.message }}", "list": ["{{ steps.greet.n }}", 1, null, true]},
        "{{ key }}": "{{ vars.region }}"
    });
    assert_eq!(
        render_value(&call, &scope()),
        Ok(json!({
            "method": "POST",
            "url": "https://example.com/x",
            "body": {"m": "Hello Ada", "list": [12, 1, null, true]},
            "{{ key }}": "eu"
        }))
    );
    let condition = json!({"condition": "{{ steps.greet.n > 10 }}"});
    assert_eq!(
        render_value(&condition, &scope()),
        Ok(json!({"condition": true}))
    );
}

#[test]
fn render_errors_name_the_path_and_the_expression() {
    let config = json!({"fields": {"n": "x {{ trigger.body.name * 2 }}"}});
    assert_eq!(
        render_value(&config, &scope()).map_err(|e| e.message),
        Err("/fields/n: in `{{ trigger.body.name * 2 }}`: cannot apply `*` to a string and a number".to_owned())
    );
    let invalid = json!(["{{ x"]);
    assert_eq!(
        render_value(&invalid, &scope()).map_err(|e| e.to_string()),
        Err(
            "/0: invalid template: at 0: unclosed `{{`: expected `}}` to end the expression"
                .to_owned()
        )
    );
    assert_eq!(
        render_value(&json!("{{ 1 / 0 }}"), &scope()).map_err(|e| e.message),
        Err("/: in `{{ 1 / 0 }}`: division by zero".to_owned())
    );
}

#[test]
fn long_expressions_are_cut_short_in_render_errors() {
    let src = format!("{{{{ '{}' * 2 }}}}", "y".repeat(200));
    let error = template(&src)
        .render(&scope())
        .expect_err("a string times a number");
    assert_eq!(
        error.message,
        format!(
            "in `{{{{ '{}… }}}}`: cannot apply `*` to a string and a number",
            "y".repeat(79)
        )
    );
}
