//! The `Sandbox` trait: compile LLM-written Python once per source version, then call it many
//! times with `Value` arguments under per-call limits. Implementations: `MontySandbox`
//! (in-process) and `WorkerSandbox` (a child process that can be killed and restarted).

use super::engine::SharedProgram;
use super::error::CodeError;
use crate::graph::Value;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Budgets that every single call gets afresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall time of one call; the interpreter stops the code past it (and a worker that does not
    /// answer within it plus a grace period is killed).
    pub wall_time: Duration,
    /// Python call-stack depth; deeper calls raise `RecursionError` (catchable, as in CPython).
    pub max_recursion_depth: usize,
    /// Heap bytes the code may allocate. Enforced fully only in the worker (its allocator counts
    /// every byte); in-process it only pre-checks single large allocations (`[0] * 10**9`).
    pub max_memory_bytes: Option<usize>,
}

impl Default for Limits {
    /// 1 s, depth 200, 64 MiB: generous for a controller step, small enough that a runaway
    /// candidate costs the optimization loop little.
    fn default() -> Self {
        Limits {
            wall_time: Duration::from_secs(1),
            max_recursion_depth: 200,
            max_memory_bytes: Some(64 << 20),
        }
    }
}

impl Limits {
    pub fn with_wall_time(mut self, wall_time: Duration) -> Self {
        self.wall_time = wall_time;
        self
    }
    pub fn with_recursion_depth(mut self, depth: usize) -> Self {
        self.max_recursion_depth = depth;
        self
    }
    pub fn with_memory(mut self, bytes: Option<usize>) -> Self {
        self.max_memory_bytes = bytes;
        self
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A function compiled from one version of its source. Cheap to clone. It can be called through
/// any sandbox: each implementation keeps what it needs (a parsed program in-process, a cached
/// program in the worker, keyed by `id`) and rebuilds it from `source` when missing.
#[derive(Clone)]
pub struct CompiledFn {
    id: u64,
    fn_name: Arc<str>,
    source: Arc<str>,
    /// The parsed program for in-process execution, when the compiling sandbox made one.
    pub(crate) program: Option<Arc<SharedProgram>>,
}

impl CompiledFn {
    pub(crate) fn new(source: &str, fn_name: &str, program: Option<Arc<SharedProgram>>) -> Self {
        CompiledFn {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            fn_name: fn_name.into(),
            source: source.into(),
            program,
        }
    }
    /// Unique per compile in this process; the worker caches programs under it.
    pub fn id(&self) -> u64 {
        self.id
    }
    pub fn fn_name(&self) -> &str {
        &self.fn_name
    }
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl fmt::Debug for CompiledFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledFn")
            .field("id", &self.id)
            .field("fn_name", &self.fn_name)
            .finish_non_exhaustive()
    }
}

/// The result of one call plus what the code printed (capped), which is useful feedback too.
#[derive(Clone, Debug, PartialEq)]
pub struct CallOutcome {
    pub result: Result<Value, CodeError>,
    pub printed: String,
}

/// Runs untrusted Python functions.
pub trait Sandbox: Send + Sync {
    /// Parses `source` and checks that it defines `def fn_name(...)` at top level. Call once per
    /// source version; a `Syntax` error carries a CPython-shaped traceback.
    fn compile(&self, source: &str, fn_name: &str) -> Result<CompiledFn, CodeError>;

    /// Calls the function with positional arguments under `limits`.
    fn run(&self, f: &CompiledFn, args: &[Value], limits: &Limits) -> CallOutcome;

    /// The limits `call` uses.
    fn limits(&self) -> Limits;

    /// Calls the function under the sandbox's own limits and returns its value.
    fn call(&self, f: &CompiledFn, args: &[Value]) -> Result<Value, CodeError> {
        self.run(f, args, &self.limits()).result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::{MontySandbox, TrainableFn, WorkerSandbox};

    fn shareable<T: Send + Sync>() {}

    #[test]
    fn everything_can_be_shared_across_threads() {
        shareable::<CompiledFn>();
        shareable::<TrainableFn>();
        shareable::<MontySandbox>();
        shareable::<WorkerSandbox>();
        shareable::<Box<dyn Sandbox>>();
    }

    #[test]
    fn every_compile_gets_a_new_id() {
        let a = CompiledFn::new("def f(): pass", "f", None);
        let b = CompiledFn::new("def f(): pass", "f", None);
        assert_ne!(a.id(), b.id());
        assert_eq!(a.clone().id(), a.id());
    }
}
