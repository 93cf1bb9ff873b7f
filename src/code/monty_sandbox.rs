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
                Ok(own) => own
                    .program
                    .as_ref()
                    .expect("in-process compile makes a program")
                    .run(args, limits),
                Err(e) => CallOutcome { result: Err(e), printed: String::new() },
            },
        }
    }

    fn limits(&self) -> Limits {
        self.limits.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_compiled_elsewhere_is_parsed_on_call() {
        let f = CompiledFn::new("def f(x):\n    return x * 2\n", "f", None);
        assert_eq!(MontySandbox::default().call(&f, &[Value::Float(1.5)]), Ok(Value::Float(3.0)));
    }

    #[test]
    fn limits_are_per_call_not_cumulative() {
        // Each call gets a fresh 200 ms budget: ten calls of ~50 ms all succeed.
        let sb = MontySandbox::new(
            Limits::default().with_wall_time(std::time::Duration::from_millis(200)),
        );
        let f = sb
            .compile(
                "def f(n):\n    t = 0\n    for i in range(n):\n        t += i\n    return t\n",
                "f",
            )
            .unwrap();
        let started = std::time::Instant::now();
        let mut n = 1000;
        // Find a loop size that takes roughly 20-80 ms here.
        while started.elapsed() < std::time::Duration::from_secs(5) {
            let t = std::time::Instant::now();
            sb.call(&f, &[Value::Int(n)]).unwrap();
            if t.elapsed() > std::time::Duration::from_millis(20) {
                break;
            }
            n *= 2;
        }
        for _ in 0..10 {
            assert!(sb.call(&f, &[Value::Int(n)]).is_ok());
        }
    }
}
