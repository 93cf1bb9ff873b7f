//! The child side of `WorkerSandbox`: the loop that the `opto-sandbox` binary runs. It reads one
//! request per line from stdin, compiles or runs with monty, and writes one reply per line.
//! The binary installs monty-alloc as its global allocator, so the memory limit here counts every
//! byte; past the hard ceiling the allocator ends the process with `OOM_EXIT_CODE` and the host
//! restarts it.

use super::engine::{compile_program, SharedProgram};
use super::error::CodeError;
use super::protocol::{decode, encode, Reply, Request};
use super::sandbox::Limits;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::panic::catch_unwind;

/// Programs kept at once; the host recompiles an evicted one on demand (`Reply::Unknown`).
const CACHE_SIZE: usize = 64;

/// Native stack for the interpreter thread: deep Python recursion stays a `RecursionError`
/// instead of a stack overflow.
const STACK_BYTES: usize = 256 << 20;

/// Serves requests until stdin closes. `memory_capped`: monty-alloc is this process's global
/// allocator, so `monty_alloc::set_limit` can arm it before each call.
pub fn serve(memory_capped: bool) -> std::io::Result<()> {
    let worker = std::thread::Builder::new()
        .name("opto-sandbox".into())
        .stack_size(STACK_BYTES)
        .spawn(move || serve_on_this_thread(memory_capped))?;
    worker.join().unwrap_or_else(|_| Err(std::io::Error::other("the worker thread panicked")))
}

fn serve_on_this_thread(memory_capped: bool) -> std::io::Result<()> {
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut cache: HashMap<u64, SharedProgram> = HashMap::new();
    for line in stdin.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(request) => handle(request, &mut cache, memory_capped),
            Err(e) => Reply::Error {
                error: CodeError::crash(format!("the worker got a malformed request: {e}")),
            },
        };
        serde_json::to_writer(&mut stdout, &reply)?;
        stdout.write_all(b"\n")?;
        stdout.flush()?;
    }
    Ok(())
}

fn handle(request: Request, cache: &mut HashMap<u64, SharedProgram>, memory_capped: bool) -> Reply {
    match request {
        Request::Compile { id, fn_name, source } => {
            match catch_unwind(|| compile_program(&source, &fn_name)) {
                Ok(Ok(program)) => {
                    if cache.len() >= CACHE_SIZE {
                        cache.clear();
                    }
                    cache.insert(id, program);
                    Reply::Compiled
                }
                Ok(Err(error)) => Reply::Error { error },
                Err(_) => Reply::Error {
                    error: CodeError::crash("the interpreter panicked while compiling"),
                },
            }
        }
        Request::Call { id, args, limits } => {
            let Some(program) = cache.get(&id) else { return Reply::Unknown { id } };
            let args = match args
                .as_array()
                .map(|a| a.iter().map(decode).collect::<Result<Vec<_>, _>>())
            {
                Some(Ok(args)) => args,
                Some(Err(e)) => {
                    return Reply::Error {
                        error: CodeError::crash(format!("bad call arguments: {e}")),
                    }
                }
                None => {
                    return Reply::Error {
                        error: CodeError::crash("call arguments must be a list"),
                    }
                }
            };
            let limits = Limits::from(limits);
            if memory_capped {
                // Arm the allocator for this call only; lifted again so encoding the reply cannot trip it.
                let _ = monty_alloc::set_limit(limits.max_memory_bytes, false);
            }
            // `SharedProgram::run` catches interpreter panics itself.
            let outcome = program.run(&args, &limits);
            if memory_capped {
                let _ = monty_alloc::set_limit(None, false);
            }
            match outcome.result {
                Ok(value) => Reply::Value { value: encode(&value), printed: outcome.printed },
                Err(error) => Reply::Error { error },
            }
        }
    }
}
