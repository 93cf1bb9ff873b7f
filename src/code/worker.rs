//! `WorkerSandbox`: runs LLM code in child processes (`opto-sandbox`), JSON lines over pipes.
//! The child has a hard memory cap (monty-alloc); whatever happens there — abort, signal, memory
//! stop, hang — fails that one call with a `CodeError`, the child is reaped, and the next call
//! starts a fresh one.

use super::error::{CodeError, CodeErrorKind};
use super::protocol::{decode, encode, Reply, Request, WireLimits};
use super::sandbox::{CallOutcome, CompiledFn, Limits, Sandbox};
use crate::graph::Value;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Environment variable naming the worker binary; overrides the search next to the executable.
pub const WORKER_ENV: &str = "OPTO_SANDBOX_WORKER";

/// Name of the worker binary built from `src/bin/opto-sandbox.rs`.
pub const WORKER_BIN: &str = "opto-sandbox";

/// Extra time the host waits beyond a call's own limit before it kills a silent worker (the
/// interpreter normally stops the code itself at the limit).
const GRACE: Duration = Duration::from_secs(2);

/// Time for a fresh worker to start and compile.
const COMPILE_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of the child's stderr kept for the error message of a crash.
const STDERR_TAIL: usize = 2048;

/// The worker binary: `$OPTO_SANDBOX_WORKER`, else `opto-sandbox` in the current executable's
/// folder or the one above it (test binaries live in `target/<profile>/deps/`).
pub fn find_worker_program() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(WORKER_ENV) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot locate the current executable: {e}"))?;
    let name = format!("{WORKER_BIN}{}", std::env::consts::EXE_SUFFIX);
    exe.ancestors().skip(1).take(2).map(|dir| dir.join(&name)).find(|p| p.is_file()).ok_or_else(
        || {
            format!(
                "the sandbox worker `{name}` is not next to {} (build it, or set {WORKER_ENV})",
                exe.display()
            )
        },
    )
}

pub struct WorkerSandbox {
    program: PathBuf,
    limits: Limits,
    /// One slot per worker process; `None` until first use or after a failure.
    slots: Vec<Mutex<Option<Worker>>>,
    next_slot: AtomicUsize,
    spawned: AtomicU64,
}

impl WorkerSandbox {
    /// One worker, found by `find_worker_program`.
    pub fn new(limits: Limits) -> Result<Self, CodeError> {
        let program = find_worker_program().map_err(CodeError::crash)?;
        Ok(Self::with_program(program, limits, 1))
    }

    /// `workers` child processes (at least one) of the binary at `program`, started on first use.
    /// Calls from several threads spread over them.
    pub fn with_program(program: impl Into<PathBuf>, limits: Limits, workers: usize) -> Self {
        WorkerSandbox {
            program: program.into(),
            limits,
            slots: (0..workers.max(1)).map(|_| Mutex::new(None)).collect(),
            next_slot: AtomicUsize::new(0),
            spawned: AtomicU64::new(0),
        }
    }

    /// How many worker processes have been started so far (restarts included).
    pub fn workers_started(&self) -> u64 {
        self.spawned.load(Ordering::Relaxed)
    }

    /// The process id of the first slot's live worker, if one is running (for tests and logs).
    pub fn worker_pid(&self) -> Option<u32> {
        let slot = self.slots[0].lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().map(Worker::pid)
    }

    /// Runs `job` with a live worker, starting one if needed; a failed job discards the worker.
    fn with_worker<T>(
        &self,
        job: impl FnOnce(&mut Worker) -> Result<T, CodeError>,
    ) -> Result<T, CodeError> {
        let slot = self.pick_slot();
        let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(Worker::spawn(&self.program)?);
            self.spawned.fetch_add(1, Ordering::Relaxed);
        }
        let worker = guard.as_mut().expect("worker just started");
        let result = job(worker);
        if worker.broken {
            *guard = None; // Drop kills and reaps it.
        }
        result
    }

    /// A free slot if there is one, else the next in turn.
    fn pick_slot(&self) -> &Mutex<Option<Worker>> {
        let n = self.slots.len();
        let start = self.next_slot.fetch_add(1, Ordering::Relaxed);
        for k in 0..n {
            let slot = &self.slots[(start + k) % n];
            if let Ok(guard) = slot.try_lock() {
                drop(guard);
                return slot;
            }
        }
        &self.slots[start % n]
    }
}

impl std::fmt::Debug for WorkerSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerSandbox")
            .field("program", &self.program)
            .field("limits", &self.limits)
            .field("workers", &self.slots.len())
            .field("started", &self.workers_started())
            .finish()
    }
}

impl Sandbox for WorkerSandbox {
    fn compile(&self, source: &str, fn_name: &str) -> Result<CompiledFn, CodeError> {
        let f = CompiledFn::new(source, fn_name, None);
        self.with_worker(|w| w.compile(&f))?;
        Ok(f)
    }

    fn run(&self, f: &CompiledFn, args: &[Value], limits: &Limits) -> CallOutcome {
        let mut printed = String::new();
        let result = self.with_worker(|w| {
            if !w.known.contains(&f.id()) {
                w.compile(f)?;
            }
            let call = Request::Call {
                id: f.id(),
                args: serde_json::Value::Array(args.iter().map(encode).collect()),
                limits: WireLimits::from(limits),
            };
            let mut reply = w.request(&call, limits.wall_time + GRACE, limits)?;
            if let Reply::Unknown { .. } = reply {
                // The worker evicted the program: compile it again and retry once.
                w.compile(f)?;
                reply = w.request(&call, limits.wall_time + GRACE, limits)?;
            }
            match reply {
                Reply::Value { value, printed: p } => {
                    printed = p;
                    decode(&value).map_err(|e| w.protocol_error(format!("undecodable result: {e}")))
                }
                Reply::Error { error } => {
                    printed = error.printed.clone();
                    Err(error)
                }
                other => Err(w.protocol_error(format!("unexpected reply to a call: {other:?}"))),
            }
        });
        CallOutcome { result, printed }
    }

    fn limits(&self) -> Limits {
        self.limits.clone()
    }
}

/// One live child process. Replies are read on the calling thread (no hop through a reader
/// thread, which costs a context switch per call); a watchdog thread kills the child when a
/// request runs past its deadline, which ends the blocked read.
struct Worker {
    child: Arc<Mutex<Child>>,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<String>>,
    watchdog: Arc<Watchdog>,
    /// Program ids compiled in this process.
    known: HashSet<u64>,
    /// Set when the process can no longer be trusted (died, hung, spoke garbage).
    broken: bool,
}

/// Deadline of the request in flight, checked every `WATCHDOG_TICK`. Setting it is one atomic
/// store, so the per-call cost is nothing; a hung worker is killed at most one tick late.
struct Watchdog {
    epoch: Instant,
    /// Nanoseconds since `epoch`; 0 when no request is in flight.
    deadline_ns: AtomicU64,
    fired: AtomicBool,
    stop: AtomicBool,
}

const WATCHDOG_TICK: Duration = Duration::from_millis(20);

impl Watchdog {
    fn arm(&self, timeout: Duration) {
        let at = self.epoch.elapsed() + timeout;
        self.deadline_ns
            .store(u64::try_from(at.as_nanos()).unwrap_or(u64::MAX).max(1), Ordering::SeqCst);
    }
    fn disarm(&self) {
        self.deadline_ns.store(0, Ordering::SeqCst);
    }
    fn watch(self: Arc<Self>, child: Arc<Mutex<Child>>) {
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(WATCHDOG_TICK);
            let deadline = self.deadline_ns.load(Ordering::SeqCst);
            let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            if deadline != 0 && now > deadline {
                self.fired.store(true, Ordering::SeqCst);
                let _ = child.lock().unwrap_or_else(|p| p.into_inner()).kill();
                break;
            }
        }
    }
}

impl Worker {
    fn spawn(program: &Path) -> Result<Worker, CodeError> {
        let mut child = Command::new(program)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                CodeError::crash(format!(
                    "cannot start the sandbox worker {}: {e}",
                    program.display()
                ))
            })?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
        // stderr is drained by a thread so the child never blocks on it; its tail explains crashes.
        let stderr = Arc::new(Mutex::new(String::new()));
        let tail = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                t.push_str(&String::from_utf8_lossy(&buf[..n]));
                if t.len() > STDERR_TAIL {
                    let cut = t.len() - STDERR_TAIL;
                    let cut = (cut..t.len()).find(|&i| t.is_char_boundary(i)).unwrap_or(t.len());
                    t.drain(..cut);
                }
            }
        });
        let child = Arc::new(Mutex::new(child));
        let watchdog = Arc::new(Watchdog {
            epoch: Instant::now(),
            deadline_ns: AtomicU64::new(0),
            fired: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        {
            let (watchdog, child) = (Arc::clone(&watchdog), Arc::clone(&child));
            std::thread::spawn(move || watchdog.watch(child));
        }
        Ok(Worker { child, stdin, stdout, stderr, watchdog, known: HashSet::new(), broken: false })
    }

    fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(|p| p.into_inner()).id()
    }

    fn compile(&mut self, f: &CompiledFn) -> Result<(), CodeError> {
        let req = Request::Compile {
            id: f.id(),
            fn_name: f.fn_name().to_string(),
            source: f.source().to_string(),
        };
        match self.request(
            &req,
            COMPILE_TIMEOUT,
            &Limits::default().with_wall_time(COMPILE_TIMEOUT),
        )? {
            Reply::Compiled => {
                self.known.insert(f.id());
                Ok(())
            }
            Reply::Error { error } => Err(error),
            other => Err(self.protocol_error(format!("unexpected reply to a compile: {other:?}"))),
        }
    }

    /// Sends one request and waits up to `timeout` for its reply. A dead or silent worker is
    /// marked broken and its end is described as a `CodeError` (`limits` for the wording).
    fn request(
        &mut self,
        req: &Request,
        timeout: Duration,
        limits: &Limits,
    ) -> Result<Reply, CodeError> {
        let mut line = serde_json::to_string(req)
            .map_err(|e| CodeError::crash(format!("cannot encode request: {e}")))?;
        line.push('\n');
        if self.stdin.write_all(line.as_bytes()).and_then(|_| self.stdin.flush()).is_err() {
            return Err(self.died(limits));
        }
        line.clear();
        self.watchdog.arm(timeout);
        let read = self.stdout.read_line(&mut line);
        self.watchdog.disarm();
        if self.watchdog.fired.load(Ordering::SeqCst) {
            // Killed for lateness; a reply that slipped in just before still counts.
            self.broken = true;
            if read.as_ref().is_ok_and(|&n| n > 0) {
                return serde_json::from_str(&line)
                    .map_err(|e| self.protocol_error(format!("unreadable reply: {e}")));
            }
            let _ = self.wait_briefly();
            let mut e = CodeError::bare(
                CodeErrorKind::Timeout,
                "TimeoutError",
                format!(
                    "the call did not return within {:?}; the sandbox worker was stopped",
                    limits.wall_time
                ),
            );
            e.traceback.push_str("\nNote: the call was stopped at its time limit; make sure every loop ends quickly.");
            return Err(e);
        }
        match read {
            Ok(n) if n > 0 => serde_json::from_str(&line)
                .map_err(|e| self.protocol_error(format!("unreadable reply: {e}"))),
            _ => Err(self.died(limits)),
        }
    }

    /// Describes why the child ended: over its memory cap (exit code 65 from monty-alloc), a
    /// signal, or another exit.
    fn died(&mut self, limits: &Limits) -> CodeError {
        self.broken = true;
        let status = self.wait_briefly();
        // Let the stderr thread drain what the child wrote last.
        std::thread::sleep(Duration::from_millis(20));
        let stderr = self.stderr.lock().map(|s| s.trim().to_string()).unwrap_or_default();
        let detail =
            if stderr.is_empty() { String::new() } else { format!(" (worker stderr: {stderr})") };
        match status {
            Some(s) if s.code() == Some(monty_types::OOM_EXIT_CODE) => {
                let cap = limits
                    .max_memory_bytes
                    .map(|b| format!(" of {} MiB", b >> 20))
                    .unwrap_or_default();
                let mut e = CodeError::bare(
                    CodeErrorKind::Memory,
                    "MemoryError",
                    format!(
                        "the code went over its memory limit{cap}; the sandbox worker was stopped"
                    ),
                );
                e.traceback.push_str("\nNote: the call was stopped at its memory limit; build smaller lists and strings.");
                e
            }
            Some(s) => {
                CodeError::crash(format!("the sandbox worker died: {}{detail}", describe_status(s)))
            }
            None => CodeError::crash(format!("the sandbox worker stopped answering{detail}")),
        }
    }

    /// The child's exit status; kills it if it has not exited within a moment.
    fn wait_briefly(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..50 {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    fn protocol_error(&mut self, what: String) -> CodeError {
        self.broken = true;
        CodeError::crash(format!("the sandbox worker misbehaved: {what}"))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.watchdog.stop.store(true, Ordering::SeqCst);
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[cfg(unix)]
fn describe_status(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match s.signal() {
        Some(sig) => {
            let name = match sig {
                4 => "SIGILL",
                6 => "SIGABRT",
                7 => "SIGBUS",
                9 => "SIGKILL",
                11 => "SIGSEGV",
                15 => "SIGTERM",
                _ => "signal",
            };
            format!("killed by {name} ({sig})")
        }
        None => s.to_string(),
    }
}

#[cfg(not(unix))]
fn describe_status(s: ExitStatus) -> String {
    s.to_string()
}
