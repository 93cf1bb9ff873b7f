//! The adapter to monty 0.0.23, shared by the in-process sandbox and the worker process:
//! build a program from a function's source, run it with arguments under limits, and turn
//! monty's exceptions into `CodeError`s. Everything monty-specific lives here, so a later
//! interpreter (monty 1.x, Rhai) replaces this file only.

use super::convert::{from_monty, to_monty};
use super::error::{CodeError, CodeErrorKind};
use super::sandbox::{CallOutcome, Limits};
use super::signature::Signature;
use crate::graph::Value;
use monty::MontyRun;
use monty_types::{
    CompileOptions, ExcType, MontyException, PrintWriter, PrintWriterCallback, ResourceLimits,
    ResourceTracker,
};
use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

/// Prefix of the input variables that carry the call's arguments: the program ends with
/// `fn_name(_opto_0, _opto_1, ...)`. One program per arity; plain inputs are faster than a
/// `*args` tuple.
const ARG_PREFIX: &str = "_opto_";

/// Bytes of `print()` output kept per call; more is dropped (not an error, unlike monty's own cap).
pub const PRINT_CAP: usize = 4096;

/// The file name tracebacks show for a function's code.
pub fn script_name(fn_name: &str) -> String {
    format!("{fn_name}.py")
}

/// Parses `source` plus a final call of `fn_name` with `arity` positional arguments. Errors are
/// `Syntax`, located in `source`.
fn parse(source: &str, fn_name: &str, arity: usize) -> Result<MontyRun, CodeError> {
    let script = script_name(fn_name);
    let body = source.trim_end();
    let inputs: Vec<String> = (0..arity).map(|i| format!("{ARG_PREFIX}{i}")).collect();
    let program = format!("{body}\n{fn_name}({})\n", inputs.join(", "));
    match MontyRun::new(program, &script, inputs, CompileOptions::default()) {
        Ok(run) => Ok(run),
        // Parse the source alone so the error points into it, not at the appended call line.
        Err(e) => match MontyRun::new(body.to_string(), &script, vec![], CompileOptions::default())
        {
            // Every frame is in the source (an error at its end may point one line past it).
            Err(own) => Err(exception_to_error(&own, CodeErrorKind::Syntax, u32::MAX)),
            Ok(_) => Err(exception_to_error(&e, CodeErrorKind::Syntax, user_line_count(body))),
        },
    }
}

/// Compiles `source` for calls of `fn_name`: checks the syntax and that the function is defined
/// at top level, and prepares the program for the arity of its positional parameters.
pub fn compile_program(source: &str, fn_name: &str) -> Result<SharedProgram, CodeError> {
    let body = source.trim_end();
    let Some(signature) = Signature::find(body, fn_name) else {
        // A syntax error explains more than a missing function, so it wins.
        parse(body, fn_name, 0)?;
        return Err(CodeError::bare(
            CodeErrorKind::Syntax,
            "NameError",
            format!("the code must define the function `{fn_name}` at top level (a line starting with `def {fn_name}(`)"),
        ));
    };
    let arity =
        signature.params.iter().filter(|p| !p.starts_with('*') && p.as_str() != "/").count();
    let first = parse(body, fn_name, arity)?;
    Ok(SharedProgram {
        source: body.to_string(),
        fn_name: fn_name.to_string(),
        by_arity: Mutex::new(vec![(arity, Arc::new(Pool::new(first)))]),
    })
}

/// Runs a parsed program with `args` under a fresh budget. Never panics on the program's
/// behaviour; monty's own panics are the caller's to catch.
pub fn run_program(program: &MontyRun, args: &[Value], limits: &Limits) -> CallOutcome {
    let inputs = args.iter().map(to_monty).collect();
    let mut resource = ResourceLimits::default()
        .max_duration(limits.wall_time)
        .max_recursion_depth(limits.max_recursion_depth);
    if let Some(bytes) = limits.max_memory_bytes {
        resource = resource.max_memory(bytes);
    }
    let mut printer = CappedPrint::default();
    let result =
        program.run(inputs, ResourceTracker::new(resource), PrintWriter::Callback(&mut printer));
    let printed = printer.text;
    let result = match result {
        Ok(obj) => from_monty(&obj).map_err(|why| {
            CodeError::bare(
                CodeErrorKind::Exception,
                "TypeError",
                format!("the function's return value: {why}"),
            )
        }),
        Err(e) => {
            let lines = user_line_count(program.code()).saturating_sub(1);
            let mut err = exception_to_error(&e, CodeErrorKind::Exception, lines);
            err.printed = printed.clone();
            Err(err)
        }
    };
    CallOutcome { result, printed }
}

fn user_line_count(text: &str) -> u32 {
    u32::try_from(text.lines().count()).unwrap_or(u32::MAX)
}

/// A `CodeError` from a monty exception. Frames past `user_lines` (the appended call) are
/// dropped, so the traceback shows only the LLM's own code. `default_kind` is `Syntax` for
/// compile errors; runtime errors are classified by type.
pub fn exception_to_error(
    e: &MontyException,
    default_kind: CodeErrorKind,
    user_lines: u32,
) -> CodeError {
    let mut message = e.message().unwrap_or_default().to_string();
    if e.exc_type() == ExcType::KeyError {
        message = quote_key(message);
    }
    let kind = match e.exc_type() {
        ExcType::TimeoutError if message.starts_with("time limit exceeded") => {
            CodeErrorKind::Timeout
        }
        ExcType::MemoryError if message.starts_with("memory limit exceeded") => {
            CodeErrorKind::Memory
        }
        _ => default_kind,
    };
    let frames: Vec<_> =
        e.traceback().iter().filter(|f| f.start.line <= user_lines).cloned().collect();
    let line = frames.last().map(|f| f.start.line);
    let shown_message = e.message().map(|_| message.clone());
    let shown = MontyException::with_traceback(e.exc_type(), shown_message, frames);
    let mut traceback = shown.to_string();
    if let Some(hint) = hint(e.exc_type(), kind) {
        traceback.push('\n');
        traceback.push_str(hint);
    }
    CodeError {
        kind,
        exc_type: e.exc_type().to_string(),
        message,
        line,
        traceback,
        printed: String::new(),
    }
}

/// monty prints a missing string key bare (`KeyError: velocity`); CPython prints its repr
/// (`KeyError: 'velocity'`), which tells the LLM it was a string. Numbers, None, bools and
/// tuples are left as they are.
fn quote_key(message: String) -> String {
    let bare_literal = message.parse::<f64>().is_ok()
        || matches!(message.as_str(), "None" | "True" | "False")
        || message.starts_with(['(', '\'', '"']);
    if bare_literal || message.is_empty() {
        message
    } else {
        crate::graph::value::py_quote(&message)
    }
}

/// One line after the traceback where the sandbox, not the code, explains the failure.
fn hint(exc_type: ExcType, kind: CodeErrorKind) -> Option<&'static str> {
    match (kind, exc_type) {
        (CodeErrorKind::Timeout, _) => Some("Note: the call was stopped at its time limit; make sure every loop ends quickly."),
        (CodeErrorKind::Memory, _) => Some("Note: the call was stopped at its memory limit; build smaller lists and strings."),
        (_, ExcType::ModuleNotFoundError) => {
            Some("Note: only math, json, re, collections, itertools, functools, typing and dataclasses can be imported here.")
        }
        (_, ExcType::NotImplementedError) => {
            Some("Note: the sandbox runs a subset of Python; write this without the unsupported feature.")
        }
        _ => None,
    }
}

/// Collects `print()` output up to `PRINT_CAP` bytes and drops the rest.
#[derive(Default)]
struct CappedPrint {
    text: String,
}

impl CappedPrint {
    fn push_str(&mut self, s: &str) {
        let room = PRINT_CAP.saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
        } else {
            let cut = (0..=room).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
            self.text.push_str(&s[..cut]);
        }
    }
}

impl PrintWriterCallback for CappedPrint {
    fn stdout_write(&mut self, output: Cow<'_, str>) -> Result<(), MontyException> {
        self.push_str(&output);
        Ok(())
    }
    fn stdout_push(&mut self, end: char) -> Result<(), MontyException> {
        let mut buf = [0u8; 4];
        self.push_str(end.encode_utf8(&mut buf));
        Ok(())
    }
}

/// A compiled function that threads can share, with one parsed program per call arity
/// (made on first use). `MontyRun` is `Send` but not `Sync` (it fills lazy caches while
/// running), so each concurrent call borrows its own copy from a pool.
pub struct SharedProgram {
    source: String,
    fn_name: String,
    by_arity: Mutex<Vec<(usize, Arc<Pool>)>>,
}

struct Pool {
    template: Mutex<MontyRun>,
    spare: Mutex<Vec<MontyRun>>,
}

impl Pool {
    fn new(program: MontyRun) -> Self {
        Pool { template: Mutex::new(program), spare: Mutex::new(Vec::new()) }
    }
}

impl SharedProgram {
    fn pool(&self, arity: usize) -> Result<Arc<Pool>, CodeError> {
        let mut pools = self.by_arity.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, pool)) = pools.iter().find(|(a, _)| *a == arity) {
            return Ok(Arc::clone(pool));
        }
        let pool = Arc::new(Pool::new(parse(&self.source, &self.fn_name, arity)?));
        pools.push((arity, Arc::clone(&pool)));
        Ok(pool)
    }

    /// Runs like `run_program`, catching an interpreter panic as a `Crash` error (the copy that
    /// panicked is dropped, not reused).
    pub fn run(&self, args: &[Value], limits: &Limits) -> CallOutcome {
        let pool = match catch_unwind(AssertUnwindSafe(|| self.pool(args.len()))) {
            Ok(Ok(pool)) => pool,
            Ok(Err(e)) => return CallOutcome { result: Err(e), printed: String::new() },
            Err(payload) => {
                return CallOutcome {
                    result: Err(panic_error("compiling", payload)),
                    printed: String::new(),
                }
            }
        };
        let taken = pool.spare.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let program = match taken {
            Some(p) => p,
            None => pool.template.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        };
        match catch_unwind(AssertUnwindSafe(|| run_program(&program, args, limits))) {
            Ok(outcome) => {
                pool.spare.lock().unwrap_or_else(|p| p.into_inner()).push(program);
                outcome
            }
            Err(payload) => CallOutcome {
                result: Err(panic_error("running the code", payload)),
                printed: String::new(),
            },
        }
    }
}

/// Turns a panic payload into a `Crash` error, so a monty bug fails one call, not the host.
pub fn panic_error(what: &str, payload: Box<dyn std::any::Any + Send>) -> CodeError {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    CodeError::crash(format!("the interpreter panicked while {what}: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str, name: &str, args: &[Value]) -> CallOutcome {
        compile_program(src, name).unwrap().run(args, &Limits::default())
    }

    #[test]
    fn print_output_is_capped_without_failing_the_call() {
        let out = run(
            "def f():\n    for i in range(2000):\n        print('line', i)\n    return 7\n",
            "f",
            &[],
        );
        assert_eq!(out.result, Ok(Value::Int(7)));
        assert_eq!(out.printed.len(), PRINT_CAP);
        assert!(out.printed.starts_with("line 0\nline 1\n"));
    }

    #[test]
    fn a_syntax_error_wins_over_a_missing_function() {
        let err = compile_program("def g(:\n    pass\n", "f").err().unwrap();
        assert_eq!(err.exc_type, "SyntaxError");
        let err = compile_program("def g():\n    pass\n", "f").err().unwrap();
        assert_eq!(err.exc_type, "NameError");
    }

    #[test]
    fn calls_with_fewer_arguments_use_the_defaults() {
        let p =
            compile_program("def f(a, b=10, *rest):\n    return a + b + len(rest)\n", "f").unwrap();
        let lim = Limits::default();
        assert_eq!(p.run(&[Value::Int(1)], &lim).result, Ok(Value::Int(11)));
        assert_eq!(p.run(&[Value::Int(1), Value::Int(2)], &lim).result, Ok(Value::Int(3)));
        assert_eq!(
            p.run(&[Value::Int(1), Value::Int(2), Value::None, Value::None], &lim).result,
            Ok(Value::Int(5))
        );
    }

    #[test]
    fn traceback_hides_the_appended_call_and_adds_a_hint_for_imports() {
        let err = run("import random\n\ndef f():\n    return random.random()\n", "f", &[])
            .result
            .unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(!err.traceback.contains("_opto_"), "{err}");
        assert!(err.traceback.ends_with("Note: only math, json, re, collections, itertools, functools, typing and dataclasses can be imported here."), "{err}");
    }

    #[test]
    fn module_level_code_runs_before_each_call() {
        let src =
            "GAIN = 3\nTABLE = {k: k * GAIN for k in range(4)}\n\ndef f(k):\n    return TABLE[k]\n";
        assert_eq!(run(src, "f", &[Value::Int(3)]).result, Ok(Value::Int(9)));
    }

    #[test]
    fn key_errors_quote_string_keys_like_cpython() {
        let src = "def f(d, k):\n    return d[k]\n";
        let e = run(src, "f", &[Value::Dict(Default::default()), Value::from("pos")])
            .result
            .unwrap_err();
        assert_eq!(e.message, "'pos'");
        let e = run("def f():\n    return {1: 2}[5]\n", "f", &[]).result.unwrap_err();
        assert_eq!(e.message, "5");
    }

    #[test]
    fn unclosed_bracket_at_the_end_still_shows_where() {
        let err = compile_program("def f(x):\n    y = 1\n    return (x +\n", "f").err().unwrap();
        assert_eq!(err.kind, CodeErrorKind::Syntax);
        assert!(err.line.is_some(), "{err}");
        assert!(err.traceback.contains("File \"f.py\", line"), "{err}");
    }
}
