//! The training loop. Per step: every active seed runs forward → feedback → backward (in
//! parallel, each on its own graph), then the optimizers' requests of ALL seeds go to the LLM as
//! ONE batch, the updates are applied, one event per seed is logged and the checkpoint is
//! written. `resume` continues a killed run from its last finished step.

use super::checkpoint::{Checkpoint, CHECKPOINT_VERSION};
use super::config::RunConfig;
use super::log::{EventLog, StepEvent};
use super::search::{search_step, SearchReport, SearchSettings};
use super::seeds::{ForwardOutcome, SeedRun};
use super::task::{CandidateEvaluation, Task};
use crate::error::{Error, Result};
use crate::graph::{Graph, Node};
use crate::llm::Llm;
use crate::optim::{step_lockstep, Optimizer, StepReport};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Builds the optimizer of one seed over its parameters.
pub type OptimizerFactory =
    dyn Fn(Vec<Node>, Arc<dyn Llm>, u64) -> Box<dyn Optimizer> + Send + Sync;

/// How a run ended.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunSummary {
    pub out_dir: PathBuf,
    pub steps_done: usize,
    /// Per seed: the step it was solved at, if it was.
    pub solved_at: Vec<Option<usize>>,
    pub best_scores: Vec<Option<f64>>,
    /// Seconds each step's LLM batch took.
    pub batch_seconds: Vec<f64>,
    pub total_s: f64,
    /// Per seed, held-out success before and after (tasks with held-out cases only).
    #[serde(default)]
    pub held_out: Vec<super::held_out::HeldOutFigures>,
}

pub struct Trainer {
    pub task: Arc<dyn Task>,
    pub llm: Arc<dyn Llm>,
    pub config: RunConfig,
    pub out_dir: PathBuf,
    pub make_optimizer: Arc<OptimizerFactory>,
    /// Show progress on stderr: a bar on a terminal, one line per step elsewhere (`progress.rs`).
    pub progress: bool,
}

impl Trainer {
    fn build_seeds(&self) -> Vec<SeedRun> {
        (0..self.config.seeds as u64)
            .map(|i| {
                let seed = self.config.first_seed + i;
                let graph = Graph::new();
                let params = self.task.parameters(&graph, seed);
                let mark = graph.mark();
                let optimizer = (self.make_optimizer)(params.clone(), self.llm.clone(), seed);
                SeedRun {
                    seed,
                    graph,
                    mark,
                    params,
                    optimizer,
                    scores: Vec::new(),
                    best_score: None,
                    best_params: Default::default(),
                    solved_at: None,
                    history: Default::default(),
                }
            })
            .collect()
    }

    /// Starts a new run in `out_dir` (created; must not hold a checkpoint already).
    pub fn run(&self) -> Result<RunSummary> {
        let _lock = super::lock::RunLock::acquire(&self.out_dir)?;
        if self.out_dir.join(super::checkpoint::CHECKPOINT_FILE).exists() {
            return Err(Error::invalid(
                "--out",
                format!(
                    "{} already holds a run; use --resume to continue it",
                    self.out_dir.display()
                ),
            ));
        }
        std::fs::create_dir_all(&self.out_dir).map_err(|e| Error::io(&self.out_dir, e))?;
        let text = serde_json::to_string_pretty(&self.config).unwrap_or_default();
        crate::util::write_atomic(&self.out_dir.join("config.json"), text.as_bytes())?;
        let seeds = self.build_seeds();
        let log = EventLog::open(&self.out_dir, Some(0))?;
        self.drive(seeds, 0, log)
    }

    /// Continues the run in `out_dir` from its checkpoint.
    pub fn resume(&self) -> Result<RunSummary> {
        let _lock = super::lock::RunLock::acquire(&self.out_dir)?;
        let cp = super::resume::prepare_resume(&self.out_dir, &self.config)?;
        let mut seeds = self.build_seeds();
        if cp.seeds.len() != seeds.len() {
            return Err(Error::Checkpoint {
                path: self.out_dir.clone(),
                reason: format!("holds {} seeds, the run has {}", cp.seeds.len(), seeds.len()),
            });
        }
        for (run, state) in seeds.iter_mut().zip(&cp.seeds) {
            run.restore(state)?;
        }
        let log = EventLog::open(&self.out_dir, Some(cp.next_step))?;
        self.drive(seeds, cp.next_step, log)
    }

    fn drive(
        &self,
        mut seeds: Vec<SeedRun>,
        first_step: usize,
        mut log: EventLog,
    ) -> Result<RunSummary> {
        let started = std::time::Instant::now();
        let mut progress = super::progress::StepProgress::start(self, first_step);
        let mut batch_seconds = Vec::new();
        for step in first_step..self.config.steps {
            if let Some(batch_s) = self.step_all(step, &mut seeds, &mut log)? {
                batch_seconds.push(batch_s);
            }
            self.checkpoint(&seeds, step + 1)?;
            progress.step(step, &seeds);
            if self.config.stop_on_success && seeds.iter().all(|s| s.solved_at.is_some()) {
                break;
            }
        }
        self.final_evaluation(&mut seeds, &mut log)?;
        progress.finish(&seeds);
        let held_out = super::held_out::evaluate_seeds(self.task.as_ref(), &seeds, &self.out_dir)?;
        let summary = RunSummary {
            out_dir: self.out_dir.clone(),
            steps_done: self.config.steps,
            solved_at: seeds.iter().map(|s| s.solved_at).collect(),
            best_scores: seeds.iter().map(|s| s.best_score).collect(),
            batch_seconds,
            total_s: started.elapsed().as_secs_f64(),
            held_out,
        };
        // The picture of the last trace graph goes with the report.
        if let Some(first) = seeds.first() {
            let dot = crate::graph::dot::to_dot(&first.graph, None, 90);
            crate::util::write_atomic(&self.out_dir.join("graph.dot"), dot.as_bytes())?;
        }
        super::report::write_report(&self.out_dir)?;
        Ok(summary)
    }

    /// One step of every seed still running: forward + backward in parallel, then every
    /// optimizer's requests in one LLM batch, one event per seed. Returns the batch's seconds
    /// when any seed stepped.
    fn step_all(
        &self,
        step: usize,
        seeds: &mut [SeedRun],
        log: &mut EventLog,
    ) -> Result<Option<f64>> {
        let stop = self.config.stop_on_success;
        let outcomes: Vec<Option<Result<ForwardOutcome>>> = seeds
            .par_iter_mut()
            .map(|s| {
                if stop && s.solved_at.is_some() {
                    None
                } else {
                    Some(s.forward(self.task.as_ref(), step, false))
                }
            })
            .collect();
        let mut outcomes: Vec<Option<ForwardOutcome>> =
            outcomes.into_iter().map(|o| o.transpose()).collect::<Result<_>>()?;
        // Seeds solved by this forward pass need no optimizer step.
        let stepping: Vec<usize> = (0..seeds.len())
            .filter(|&i| outcomes[i].as_ref().is_some_and(|o| !o.evaluation.success))
            .collect();
        let batch_start = std::time::Instant::now();
        // A backend that cannot answer stops the run here: this step is neither logged nor
        // checkpointed.
        let watch = super::backend_watch::BackendWatch::new(self.llm.as_ref());
        let (reports, mut searched) =
            self.step_optimizers(&watch, seeds, &outcomes, &stepping, step);
        watch.check()?;
        let batch_s = batch_start.elapsed().as_secs_f64();
        let mut reports = reports.into_iter();
        let mut searched = searched.iter_mut();
        for (i, s) in seeds.iter().enumerate() {
            let Some(outcome) = outcomes[i].take() else { continue };
            let mut event = forward_event(step, s.seed, outcome, "step");
            if stepping.contains(&i) {
                event.search = searched.next().and_then(Option::take);
                event.optimizer = Some(match reports.next() {
                    Some(Ok(r)) => serde_json::to_value(&r).unwrap_or_default(),
                    Some(Err(e)) => serde_json::json!({ "error": e.to_string() }),
                    None => serde_json::Value::Null,
                });
                event.batch_s = Some(batch_s);
                event.batch_size = Some(stepping.len());
            }
            log.append(&event)?;
        }
        Ok((!stepping.is_empty()).then_some(batch_s))
    }

    /// Scores the parameters the last step left, for every seed not stopped as solved.
    fn final_evaluation(&self, seeds: &mut [SeedRun], log: &mut EventLog) -> Result<()> {
        for s in seeds.iter_mut() {
            if self.config.stop_on_success && s.solved_at.is_some() {
                continue;
            }
            let outcome = s.forward(self.task.as_ref(), self.config.steps, true)?;
            log.append(&forward_event(self.config.steps, s.seed, outcome, "final"))?;
        }
        Ok(())
    }

    /// The search settings in force: `None` for the optimizer's own step (greedy), and for a
    /// task that cannot score candidates without acting on the world.
    pub fn active_search(&self) -> Option<&SearchSettings> {
        let s = self.config.search.as_ref()?;
        (s.strategy.scores_candidates()
            && self.task.candidate_evaluation() == CandidateEvaluation::Offline)
            .then_some(s)
    }

    /// Steps the optimizers of the `stepping` seeds: one lockstep LLM batch, or a search step.
    /// Returns each stepping seed's report and, under a search, its search report.
    fn step_optimizers(
        &self,
        llm: &dyn Llm,
        seeds: &mut [SeedRun],
        outcomes: &[Option<ForwardOutcome>],
        stepping: &[usize],
        step: usize,
    ) -> (Vec<Result<StepReport>>, Vec<Option<SearchReport>>) {
        if let Some(settings) = self.active_search() {
            let mut runs: Vec<&mut SeedRun> = Vec::new();
            let mut current: Vec<&ForwardOutcome> = Vec::new();
            for (i, s) in seeds.iter_mut().enumerate() {
                if let (true, Some(o)) = (stepping.contains(&i), outcomes[i].as_ref()) {
                    runs.push(s);
                    current.push(o);
                }
            }
            let results = search_step(self.task.as_ref(), llm, settings, step, &mut runs, &current);
            return results
                .into_iter()
                .map(|r| match r {
                    Ok((report, search)) => (Ok(report), Some(search)),
                    Err(e) => (Err(e), None),
                })
                .unzip();
        }
        let mut opts: Vec<&mut dyn Optimizer> = Vec::new();
        for (i, s) in seeds.iter_mut().enumerate() {
            if stepping.contains(&i) {
                opts.push(s.optimizer.as_mut());
            }
        }
        let reports = step_lockstep(&mut opts, llm);
        let n = reports.len();
        (reports, vec![None; n])
    }

    fn checkpoint(&self, seeds: &[SeedRun], next_step: usize) -> Result<()> {
        Checkpoint {
            version: CHECKPOINT_VERSION,
            config: self.config.clone(),
            next_step,
            seeds: seeds.iter().map(SeedRun::state).collect(),
        }
        .save(&self.out_dir)
    }
}

/// The default run folder: `runs/<task>-<UTC time>`.
pub fn default_out_dir(task: &str) -> PathBuf {
    Path::new("runs").join(format!("{task}-{}", crate::util::utc_stamp()))
}

/// The event of one forward pass; a step's optimizer, batch and search parts are the caller's.
fn forward_event(step: usize, seed: u64, outcome: ForwardOutcome, kind: &str) -> StepEvent {
    StepEvent {
        step,
        seed,
        params: outcome.params,
        score: outcome.evaluation.score,
        feedback: outcome.evaluation.feedback,
        success: outcome.evaluation.success,
        optimizer: None,
        batch_s: None,
        batch_size: None,
        forward_s: outcome.forward_s,
        kind: kind.into(),
        search: None,
    }
}
