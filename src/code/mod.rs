//! Trainable code: LLM-written Python functions, compiled once per source version and run in a
//! sandbox (monty, a Python subset interpreter) under per-call time, recursion and memory limits.
//!
//! - `Sandbox` (trait) with `MontySandbox` (in-process) and `WorkerSandbox` (a child process
//!   `opto-sandbox` with a hard memory cap; a crash there fails one call and the worker restarts).
//!   [`default_sandbox`] is the worker: only it enforces `Limits::max_memory_bytes` (in-process,
//!   monty pre-checks single large allocations and nothing else), at a cost of a few µs per call.
//! - `CodeError`: syntax error, exception, time-out, memory stop or crash, with a CPython-shaped
//!   traceback for the LLM.
//! - `TrainableFn`: a function whose source is a trainable parameter, with its constraint text,
//!   rewrite validation and a compile cache per source text.
//!
//! Wiring a trainable traced function into the graph (REFERENCE §1.5):
//! ```ignore
//! let sandbox = default_sandbox(Limits::default())?;   // the worker; MontySandbox::new(..) has no memory cap
//! let mut f = TrainableFn::new(INITIAL_SOURCE)?.with_returns(Expected::Float);
//! // parameter node `__code0`: data Value::Code(f.source().into()), constraint f.constraint()
//! match f.call(&sandbox, &args) {
//!     Ok(value) => { /* MessageNode "eval" with inputs args + __code0 */ }
//!     Err(e) => { /* ExceptionNode whose data is e.feedback() (CPython-shaped traceback) */ }
//! }
//! // optimizer update of __code0:
//! if let Err(reason) = f.set_source(&normalize_suggestion(&suggested)) { /* show reason next prompt */ }
//! ```

pub mod constraint;
pub mod convert;
pub mod engine;
pub mod error;
pub mod monty_sandbox;
pub mod protocol;
pub mod sandbox;
pub mod signature;
pub mod traced;
pub mod trainable;
pub mod validate;
pub mod worker;
pub mod worker_process;

pub use constraint::{code_constraint, PYTHON_SUBSET};
pub use convert::{coerce, Expected};
pub use error::{CodeError, CodeErrorKind};
pub use monty_sandbox::MontySandbox;
pub use sandbox::{CallOutcome, CompiledFn, Limits, Sandbox};
pub use signature::Signature;
pub use traced::TracedCode;
pub use trainable::TrainableFn;
pub use validate::{check_compiles, normalize_suggestion, validate_rewrite};
pub use worker::{find_worker_program, WorkerSandbox, WORKER_ENV};

/// The sandbox to use unless there is a reason not to: the worker process, with one worker per
/// core (up to 8, started on first use) so that seeds evaluating in parallel do not queue.
/// Only it enforces the memory limit.
pub fn default_sandbox(limits: Limits) -> crate::Result<WorkerSandbox> {
    let program = find_worker_program()
        .map_err(|e| crate::Error::Sandbox(format!("the memory-capped worker is needed: {e}")))?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    Ok(WorkerSandbox::with_program(program, limits, workers))
}
