//! `opto run --search` as a user meets it: bad settings are one-line errors before any model is
//! looked up, and the baselines run with no model at all.

use std::process::Command;

fn opto(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_opto")).args(args).output().unwrap()
}

#[test]
fn bad_search_settings_fail_before_any_model_is_looked_up() {
    for (args, why) in [
        (vec!["--search", "best-of:0"], "at least 1 candidate"),
        (vec!["--search", "best-of", "--candidates", "0"], "at least 1 candidate"),
        (vec!["--search", "beam:8"], "width 8 needs at least 8"),
        (vec!["--search", "best-of", "--optimizer", "textgrad"], "textgrad"),
        (vec!["--search", "simulated-annealing"], "unknown search"),
        (vec!["--problems", "5-2"], "--problems"),
    ] {
        let mut all = vec!["run", "numeric", "--model", "/no/such/model.gguf"];
        all.extend(&args);
        let out = opto(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("/no/such/model"), "{args:?} looked up the model first: {err}");
    }
    // battleship's parameters are code: nothing for a numeric baseline to draw
    let out = opto(&["run", "battleship", "--search", "random", "--model", "/no/such/model.gguf"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no numeric parameter"), "{err}");
}

#[test]
fn a_baseline_runs_several_problems_without_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let out = opto(&[
        "run",
        "numeric",
        "--problems",
        "0-3",
        "--search",
        "section:5",
        "--steps",
        "4",
        "--model",
        "/no/such/model.gguf",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, String::from_utf8_lossy(&out.stderr));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["seeds"], 4);
    assert_eq!(config["problems"], serde_json::json!([0, 1, 2, 3]));
    assert!(config["model"].as_str().unwrap().contains("none"));
    let events = opto::train::log::read_events(&out_dir.join("events.jsonl")).unwrap();
    assert!(events
        .iter()
        .filter_map(|e| e.search.as_ref())
        .all(|s| s.evaluations <= 5 && s.requests == 0));
    // each run is its own problem: the first step's outputs differ
    let outputs: std::collections::HashSet<String> =
        events.iter().filter(|e| e.step == 0).map(|e| format!("{}", e.score)).collect();
    assert_eq!(outputs.len(), 4);
}
