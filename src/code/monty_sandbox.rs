//! `MontySandbox`: runs LLM code inside this process. Time and recursion are limited by the
//! interpreter, memory only for single large allocations; an interpreter panic is caught and
//! reported, but an abort or native stack overflow would take the process down (use
//! `WorkerSandbox` where that matters).

use super::engine::{compile_program, panic_error};
use super::error::CodeError;
use super::sandbox::{CallOutcome, CompiledFn, Limits, Sandbox};
use crate::graph::Value;
use std::panic::catch_unwind;
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

impl Sandbox for MontySandbox {
    fn compile(&self, source: &str, fn_name: &str) -> Result<CompiledFn, CodeError> {
        match catch_unwind(|| compile_program(source, fn_name)) {
            Ok(Ok(program)) => Ok(CompiledFn::new(source, fn_name, Some(Arc::new(program)))),
            Ok(Err(e)) => Err(e),
            Err(payload) => Err(panic_error("compiling", payload)),
        }
    }

    fn run(&self, f: &CompiledFn, args: &[Value], limits: &Limits) -> CallOutcome {
        match &f.program {
            Some(program) => program.run(args, limits),
            // Compiled by another sandbox (the worker): parse here for this call.
            None => match self.compile(f.source(), f.fn_name()) {
                Ok(own) => own.program.as_ref().expect("in-process compile makes a program").run(args, limits),
                Err(e) => CallOutcome { result: Err(e), printed: String::new() },
            },
        }
    }

    fn limits(&self) -> Limits {
        self.limits.clone()
    }
}
