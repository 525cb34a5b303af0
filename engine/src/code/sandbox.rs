//! One run, start to finish, on the calling (blocking) thread: a fresh runtime and
//! context, the inputs, the wrapped body, its promise, its output. Nothing here outlives
//! the call, and no JavaScript value escapes `Context::with`: QuickJS aborts the process
//! when a runtime is freed while values of it are still referenced.

use std::cell::RefCell;
use std::rc::Rc;

use rquickjs::context::EvalOptions;
use rquickjs::context::intrinsic::{
    Date, Eval, Json, MapSet, Promise, Proxy, RegExp, RegExpCompiler, TypedArrays,
};
use rquickjs::function::This;
use rquickjs::promise::PromiseState;
use rquickjs::{Coerced, Context, Ctx, FromJs, Function, Object, Runtime, Value};

use super::console::{self, LogBook};
use super::output::{self, OutputFailure};
use super::watchdog::Watchdog;
use super::wrapper::{self, WrappedSource};
use super::{CodeError, CodeInput, CodeLimits, CodeOutcome};

/// The language's own objects and nothing that reaches outside: no `performance`
/// (a timer for side channels, and useless here), no WeakRef or FinalizationRegistry
/// (callbacks at the garbage collector's whim). `Eval` is what lets the wrapper be
/// compiled at all.
type Intrinsics = (
    Date,
    Eval,
    RegExpCompiler,
    RegExp,
    Json,
    Proxy,
    MapSet,
    TypedArrays,
    Promise,
);

/// The message QuickJS's InternalError carries when an allocation hits the memory limit.
const OUT_OF_MEMORY_MESSAGE: &str = "out of memory";

pub(super) fn execute(source: &str, input: &CodeInput, limits: &CodeLimits) -> CodeOutcome {
    let book = Rc::new(RefCell::new(LogBook::new(limits.max_log_bytes)));
    let result = execute_in_fresh_runtime(source, input, limits, &book);
    let logs = Rc::try_unwrap(book)
        .map(|book| book.into_inner().into_lines())
        // Only the dropped runtime's console held other references, so this is never
        // taken; losing the logs is the harmless way out if it ever were.
        .unwrap_or_default();
    CodeOutcome { result, logs }
}

fn execute_in_fresh_runtime(
    source: &str,
    input: &CodeInput,
    limits: &CodeLimits,
    book: &Rc<RefCell<LogBook>>,
) -> Result<serde_json::Value, CodeError> {
    let runtime = Runtime::new()
        .map_err(|error| CodeError::Internal(format!("could not start QuickJS: {error}")))?;
    // QuickJS reads 0 as "no limit"; a limit of zero must not mean unlimited.
    runtime.set_memory_limit(limits.memory_bytes.max(1));
    runtime.set_max_stack_size(limits.max_stack_bytes.max(1));
    let watchdog = Watchdog::start(limits.time);
    runtime.set_interrupt_handler(Some(watchdog.interrupt_handler()));
    let context = Context::custom::<Intrinsics>(&runtime).map_err(|error| match error {
        rquickjs::Error::Allocation => CodeError::OutOfMemory,
        other => CodeError::Internal(format!("could not create a QuickJS context: {other}")),
    })?;
    let run = Run {
        watchdog: &watchdog,
        limits,
        body_lines: wrapper::line_count(source),
    };
    context.with(|ctx| run.execute(&ctx, source, input, book))
}

/// What every stage of a run needs to judge a failure.
struct Run<'a> {
    watchdog: &'a Watchdog,
    limits: &'a CodeLimits,
    /// Lines in the author's body, to tell a location in it from one past its end.
    body_lines: u64,
}

impl Run<'_> {
    fn execute<'js>(
        &self,
        ctx: &Ctx<'js>,
        source: &str,
        input: &CodeInput,
        book: &Rc<RefCell<LogBook>>,
    ) -> Result<serde_json::Value, CodeError> {
        console::install(ctx, book).map_err(|error| self.setup_failure(ctx, error))?;
        // Captured before any author code runs, which could replace it.
        let function_source =
            original_function_to_string(ctx).map_err(|error| self.setup_failure(ctx, error))?;
        let arguments = (
            self.json_argument(ctx, &input.trigger)?,
            self.json_argument(ctx, &input.steps)?,
            self.json_argument(ctx, &input.vars)?,
            self.json_argument(ctx, &input.run)?,
            self.json_argument(ctx, &input.item)?,
            self.json_argument(ctx, &input.index)?,
        );

        let function = self.compile(ctx, source, &function_source)?;
        let returned: Value<'js> = function
            .call(arguments)
            .map_err(|error| self.thrown(ctx, error))?;
        let value = self.settle(ctx, returned)?;
        let json = output::to_json(ctx, value, self.limits.max_output_bytes)
            .map_err(|failure| self.output_failure(ctx, failure))?;
        // An interrupt is uncatchable and QuickJS skips `finally` blocks for it, so a
        // value cannot survive one; this keeps that true should the engine ever change.
        if self.watchdog.fired() {
            return Err(CodeError::Timeout);
        }
        Ok(json)
    }

    /// Hands one input over as a JavaScript value, parsed from JSON by QuickJS's own
    /// parser: no author-controlled text is ever pasted into a script.
    fn json_argument<'js>(
        &self,
        ctx: &Ctx<'js>,
        value: &serde_json::Value,
    ) -> Result<Value<'js>, CodeError> {
        let json = serde_json::to_string(value).map_err(|error| {
            CodeError::Internal(format!("could not serialise an input: {error}"))
        })?;
        ctx.json_parse(json)
            .map_err(|error| self.setup_failure(ctx, error))
    }

    /// Evaluates the wrapper and returns the author's function, refusing a body that
    /// closed the wrapper early (see `wrapper.rs`).
    fn compile<'js>(
        &self,
        ctx: &Ctx<'js>,
        source: &str,
        function_source: &Function<'js>,
    ) -> Result<Function<'js>, CodeError> {
        let wrapped = WrappedSource::new(source);
        let mut options = EvalOptions::default();
        options.global = true;
        options.strict = false;
        options.backtrace_barrier = true;
        options.promise = false;
        options.filename = Some(wrapper::FILE_NAME.to_owned());
        let evaluated: Value<'js> = ctx
            .eval_with_options(wrapped.script(), options)
            .map_err(|error| self.compile_failure(ctx, error))?;
        let escaped = || {
            CodeError::Syntax(
                "the code must be a function body, but it closes the function around it early \
                 (check for an extra `}`)"
                    .to_owned(),
            )
        };
        let function = evaluated.into_function().ok_or_else(escaped)?;
        let text: String = function_source
            .call((This(function.clone()),))
            .map_err(|error| self.thrown(ctx, error))?;
        if wrapped.is_the_function(&text) {
            Ok(function)
        } else {
            Err(escaped())
        }
    }

    /// Runs the job queue until the async function's promise settles.
    fn settle<'js>(&self, ctx: &Ctx<'js>, returned: Value<'js>) -> Result<Value<'js>, CodeError> {
        let Some(promise) = returned.as_promise() else {
            // An async function always returns a promise; take a plain value as is.
            return Ok(returned);
        };
        loop {
            match promise.state() {
                PromiseState::Resolved => {
                    return match promise.result::<Value<'js>>() {
                        Some(Ok(value)) => Ok(value),
                        Some(Err(error)) => Err(self.thrown(ctx, error)),
                        None => Err(CodeError::Internal(
                            "a settled promise had no result".into(),
                        )),
                    };
                }
                PromiseState::Rejected => {
                    return Err(match promise.result::<Value<'js>>() {
                        Some(Err(error)) => self.thrown(ctx, error),
                        _ => CodeError::Internal("a rejected promise had no reason".into()),
                    });
                }
                PromiseState::Pending => {
                    // A job that throws (an interrupt) has its exception dropped by
                    // `execute_pending_job`; the watchdog says whether that was the time
                    // limit.
                    let ran_a_job = ctx.execute_pending_job();
                    if self.watchdog.fired() {
                        return Err(CodeError::Timeout);
                    }
                    if !ran_a_job {
                        return Err(CodeError::NeverSettled);
                    }
                }
            }
        }
    }

    /// A failure while compiling the wrapper. A body that really is a function body can
    /// only fail to parse here, or hit a limit of the parser (nesting too deep for the
    /// stack); anything else means code outside the function ran.
    fn compile_failure(&self, ctx: &Ctx<'_>, error: rquickjs::Error) -> CodeError {
        self.classify(ctx, error, |thrown| {
            let described = self.describe_thrown(ctx, &thrown);
            let parser_error = matches!(
                error_name(&thrown).as_deref(),
                Some("SyntaxError" | "RangeError" | "InternalError")
            );
            if parser_error {
                CodeError::Syntax(described)
            } else {
                CodeError::Syntax(format!(
                    "the code must be a function body, but it closes the function around it \
                     early and then failed: {described}"
                ))
            }
        })
    }

    /// A failure while the author's code runs.
    fn thrown(&self, ctx: &Ctx<'_>, error: rquickjs::Error) -> CodeError {
        self.classify(ctx, error, |thrown| {
            CodeError::Thrown(self.describe_thrown(ctx, &thrown))
        })
    }

    /// A failure preparing the context, before any author code ran.
    fn setup_failure(&self, ctx: &Ctx<'_>, error: rquickjs::Error) -> CodeError {
        self.classify(ctx, error, |thrown| {
            CodeError::Internal(format!(
                "could not prepare the context: {}",
                self.describe_thrown(ctx, &thrown)
            ))
        })
    }

    fn output_failure(&self, ctx: &Ctx<'_>, failure: OutputFailure) -> CodeError {
        match failure {
            OutputFailure::Refused(reason) => CodeError::NotJson(reason),
            OutputFailure::TooLarge => CodeError::OutputTooLarge,
            OutputFailure::Js(error) => self.classify(ctx, error, |thrown| {
                let described = self.describe_thrown(ctx, &thrown);
                if described.contains("circular") {
                    CodeError::NotJson(
                        "it contains a circular reference (an object that contains itself)"
                            .to_owned(),
                    )
                } else {
                    CodeError::NotJson(format!("converting it to JSON failed: {described}"))
                }
            }),
        }
    }

    /// Sorts an rquickjs error into time, memory, or what `on_thrown` makes of the
    /// thrown value. Always takes the pending exception off the context.
    fn classify<'js>(
        &self,
        ctx: &Ctx<'js>,
        error: rquickjs::Error,
        on_thrown: impl FnOnce(Value<'js>) -> CodeError,
    ) -> CodeError {
        let thrown = error.is_exception().then(|| ctx.catch());
        if self.watchdog.fired() {
            return CodeError::Timeout;
        }
        match (error, thrown) {
            (rquickjs::Error::Allocation, _) => CodeError::OutOfMemory,
            (_, Some(thrown)) if is_out_of_memory(&thrown) => CodeError::OutOfMemory,
            (_, Some(thrown)) => on_thrown(thrown),
            (rquickjs::Error::InvalidString(_), None) => {
                CodeError::Syntax("the code contains a NUL character".to_owned())
            }
            (other, None) => CodeError::Internal(other.to_string()),
        }
    }

    /// `Name: message (line L, column C)` for an Error, a readable rendering of anything
    /// else that was thrown. Reading these can run author code (getters, `toJSON`), whose
    /// own exceptions are dropped.
    fn describe_thrown<'js>(&self, ctx: &Ctx<'js>, thrown: &Value<'js>) -> String {
        if let Some(error) = thrown.as_exception() {
            let name = error_name(thrown).unwrap_or_else(|| "Error".to_owned());
            let message = error.message().unwrap_or_default();
            let location = error
                .stack()
                .map(|stack| wrapper::describe_location(&stack, self.body_lines))
                .unwrap_or_default();
            let _ = ctx.catch();
            return format!("{name}: {message}{location}");
        }
        if let Some(text) = thrown.as_string().and_then(|text| text.to_string().ok()) {
            return text;
        }
        let rendered = ctx
            .json_stringify(thrown.clone())
            .ok()
            .flatten()
            .and_then(|json| json.to_string().ok())
            .or_else(|| {
                Coerced::<String>::from_js(ctx, thrown.clone())
                    .ok()
                    .map(|text| text.0)
            });
        let _ = ctx.catch();
        rendered.unwrap_or_else(|| "a value that cannot be printed".to_owned())
    }
}

fn original_function_to_string<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<Function<'js>> {
    let function: Object<'js> = ctx.globals().get("Function")?;
    let prototype: Object<'js> = function.get("prototype")?;
    prototype.get("toString")
}

/// QuickJS throws an InternalError "out of memory", or, when the heap is so full that
/// even that error cannot be allocated, `null`; nothing else in the engine throws `null`.
/// An author's own `throw null` is reported as out of memory too: the price of naming
/// the common case (a heap filled with many small objects) correctly.
fn is_out_of_memory(thrown: &Value<'_>) -> bool {
    thrown.is_null()
        || thrown
            .as_exception()
            .and_then(|error| error.message())
            .is_some_and(|message| message == OUT_OF_MEMORY_MESSAGE)
}

fn error_name(thrown: &Value<'_>) -> Option<String> {
    let error = thrown.as_exception()?;
    error
        .get::<_, Coerced<String>>("name")
        .ok()
        .map(|name| name.0)
}
