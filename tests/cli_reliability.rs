//! The `opto` binary against the faults of issue #16, as a user meets them: two runs on one
//! folder, a resume with flags that disagree with its folder, a remote server that is not there,
//! counts out of range. The model is the tiny random-weight fixture (no download, milliseconds a
//! token); OPTO_HOME is a fresh folder, so nothing touches the real model cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tiny_model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.gguf");
    opto::llm::local::fixture::write_tiny_qwen2(&path, 7).unwrap();
    path
}

fn opto(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_opto"));
    cmd.env("OPTO_HOME", home).env("OPTO_OFFLINE", "1").stdin(Stdio::null());
    cmd
}

fn with<'a>(base: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(more).copied().collect()
}

fn run(home: &Path, args: &[&str]) -> Output {
    opto(home).args(args).output().unwrap()
}

/// Exit code 2 and exactly one line on stderr that contains every `needle`.
fn assert_one_line_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line: {stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} not in {:?}", lines[0]);
    }
}

#[test]
fn counts_out_of_range_are_one_line_errors_before_any_model_loads() {
    let home = tempfile::tempdir().unwrap();
    for (flag, value) in [
        ("--seeds", "18446744073709551615"),
        ("--seeds", "10000000"),
        ("--max-tokens", "0"),
        ("--steps", "0"),
        ("--threads", "0"),
        ("--memory", "99999999"),
        ("--problem", "18446744073709551615"),
    ] {
        // The model does not exist: an error about it would mean the count was not checked first.
        let out =
            run(home.path(), &["run", "numeric", "--model", "/nonexistent.gguf", flag, value]);
        assert_one_line_error(&out, &[flag]);
    }
}

#[test]
fn a_remote_server_that_is_not_there_is_a_one_line_error_and_a_failed_exit() {
    let home = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out_dir = home.path().join("run");
    let url = format!("http://127.0.0.1:{port}/v1");
    let out = run(
        home.path(),
        &["run", "numeric", "--remote", &url, "--steps", "2", "--out", out_dir.to_str().unwrap()],
    );
    assert_one_line_error(&out, &["unavailable", "health check"]);
    assert!(!out_dir.join("checkpoint.json").exists(), "no step ran");
    let out = run(home.path(), &["run", "numeric", "--remote", "garbage", "--steps", "2"]);
    assert_one_line_error(&out, &["unavailable"]);
}

#[test]
fn a_live_run_folder_refuses_a_second_writer_and_a_resume_keeps_its_configuration() {
    let home = tempfile::tempdir().unwrap();
    let model = tiny_model(home.path());
    let dir = home.path().join("run");
    let (model, dir_s) = (model.to_str().unwrap(), dir.to_str().unwrap());
    let base = ["run", "numeric", "--model", model, "--threads", "1", "--max-tokens", "24"];
    // A long run, started in the background.
    let mut first = opto(home.path())
        .args(base)
        .args(["--steps", "100000", "--no-stop-on-success", "--out", dir_s])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !dir.join("checkpoint.json").exists() {
        assert!(started.elapsed() < Duration::from_secs(120), "the first run wrote no checkpoint");
        assert!(first.try_wait().unwrap().is_none(), "the first run ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = run(home.path(), &with(&base, &["--steps", "2", "--out", dir_s]));
    assert_one_line_error(&second, &["in use by a live run", &format!("process {}", first.id())]);
    let resume = run(home.path(), &with(&base, &["--resume", dir_s]));
    assert_one_line_error(&resume, &["in use by a live run"]);
    // kill -9: the kernel drops the lock with the process.
    first.kill().unwrap();
    first.wait().unwrap();
    // Flags that disagree with the folder are refused before anything runs ...
    let events_before = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let problem = run(home.path(), &with(&base, &["--resume", dir_s, "--problem", "3"]));
    assert_one_line_error(&problem, &["--problem", "disagrees"]);
    let seeds = run(home.path(), &with(&base, &["--resume", dir_s, "--seeds", "2"]));
    assert_one_line_error(&seeds, &["--seeds"]);
    let shorter = run(home.path(), &with(&base, &["--resume", dir_s, "--steps", "1"]));
    assert_one_line_error(&shorter, &["--steps", "only extend"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("events.jsonl")).unwrap(),
        events_before,
        "nothing was written"
    );
    // ... and an extension is explicit and recorded. The resumed run takes the folder's
    // `--max-tokens` without it on the command line.
    let short = home.path().join("short");
    let short_s = short.to_str().unwrap();
    let out =
        run(home.path(), &with(&base, &["--steps", "1", "--no-line-guard", "--out", short_s]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(
        home.path(),
        &[
            "run",
            "numeric",
            "--model",
            model,
            "--threads",
            "1",
            "--resume",
            short_s,
            "--steps",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(short.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["steps"], 2);
    assert_eq!(cfg["max_tokens"], 24, "taken from the folder, not the default");
    assert_eq!(cfg["line_guard"], false, "the guard stays off as the run had it");
    assert_eq!(cfg["bracket_hint"], true);
    assert_eq!(cfg["steps_extensions"][0]["from"], 1);
}

#[test]
fn a_resume_of_a_problem_set_keeps_its_problems_and_seeds() {
    let home = tempfile::tempdir().unwrap();
    let model = tiny_model(home.path());
    let dir = home.path().join("set");
    let (model, dir_s) = (model.to_str().unwrap(), dir.to_str().unwrap());
    let out = run(
        home.path(),
        &[
            "run",
            "numeric",
            "--model",
            model,
            "--threads",
            "1",
            "--max-tokens",
            "16",
            "--problems",
            "0,1",
            "--steps",
            "1",
            "--no-stop-on-success",
            "--out",
            dir_s,
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let other = run(
        home.path(),
        &[
            "run",
            "numeric",
            "--model",
            model,
            "--resume",
            dir_s,
            "--problems",
            "0,2",
            "--steps",
            "2",
        ],
    );
    assert_one_line_error(&other, &["--problems", "disagrees"]);
    let out = run(
        home.path(),
        &["run", "numeric", "--model", model, "--threads", "1", "--resume", dir_s, "--steps", "2"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        (cfg["problems"].clone(), cfg["seeds"].clone(), cfg["steps"].clone()),
        (serde_json::json!([0, 1]), serde_json::json!(2), serde_json::json!(2))
    );
}

/// `opto run prompt` on a user's own file, as a user runs it: a bad line is named (file, line,
/// field) before any model loads, a search the dataset loop does not have is refused, and a
/// best-of run on the tiny model finishes with every candidate in the log and none of the
/// file's contents in the run folder.
#[test]
fn a_prompt_run_on_a_private_file_checks_it_first_and_keeps_its_contents_out_of_the_folder() {
    let home = tempfile::tempdir().unwrap();
    let good = home.path().join("pairs.jsonl");
    let lines: Vec<String> = (0..30)
        .map(|i| format!(r#"{{"input": "secret question {i}", "answer": "secret answer {i}"}}"#))
        .collect();
    std::fs::write(&good, lines.join("\n")).unwrap();
    let bad = home.path().join("bad.jsonl");
    std::fs::write(&bad, format!("{}\n{}\n{{\"input\": \"q\"}}\n", lines[0], lines[1])).unwrap();
    let out = run(
        home.path(),
        &["run", "prompt", "--data", bad.to_str().unwrap(), "--model", "/nonexistent.gguf"],
    );
    assert_one_line_error(&out, &["bad.jsonl", "line 3", "`answer`"]);
    let out = run(
        home.path(),
        &["run", "prompt", "--data", good.to_str().unwrap(), "--search", "beam:2"],
    );
    assert_one_line_error(&out, &["--search", "best-of"]);

    let model = tiny_model(home.path());
    let dir = home.path().join("run");
    let out = run(
        home.path(),
        &[
            "run",
            "prompt",
            "--data",
            good.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--threads",
            "1",
            "--steps",
            "1",
            "--search",
            "best-of:2",
            "--max-tokens",
            "24",
            "--call-max-tokens",
            "8",
            "--out",
            dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = std::fs::read_to_string(dir.join("dataset-events.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    let candidates = first["optimizer"]["search"]["candidates"].as_array().unwrap();
    assert!(candidates.len() >= 2, "{first}");
    assert!(candidates.iter().any(|c| c["source"] == "model"), "{first}");
    for f in std::fs::read_dir(&dir).unwrap() {
        let path = f.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(!text.contains("secret"), "{} holds the file's contents", path.display());
    }
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    assert!(config.contains("sha256") && config.contains("pairs.jsonl"), "{config}");
}
