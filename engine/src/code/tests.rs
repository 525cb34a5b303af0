//! The sandbox against real QuickJS: values in and out, author errors, the limits, the
//! absence of I/O, isolation between runs, and the wrapper's refusal of escapes.

use std::time::Duration;

use serde_json::{Value, json};

use super::console::LogBook;
use super::wrapper::{WrappedSource, describe_location, line_count};
use super::{CodeError, CodeInput, CodeLimits, run_code, run_code_with_logs};

fn input() -> CodeInput {
    CodeInput {
        trigger: json!({"body": {"name": "Ada", "n": 21}}),
        steps: json!({"greet": {"message": "Hello Ada"}}),
        vars: json!({"region": "eu"}),
        run: json!({"id": "run-1", "workflowId": "wf-1"}),
        item: serde_json::Value::Null,
        index: serde_json::Value::Null,
    }
}

/// Short enough that timeout tests are quick, long enough for any honest test body.
fn quick_limits() -> CodeLimits {
    CodeLimits {
        time: Duration::from_millis(300),
        ..CodeLimits::default()
    }
}

/// Memory small enough to fill fast, time long enough that memory runs out first.
fn small_memory_limits() -> CodeLimits {
    CodeLimits {
        memory_bytes: 8 * 1024 * 1024,
        time: Duration::from_secs(30),
        ..CodeLimits::default()
    }
}

async fn run(source: &str) -> Result<Value, CodeError> {
    run_code(source, input(), &quick_limits()).await
}

#[tokio::test]
async fn returns_every_json_type() {
    let cases = [
        ("return null", json!(null)),
        ("return true", json!(true)),
        ("return false", json!(false)),
        ("return 42", json!(42)),
        ("return -1.5", json!(-1.5)),
        ("return 2 ** 53", json!(9_007_199_254_740_992_u64)),
        ("return 'héllo \"world\"\\n'", json!("héllo \"world\"\n")),
        ("return []", json!([])),
        (
            "return [1, 'a', null, [true]]",
            json!([1, "a", null, [true]]),
        ),
        ("return {}", json!({})),
        (
            "return {a: {b: [1, {c: 'd'}]}}",
            json!({"a": {"b": [1, {"c": "d"}]}}),
        ),
    ];
    for (source, expected) in cases {
        assert_eq!(run(source).await, Ok(expected), "source: {source}");
    }
}

#[tokio::test]
async fn undefined_becomes_null_and_follows_json_rules_inside_values() {
    let cases = [
        ("return undefined", json!(null)),
        ("", json!(null)),
        ("let x = 1", json!(null)),
        ("return {a: undefined, b: 1}", json!({"b": 1})),
        ("return [undefined]", json!([null])),
        ("return new Date(0)", json!("1970-01-01T00:00:00.000Z")),
        ("return {toJSON() { return 'custom' }}", json!("custom")),
        ("return -0", json!(0)),
    ];
    for (source, expected) in cases {
        assert_eq!(run(source).await, Ok(expected), "source: {source}");
    }
}

#[tokio::test]
async fn sees_trigger_steps_vars_and_run() {
    let returned = run("return {trigger, steps, vars, run}").await;

    assert_eq!(
        returned,
        Ok(json!({
            "trigger": input().trigger,
            "steps": input().steps,
            "vars": input().vars,
            "run": input().run,
        }))
    );
    assert_eq!(
        run("return `${steps.greet.message}, ${trigger.body.n * 2} from ${vars.region}`").await,
        Ok(json!("Hello Ada, 42 from eu"))
    );
}

#[tokio::test]
async fn sees_the_loop_item_and_index_and_null_outside_a_loop() {
    let in_loop = CodeInput {
        item: json!({"letter": "b"}),
        index: json!(1),
        ..input()
    };

    let inside = run_code("return {item, index}", in_loop, &quick_limits()).await;
    let outside = run("return {item, index}").await;

    assert_eq!(inside, Ok(json!({"item": {"letter": "b"}, "index": 1})));
    assert_eq!(outside, Ok(json!({"item": null, "index": null})));
}

#[tokio::test]
async fn inputs_arrive_intact_whatever_their_text() {
    let awkward = [
        "'); throw 1; ('",
        "\"}); throw 1; (function(){\"",
        "</script><script>",
        "line\nbreak\u{2028}separator\u{2029}",
        "\\u0041 is not A here",
        "nul\u{0}byte",
        "emoji 🦀 and ünïcödé",
        "${trigger}",
    ];
    for text in awkward {
        let input = CodeInput {
            trigger: json!({"text": text}),
            ..input()
        };

        let returned = run_code("return trigger.text", input, &quick_limits()).await;

        assert_eq!(returned, Ok(json!(text)), "input: {text:?}");
    }
}

#[tokio::test]
async fn mutating_an_input_changes_only_the_runs_copy() {
    let returned = run("steps.greet.message = 'changed'; return steps").await;

    assert_eq!(returned, Ok(json!({"greet": {"message": "changed"}})));
    assert_eq!(input().steps, json!({"greet": {"message": "Hello Ada"}}));
}

#[tokio::test]
async fn await_and_returned_promises_are_settled() {
    let cases = [
        ("return await Promise.resolve(3)", json!(3)),
        ("return Promise.resolve('direct')", json!("direct")),
        (
            "async function double(x) { await null; return x * 2 }\n\
             return await Promise.all([double(1), double(2)])",
            json!([2, 4]),
        ),
        ("return {then(resolve) { resolve(5) }}", json!(5)),
        ("queueMicrotask(() => {}); return 'queued'", json!("queued")),
    ];
    for (source, expected) in cases {
        assert_eq!(run(source).await, Ok(expected), "source: {source}");
    }
}

#[tokio::test]
async fn a_promise_nothing_can_settle_is_refused() {
    for source in [
        "return new Promise(() => {})",
        "await new Promise(() => {})",
        "return {then() {}}",
    ] {
        assert_eq!(
            run(source).await,
            Err(CodeError::NeverSettled),
            "source: {source}"
        );
    }
}

#[tokio::test]
async fn syntax_errors_name_the_line_and_column_in_the_authors_source() {
    let returned = run("const a = 1;\n\n  let x = ;").await;

    assert_eq!(
        returned,
        Err(CodeError::Syntax(
            "SyntaxError: unexpected token in expression: ';' (line 3, column 11)".to_owned()
        ))
    );
}

#[tokio::test]
async fn unfinished_code_is_a_syntax_error_at_its_end() {
    for source in [
        "return 1 +",
        "if (true) {",
        "return `open template",
        "/* open comment",
    ] {
        let returned = run(source).await;

        let Err(CodeError::Syntax(message)) = &returned else {
            panic!("source {source:?} gave {returned:?}");
        };
        assert!(message.contains("SyntaxError"), "{message}");
        assert!(
            !message.contains("closes the function around it"),
            "an honest mistake is not an escape: {message}"
        );
    }
}

#[tokio::test]
async fn nesting_too_deep_for_the_parser_is_a_syntax_error() {
    let source = format!("return {}1{}", "(".repeat(100_000), ")".repeat(100_000));

    let returned = run(&source).await;

    let Err(CodeError::Syntax(message)) = &returned else {
        panic!("deep nesting gave {returned:?}");
    };
    assert!(
        !message.contains("closes the function around it"),
        "a parser limit is not an escape: {message}"
    );
}

#[tokio::test]
async fn thrown_errors_keep_name_message_and_location() {
    let cases = [
        (
            "throw new TypeError('boom')",
            "TypeError: boom (line 1, column 11)",
        ),
        (
            "function f() {\n  null.x\n}\nf()",
            "TypeError: cannot read property 'x' of null (line 2, column 3)",
        ),
        (
            "return nope",
            "ReferenceError: nope is not defined (line 1, column 8)",
        ),
        (
            "return await Promise.reject(new Error('rejected'))",
            "Error: rejected (line 1, column 33)",
        ),
        ("throw 'a plain string'", "a plain string"),
        ("throw {code: 7}", "{\"code\":7}"),
        ("throw 12", "12"),
    ];
    for (source, expected) in cases {
        assert_eq!(
            run(source).await,
            Err(CodeError::Thrown(expected.to_owned())),
            "source: {source}"
        );
    }
}

#[tokio::test]
async fn caught_errors_are_the_authors_business() {
    let returned = run("try { null.x } catch (e) { return e.name }").await;

    assert_eq!(returned, Ok(json!("TypeError")));
}

#[tokio::test]
async fn endless_work_times_out() {
    let cases = [
        "while (true) {}",
        "for (;;) { Math.random() }",
        "function spin() { while (true) {} }\nspin()",
        "try { while (true) {} } catch (e) { return 'caught' } finally { return 'finally' }",
        "async function forever() { while (true) await null }\nreturn await forever()",
        "return /(a+)+$/.test('a'.repeat(40) + '!')",
        "let s = 0; for (const x of (function* () { while (true) yield 1 })()) s += x",
    ];
    for source in cases {
        assert_eq!(
            run(source).await,
            Err(CodeError::Timeout),
            "source: {source}"
        );
    }
}

#[tokio::test]
async fn huge_allocations_run_out_of_memory() {
    let cases = [
        "let a = []; while (true) a.push(new Array(1e6))",
        "let a = []; while (true) a.push(new Array(1e6).fill(1))",
        "return 'x'.repeat(1e8).length",
        "let a = []; for (let i = 0; i < 1e7; i++) a = [a]; return 1",
        "globalThis.keep = []; while (true) keep.push({i: keep.length})",
        "try { let a = []; while (true) a.push(new Array(1e5).fill(1)) } catch (e) {}\n\
         let b = []; while (true) b.push(new Array(1e5).fill(1))",
    ];
    for source in cases {
        let returned = run_code(source, input(), &small_memory_limits()).await;

        assert_eq!(returned, Err(CodeError::OutOfMemory), "source: {source}");
    }
}

#[tokio::test]
async fn a_zero_limit_is_not_unlimited() {
    let no_memory = CodeLimits {
        memory_bytes: 0,
        ..quick_limits()
    };
    let no_stack = CodeLimits {
        max_stack_bytes: 0,
        ..quick_limits()
    };

    let without_memory = run_code("return 1", input(), &no_memory).await;
    let without_stack = run_code(
        "function f() { return f() }\nreturn f()",
        input(),
        &no_stack,
    )
    .await;

    assert_eq!(without_memory, Err(CodeError::OutOfMemory));
    assert!(without_stack.is_err(), "{without_stack:?}");
}

#[tokio::test]
async fn deep_recursion_is_a_clean_error() {
    let returned = run("function down(n) { return down(n + 1) + 1 }\nreturn down(0)").await;

    let Err(CodeError::Thrown(message)) = &returned else {
        panic!("deep recursion gave {returned:?}");
    };
    assert!(
        message.starts_with("RangeError: Maximum call stack size exceeded (line 1, column "),
        "{message}"
    );
}

#[tokio::test]
async fn moderate_recursion_fits_in_the_stack() {
    let returned =
        run("function down(n) { return n === 0 ? 0 : 1 + down(n - 1) }\nreturn down(100)").await;

    assert_eq!(returned, Ok(json!(100)));
}

#[tokio::test]
async fn no_io_or_host_object_is_reachable() {
    let cases = [
        "return require('fs')",
        "return require('fs').readFileSync('/etc/passwd', 'utf8')",
        "return import('os')",
        "return await import('std')",
        "return await import('fs')",
        "return await fetch('http://127.0.0.1/')",
        "return new XMLHttpRequest()",
        "return new WebSocket('ws://127.0.0.1/')",
        "return std.loadFile('/etc/passwd')",
        "return os.exec(['ls'])",
        "return process.env",
        "return Deno.readTextFile('/etc/passwd')",
        "setTimeout(() => {}, 0)",
        "return Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)",
    ];
    for source in cases {
        let returned = run(source).await;

        assert!(
            matches!(returned, Err(CodeError::Thrown(_))),
            "source {source:?} gave {returned:?}"
        );
    }
}

#[tokio::test]
async fn host_globals_do_not_exist() {
    let names = [
        "require",
        "process",
        "module",
        "exports",
        "fetch",
        "XMLHttpRequest",
        "WebSocket",
        "std",
        "os",
        "setTimeout",
        "setInterval",
        "performance",
        "WebAssembly",
        "Deno",
        "Bun",
        "print",
        "scriptArgs",
        "WeakRef",
        "FinalizationRegistry",
    ];
    let source = format!(
        "return {}.filter(name => typeof globalThis[name] !== 'undefined')",
        serde_json::to_string(&names).expect("names serialise")
    );

    assert_eq!(run(&source).await, Ok(json!([])));
}

#[tokio::test]
async fn output_larger_than_the_limit_is_refused() {
    let limits = CodeLimits {
        max_output_bytes: 100,
        ..quick_limits()
    };

    let fits = run_code("return 'x'.repeat(98)", input(), &limits).await;
    let too_large = run_code("return 'x'.repeat(99)", input(), &limits).await;
    let default_limit = run("return 'x'.repeat(2 * 1024 * 1024)").await;

    assert_eq!(fits, Ok(json!("x".repeat(98))));
    assert_eq!(too_large, Err(CodeError::OutputTooLarge));
    assert_eq!(default_limit, Err(CodeError::OutputTooLarge));
}

#[tokio::test]
async fn values_without_a_json_form_are_refused_by_name() {
    let cases = [
        ("return NaN", "the returned value is NaN"),
        ("return {a: [1, Infinity]}", "item 1 is Infinity"),
        ("return {n: -Infinity}", "property \"n\" is Infinity"),
        ("return 10n", "the returned value is a BigInt"),
        ("return {big: 1n}", "property \"big\" is a BigInt"),
        ("return Symbol('s')", "the returned value is a symbol"),
        ("return {f() {}}", "property \"f\" is a function"),
        ("return [() => 1]", "item 0 is a function"),
        ("return () => 1", "the returned value is a function"),
        (
            "return {p: Promise.resolve(1)}",
            "property \"p\" is a promise",
        ),
        (
            "return {e: new Error('x')}",
            "property \"e\" is an Error object",
        ),
        ("const o = {}; o.self = o; return o", "circular reference"),
        ("const a = [1]; a.push({a}); return a", "circular reference"),
        ("return {toJSON() { throw new Error('no') }}", "Error: no"),
    ];
    for (source, expected) in cases {
        let returned = run(source).await;

        let Err(CodeError::NotJson(message)) = &returned else {
            panic!("source {source:?} gave {returned:?}");
        };
        assert!(message.contains(expected), "source {source:?}: {message}");
    }
}

#[tokio::test]
async fn nesting_beyond_what_json_consumers_accept_is_refused() {
    let nest =
        |levels: u32| format!("let a = []; for (let i = 1; i < {levels}; i++) a = [a]; return a");

    let deepest_allowed = run(&nest(127)).await;
    let too_deep = run(&nest(128)).await;
    let far_too_deep = run(&nest(100_000)).await;

    assert!(deepest_allowed.is_ok(), "{deepest_allowed:?}");
    assert!(
        matches!(too_deep, Err(CodeError::NotJson(_))),
        "{too_deep:?}"
    );
    assert!(
        matches!(far_too_deep, Err(CodeError::NotJson(_))),
        "{far_too_deep:?}"
    );
}

#[tokio::test]
async fn code_that_closes_its_function_early_is_refused() {
    let escapes = [
        "}); globalThis.evil = 1; (function(){",
        "return 1 }, function(){",
        "}) || (async function(){ return 'hijacked'",
        "}); (async function (trigger, steps, vars, run) {\nreturn 'hijacked'\n}); (function(){",
        "}); throw new Error('ran outside'); (function(){",
        "})\n(async function(){ return 'hijacked'",
    ];
    for source in escapes {
        let returned = run(source).await;

        let Err(CodeError::Syntax(message)) = &returned else {
            panic!("source {source:?} gave {returned:?}");
        };
        assert!(
            message.contains("closes the function around it early"),
            "source {source:?}: {message}"
        );
    }
}

#[tokio::test]
async fn bodies_that_merely_look_like_escapes_still_run() {
    let cases = [
        ("return 1 // trailing comment", json!(1)),
        ("return '}); (function(){'", json!("}); (function(){")),
        ("const f = function () { return 2 }; return f()", json!(2)),
        ("'use strict'; return this === undefined", json!(true)),
        ("return arguments.length", json!(6)),
    ];
    for (source, expected) in cases {
        assert_eq!(run(source).await, Ok(expected), "source: {source}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_do_not_share_globals() {
    let writer = "globalThis.x = 'leaked'; Object.prototype.polluted = true;\n\
                  JSON.stringify = () => '\"hijacked\"';\n\
                  const until = Date.now() + 50; while (Date.now() < until) {}\n\
                  return typeof globalThis.x";
    let reader = "const until = Date.now() + 50; while (Date.now() < until) {}\n\
                  return [typeof globalThis.x, typeof ({}).polluted, JSON.stringify(1)]";
    let limits = CodeLimits::default();

    let (written, read) = tokio::join!(
        run_code(writer, input(), &limits),
        run_code(reader, input(), &limits)
    );
    let read_afterwards = run_code(reader, input(), &limits).await;

    assert_eq!(written, Ok(json!("string")));
    assert_eq!(read, Ok(json!(["undefined", "undefined", "1"])));
    assert_eq!(read_afterwards, Ok(json!(["undefined", "undefined", "1"])));
}

#[tokio::test]
async fn the_next_run_works_after_a_timeout_and_an_out_of_memory() {
    let timed_out = run("while (true) {}").await;
    let out_of_memory = run_code(
        "let a = []; while (true) a.push(new Array(1e6))",
        input(),
        &small_memory_limits(),
    )
    .await;
    let overflowed = run("function f() { return f() }\nf()").await;
    let next = run("return trigger.body.n * 2").await;

    assert_eq!(timed_out, Err(CodeError::Timeout));
    assert_eq!(out_of_memory, Err(CodeError::OutOfMemory));
    assert!(
        matches!(overflowed, Err(CodeError::Thrown(_))),
        "{overflowed:?}"
    );
    assert_eq!(next, Ok(json!(42)));
}

#[tokio::test]
async fn console_output_is_collected_even_when_the_run_fails() {
    let succeeded = run_code_with_logs(
        "console.log('hi', {a: 1}, [2], 3n, undefined, null);\n\
         console.error(new TypeError('bad'));\n\
         const o = {}; o.o = o; console.info(o);\n\
         return 'done'",
        input(),
        &quick_limits(),
    )
    .await;
    let failed = run_code_with_logs(
        "console.warn('before'); throw new Error('after')",
        input(),
        &quick_limits(),
    )
    .await;

    assert_eq!(succeeded.result, Ok(json!("done")));
    assert_eq!(
        succeeded.logs,
        vec![
            "hi {\"a\":1} [2] 3 undefined null".to_owned(),
            "TypeError: bad".to_owned(),
            "[object Object]".to_owned(),
        ]
    );
    assert!(matches!(failed.result, Err(CodeError::Thrown(_))));
    assert_eq!(failed.logs, vec!["before".to_owned()]);
}

#[tokio::test]
async fn console_output_is_capped() {
    // The time limit is generous: this test is about the log cap, and a loaded machine
    // must not turn it into a timeout.
    let limits = CodeLimits {
        max_log_bytes: 10,
        time: Duration::from_secs(10),
        ..CodeLimits::default()
    };

    let outcome = run_code_with_logs(
        "for (let i = 0; i < 2000; i++) console.log('line ' + i); return 'done'",
        input(),
        &limits,
    )
    .await;

    assert_eq!(outcome.result, Ok(json!("done")));
    assert_eq!(
        outcome.logs,
        vec![
            "line 0".to_owned(),
            "line".to_owned(),
            "[further console output dropped: log limit reached]".to_owned(),
        ]
    );
}

#[test]
fn log_book_truncates_on_a_character_boundary() {
    let mut book = LogBook::new(3);

    book.write("héllo".to_owned());

    assert_eq!(
        book.into_lines(),
        vec![
            "hé".to_owned(),
            "[further console output dropped: log limit reached]".to_owned()
        ]
    );
}

#[test]
fn locations_are_translated_to_the_authors_lines() {
    let cases = [
        ("    at code:3:11\n", 5, " (line 2, column 11)"),
        (
            "    at f (code:2:15)\n    at <anonymous> (code:4:1)\n",
            5,
            " (line 1, column 15)",
        ),
        (
            "    at <eval> (<input>:1:1)\n    at <anonymous> (code:2:1)\n",
            1,
            " (line 1, column 1)",
        ),
        ("    at code (code:7:3)\n", 9, " (line 6, column 3)"),
        ("    at code:3:1\n", 1, " (at the end of the code)"),
        ("    at native\n", 1, ""),
        ("", 1, ""),
    ];
    for (stack, body_lines, expected) in cases {
        assert_eq!(
            describe_location(stack, body_lines),
            expected,
            "stack: {stack:?}"
        );
    }
}

#[test]
fn line_count_counts_line_feeds() {
    assert_eq!(line_count(""), 1);
    assert_eq!(line_count("a"), 1);
    assert_eq!(line_count("a\nb\n"), 3);
}

#[test]
fn only_the_wrapper_itself_is_the_function() {
    let wrapped = WrappedSource::new("return 1");

    assert_eq!(
        wrapped.script(),
        "(async function (trigger, steps, vars, run, item, index) {\nreturn 1\n})"
    );
    assert!(
        wrapped.is_the_function(
            "async function (trigger, steps, vars, run, item, index) {\nreturn 1\n}"
        )
    );
    assert!(!wrapped.is_the_function("function(){\n}"));
}
