//! How much of the host's memory hostile LLM-written code can take, in each sandbox mode, and
//! what a call costs in each. Not a test (it measures this machine); the numbers go in the
//! README and in issue #16's note.
//!
//! ```text
//! cargo run --release --example sandbox_memory            # every class × mode, one process each
//! cargo run --release --example sandbox_memory -- cost    # µs per call of a 10-op controller step
//! ```
//!
//! Each hostile class runs in a fresh process (peak RSS only grows), which prints its own peak
//! (`VmHWM`) and, for the worker mode, the largest peak of its exited children (`getrusage`).

use opto::code::{default_sandbox, Limits, MontySandbox, Sandbox};
use opto::graph::Value;
use std::time::{Duration, Instant};

const HOSTILE: &[(&str, &str)] = &[
    ("one big allocation", "def f(x):\n    return 'x' * 10**9\n"),
    ("string doubling", "def f(x):\n    s = 'x'\n    while True:\n        s = s + s\n"),
    ("list growth", "def f(x):\n    a = []\n    while True:\n        a.append([0] * 1000)\n"),
    ("dict growth", "def f(x):\n    d = {}\n    i = 0\n    while True:\n        d[i] = str(i) * 50\n        i += 1\n"),
    ("join burst", "def f(x):\n    s = 'x' * 90000\n    return '-'.join([s] * 3000)\n"),
];

const CONTROLLER: &str = "def f(x):\n    e = 1.0 - x\n    u = 0.5 * e + 0.1 * e * e\n    if u > 1.0:\n        u = 1.0\n    if u < -1.0:\n        u = -1.0\n    return u\n";

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn children_peak_rss_mib() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

fn sandbox(mode: &str, limits: Limits) -> Box<dyn Sandbox> {
    match mode {
        "in-process" => Box::new(MontySandbox::new(limits)),
        _ => Box::new(default_sandbox(limits).expect("build the opto-sandbox binary first")),
    }
}

fn one(mode: &str, class: usize) {
    let (name, source) = HOSTILE[class];
    let limits = Limits::default();
    let before = peak_rss_mib();
    let sb = sandbox(mode, limits);
    let f = sb.compile(source, "f").expect("the hostile bodies compile");
    let started = Instant::now();
    let result = sb.call(&f, &[Value::Int(0)]);
    let seconds = started.elapsed().as_secs_f64();
    drop(sb);
    std::thread::sleep(Duration::from_millis(50));
    let outcome = match result {
        Ok(_) => "returned".to_string(),
        Err(e) => format!("{:?}", e.kind),
    };
    println!(
        "| {name} | {mode} | {outcome} | {seconds:.2} s | host peak {:.0} MiB (start {before:.0}) | worker peak {:.0} MiB |",
        peak_rss_mib(),
        children_peak_rss_mib()
    );
}

fn cost() {
    for mode in ["in-process", "worker"] {
        let sb = sandbox(mode, Limits::default());
        let f = sb.compile(CONTROLLER, "f").unwrap();
        for _ in 0..200 {
            sb.call(&f, &[Value::Float(0.3)]).unwrap();
        }
        let n = 20_000;
        let started = Instant::now();
        for i in 0..n {
            sb.call(&f, &[Value::Float(i as f64 * 1e-4)]).unwrap();
        }
        println!(
            "{mode}: {:.2} µs per call ({n} calls of a 10-op controller step)",
            started.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("cost") => cost(),
        Some("one") => one(&args[2], args[3].parse().expect("class index")),
        _ => {
            println!("| class | mode | outcome | time | host memory | worker memory |\n|---|---|---|---|---|---|");
            let exe = std::env::current_exe().expect("own path");
            for (class, _) in HOSTILE.iter().enumerate() {
                for mode in ["in-process", "worker"] {
                    let out = std::process::Command::new(&exe)
                        .args(["one", mode, &class.to_string()])
                        .output()
                        .expect("run a class");
                    let text = String::from_utf8_lossy(&out.stdout);
                    if text.trim().is_empty() {
                        println!(
                            "| {} | {mode} | the host process died: {} | | | |",
                            HOSTILE[class].0, out.status
                        );
                    } else {
                        print!("{text}");
                    }
                }
            }
        }
    }
}
