//! The trainer end to end with a scripted LLM (optimizer logic only; the real engine has its
//! own tests): lockstep batching, success stop, checkpoints, resume, run folder contents.

use opto::llm::scripted::ScriptedLlm;
use opto::llm::Llm;
use opto::optim::{Optimizer, OptoPrime, OptoPrimeOptions};
use opto::tasks::numeric::NumericTask;
use opto::train::log::read_events;
use opto::train::{RunConfig, Trainer};
use std::sync::Arc;

fn config(seeds: usize, steps: usize) -> RunConfig {
    RunConfig {
        task: "numeric".into(),
        seeds,
        steps,
        memory: 2,
        model: "scripted".into(),
        max_tokens: 200,
        batch_size: seeds,
        ..Default::default()
    }
}

/// Suggests x + 1 from the value of x shown in the prompt (deterministic in the prompt).
fn step_up_llm() -> ScriptedLlm {
    ScriptedLlm::from_fn(|req| {
        let user = &req.messages.last().unwrap().content;
        let line =
            user.lines().find(|l| l.starts_with("(float) x=")).expect("x is shown as a variable");
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
            Box::new(OptoPrime::with_options(
                params,
                llm,
                // The scripted model steps x by +1; the line guard (which would lengthen those
                // steps) is the subject of its own tests, not of the trainer's.
                OptoPrimeOptions { memory_size: memory, line_guard: false, ..Default::default() },
            )) as Box<dyn Optimizer>
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
        let xs: Vec<f64> = events
            .iter()
            .filter(|e| e.seed == seed)
            .map(|e| e.params["x"].as_f64().unwrap())
            .collect();
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
    let llm = Arc::new(ScriptedLlm::from_fn(move |_| {
        Ok(format!(r#"{{"reasoning": "solve", "suggestion": {{"x": {x_star}}}}}"#))
    }));
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
    let llm: Arc<dyn Llm> = Arc::new(ScriptedLlm::from_fn(|_| {
        Ok(r#"{"reasoning": "no idea", "suggestion": {}}"#.into())
    }));
    let make = |cfg: RunConfig, llm: Arc<dyn Llm>| Trainer {
        task: Arc::new(opto::tasks::battleship::BattleshipTask::new(0).unwrap()),
        llm,
        config: cfg,
        out_dir: dir.path().to_path_buf(),
        make_optimizer: Arc::new(|params, llm, _| {
            Box::new(OptoPrime::new(params, llm)) as Box<dyn Optimizer>
        }),
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

// ---------------------------------------------------------------- reliability (issue #16)

#[test]
fn a_run_folder_has_one_writer() {
    let dir = tempfile::tempdir().unwrap();
    let held = opto::train::lock::RunLock::acquire(dir.path()).unwrap();
    let err =
        trainer(Arc::new(step_up_llm()), config(1, 1), dir.path()).run().unwrap_err().to_string();
    assert!(err.contains("in use by a live run"), "{err}");
    assert!(!dir.path().join("events.jsonl").exists(), "the refused run wrote nothing");
    drop(held);
    trainer(Arc::new(step_up_llm()), config(1, 1), dir.path()).run().unwrap();
    let _held = opto::train::lock::RunLock::acquire(dir.path()).unwrap();
    let err = trainer(Arc::new(step_up_llm()), config(1, 2), dir.path())
        .resume()
        .unwrap_err()
        .to_string();
    assert!(err.contains("in use by a live run"), "{err}");
}

#[test]
fn a_resume_keeps_the_folders_configuration() {
    let dir = tempfile::tempdir().unwrap();
    trainer(Arc::new(step_up_llm()), config(2, 2), dir.path()).run().unwrap();
    let mut other = config(2, 2);
    other.problem = 3;
    let err = trainer(Arc::new(step_up_llm()), other, dir.path()).resume().unwrap_err().to_string();
    assert!(err.contains("--problem 0, not 3"), "{err}");
    let mut other = config(2, 2);
    other.optimizer = "opro".into();
    let err = trainer(Arc::new(step_up_llm()), other, dir.path()).resume().unwrap_err().to_string();
    assert!(err.contains("--optimizer"), "{err}");
    let err = trainer(Arc::new(step_up_llm()), config(2, 1), dir.path())
        .resume()
        .unwrap_err()
        .to_string();
    assert!(err.contains("not shorten"), "{err}");
    // A longer run is an explicit extension, recorded in config.json.
    trainer(Arc::new(step_up_llm()), config(2, 3), dir.path()).resume().unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["steps"], 3);
    assert_eq!(cfg["steps_extensions"][0]["from"], 2);
    assert_eq!(cfg["steps_extensions"][0]["to"], 3);
}

#[test]
fn a_checkpoint_edited_to_skip_steps_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    trainer(Arc::new(step_up_llm()), config(1, 5), dir.path()).run().unwrap();
    // Rebuild the state of a run killed after step 2 of 5 ...
    let part = tempfile::tempdir().unwrap();
    trainer(Arc::new(step_up_llm()), config(1, 2), part.path()).run().unwrap();
    let path = part.path().join("checkpoint.json");
    let mut cp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // ... and claim four steps were done.
    cp["next_step"] = serde_json::json!(4);
    cp["config"]["steps"] = serde_json::json!(5);
    std::fs::write(&path, serde_json::to_string(&cp).unwrap()).unwrap();
    let err = trainer(Arc::new(step_up_llm()), config(1, 5), part.path())
        .resume()
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not match") && err.contains("events.jsonl"), "{err}");
    // Scores edited in the checkpoint are caught the same way.
    cp["next_step"] = serde_json::json!(2);
    cp["seeds"][0]["scores"][0] = serde_json::json!(123.0);
    std::fs::write(&path, serde_json::to_string(&cp).unwrap()).unwrap();
    let err = trainer(Arc::new(step_up_llm()), config(1, 5), part.path())
        .resume()
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not match"), "{err}");
}

#[test]
fn an_unavailable_backend_stops_the_run_with_the_checkpoint_of_the_last_finished_step() {
    let full = tempfile::tempdir().unwrap();
    trainer(Arc::new(step_up_llm()), config(2, 4), full.path()).run().unwrap();
    // The server goes away during the third step's batch.
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let good = step_up_llm();
    let flaky = ScriptedLlm::from_fn(move |req| {
        if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 4 {
            return Err(opto::Error::Unavailable {
                backend: "remote test".into(),
                reason: "connection refused (gave up after 4 tries)".into(),
            });
        }
        good.generate(std::slice::from_ref(req)).pop().unwrap().map(|r| r.text)
    });
    let dir = tempfile::tempdir().unwrap();
    let err = trainer(Arc::new(flaky), config(2, 4), dir.path()).run().unwrap_err();
    assert!(matches!(err, opto::Error::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("--resume"), "{err}");
    let cp = opto::train::Checkpoint::load(dir.path()).unwrap();
    assert_eq!(cp.next_step, 2, "the failed step is not checkpointed");
    let events = read_events(&dir.path().join("events.jsonl")).unwrap();
    assert!(events.iter().all(|e| e.step < 2), "nor logged");
    // Once the server is back, the resumed run is the uninterrupted one.
    trainer(Arc::new(step_up_llm()), config(2, 4), dir.path()).resume().unwrap();
    let strip = |d: &std::path::Path| -> Vec<(usize, u64, String, String)> {
        read_events(&d.join("events.jsonl"))
            .unwrap()
            .into_iter()
            .map(|e| (e.step, e.seed, format!("{:?}", e.params), e.kind))
            .collect()
    };
    assert_eq!(strip(full.path()), strip(dir.path()));
}

#[test]
fn battleship_runs_its_code_under_the_memory_cap() {
    use opto::graph::{Graph, Value};
    use opto::train::Task;
    let task = opto::tasks::battleship::BattleshipTask::new(0).unwrap();
    let g = Graph::new();
    let params = task.parameters(&g, 0);
    // Grows a list until something stops it: in-process only the 1 s time limit would, after
    // hundreds of MB of this process's memory.
    params[1].set_value(Value::Code("def act(map, plan):\n    \"\"\"Hoard.\"\"\"\n    a = []\n    while True:\n        a.append([0] * 1000)\n".into()));
    let err = task.forward(&g, &params, 0, 0).unwrap_err().to_string();
    assert!(err.to_lowercase().contains("memory"), "{err}");
}
