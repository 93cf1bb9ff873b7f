//! The sandbox worker: runs LLM-written Python for `opto::code::WorkerSandbox`, one JSON request
//! per line on stdin, one reply per line on stdout. Not meant to be started by hand.
//!
//! monty-alloc is the global allocator here (and only here), so the memory limit of each call
//! counts every byte; past its hard ceiling the process exits with code 65 and the host restarts it.

#[global_allocator]
static ALLOC: monty_alloc::LimitedAllocator = monty_alloc::LimitedAllocator;

fn main() {
    if let Err(e) = opto::code::worker_process::serve(true) {
        eprintln!("opto-sandbox: {e}");
        std::process::exit(1);
    }
}
