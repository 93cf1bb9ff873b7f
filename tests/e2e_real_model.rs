//! The real-model tier: the `opto` binary optimizes a `numeric` problem with a real local model
//! (SmolLM2-135M-Instruct, the smallest; pulled into the model cache on first use).
//!
//! Opt-in because it may download 93 MB: `OPTO_REAL_MODEL_TESTS=1 cargo test --test e2e_real_model`
//! (`.ci/run` sets it).

use std::process::Command;

fn enabled() -> bool {
    let on = std::env::var("OPTO_REAL_MODEL_TESTS").as_deref() == Ok("1");
    if !on {
        eprintln!("skipped: set OPTO_REAL_MODEL_TESTS=1 to run the real-model end-to-end test");
    }
    on
}

#[test]
fn numeric_run_with_the_real_model_end_to_end() {
    if !enabled() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let run_dir = out.path().join("run");
    let status = Command::new(env!("CARGO_BIN_EXE_opto"))
        .args([
            "run",
            "numeric",
            "--model",
            "smollm2-135m-instruct",
            "--seeds",
            "2",
            "--steps",
            "1",
            "--threads",
            "2",
            "--max-tokens",
            "120",
            "--out",
        ])
        .arg(&run_dir)
        .status()
        .expect("the opto binary runs");
    assert!(status.success(), "opto run failed: {status}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["batch_size"], 2);
    assert_eq!(
        config["model_sha256"].as_str().map(str::len),
        Some(64),
        "the run records the model's sha256: {config}"
    );
    let events = opto::train::log::read_events(&run_dir.join("events.jsonl")).unwrap();
    let stepped: Vec<_> = events.iter().filter(|e| e.optimizer.is_some()).collect();
    assert_eq!(stepped.len(), 2, "one optimizer step per seed");
    for e in stepped {
        let report = e.optimizer.as_ref().unwrap();
        assert!(report.get("error").is_none_or(|v| v.is_null()), "step failed: {report}");
        // Constrained decoding: the reply is JSON whose suggestion names exactly the parameter.
        let reply: serde_json::Value =
            serde_json::from_str(report["reply"].as_str().unwrap()).expect("reply is JSON");
        let keys: Vec<&String> =
            reply["suggestion"].as_object().expect("a suggestion object").keys().collect();
        assert_eq!(keys, vec!["x"]);
        assert!(reply["suggestion"]["x"].is_number());
        assert_eq!(e.batch_size, Some(2), "both seeds' requests went in one batch");
    }
    assert!(run_dir.join("report.html").exists());
}

#[test]
fn bad_arguments_are_one_line_errors_with_exit_code_2() {
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_opto")).args(args).output().unwrap();
    let out = run(&["run", "nosuchtask"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: task `nosuchtask`"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let out = run(&["run", "numeric", "--seeds", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--seeds"));
    let out = run(&["run", "numeric", "--model", "/no/such/model.gguf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/model.gguf"));
    let out = run(&["report", "/no/such/run"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["run", "numeric", "--resume", "/no/such/run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("checkpoint"));
    // The device is checked before any model is looked up or pulled.
    let out = run(&["bench", "llm", "--device", "tpu", "--model", "/no/such/model.gguf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`tpu`: unknown device"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
