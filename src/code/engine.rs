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
    CompileOptions, ExcType, MontyException, MontyObject, PrintWriter, PrintWriterCallback, ResourceLimits,
    ResourceTracker,
};
use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

/// The input variable holding the call's arguments as a tuple; the program ends with
/// `fn_name(*_opto_args)`, so one compiled program serves every arity.
const ARGS_NAME: &str = "_opto_args";

/// Bytes of `print()` output kept per call; more is dropped (not an error, unlike monty's own cap).
pub const PRINT_CAP: usize = 4096;

/// The file name tracebacks show for a function's code.
pub fn script_name(fn_name: &str) -> String {
    format!("{fn_name}.py")
}

/// Parses `source` plus a final call of `fn_name`. Errors are `Syntax`, located in `source`.
pub fn compile_program(source: &str, fn_name: &str) -> Result<MontyRun, CodeError> {
    let script = script_name(fn_name);
    let body = source.trim_end();
    let program = format!("{body}\n{fn_name}(*{ARGS_NAME})\n");
    let run = match MontyRun::new(program, &script, vec![ARGS_NAME.to_string()], CompileOptions::default()) {
        Ok(run) => run,
        Err(e) => {
            // Parse the source alone so the error points into it, not at the appended call line.
            let own = MontyRun::new(body.to_string(), &script, vec![], CompileOptions::default()).err().unwrap_or(e);
            return Err(exception_to_error(&own, CodeErrorKind::Syntax, user_line_count(body)));
        }
    };
    if Signature::find(body, fn_name).is_none() {
        return Err(CodeError::bare(
            CodeErrorKind::Syntax,
            "NameError",
            format!("the code must define the function `{fn_name}` at top level (a line starting with `def {fn_name}(`)"),
        ));
    }
    Ok(run)
}

/// Runs a compiled program with `args` under a fresh budget. Never panics on the program's
/// behaviour; monty's own panics are the caller's to catch.
pub fn run_program(program: &MontyRun, args: &[Value], limits: &Limits) -> CallOutcome {
    let inputs = vec![MontyObject::Tuple(args.iter().map(to_monty).collect())];
    let mut resource = ResourceLimits::default()
        .max_duration(limits.wall_time)
        .max_recursion_depth(limits.max_recursion_depth);
    if let Some(bytes) = limits.max_memory_bytes {
        resource = resource.max_memory(bytes);
    }
    let mut printer = CappedPrint::default();
    let result = program.run(inputs, ResourceTracker::new(resource), PrintWriter::Callback(&mut printer));
    let printed = printer.text;
    let result = match result {
        Ok(obj) => from_monty(&obj).map_err(|why| {
            CodeError::bare(CodeErrorKind::Exception, "TypeError", format!("the function's return value: {why}"))
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
pub fn exception_to_error(e: &MontyException, default_kind: CodeErrorKind, user_lines: u32) -> CodeError {
    let message = e.message().unwrap_or_default().to_string();
    let kind = match e.exc_type() {
        ExcType::TimeoutError if message.starts_with("time limit exceeded") => CodeErrorKind::Timeout,
        ExcType::MemoryError if message.starts_with("memory limit exceeded") => CodeErrorKind::Memory,
        _ => default_kind,
    };
    let frames: Vec<_> = e.traceback().iter().filter(|f| f.start.line <= user_lines).cloned().collect();
    let line = frames.last().map(|f| f.start.line);
    let shown = MontyException::with_traceback(e.exc_type(), e.message().map(str::to_string), frames);
    let mut traceback = shown.to_string();
    if let Some(hint) = hint(e.exc_type(), kind) {
        traceback.push('\n');
        traceback.push_str(hint);
    }
    CodeError { kind, exc_type: e.exc_type().to_string(), message, line, traceback, printed: String::new() }
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

/// A compiled program that threads can share. `MontyRun` is `Send` but not `Sync` (it fills
/// lazy caches while running), so each concurrent call borrows its own copy: a spare one when
/// there is one, else a clone of the template.
pub struct SharedProgram {
    template: Mutex<MontyRun>,
    spare: Mutex<Vec<MontyRun>>,
}

impl SharedProgram {
    pub fn new(program: MontyRun) -> Self {
        SharedProgram { template: Mutex::new(program), spare: Mutex::new(Vec::new()) }
    }

    /// Runs like `run_program`, catching an interpreter panic as a `Crash` error (the copy that
    /// panicked is dropped, not reused).
    pub fn run(&self, args: &[Value], limits: &Limits) -> CallOutcome {
        let taken = self.spare.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let program = match taken {
            Some(p) => p,
            None => self.template.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        };
        match catch_unwind(AssertUnwindSafe(|| run_program(&program, args, limits))) {
            Ok(outcome) => {
                self.spare.lock().unwrap_or_else(|p| p.into_inner()).push(program);
                outcome
            }
            Err(payload) => CallOutcome { result: Err(panic_error("running the code", payload)), printed: String::new() },
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
