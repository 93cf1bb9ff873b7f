//! The search layer end to end through the `Trainer`, with a scripted LLM for the model's
//! replies (optimizer logic only) and the real tasks as evaluators: one batch per step for every
//! run's candidates, no evaluation spent on a tried value, the best kept, every candidate logged
//! with its source, the fallback for tasks that act on the world, and exact resume.

use opto::graph::{Graph, Node};
use opto::llm::scripted::ScriptedLlm;
use opto::llm::Llm;
use opto::optim::{MemoryOrder, Optimizer, OptoPrime, OptoPrimeOptions};
use opto::tasks::numeric::NumericTask;
use opto::tasks::ProblemSet;
use opto::train::log::read_events;
use opto::train::search::{SearchSettings, Source, Strategy};
use opto::train::{CandidateEvaluation, Evaluation, RunConfig, Task, Trainer};
use std::sync::Arc;

fn config(seeds: usize, steps: usize, search: Option<SearchSettings>) -> RunConfig {
    RunConfig {
        task: "numeric".into(),
        seeds,
        steps,
        model: "scripted".into(),
        max_tokens: 200,
        batch_size: seeds,
        search,
        ..Default::default()
    }
}

fn trainer(
    task: Arc<dyn Task>,
    llm: Arc<dyn Llm>,
    cfg: RunConfig,
    out: &std::path::Path,
) -> Trainer {
    Trainer {
        task,
        llm,
        config: cfg,
        out_dir: out.to_path_buf(),
        make_optimizer: Arc::new(|params, llm, _seed| {
            Box::new(OptoPrime::with_options(
                params,
                llm,
                OptoPrimeOptions {
                    memory_size: 5,
                    memory_order: MemoryOrder::Ranked,
                    ..Default::default()
                },
            )) as Box<dyn Optimizer>
        }),
        progress: false,
    }
}

/// Suggests x + d, where d depends on the request's sampling seed: distinct candidates at
/// distinct seeds, as temperature sampling gives.
fn spread_llm() -> ScriptedLlm {
    ScriptedLlm::from_fn(|req| {
        let user = &req.messages.last().unwrap().content;
        let line = user.lines().find(|l| l.starts_with("(float) x=")).expect("x is shown");
        let x: f64 = line["(float) x=".len()..].trim().parse().unwrap();
        let d = (req.params.seed % 7) as f64 - 3.0;
        Ok(format!(r#"{{"reasoning": "try", "suggestion": {{"x": {}}}}}"#, x + d))
    })
}

fn search(strategy: Strategy) -> Option<SearchSettings> {
    Some(SearchSettings::new(strategy))
}

#[test]
fn all_runs_candidates_go_in_one_batch_and_no_tried_value_is_scored_twice() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = (0..3).map(|p| (p, Box::new(NumericTask::new(p)) as Box<dyn Task>)).collect();
    let set: Arc<dyn Task> = Arc::new(ProblemSet::new("numeric", tasks, 1, 0).unwrap());
    let llm = Arc::new(spread_llm());
    let summary =
        trainer(set, llm.clone(), config(3, 4, search(Strategy::BestOf { k: 6 })), dir.path())
            .run()
            .unwrap();
    let sizes = llm.batch_sizes();
    assert!(!sizes.is_empty());
    // one batch per step; a run asks the model for what the numeric proposals leave of its 6
    let events = read_events(&dir.path().join("events.jsonl")).unwrap();
    let steps: Vec<_> = events.iter().filter(|e| e.search.is_some()).collect();
    for (i, &size) in sizes.iter().enumerate() {
        let asked: usize =
            steps.iter().filter(|e| e.step == i).map(|e| e.search.as_ref().unwrap().requests).sum();
        assert_eq!(size, asked, "step {i}: the batch holds every run's requests");
    }
    for seed in 0..3u64 {
        let mut tried: Vec<String> = Vec::new();
        let mut best = f64::NEG_INFINITY;
        for e in steps.iter().filter(|e| e.seed == seed) {
            let s = e.search.as_ref().unwrap();
            assert!(s.evaluations <= 6);
            // the values the step ran with were kept because they were the best so far
            assert!(e.score >= best, "seed {seed} step {}: {} < {best}", e.step, e.score);
            best = best.max(e.score);
            tried.push(format!("{:?}", e.params));
            for c in s.candidates.iter().filter(|c| c.skipped.is_none()) {
                let key = format!("{:?}", c.values);
                assert!(!tried.contains(&key), "seed {seed}: {key} scored twice");
                tried.push(key);
                assert!(c.score.is_some());
            }
            if let Some(i) = s.chosen {
                let chosen = s.candidates[i].score.unwrap();
                assert!(s.candidates.iter().filter_map(|c| c.score).all(|x| x <= chosen));
            }
        }
    }
    // the numeric proposals solve these within a few steps, at 1e-3
    assert!(
        summary.solved_at.iter().filter(|s| s.is_some()).count() >= 2,
        "{:?}",
        summary.solved_at
    );
    let sources: Vec<Source> = steps
        .iter()
        .flat_map(|e| e.search.as_ref().unwrap().candidates.iter().map(|c| c.source))
        .collect();
    assert!(sources.contains(&Source::Model) && sources.contains(&Source::Expand));
}

#[test]
fn repeats_of_the_model_are_counted_and_not_scored() {
    let dir = tempfile::tempdir().unwrap();
    // always the same suggestion: one distinct value per step at most
    let llm = Arc::new(ScriptedLlm::from_fn(|_| Ok(r#"{"suggestion": {"x": 1.5}}"#.into())));
    let mut settings = SearchSettings::new(Strategy::BestOf { k: 4 });
    settings.numeric_proposals = false;
    trainer(Arc::new(NumericTask::new(1)), llm, config(1, 2, Some(settings)), dir.path())
        .run()
        .unwrap();
    let events = read_events(&dir.path().join("events.jsonl")).unwrap();
    let first = events[0].search.as_ref().unwrap();
    assert_eq!(
        (first.requests, first.evaluations, first.duplicates, first.distinct_model),
        (4, 1, 3, 1)
    );
    let second = events[1].search.as_ref().unwrap();
    assert_eq!(second.evaluations, 0, "1.5 was tried at step 0");
    assert!(second
        .candidates
        .iter()
        .all(|c| c.skipped.as_deref().is_some_and(|s| s.contains("already tried"))));
}

#[test]
fn baselines_ask_no_model_and_stay_within_the_evaluation_budget() {
    for strategy in [Strategy::Random { k: 5 }, Strategy::Section { k: 5 }] {
        let dir = tempfile::tempdir().unwrap();
        let llm = Arc::new(ScriptedLlm::new(Vec::<String>::new()));
        trainer(
            Arc::new(NumericTask::new(2)),
            llm.clone(),
            config(2, 3, search(strategy)),
            dir.path(),
        )
        .run()
        .unwrap();
        assert!(llm.batch_sizes().is_empty(), "{strategy:?} asked the model");
        let events = read_events(&dir.path().join("events.jsonl")).unwrap();
        for e in events.iter().filter_map(|e| e.search.as_ref()) {
            assert!(e.evaluations <= 5 && e.evaluations >= 4, "{strategy:?}: {}", e.evaluations);
            assert!(e.candidates.iter().all(|c| c.source
                == if matches!(strategy, Strategy::Random { .. }) {
                    Source::Random
                } else {
                    Source::Section
                }));
            for c in &e.candidates {
                let x = c.values["x"].as_f64().unwrap();
                assert!((-10.0..=10.0).contains(&x));
            }
        }
    }
}

/// A task whose forward pass acts on the world: the trainer must not score candidates.
struct Robot;
impl Task for Robot {
    fn name(&self) -> String {
        "robot".into()
    }
    fn objective(&self) -> String {
        "Make x equal 3.".into()
    }
    fn parameters(&self, graph: &Graph, _seed: u64) -> Vec<Node> {
        vec![graph.param_named("x", 0.0)]
    }
    fn forward(
        &self,
        _graph: &Graph,
        params: &[Node],
        _seed: u64,
        _step: usize,
    ) -> opto::Result<Node> {
        Ok(&params[0] + 0.0)
    }
    fn evaluate(&self, output: &Node, _seed: u64, _step: usize) -> Evaluation {
        let y = output.value().as_f64().unwrap();
        Evaluation {
            score: -(y - 3.0).abs(),
            feedback: "The output should be larger.".into(),
            success: (y - 3.0).abs() < 1e-9,
        }
    }
    fn candidate_evaluation(&self) -> CandidateEvaluation {
        CandidateEvaluation::ActsOnWorld
    }
}

#[test]
fn a_task_that_acts_on_the_world_gets_one_candidate_per_step() {
    let dir = tempfile::tempdir().unwrap();
    let llm = Arc::new(spread_llm());
    let t = trainer(
        Arc::new(Robot),
        llm.clone(),
        config(1, 3, search(Strategy::BestOf { k: 6 })),
        dir.path(),
    );
    assert!(t.active_search().is_none());
    t.run().unwrap();
    assert_eq!(llm.batch_sizes(), vec![1, 1, 1]);
    let events = read_events(&dir.path().join("events.jsonl")).unwrap();
    assert!(events.iter().all(|e| e.search.is_none()));
}

/// Outputs 1 / (x − 2): a ZeroDivisionError at x = 2.
struct Reciprocal;
impl Task for Reciprocal {
    fn name(&self) -> String {
        "reciprocal".into()
    }
    fn objective(&self) -> String {
        "Make the output 0.5.".into()
    }
    fn parameters(&self, graph: &Graph, _seed: u64) -> Vec<Node> {
        vec![graph.param_named("x", 0.0)]
    }
    fn forward(
        &self,
        graph: &Graph,
        params: &[Node],
        _seed: u64,
        _step: usize,
    ) -> opto::Result<Node> {
        let d = params[0].try_sub(2.0)?;
        graph.value(1.0).try_div(&d)
    }
    fn evaluate(&self, output: &Node, _seed: u64, _step: usize) -> Evaluation {
        let y = output.value().as_f64().unwrap();
        Evaluation {
            score: -(y - 0.5).abs(),
            feedback: "The output should be larger.".into(),
            success: (y - 0.5).abs() < 1e-9,
        }
    }
}

#[test]
fn a_candidate_whose_program_fails_scores_minus_infinity_and_the_search_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let llm = Arc::new(ScriptedLlm::from_fn(|_| Ok(r#"{"suggestion": {"x": 2.0}}"#.into())));
    let mut settings = SearchSettings::new(Strategy::BestOf { k: 2 });
    settings.numeric_proposals = false;
    trainer(Arc::new(Reciprocal), llm, config(1, 2, Some(settings)), dir.path()).run().unwrap();
    let events = read_events(&dir.path().join("events.jsonl")).unwrap();
    let c = &events[0].search.as_ref().unwrap().candidates[0];
    assert_eq!(c.score, Some(f64::NEG_INFINITY));
    assert!(c.feedback.contains("ZeroDivisionError"), "{}", c.feedback);
    // the failing value was not kept: step 1 ran with the start value again
    assert_eq!(events[1].params["x"].as_f64(), Some(0.0));
    assert_eq!(events.len(), 3, "two steps and the final evaluation");
}

#[test]
fn a_resumed_search_gives_the_uninterrupted_runs_events() {
    let strip = |dir: &std::path::Path| -> Vec<String> {
        read_events(&dir.join("events.jsonl"))
            .unwrap()
            .into_iter()
            .map(|e| {
                let c: Vec<String> = e
                    .search
                    .map(|s| {
                        s.candidates
                            .iter()
                            .map(|c| format!("{:?}{:?}", c.values, c.score))
                            .collect()
                    })
                    .unwrap_or_default();
                format!("{} {} {:?} {} {:?}", e.step, e.seed, e.params, e.score, c)
            })
            .collect()
    };
    let s = || search(Strategy::Priority { k: 4 });
    let task = || Arc::new(NumericTask::new(5)) as Arc<dyn Task>;
    let full = tempfile::tempdir().unwrap();
    trainer(task(), Arc::new(spread_llm()), config(2, 4, s()), full.path()).run().unwrap();
    let part = tempfile::tempdir().unwrap();
    trainer(task(), Arc::new(spread_llm()), config(2, 2, s()), part.path()).run().unwrap();
    trainer(task(), Arc::new(spread_llm()), config(2, 4, s()), part.path()).resume().unwrap();
    assert_eq!(strip(full.path()), strip(part.path()));
}
