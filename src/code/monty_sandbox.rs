//! `MontySandbox`: runs LLM code inside this process. Time and recursion are limited by the
//! interpreter, memory only for single large allocations; an interpreter panic is caught and
//! reported, but an abort or stack overflow would take the process down (use `WorkerSandbox`
//! where that matters).

use super::engine::{compile_program, run_program};
use super::error::CodeError;
use super::sandbox::{CallOutcome, CompiledFn, Limits, Sandbox};
use crate::graph::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub struct MontySandbox {
    limits: Limits,
}

impl MontySandbox {
    pub fn new(limits: Limits) -> Self {
        MontySandbox { limits }
    }
}

/// Turns a panic payload into a `Crash` error, so a monty bug fails one call, not the host.
fn panic_error(what: &str, payload: Box<dyn std::any::Any + Send>) -> CodeError {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    CodeError::crash(format!("the interpreter panicked while {what}: {detail}"))
}

impl Sandbox for MontySandbox {
    fn compile(&self, source: &str, fn_name: &str) -> Result<CompiledFn, CodeError> {
        match catch_unwind(|| compile_program(source, fn_name)) {
            Ok(Ok(program)) => Ok(CompiledFn::new(source, fn_name, Some(Arc::new(program)))),
            Ok(Err(e)) => Err(e),
            Err(payload) => Err(panic_error("compiling", payload)),
        }
    }

    fn run(&self, f: &CompiledFn, args: &[Value], limits: &Limits) -> CallOutcome {
        // A function compiled by another sandbox (the worker) has no in-process program yet.
        let rebuilt;
        let program = match &f.program {
            Some(p) => p.as_ref(),
            None => match self.compile(f.source(), f.fn_name()) {
                Ok(c) => {
                    rebuilt = c.program.expect("in-process compile makes a program");
                    rebuilt.as_ref()
                }
                Err(e) => return CallOutcome { result: Err(e), printed: String::new() },
            },
        };
        match catch_unwind(AssertUnwindSafe(|| run_program(program, args, limits))) {
            Ok(outcome) => outcome,
            Err(payload) => CallOutcome { result: Err(panic_error("running the code", payload)), printed: String::new() },
        }
    }

    fn limits(&self) -> Limits {
        self.limits.clone()
    }
}
