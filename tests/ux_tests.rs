//! What a user sees, checked as they see it: the `opto run` binary's output with stderr going to
//! a pipe (a log file's view: one line per step) and its final table, on the tiny fixture model;
//! the report's structure (axes, labels, the −inf note, the graph's picture drawn without any
//! external tool); battleship seeds that start from different prompts.

use opto::llm::local::fixture::write_tiny_qwen2;
use opto::llm::scripted::ScriptedLlm;
use opto::llm::Llm;
use opto::optim::{Optimizer, OptoPrime};
use opto::train::{RunConfig, Task, Trainer};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn config(task: &str, seeds: usize, steps: usize) -> RunConfig {
    RunConfig {
        task: task.into(),
        seeds,
        steps,
        memory: 2,
        model: "scripted".into(),
        max_tokens: 200,
        batch_size: seeds,
        ..Default::default()
    }
}

fn trainer(task: Arc<dyn Task>, llm: Arc<dyn Llm>, cfg: RunConfig, out: &Path) -> Trainer {
    Trainer {
        task,
        llm,
        config: cfg,
        out_dir: out.to_path_buf(),
        make_optimizer: Arc::new(|params, llm, _seed| {
            Box::new(OptoPrime::new(params, llm)) as Box<dyn Optimizer>
        }),
        progress: false,
    }
}

#[test]
fn without_a_terminal_each_step_is_a_log_line_and_the_outcome_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    write_tiny_qwen2(&model, 7).unwrap();
    let run = dir.path().join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_opto"))
        .args([
            "run",
            "numeric",
            "--seeds",
            "2",
            "--steps",
            "2",
            "--threads",
            "1",
            "--max-tokens",
            "60",
        ])
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    // The log: a start line naming the run folder, then one plain line per step taken.
    assert!(stderr.contains("numeric-0: 2 steps, 2 seeds in one batch; run folder"), "{stderr}");
    let events = opto::train::log::read_events(&run.join("events.jsonl")).unwrap();
    let steps_taken = events.iter().filter(|e| e.kind == "step").map(|e| e.step + 1).max().unwrap();
    for k in 1..=steps_taken {
        let line = stderr
            .lines()
            .find(|l| l.starts_with(&format!("numeric-0: step {k}/2 · best score ")))
            .unwrap_or_else(|| panic!("no line for step {k}:\n{stderr}"));
        assert!(
            line.contains(" · solved ") && line.contains("/2 · ") && line.contains(" s (total "),
            "{line}"
        );
    }
    assert!(!stderr.contains('\r'), "no bar redraws in a log: {stderr:?}");
    // The outcome: a table with a row per seed and the totals, no Rust debug values.
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("seed  best score  solved"), "{stdout}");
    assert!(lines[1].trim_start().starts_with("0 ") && lines[1].contains("x = "), "{stdout}");
    assert!(lines[2].trim_start().starts_with("1 ") && lines[2].contains("x = "), "{stdout}");
    assert!(lines[3].starts_with("solved ") && lines[3].contains(" of 2 seeds"), "{stdout}");
    assert!(!stdout.contains("Some(") && !stdout.contains("None"), "{stdout}");
    assert!(lines[4].starts_with("run folder: "), "{stdout}");
}

#[test]
fn the_report_has_ticked_labelled_axes_a_pure_rust_graph_picture_and_no_negative_zero() {
    let dir = tempfile::tempdir().unwrap();
    // Suggests x + 1 each step: finite scores that move.
    let llm = Arc::new(ScriptedLlm::from_fn(|req| {
        let user = &req.messages.last().unwrap().content;
        let line = user.lines().find(|l| l.starts_with("(float) x=")).unwrap();
        let x: f64 = line["(float) x=".len()..].trim().parse().unwrap();
        Ok(format!(r#"{{"reasoning": "up", "suggestion": {{"x": {}}}}}"#, x + 1.0))
    }));
    let task = Arc::new(opto::tasks::numeric::NumericTask::new(0));
    trainer(task, llm, config("numeric", 2, 4), dir.path()).run().unwrap();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.matches("class=\"xtick\"").count() >= 5, "a tick per step");
    assert!(html.matches("class=\"ytick\"").count() >= 4, "enough y labels");
    assert!(html.contains(">step</text>") && html.contains(">score</text>"), "axis titles");
    assert!(!html.contains("-0.0000") && !html.contains(">-0<"), "no negative zero");
    let graph =
        html.split("class=\"trace-graph\"").nth(1).expect("the trace graph is drawn as SVG");
    let graph = &graph[..graph.find("</svg>").unwrap()];
    assert!(
        graph.matches("<rect").count() >= 3 && graph.contains("marker-end"),
        "boxes and arrows"
    );
    assert!(html.contains("max-width:100%"), "pictures scale to the page");
    assert!(!html.contains("Graphviz is not installed"));
}

#[test]
fn a_run_whose_every_program_fails_says_why_instead_of_an_empty_chart() {
    let dir = tempfile::tempdir().unwrap();
    // Replies that are no usable suggestion leave battleship's failing starting code in place.
    let llm = Arc::new(ScriptedLlm::from_fn(|_| Ok("I do not know.".into())));
    let task = Arc::new(opto::tasks::battleship::BattleshipTask::new(0).unwrap());
    let summary = trainer(task, llm, config("battleship", 1, 2), dir.path()).run().unwrap();
    assert_eq!(summary.best_scores, vec![Some(f64::NEG_INFINITY)]);
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("Every evaluation failed"), "the −inf note");
    assert!(!html.contains("class=\"score-chart\""), "no empty chart");
    // The feedback (the error) sits in a cell that keeps its line breaks.
    assert!(
        html.contains("<div class=\"text\">(ValueError) square [0, 0] was already fired at"),
        "{html}"
    );
    assert!(html.contains(".text{") && html.contains("white-space:pre-wrap"));
}

#[test]
fn battleship_seeds_start_from_different_prompts() {
    let dir = tempfile::tempdir().unwrap();
    let llm = Arc::new(ScriptedLlm::from_fn(|_| Ok("{}".into())));
    let task = Arc::new(opto::tasks::battleship::BattleshipTask::new(0).unwrap());
    trainer(task, llm.clone(), config("battleship", 3, 1), dir.path()).run().unwrap();
    let prompts: Vec<String> =
        llm.requests().iter().map(|r| r.messages.last().unwrap().content.clone()).collect();
    assert_eq!(prompts.len(), 3);
    assert!(
        prompts[0] != prompts[1] && prompts[1] != prompts[2] && prompts[0] != prompts[2],
        "greedy decoding would give identical prompts identical replies"
    );
}
