//! The sandbox that runs LLM-written Python (`opto::code`): ordinary programs give CPython's
//! results, hostile programs are stopped with a clear error while the host survives, errors read
//! like CPython tracebacks, and rewrites that change the function's header are rejected.
//! Every case runs both in-process (`MontySandbox`) and through the worker process.

use opto::code::{
    normalize_suggestion, validate_rewrite, CodeError, CodeErrorKind, Expected, Limits,
    MontySandbox, Sandbox, Signature, TrainableFn, WorkerSandbox,
};
use opto::graph::Value;
use std::time::{Duration, Instant};

fn limits() -> Limits {
    Limits::default().with_wall_time(Duration::from_millis(500)).with_memory(Some(32 << 20))
}

fn worker() -> WorkerSandbox {
    WorkerSandbox::with_program(env!("CARGO_BIN_EXE_opto-sandbox"), limits(), 1)
}

/// Both sandboxes, named for assertion messages.
fn sandboxes() -> Vec<(&'static str, Box<dyn Sandbox>)> {
    vec![("in-process", Box::new(MontySandbox::new(limits()))), ("worker", Box::new(worker()))]
}

fn call(sb: &dyn Sandbox, src: &str, name: &str, args: &[Value]) -> Result<Value, CodeError> {
    let f = sb.compile(src, name)?;
    sb.call(&f, args)
}

/// The host still works after whatever happened: a fresh function gives the right answer.
fn assert_next_call_works(label: &str, sb: &dyn Sandbox) {
    let got =
        call(sb, "def add(a, b):\n    return a + b\n", "add", &[Value::Int(2), Value::Float(0.5)]);
    assert_eq!(got, Ok(Value::Float(2.5)), "{label}: the call after a failure must work");
}

/// Equal values, with floats compared to 1e-12 relative (libm and CPython may differ in the last bit).
fn same(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Float(a), Value::Float(b)) => {
            a == b || (a - b).abs() <= 1e-12 * b.abs().max(1e-300)
        }
        (Value::List(a), Value::List(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Dict(a), Value::Dict(b)) => {
            a.len() == b.len()
                && a.iter().zip(b).all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
        }
        (a, b) => a == b,
    }
}

// ---------------------------------------------------------------------------------------------
// Ordinary programs: expected values were computed by CPython 3 (`python3`) from the same source.

macro_rules! cpython_case {
    ($name:ident, $src:expr, $args:expr, $want:expr) => {
        #[test]
        fn $name() {
            let args = match Value::from_json(&serde_json::from_str($args).unwrap()) {
                Value::List(a) => a,
                other => panic!("args must be a list, got {other:?}"),
            };
            let want = Value::from_json(&serde_json::from_str($want).unwrap());
            for (label, sb) in sandboxes() {
                let got = call(sb.as_ref(), $src, stringify!($name), &args)
                    .unwrap_or_else(|e| panic!("{label}: {} failed:\n{e}", stringify!($name)));
                assert!(
                    same(&got, &want),
                    "{label}: {}\n got: {}\nwant: {}",
                    stringify!($name),
                    got.py_repr(),
                    want.py_repr()
                );
            }
        }
    };
}

cpython_case!(
    pid_step,
    r#"def pid_step(err, state, kp, ki, kd, dt):
    """One PID step with output clamped to [-1, 1]."""
    integral = state["integral"] + err * dt
    deriv = (err - state["prev"]) / dt
    u = kp * err + ki * integral + kd * deriv
    if u > 1.0:
        u = 1.0
    elif u < -1.0:
        u = -1.0
    return [u, {"integral": integral, "prev": err}]
"#,
    r#"[0.3, {"integral": 0.1, "prev": 0.5}, 2.0, 0.5, 0.1, 0.05]"#,
    r#"[0.25749999999999995, {"integral": 0.115, "prev": 0.3}]"#
);
cpython_case!(
    squares,
    r#"def squares(n):
    return [i * i for i in range(n) if i % 3 != 0]
"#,
    r#"[10]"#,
    r#"[1, 4, 16, 25, 49, 64]"#
);
cpython_case!(
    word_lengths,
    r#"def word_lengths(text):
    words = text.lower().split()
    lengths = {w: len(w) for w in words if w.isalpha()}
    return {k: lengths[k] for k in sorted(lengths)}
"#,
    r#"["The quick brown Fox jumps over the lazy dog 42"]"#,
    r#"{"brown": 5, "dog": 3, "fox": 3, "jumps": 5, "lazy": 4, "over": 4, "quick": 5, "the": 3}"#
);
cpython_case!(
    report,
    r#"def report(name, scores):
    avg = sum(scores) / len(scores)
    parts = [f"{s:.1f}" for s in scores]
    return f"{name.title()}: " + ", ".join(parts) + f" (avg={avg:.3f}, best={max(scores)!r})"
"#,
    r#"["ada lovelace", [3.5, 4.25, 2.0]]"#,
    r#""Ada Lovelace: 3.5, 4.2, 2.0 (avg=3.250, best=4.25)""#
);
cpython_case!(
    geometry,
    r#"import math

def geometry(x, y):
    r = math.sqrt(x * x + y * y)
    theta = math.atan2(y, x)
    return [r, theta, math.degrees(theta), math.exp(-r), math.floor(-2.5), math.ceil(2.1), round(r, 3)]
"#,
    r#"[3.0, -4.0]"#,
    r#"[5.0, -0.9272952180016122, -53.13010235415598, 0.006737946999085467, -3, 3, 5.0]"#
);
cpython_case!(
    bank,
    r#"class Account:
    def __init__(self, owner, balance=0):
        self.owner = owner
        self.balance = balance
        self.history = []

    def deposit(self, amount):
        self.balance += amount
        self.history.append(("deposit", amount))

    def withdraw(self, amount):
        if amount > self.balance:
            self.history.append(("refused", amount))
            return False
        self.balance -= amount
        self.history.append(("withdraw", amount))
        return True

def bank(ops):
    acc = Account("ann", 10)
    results = []
    for kind, amount in ops:
        if kind == "d":
            acc.deposit(amount)
        else:
            results.append(acc.withdraw(amount))
    return {"balance": acc.balance, "results": results, "history": acc.history}
"#,
    r#"[[["d", 5], ["w", 12], ["w", 7], ["d", 1.5]]]"#,
    r#"{"balance": 4.5, "results": [true, false], "history": [["deposit", 5], ["withdraw", 12], ["refused", 7], ["deposit", 1.5]]}"#
);
cpython_case!(
    fib,
    r#"def fib(n, memo=None):
    if memo is None:
        memo = {}
    if n < 2:
        return n
    if n not in memo:
        memo[n] = fib(n - 1, memo) + fib(n - 2, memo)
    return memo[n]
"#,
    r#"[80]"#,
    r#"23416728348467685"#
);
cpython_case!(
    rank,
    r#"def rank(people):
    ordered = sorted(people, key=lambda p: (-p["score"], p["name"]))
    return [(i + 1, p["name"]) for i, p in enumerate(ordered)] + list(zip("ab", [1, 2]))
"#,
    r#"[[{"name": "bo", "score": 3}, {"name": "al", "score": 5}, {"name": "cy", "score": 3}]]"#,
    r#"[[1, "al"], [2, "bo"], [3, "cy"], ["a", 1], ["b", 2]]"#
);
cpython_case!(
    tally,
    r#"from collections import Counter, defaultdict, deque

def tally(items):
    counts = Counter(items)
    groups = defaultdict(list)
    for item in items:
        groups[len(item)].append(item)
    window = deque(maxlen=3)
    for item in items:
        window.append(item)
    return [counts.most_common(2), dict(groups), list(window)]
"#,
    r#"[["a", "bb", "a", "ccc", "bb", "a", "dd"]]"#,
    r#"[[["a", 3], ["bb", 2]], {"1": ["a", "a", "a"], "2": ["bb", "bb", "dd"], "3": ["ccc"]}, ["bb", "a", "dd"]]"#
);
cpython_case!(
    json_roundtrip,
    r#"import json

def json_roundtrip(obj):
    text = json.dumps(obj, sort_keys=True)
    back = json.loads(text)
    back["n"] = len(text)
    return [text, back]
"#,
    r#"[{"b": [1, 2.5, null], "a": true}]"#,
    r#"["{\"a\": true, \"b\": [1, 2.5, null]}", {"a": true, "b": [1, 2.5, null], "n": 32}]"#
);
cpython_case!(
    numbers_in,
    r#"import re

def numbers_in(text):
    found = re.findall(r"-?\d+(?:\.\d+)?", text)
    return [float(x) if "." in x else int(x) for x in found]
"#,
    r#"["x=12, y=-3.5 and z=0.25; n=7"]"#,
    r#"[12, -3.5, 0.25, 7]"#
);
cpython_case!(
    reduce_pairs,
    r#"import itertools
import functools

def reduce_pairs(xs):
    total = functools.reduce(lambda a, b: a * b, xs, 1)
    pairs = list(itertools.pairwise(xs))
    acc = list(itertools.accumulate(xs))
    joined = list(itertools.chain(xs, [0]))
    return [total, pairs, acc, joined]
"#,
    r#"[[2, 3, 4]]"#,
    r#"[24, [[2, 3], [3, 4]], [2, 5, 9], [2, 3, 4, 0]]"#
);
cpython_case!(
    arith,
    r#"def arith(a, b):
    return [a // b, -a // b, a % -b, a ** 10, a / b, divmod(a, b), abs(-a), 0.1 + 0.2, int(7.9), -7 // 2.0]
"#,
    r#"[7, 2]"#,
    r#"[3, -4, -1, 282475249, 3.5, [3, 1], 7, 0.30000000000000004, 7, -4.0]"#
);
cpython_case!(
    bisect_sqrt,
    r#"def bisect_sqrt(x, tol):
    lo, hi = 0.0, max(1.0, x)
    steps = 0
    while True:
        mid = (lo + hi) / 2
        if hi - lo < tol:
            break
        if mid * mid < x:
            lo = mid
        else:
            hi = mid
        steps += 1
    return {"root": mid, "steps": steps}
"#,
    r#"[2.0, 1e-09]"#,
    r#"{"root": 1.4142135619185865, "steps": 31}"#
);
cpython_case!(
    point,
    r#"from dataclasses import dataclass

@dataclass
class Point:
    x: float
    y: float

    def norm1(self):
        return abs(self.x) + abs(self.y)

def point(coords):
    pts = [Point(x, y) for x, y in coords]
    far = max(pts, key=lambda p: p.norm1())
    return [far.x, far.y, far.norm1(), len(pts)]
"#,
    r#"[[[1, -2], [3.5, 0.5], [-4, 0]]]"#,
    r#"[3.5, 0.5, 4.0, 3]"#
);
cpython_case!(
    clean_text,
    r#"def clean_text(s):
    words = [w.strip(".,!").capitalize() for w in s.split(" ") if w.strip(".,!")]
    return "-".join(words).replace("And", "&") + str(len(words)) + s[::-1][:4].upper()
"#,
    r#"["hello, world and   rust!"]"#,
    r#""Hello-World-&-Rust4!TSU""#
);

#[test]
fn safe_ratio_with_infinity() {
    // CPython: [0.25, inf, -0.25]
    let src = "def safe_ratio(values):\n    out = []\n    for a, b in values:\n        try:\n            out.append(a / b)\n        except ZeroDivisionError:\n            out.append(float(\"inf\"))\n        finally:\n            pass\n    return out\n";
    let pairs = Value::from_json(&serde_json::json!([[1, 4], [3, 0], [-2, 8]]));
    for (label, sb) in sandboxes() {
        let got = call(sb.as_ref(), src, "safe_ratio", std::slice::from_ref(&pairs)).unwrap();
        assert_eq!(
            got,
            Value::List(vec![Value::Float(0.25), Value::Float(f64::INFINITY), Value::Float(-0.25)]),
            "{label}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile code: stopped with a clear error, the host survives, the next call works.

/// Runs `src`'s `f()` in both sandboxes; returns the errors for further checks.
fn hostile(src: &str, limits: &Limits) -> Vec<(&'static str, CodeError)> {
    let mut out = Vec::new();
    for (label, sb) in sandboxes() {
        let started = Instant::now();
        let result = sb.compile(src, "f").and_then(|f| sb.run(&f, &[], limits).result);
        let err = match result {
            Err(e) => e,
            Ok(v) => panic!("{label}: hostile code returned {v:?} instead of failing"),
        };
        assert!(
            started.elapsed() < limits.wall_time + Duration::from_secs(3),
            "{label}: took {:?} to stop",
            started.elapsed()
        );
        assert!(
            !err.traceback.is_empty() && err.traceback.contains(&err.exc_type),
            "{label}: unclear error {err:?}"
        );
        assert_next_call_works(label, sb.as_ref());
        out.push((label, err));
    }
    out
}

#[test]
fn infinite_loop_times_out() {
    for (label, e) in hostile("def f():\n    while True:\n        pass\n", &limits()) {
        assert_eq!(e.kind, CodeErrorKind::Timeout, "{label}: {e}");
        // monty gives time-outs no frames, so there is no line to show.
        assert!(e.traceback.starts_with("TimeoutError: time limit exceeded"), "{label}: {e}");
    }
}

#[test]
fn loop_inside_try_except_still_times_out() {
    let src = "def f():\n    n = 0\n    while True:\n        try:\n            while True:\n                n += 1\n        except BaseException:\n            n = 0\n";
    for (label, e) in hostile(src, &limits()) {
        assert_eq!(e.kind, CodeErrorKind::Timeout, "{label}: {e}");
    }
}

#[test]
fn append_loop_memory_bomb_is_stopped() {
    // In-process the memory cap cannot count bytes; a short time budget bounds the growth there.
    let src = "def f():\n    a = []\n    while True:\n        a.append('y' * 1000)\n";
    let tight = limits().with_wall_time(Duration::from_millis(150)).with_memory(Some(16 << 20));
    for (label, e) in hostile(src, &tight) {
        if label == "worker" {
            assert_eq!(e.kind, CodeErrorKind::Memory, "worker: {e}");
            assert!(e.traceback.contains("MemoryError"), "worker: {e}");
        } else {
            assert!(
                matches!(e.kind, CodeErrorKind::Memory | CodeErrorKind::Timeout),
                "{label}: {e}"
            );
        }
    }
}

#[test]
fn huge_single_allocations_are_refused_up_front() {
    for expr in ["[0] * 10**9", "'x' * 10**10", "2 ** (10**10)"] {
        let src = format!("def f():\n    big = {expr}\n    return len(big)\n");
        for (label, e) in hostile(&src, &limits()) {
            assert_eq!(e.kind, CodeErrorKind::Memory, "{label} {expr}: {e}");
            assert!(
                e.traceback.contains("MemoryError: memory limit exceeded"),
                "{label} {expr}: {e}"
            );
        }
    }
}

#[test]
fn one_large_burst_is_a_memory_error_and_the_worker_lives_on() {
    let src = "def f():\n    s = 'x' * 90000\n    return len('-'.join([s] * 300))\n";
    let sb = worker();
    let f = sb.compile(src, "f").unwrap();
    let e = sb.run(&f, &[], &limits().with_memory(Some(8 << 20))).result.unwrap_err();
    assert_eq!(e.kind, CodeErrorKind::Memory, "{e}");
    assert_eq!(e.line, Some(3), "{e}");
    assert_next_call_works("worker", &sb);
}

/// A stand-in worker: acknowledges the compile, then runs `then` when the call arrives.
fn fake_worker(dir: &tempfile::TempDir, then: &str) -> std::path::PathBuf {
    let script = dir.path().join("fake-worker.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nread line\necho '\"compiled\"'\nread line\n{then}\n"),
    )
    .unwrap();
    std::process::Command::new("chmod").args(["+x", script.to_str().unwrap()]).status().unwrap();
    script
}

#[test]
fn worker_ended_by_its_allocator_is_reported_as_memory_and_replaced() {
    // monty-alloc ends a worker past its hard ceiling with exit code 65 (monty_types::OOM_EXIT_CODE).
    let dir = tempfile::tempdir().unwrap();
    let sb = WorkerSandbox::with_program(
        fake_worker(&dir, "echo 'monty worker: allocation exceeds' >&2; exit 65"),
        limits(),
        1,
    );
    let f = sb.compile("def f():\n    return 1\n", "f").unwrap();
    let e = sb.call(&f, &[]).unwrap_err();
    assert_eq!(e.kind, CodeErrorKind::Memory, "{e}");
    assert!(
        e.traceback.starts_with("MemoryError: the code went over its memory limit of 32 MiB"),
        "{e}"
    );
    // The next call starts a new (fake) worker, which compiles again.
    assert!(sb.call(&f, &[]).is_err());
    assert_eq!(sb.workers_started(), 2);
}

#[test]
fn worker_killed_by_a_signal_is_a_crash_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let sb = WorkerSandbox::with_program(
        fake_worker(&dir, "echo 'stack overflow' >&2; kill -ABRT $$"),
        limits(),
        1,
    );
    let f = sb.compile("def f():\n    return 1\n", "f").unwrap();
    let e = sb.call(&f, &[]).unwrap_err();
    assert_eq!(e.kind, CodeErrorKind::Crash, "{e}");
    assert!(e.message.contains("SIGABRT") && e.message.contains("stack overflow"), "{e}");
}

#[test]
fn deep_recursion_is_a_recursion_error_with_a_short_traceback() {
    for (label, e) in hostile("def f(n=0):\n    return f(n + 1) + 1\n", &limits()) {
        assert_eq!(e.kind, CodeErrorKind::Exception, "{label}: {e}");
        assert_eq!(e.exc_type, "RecursionError", "{label}: {e}");
        assert!(e.traceback.contains("Previous line repeated"), "{label}: {e}");
        assert!(e.traceback.lines().count() < 20, "{label}: traceback too long:\n{e}");
    }
}

#[test]
fn os_subprocess_and_socket_are_unavailable() {
    let cases = [
        ("import subprocess\n    return subprocess.run(['ls'])", "ModuleNotFoundError"),
        ("import socket\n    return socket.socket()", "ModuleNotFoundError"),
        ("import os\n    return os.system('touch /tmp/opto_sandbox_pwned')", "AttributeError"),
        ("import os\n    return os.listdir('/')", ""),
    ];
    for (body, exc) in cases {
        let src = format!("def f():\n    {body}\n");
        for (label, e) in hostile(&src, &limits()) {
            assert_eq!(e.kind, CodeErrorKind::Exception, "{label}: {e}");
            assert!(e.exc_type.contains(exc), "{label} `{body}`: {e}");
        }
    }
    assert!(!std::path::Path::new("/tmp/opto_sandbox_pwned").exists());
}

#[test]
fn files_cannot_be_opened() {
    let path = std::env::temp_dir().join("opto_sandbox_file_test.txt");
    let _ = std::fs::remove_file(&path);
    let src = format!(
        "def f():\n    with open({:?}, 'w') as fh:\n        fh.write('pwned')\n    return open('/etc/passwd').read()\n",
        path.display().to_string()
    );
    for (label, e) in hostile(&src, &limits()) {
        assert_eq!(e.kind, CodeErrorKind::Exception, "{label}: {e}");
        assert!(e.traceback.contains("open"), "{label}: {e}");
    }
    assert!(!path.exists(), "the sandbox wrote a file");
}

#[test]
fn eval_exec_and_dunder_import_do_not_exist() {
    for call_text in
        ["eval('1 + 1')", "exec('x = 1')", "__import__('os')", "compile('1', 'a', 'eval')"]
    {
        let src = format!("def f():\n    return {call_text}\n");
        for (label, e) in hostile(&src, &limits()) {
            assert_eq!(e.exc_type, "NameError", "{label} `{call_text}`: {e}");
        }
    }
}

#[test]
fn dunder_escapes_lead_nowhere() {
    for expr in [
        "().__class__.__bases__[0].__subclasses__()",
        "(lambda: 0).__globals__",
        "f.__code__",
        "type(1).__subclasses__()",
        "[].__class__.__mro__",
        "__builtins__",
    ] {
        let src = format!("def f():\n    return {expr}\n");
        for (label, e) in hostile(&src, &limits()) {
            assert_eq!(e.kind, CodeErrorKind::Exception, "{label} `{expr}`: {e}");
        }
    }
}

#[test]
fn killed_worker_fails_that_call_and_the_next_one_works() {
    let sb = std::sync::Arc::new(WorkerSandbox::with_program(
        env!("CARGO_BIN_EXE_opto-sandbox"),
        limits().with_wall_time(Duration::from_secs(5)),
        1,
    ));
    let f = sb.compile("def f():\n    while True:\n        pass\n", "f").unwrap();
    let pid = sb.worker_pid().expect("a worker is running after compile");
    let runner = {
        let sb = sb.clone();
        std::thread::spawn(move || sb.call(&f, &[]))
    };
    std::thread::sleep(Duration::from_millis(300));
    let status =
        std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    let e = runner.join().unwrap().unwrap_err();
    assert_eq!(e.kind, CodeErrorKind::Crash, "{e}");
    assert!(e.message.contains("SIGKILL"), "{e}");
    assert_next_call_works("worker", sb.as_ref());
}

#[test]
fn worker_that_does_not_start_or_speaks_garbage_is_an_error_not_a_panic() {
    let missing = WorkerSandbox::with_program("/nonexistent/opto-sandbox", limits(), 1);
    let e = missing.compile("def f():\n    return 1\n", "f").unwrap_err();
    assert_eq!(e.kind, CodeErrorKind::Crash);
    assert!(e.message.contains("cannot start"), "{e}");

    // `cat` echoes the request back: not a reply.
    let echo = WorkerSandbox::with_program("cat", limits(), 1);
    let e = echo.compile("def f():\n    return 1\n", "f").unwrap_err();
    assert!(e.message.contains("misbehaved"), "{e}");

    // `true` exits at once.
    let gone = WorkerSandbox::with_program("true", limits(), 1);
    let e = gone.compile("def f():\n    return 1\n", "f").unwrap_err();
    assert!(e.message.contains("died") || e.message.contains("stopped answering"), "{e}");
}

#[test]
fn silent_worker_is_killed_by_the_host_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let sb = WorkerSandbox::with_program(
        fake_worker(&dir, "exec sleep 60"),
        limits().with_wall_time(Duration::from_millis(100)),
        1,
    );
    let f = sb.compile("def f():\n    return 1\n", "f").unwrap();
    let started = Instant::now();
    let e = sb.call(&f, &[]).unwrap_err();
    assert_eq!(e.kind, CodeErrorKind::Timeout, "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "watchdog took {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Errors read like CPython tracebacks: file, line, source line, caret.

#[test]
fn syntax_error_names_line_and_shows_the_source_line() {
    let src = "def f(x):\n    y = x +\n    return y\n";
    for (label, sb) in sandboxes() {
        let e = sb.compile(src, "f").unwrap_err();
        assert_eq!(e.kind, CodeErrorKind::Syntax, "{label}: {e}");
        assert_eq!(e.exc_type, "SyntaxError", "{label}: {e}");
        assert_eq!(e.line, Some(2), "{label}: {e}");
        assert!(e.traceback.contains("File \"f.py\", line 2"), "{label}: {e}");
        assert!(e.traceback.contains("y = x +"), "{label}: {e}");
    }
}

#[test]
fn missing_colon_is_reported_on_the_def_line() {
    let e = MontySandbox::default().compile("def f(x)\n    return x\n", "f").unwrap_err();
    assert_eq!(e.line, Some(1), "{e}");
    assert!(e.traceback.contains("def f(x)"), "{e}");
}

#[test]
fn runtime_error_shows_file_line_source_and_caret() {
    let src = "def f(obs):\n    scale = 10\n    return scale / obs['n']\n";
    let mut n = indexmap::IndexMap::new();
    n.insert("n".to_string(), Value::Int(0));
    for (label, sb) in sandboxes() {
        let e = call(sb.as_ref(), src, "f", &[Value::Dict(n.clone())]).unwrap_err();
        assert_eq!(e.kind, CodeErrorKind::Exception, "{label}");
        assert_eq!(e.line, Some(3), "{label}: {e}");
        let want = "Traceback (most recent call last):\n  File \"f.py\", line 3, in f\n    return scale / obs['n']\n           ~~~~~~~~~~~~~~~~\nZeroDivisionError: division by zero";
        assert_eq!(e.traceback, want, "{label}");
    }
}

#[test]
fn nested_call_frames_are_all_shown_and_the_appended_call_is_not() {
    let src = "def helper(d):\n    return d['velocity']\n\ndef f(d):\n    x = 1\n    return x + helper(d)\n";
    let e =
        call(&MontySandbox::default(), src, "f", &[Value::Dict(Default::default())]).unwrap_err();
    assert!(
        e.traceback.contains("line 6, in f") && e.traceback.contains("line 2, in helper"),
        "{e}"
    );
    assert!(!e.traceback.contains("_opto_args") && !e.traceback.contains("<module>"), "{e}");
    assert_eq!(e.exc_type, "KeyError");
    assert!(e.traceback.ends_with("KeyError: 'velocity'"), "CPython quotes string keys: {e}");
    assert_eq!(e.line, Some(2));
}

#[test]
fn unknown_module_gets_a_hint_listing_the_allowed_ones() {
    let e =
        call(&MontySandbox::default(), "import numpy as np\n\ndef f():\n    return 1\n", "f", &[])
            .unwrap_err();
    assert_eq!(e.exc_type, "ModuleNotFoundError");
    assert!(
        e.traceback.contains("No module named 'numpy'") && e.traceback.contains("Note: only math"),
        "{e}"
    );
}

#[test]
fn code_without_the_function_is_a_compile_error() {
    let e = MontySandbox::default().compile("def g(x):\n    return x\n", "f").unwrap_err();
    assert_eq!(e.kind, CodeErrorKind::Syntax);
    assert!(e.message.contains("def f("), "{e}");
}

#[test]
fn wrong_number_of_arguments_is_a_type_error() {
    let e = call(&MontySandbox::default(), "def f(a, b):\n    return a\n", "f", &[Value::Int(1)])
        .unwrap_err();
    assert_eq!(e.exc_type, "TypeError", "{e}");
    assert!(e.message.contains("f()"), "{e}");
}

#[test]
fn prints_are_captured_and_kept_with_errors() {
    for (label, sb) in sandboxes() {
        let f = sb.compile("def f(x):\n    print('x is', x)\n    return 1 / x\n", "f").unwrap();
        let ok = sb.run(&f, &[Value::Int(2)], &limits());
        assert_eq!(ok.printed, "x is 2\n", "{label}");
        assert_eq!(ok.result, Ok(Value::Float(0.5)), "{label}");
        let bad = sb.run(&f, &[Value::Int(0)], &limits()).result.unwrap_err();
        assert_eq!(bad.printed, "x is 0\n", "{label}");
        assert!(
            bad.feedback().ends_with("Output printed before the error:\nx is 0"),
            "{label}: {}",
            bad.feedback()
        );
    }
}

#[test]
fn worker_memory_budget_is_per_call_not_cumulative() {
    // Each call builds a list of 800k ints (about half the 32 MiB cap) and frees it on return.
    let sb = worker();
    let f = sb.compile("def f(n):\n    xs = list(range(n))\n    return len(xs)\n", "f").unwrap();
    for i in 0..8 {
        assert_eq!(sb.call(&f, &[Value::Int(800_000)]), Ok(Value::Int(800_000)), "call {i}");
    }
    let e = sb.call(&f, &[Value::Int(10_000_000)]).unwrap_err();
    assert_eq!(e.kind, CodeErrorKind::Memory, "{e}");
    assert_eq!(sb.call(&f, &[Value::Int(800_000)]), Ok(Value::Int(800_000)));
    assert_eq!(sb.workers_started(), 1, "a soft memory stop must not cost the worker");
}

#[test]
fn non_data_results_are_refused_with_the_type_name() {
    let e = call(&MontySandbox::default(), "def f():\n    return len\n", "f", &[]).unwrap_err();
    assert_eq!(e.exc_type, "TypeError");
    assert!(e.message.contains("cannot leave the sandbox"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Rewrites and trainable functions.

const CONTROLLER: &str =
    "def controller(obs, gain=1.0):\n    \"\"\"Returns the force to apply.\"\"\"\n    return 0\n";

#[test]
fn rewrite_validation_cases() {
    let sig = Signature::first(CONTROLLER).unwrap();
    let ok = "import math\n\ndef controller(obs, gain=2.0):\n    \"\"\"Returns the force to apply.\"\"\"\n    return math.tanh(gain * obs['err'])\n";
    assert_eq!(validate_rewrite(&sig, ok), Ok(()));
    let rejected = [
        ("", "empty"),
        ("\n\n   \n", "empty"),
        ("def control(obs, gain=1.0):\n    return 1.0\n", "renames"),
        ("def controller(obs):\n    return 1.0\n", "(obs, gain) to (obs)"),
        ("def controller(obs, gain, dt):\n    return 1.0\n", "(obs, gain) to (obs, gain, dt)"),
        ("def controller(gain, obs):\n    return 1.0\n", "(obs, gain) to (gain, obs)"),
        ("def controller(*args):\n    return 1.0\n", "to (*args)"),
        ("return obs['err'] * 2", "does not define a function"),
    ];
    for (src, reason) in rejected {
        let why = validate_rewrite(&sig, src).unwrap_err();
        assert!(why.contains(reason), "{src:?}: {why}");
        assert!(
            why.contains("def controller(obs, gain=1.0):"),
            "the reason must show the required header: {why}"
        );
    }
}

#[test]
fn fenced_llm_reply_is_normalized_then_accepted() {
    let sig = Signature::first(CONTROLLER).unwrap();
    let reply = "```python\ndef controller(obs, gain=1.0):\n    return -gain * obs['err']\n```";
    assert_eq!(validate_rewrite(&sig, &normalize_suggestion(reply)), Ok(()));
}

#[test]
fn trainable_function_bad_rewrite_then_good_rewrite() {
    let sb = MontySandbox::new(limits());
    let mut f = TrainableFn::new(CONTROLLER).unwrap().with_returns(Expected::Float);
    let obs = Value::from_json(&serde_json::json!({"err": 0.5}));
    assert_eq!(
        f.call(&sb, std::slice::from_ref(&obs)),
        Ok(Value::Float(0.0)),
        "`return 0` coerced to float"
    );

    // A syntax error is accepted as text but fails the call with a traceback.
    f.set_source("def controller(obs, gain=1.0):\n    return -gain * obs['err'\n").unwrap();
    let e = f.call(&sb, std::slice::from_ref(&obs)).unwrap_err();
    assert_eq!(e.kind, CodeErrorKind::Syntax);
    assert!(e.traceback.contains("controller.py"), "{e}");

    // A renamed function never becomes current.
    assert!(f.set_source("def policy(obs, gain=1.0):\n    return 1.0\n").is_err());

    f.set_source("def controller(obs, gain=1.0):\n    return -gain * obs['err']\n").unwrap();
    assert_eq!(f.call(&sb, &[obs.clone(), Value::Int(3)]), Ok(Value::Float(-1.5)));
    let w = worker();
    assert_eq!(
        f.call(&w, &[obs, Value::Int(3)]),
        Ok(Value::Float(-1.5)),
        "the same function runs in the worker"
    );
}

#[test]
fn worker_serves_several_threads() {
    let sb = std::sync::Arc::new(WorkerSandbox::with_program(
        env!("CARGO_BIN_EXE_opto-sandbox"),
        limits(),
        2,
    ));
    let f = sb.compile("def sq(x):\n    return x * x\n", "sq").unwrap();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let (sb, f) = (sb.clone(), f.clone());
            std::thread::spawn(move || {
                (0..25)
                    .map(|i| sb.call(&f, &[Value::Int(t * 100 + i)]).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for (t, h) in handles.into_iter().enumerate() {
        let got = h.join().unwrap();
        let want: Vec<_> =
            (0..25).map(|i| Value::Int((t as i64 * 100 + i) * (t as i64 * 100 + i))).collect();
        assert_eq!(got, want);
    }
    assert!(sb.workers_started() <= 2);
}

#[test]
fn deeply_nested_or_cyclic_results_are_refused() {
    for (body, why) in [
        ("a = []\n    for i in range(10000):\n        a = [a]\n    return a", "nested more than"),
        ("a = []\n    a.append(a)\n    return a", "cycle"),
    ] {
        let src = format!("def f():\n    {body}\n");
        for (label, e) in hostile(&src, &limits()) {
            assert_eq!(e.exc_type, "TypeError", "{label}: {e}");
            assert!(e.message.contains(why), "{label}: {e}");
        }
    }
}

#[test]
fn too_deeply_nested_source_is_a_syntax_error() {
    let src = format!("def f():\n    return {}1{}\n", "(".repeat(3000), ")".repeat(3000));
    for (label, sb) in sandboxes() {
        let e = sb.compile(&src, "f").unwrap_err();
        assert_eq!(e.kind, CodeErrorKind::Syntax, "{label}: {e}");
        assert!(e.message.contains("too deeply nested"), "{label}: {e}");
    }
}

#[test]
fn python_recursion_does_not_use_the_native_stack() {
    // A 1000-deep Python recursion on a 512 KiB thread: the interpreter keeps frames on its heap.
    let handle = std::thread::Builder::new()
        .stack_size(512 << 10)
        .spawn(|| {
            let sb = MontySandbox::new(limits().with_recursion_depth(1000));
            let src =
                "def depth(n):\n    if n == 0:\n        return 0\n    return 1 + depth(n - 1)\n";
            let ok = call(&sb, src, "depth", &[Value::Int(990)]);
            let too_deep = call(&sb, src, "depth", &[Value::Int(5000)]);
            (ok, too_deep)
        })
        .unwrap();
    let (ok, too_deep) = handle.join().unwrap();
    assert_eq!(ok, Ok(Value::Int(990)));
    assert_eq!(too_deep.unwrap_err().exc_type, "RecursionError");
}

// ---------------------------------------------------------------------------------------------
// Benchmark (figures for the report, not a test):
//   cargo test --release --test code_tests bench_sandbox -- --ignored --nocapture

const PID: &str = "def pid(err, state):\n    kp, ki, kd, dt = 1.2, 0.3, 0.05, 0.01\n    integral = state[0] + err * dt\n    deriv = (err - state[1]) / dt\n    u = kp * err + ki * integral + kd * deriv\n    if u > 1.0:\n        u = 1.0\n    elif u < -1.0:\n        u = -1.0\n    return [u, integral, err]\n";

const THIRTY_LINES: &str = r#"import math

def controller(obs):
    """Returns [action, info] for one control step."""
    pos = obs["pos"]
    vel = obs["vel"]
    target = obs["target"]
    history = obs["history"]
    mode = obs["mode"]
    err = target - pos
    avg = sum(history) / len(history) if history else 0.0
    gain = 2.0 if mode == "aggressive" else 1.0
    damping = 0.5 * vel
    raw = gain * err - damping
    if abs(err) < 0.01:
        raw = 0.0
    elif err > 10:
        raw = raw * 0.5
    trend = 0.0
    for i in range(1, len(history)):
        trend += history[i] - history[i - 1]
    raw += 0.1 * trend
    action = max(-1.0, min(1.0, math.tanh(raw)))
    label = f"mode={mode}"
    info = {"err": err, "avg": avg, "label": label}
    if mode not in ("normal", "aggressive"):
        info["warning"] = "unknown mode"
    info["trend"] = round(trend, 4)
    info["gain"] = gain
    return [action, info]
"#;

#[test]
#[ignore = "benchmark; run with --release -- --ignored --nocapture"]
fn bench_sandbox() {
    assert_eq!(THIRTY_LINES.lines().count(), 30);
    let state = Value::List(vec![Value::Float(0.1), Value::Float(0.2)]);
    let bench_calls = |label: &str, sb: &dyn Sandbox, n: usize| {
        let f = sb.compile(PID, "pid").unwrap();
        for _ in 0..100 {
            sb.call(&f, &[Value::Float(0.3), state.clone()]).unwrap();
        }
        let t = Instant::now();
        let mut last = Value::None;
        for i in 0..n {
            last = sb.call(&f, &[Value::Float(0.3 + i as f64 * 1e-6), state.clone()]).unwrap();
        }
        let dt = t.elapsed();
        assert!(matches!(last, Value::List(ref l) if l.len() == 3));
        println!(
            "{label:>11}: {n} PID calls in {:.3} s = {:.0} calls/s ({:.2} us/call)",
            dt.as_secs_f64(),
            n as f64 / dt.as_secs_f64(),
            dt.as_secs_f64() * 1e6 / n as f64
        );
    };
    // Baseline in the same run (the machine is shared, so absolute figures drift): bare monty,
    // positional inputs, no print capture, no conversion from `Value`.
    {
        use monty_types::{
            CompileOptions, MontyObject, PrintWriter, ResourceLimits, ResourceTracker,
        };
        let run = monty::MontyRun::new(
            format!("{PID}\npid(a, b)\n"),
            "pid.py",
            vec!["a".into(), "b".into()],
            CompileOptions::default(),
        )
        .unwrap();
        let n = 200_000;
        let t = Instant::now();
        for i in 0..n {
            let args = vec![
                MontyObject::Float(0.3 + i as f64 * 1e-6),
                MontyObject::List(vec![MontyObject::Float(0.1), MontyObject::Float(0.2)]),
            ];
            let limits = ResourceLimits::default()
                .max_duration(Duration::from_secs(1))
                .max_recursion_depth(200);
            run.run(args, ResourceTracker::new(limits), PrintWriter::Disabled).unwrap();
        }
        let dt = t.elapsed();
        println!(
            "bare monty: {n} PID calls in {:.3} s = {:.0} calls/s ({:.2} us/call)",
            dt.as_secs_f64(),
            n as f64 / dt.as_secs_f64(),
            dt.as_secs_f64() * 1e6 / n as f64
        );
        let t = Instant::now();
        for _ in 0..2000 {
            monty::MontyRun::new(
                THIRTY_LINES.to_string(),
                "c.py",
                vec![],
                CompileOptions::default(),
            )
            .unwrap();
        }
        println!(
            "bare monty parse of the 30-line function: {:.1} us",
            t.elapsed().as_secs_f64() * 1e6 / 2000.0
        );
    }
    bench_calls("in-process", &MontySandbox::new(Limits::default()), 200_000);
    bench_calls(
        "worker",
        &WorkerSandbox::with_program(env!("CARGO_BIN_EXE_opto-sandbox"), Limits::default(), 1),
        20_000,
    );

    let sb = MontySandbox::default();
    sb.compile(THIRTY_LINES, "controller").unwrap(); // the first compile in a process is slower
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        sb.compile(THIRTY_LINES, "controller").unwrap();
    }
    println!(
        "compile of a 30-line function: {:.1} us (average of {n})",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let obs = Value::from_json(
        &serde_json::json!({"pos": 0.3, "vel": -0.1, "target": 1.0, "history": [0.1, 0.2, 0.25], "mode": "aggressive"}),
    );
    let f = sb.compile(THIRTY_LINES, "controller").unwrap();
    // CPython: [0.8986193501374986, {'err': 0.7, 'avg': 0.18333333333333335, 'label': 'mode=aggressive', 'trend': 0.15, 'gain': 2.0}]
    let want = r#"[0.8986193501374986, {"err": 0.7, "avg": 0.18333333333333335, "label": "mode=aggressive", "trend": 0.15, "gain": 2.0}]"#;
    let got = sb.call(&f, std::slice::from_ref(&obs)).unwrap();
    assert!(
        same(&got, &Value::from_json(&serde_json::from_str(want).unwrap())),
        "{}",
        got.py_repr()
    );
    let n = 50_000;
    let t = Instant::now();
    for _ in 0..n {
        sb.call(&f, std::slice::from_ref(&obs)).unwrap();
    }
    println!(
        "30-line controller in-process: {:.2} us/call",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}

#[test]
fn worker_binary_is_found_next_to_the_test_executable() {
    let found = opto::code::find_worker_program().unwrap();
    let built = std::path::Path::new(env!("CARGO_BIN_EXE_opto-sandbox"));
    assert_eq!(found.canonicalize().unwrap(), built.canonicalize().unwrap());
    let sb = WorkerSandbox::new(limits()).unwrap();
    assert_next_call_works("worker", &sb);
}
