//! The trainer end to end with a scripted LLM (optimizer logic only; the real engine has its
//! own tests): lockstep batching, success stop, checkpoints, resume, run folder contents.

use opto::llm::scripted::ScriptedLlm;
use opto::llm::Llm;
use opto::optim::{OptoPrime, OptoPrimeOptions, Optimizer};
use opto::tasks::numeric::NumericTask;
use opto::train::log::read_events;
use opto::train::{RunConfig, Trainer};
use std::sync::Arc;

fn config(seeds: usize, steps: usize) -> RunConfig {
    RunConfig {
        task: "numeric".into(),
        problem: 0,
        optimizer: "optoprime".into(),
        seeds,
        first_seed: 0,
        steps,
        memory: 2,
        model: "scripted".into(),
        model_sha256: None,
        temperature: 0.0,
        max_tokens: 200,
        threads: None,
        device: "cpu".into(),
        batch_size: seeds,
        stop_on_success: true,
        opto_version: env!("CARGO_PKG_VERSION").into(),
        problems: Vec::new(),
        search: None,
    }
}

/// Suggests x + 1 from the value of x shown in the prompt (deterministic in the prompt).
fn step_up_llm() -> ScriptedLlm {
    ScriptedLlm::from_fn(|req| {
        let user = &req.messages.last().unwrap().content;
        let line = user.lines().find(|l| l.starts_with("(float) x=")).expect("x is shown as a variable");
        let x: f64 = line["(float) x=".len()..].trim().parse().unwrap();
        Ok(format!(r#"{{"reasoning": "step up", "suggestion": {{"x": {}}}}}"#, x + 1.0))
    })
}

fn trainer(llm: Arc<dyn Llm>, cfg: RunConfig, out: &std::path::Path) -> Trainer {
    let memory = cfg.memory;
    Trainer {
        task: Arc::new(NumericTask::new(cfg.problem)),
        llm,
        config: cfg,
        out_dir: out.to_path_buf(),
        make_optimizer: Arc::new(move |params, llm, _seed| {
            Box::new(OptoPrime::with_options(params, llm, OptoPrimeOptions { memory_size: memory, ..Default::default() })) as Box<dyn Optimizer>
        }),
        progress: false,
    }
}

#[test]
fn seeds_step_in_lockstep_with_one_batch_per_step() {
    let dir = tempfile::tempdir().unwrap();
    let llm = Arc::new(step_up_llm());
    let summary = trainer(llm.clone(), config(3, 3), dir.path()).run().unwrap();
    assert_eq!(llm.batch_sizes(), vec![3, 3, 3]);
    assert_eq!(summary.batch_seconds.len(), 3);
    let events = read_events(&dir.path().join("events.jsonl")).unwrap();
    // 3 seeds × 3 steps + 3 final evaluations.
    assert_eq!(events.len(), 12);
    for seed in 0..3u64 {
        let xs: Vec<f64> = events.iter().filter(|e| e.seed == seed).map(|e| e.params["x"].as_f64().unwrap()).collect();
        assert_eq!(xs.len(), 4);
        for w in xs.windows(2) {
            assert_eq!(w[1], w[0] + 1.0, "each step applies the scripted suggestion");
        }
    }
    // Memory: the third prompt shows the two earlier (variables, feedback) pairs.
    let requests = llm.requests();
    let last_prompt = &requests.last().unwrap().messages.last().unwrap().content;
    assert!(last_prompt.matches("should be").count() >= 3, "{last_prompt}");
    for f in ["config.json", "checkpoint.json", "events.jsonl", "report.html", "graph.dot"] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("seed 2"));
}

#[test]
fn a_solved_seed_stops_and_the_run_records_it() {
    let task = NumericTask::new(0);
    let x_star = task.x_star;
    let dir = tempfile::tempdir().unwrap();
    let llm = Arc::new(ScriptedLlm::from_fn(move |_| Ok(format!(r#"{{"reasoning": "solve", "suggestion": {{"x": {x_star}}}}}"#))));
    let summary = trainer(llm.clone(), config(2, 5), dir.path()).run().unwrap();
    assert_eq!(summary.solved_at, vec![Some(1), Some(1)]);
    assert_eq!(llm.batch_sizes(), vec![2], "no LLM call after every seed is solved");
}

#[test]
fn resume_continues_with_identical_results() {
    let full = tempfile::tempdir().unwrap();
    trainer(Arc::new(step_up_llm()), config(2, 4), full.path()).run().unwrap();
    // The same run "killed" after 2 steps, then resumed with the full step count.
    let part = tempfile::tempdir().unwrap();
    trainer(Arc::new(step_up_llm()), config(2, 2), part.path()).run().unwrap();
    trainer(Arc::new(step_up_llm()), config(2, 4), part.path()).resume().unwrap();
    let strip = |dir: &std::path::Path| -> Vec<(usize, u64, String, f64, String)> {
        read_events(&dir.join("events.jsonl"))
            .unwrap()
            .into_iter()
            .map(|e| (e.step, e.seed, format!("{:?}", e.params), e.score, e.kind))
            .collect()
    };
    assert_eq!(strip(full.path()), strip(part.path()));
}

#[test]
fn an_existing_run_folder_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    trainer(Arc::new(step_up_llm()), config(1, 1), dir.path()).run().unwrap();
    let err = trainer(Arc::new(step_up_llm()), config(1, 1), dir.path()).run().unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
    // A corrupt checkpoint is a clear error on resume.
    std::fs::write(dir.path().join("checkpoint.json"), "{ not json").unwrap();
    let err = trainer(Arc::new(step_up_llm()), config(1, 2), dir.path()).resume().unwrap_err();
    assert!(err.to_string().contains("checkpoint"), "{err}");
}

#[test]
fn failing_programs_score_minus_infinity_and_the_run_folder_stays_readable() {
    // Battleship's starting code fires at [0, 0] twice: every forward pass fails.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1, 2);
    cfg.task = "battleship".into();
    let llm: Arc<dyn Llm> = Arc::new(ScriptedLlm::from_fn(|_| Ok(r#"{"reasoning": "no idea", "suggestion": {}}"#.into())));
    let make = |cfg: RunConfig, llm: Arc<dyn Llm>| Trainer {
        task: Arc::new(opto::tasks::battleship::BattleshipTask::new(0)),
        llm,
        config: cfg,
        out_dir: dir.path().to_path_buf(),
        make_optimizer: Arc::new(|params, llm, _| Box::new(OptoPrime::new(params, llm)) as Box<dyn Optimizer>),
        progress: false,
    };
    make(cfg.clone(), llm.clone()).run().unwrap();
    let events = read_events(&dir.path().join("events.jsonl")).unwrap();
    assert!(events.iter().all(|e| e.score == f64::NEG_INFINITY));
    assert!(events[0].feedback.contains("already fired"), "{}", events[0].feedback);
    // The checkpoint with −inf scores loads again.
    cfg.steps = 3;
    make(cfg, llm).resume().unwrap();
    assert_eq!(read_events(&dir.path().join("events.jsonl")).unwrap().len(), 4);
}
