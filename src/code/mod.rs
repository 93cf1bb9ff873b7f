//! Trainable code: LLM-written Python functions, compiled once per source version and run in a
//! sandbox (monty, a Python subset interpreter) under per-call time, recursion and memory limits.
//!
//! - `Sandbox` (trait) with `MontySandbox` (in-process) and `WorkerSandbox` (a child process
//!   `opto-sandbox` with a hard memory cap; a crash there fails one call and the worker restarts).
//! - `CodeError`: syntax error, exception, time-out, memory stop or crash, with a CPython-shaped
//!   traceback for the LLM.
//! - `TrainableFn`: a function whose source is a trainable parameter, with its constraint text,
//!   rewrite validation and a compile cache per source text.

pub mod constraint;
pub mod convert;
pub mod engine;
pub mod error;
pub mod monty_sandbox;
pub mod protocol;
pub mod sandbox;
pub mod signature;
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
pub use trainable::TrainableFn;
pub use validate::{normalize_suggestion, validate_rewrite};
pub use worker::{find_worker_program, WorkerSandbox, WORKER_ENV};
