//! The dataset loop (prompt tuning on train / validation / test). Each step runs the program on a
//! minibatch of M training items, gives each output its own feedback, and hands all M feedbacks
//! to ONE optimizer step (OpenTrace's batchify, with the feedbacks kept apart per output); then
//! the validation split is scored and the best parameters on validation are kept. Test accuracy
//! is measured before the first step and, with the best parameters, after the last.
//!
//! The run folder gets `config.json`, `dataset-events.jsonl` (one line per step), `checkpoint.json`
//! after every step (`resume` continues a killed run) and `summary.json`. With
//! `record_contents: false` (the user's own file) nothing of the items is written: events hold
//! counts, accuracies and parameter values, not prompts, replies or answers.

use super::dataset::{Grader, Item, Splits};
use crate::error::{Error, Result};
use crate::graph::{Graph, Node, Value};
use crate::llm::Llm;
use crate::optim::Optimizer;
use indexmap::IndexMap;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

pub const DATASET_EVENTS_FILE: &str = "dataset-events.jsonl";
pub const SUMMARY_FILE: &str = "summary.json";
const CHECKPOINT_FILE: &str = "checkpoint.json";
const CHECKPOINT_VERSION: u32 = 1;

/// What one item of a forward pass gave.
#[derive(Clone, Debug)]
pub struct ItemRun {
    /// The node feedback goes to (an exception node when the program failed on this item).
    pub output: Node,
    /// The program's answer; `None` when it failed.
    pub answer: Option<String>,
    /// What went wrong on the way (a cut-off reply, an exception's traceback), for the feedback.
    pub notes: Vec<String>,
    /// Tokens the program's own LLM calls generated for this item.
    pub generated_tokens: usize,
}

/// A program tuned on a dataset: its parameters and a traced forward pass over items.
pub trait DatasetProgram: Send + Sync {
    fn name(&self) -> String;

    /// The optimizer's instruction (#Instruction).
    fn objective(&self) -> String;

    /// Creates the trainable parameters in `graph` with their starting values.
    fn parameters(&self, graph: &Graph) -> Vec<Node>;

    /// Runs the program on every item (concurrently where it can), one result per item in
    /// order, traced so that backward from an output reaches the parameters.
    fn run(&self, graph: &Graph, params: &[Node], items: &[Item]) -> Result<Vec<ItemRun>>;

    /// Search support: edits of its own that the program knows are often right, as (label,
    /// values) from the current values (a prompt program: ask for a final `Answer:` line and
    /// read it). A dataset search runs them on the minibatch beside the model's candidates.
    fn proposals(
        &self,
        _current: &IndexMap<String, Value>,
    ) -> Vec<(String, IndexMap<String, Value>)> {
        Vec::new()
    }
}

/// Correct answers out of items.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accuracy {
    pub correct: usize,
    pub total: usize,
}

impl Accuracy {
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * self.correct as f64 / self.total as f64
        }
    }
}

impl std::fmt::Display for Accuracy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({:.0} %)", self.correct, self.total, self.percent())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetOptions {
    pub steps: usize,
    /// Training items per step (their feedbacks go to one optimizer step).
    pub minibatch: usize,
    /// Orders the training items.
    pub seed: u64,
    /// Items run at once when scoring a split.
    pub eval_batch: usize,
    /// Write prompts, replies and answers into the events (off for a user's private file).
    pub record_contents: bool,
    /// Candidate updates per step, each run on the minibatch, the best kept (1: a plain
    /// optimizer step). See [`super::dataset_search`].
    #[serde(default = "one")]
    pub candidates: usize,
    /// Under a search, also run the program's own edits ([`DatasetProgram::proposals`]).
    #[serde(default = "crate::util::yes")]
    pub program_proposals: bool,
}

fn one() -> usize {
    1
}

impl Default for DatasetOptions {
    fn default() -> Self {
        DatasetOptions {
            steps: 5,
            minibatch: 5,
            seed: 0,
            eval_batch: 8,
            record_contents: true,
            candidates: 1,
            program_proposals: true,
        }
    }
}

/// One line of `dataset-events.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetEvent {
    pub step: usize,
    /// Ids of the minibatch's items (file lines or generated indices).
    pub minibatch: Vec<usize>,
    pub train: Accuracy,
    /// Validation accuracy of the parameters after this step's update.
    pub validation: Accuracy,
    pub best_validation: Accuracy,
    /// Parameters after this step's update.
    pub params: IndexMap<String, Value>,
    /// The optimizer's report (prompt and reply only with `record_contents`).
    pub optimizer: Option<serde_json::Value>,
    /// Per minibatch item: its answer and feedback (only with `record_contents`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feedback: Vec<String>,
    pub forward_s: f64,
    pub optimizer_s: f64,
    pub validation_s: f64,
    pub step_s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Best {
    accuracy: Accuracy,
    /// 0: the starting parameters.
    after_step: usize,
    params: IndexMap<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct DatasetCheckpoint {
    version: u32,
    next_step: usize,
    params: IndexMap<String, Value>,
    optimizer: serde_json::Value,
    best: Best,
    test_before: Accuracy,
    validation_before: Accuracy,
    initial_params: IndexMap<String, Value>,
    step_seconds: Vec<f64>,
}

/// How a dataset run ended (also `summary.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetSummary {
    pub program: String,
    pub out_dir: PathBuf,
    pub steps_done: usize,
    pub test_before: Accuracy,
    pub test_after: Accuracy,
    pub validation_before: Accuracy,
    pub best_validation: Accuracy,
    /// The step whose parameters were kept (0: the starting ones).
    pub best_after_step: usize,
    pub initial_params: IndexMap<String, Value>,
    pub best_params: IndexMap<String, Value>,
    /// Seconds of each step: minibatch forward + optimizer + validation.
    pub step_seconds: Vec<f64>,
    pub total_s: f64,
}

/// Builds the optimizer over the program's parameters.
pub type DatasetOptimizerFactory =
    dyn Fn(Vec<Node>, Arc<dyn Llm>) -> Box<dyn Optimizer> + Send + Sync;

pub struct DatasetTrainer {
    pub program: Arc<dyn DatasetProgram>,
    /// The optimizer's LLM (the program's own calls may share it).
    pub llm: Arc<dyn Llm>,
    pub splits: Splits,
    pub grader: Grader,
    pub options: DatasetOptions,
    pub out_dir: PathBuf,
    pub make_optimizer: Arc<DatasetOptimizerFactory>,
    /// Written to `config.json` as it is (what the run was asked to do; the data file's path and
    /// sha256, not its contents).
    pub config: serde_json::Value,
    /// Print one line per step to stderr.
    pub progress: bool,
}

/// The program, its graph and its optimizer during a run.
struct Live {
    graph: Graph,
    mark: usize,
    params: Vec<Node>,
    optimizer: Box<dyn Optimizer>,
}

fn values(params: &[Node]) -> IndexMap<String, Value> {
    params.iter().map(|p| (p.name(), p.value())).collect()
}

fn set_values(params: &[Node], values: &IndexMap<String, Value>, what: &str) -> Result<()> {
    for p in params {
        let v = values
            .get(&p.name())
            .ok_or_else(|| Error::Graph(format!("{what} lacks parameter `{}`", p.name())))?;
        p.set_value(v.clone());
    }
    Ok(())
}

impl DatasetTrainer {
    fn check(&self) -> Result<()> {
        let o = &self.options;
        if o.steps == 0 || o.minibatch == 0 || o.eval_batch == 0 || o.candidates == 0 {
            return Err(Error::invalid(
                "dataset options",
                "steps, minibatch, eval batch and candidates must be at least 1",
            ));
        }
        Ok(())
    }

    fn start_live(&self) -> Live {
        let graph = Graph::new();
        let params = self.program.parameters(&graph);
        let mark = graph.mark();
        let optimizer = (self.make_optimizer)(params.clone(), self.llm.clone());
        Live { graph, mark, params, optimizer }
    }

    /// Starts a new run in `out_dir` (created; must not hold a run already).
    pub fn run(&self) -> Result<DatasetSummary> {
        self.check()?;
        if self.out_dir.join(CHECKPOINT_FILE).exists() {
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
        let live = self.start_live();
        let initial_params = values(&live.params);
        self.say(format!(
            "{}: scoring the starting parameters on {} test items",
            self.program.name(),
            self.splits.test.len()
        ));
        let test_before = self.score(&live, &self.splits.test)?;
        let validation = self.score(&live, &self.splits.validation)?;
        self.say(format!("test {test_before} · validation {validation} before training"));
        let best = Best { accuracy: validation, after_step: 0, params: initial_params.clone() };
        let cp = DatasetCheckpoint {
            version: CHECKPOINT_VERSION,
            next_step: 0,
            params: initial_params.clone(),
            optimizer: self.optimizer_state(live.optimizer.as_ref()),
            best,
            test_before,
            validation_before: validation,
            initial_params,
            step_seconds: Vec::new(),
        };
        self.save_checkpoint(&cp)?;
        std::fs::write(self.out_dir.join(DATASET_EVENTS_FILE), b"")
            .map_err(|e| Error::io(self.out_dir.join(DATASET_EVENTS_FILE), e))?;
        self.drive(live, cp)
    }

    /// Continues the run in `out_dir` from its checkpoint (the same program, data and options).
    pub fn resume(&self) -> Result<DatasetSummary> {
        self.check()?;
        let path = self.out_dir.join(CHECKPOINT_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Checkpoint {
            path: path.clone(),
            reason: format!("cannot read: {e}"),
        })?;
        let cp: DatasetCheckpoint = serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
            path: path.clone(),
            reason: format!("not a dataset-run checkpoint: {e}"),
        })?;
        if cp.version != CHECKPOINT_VERSION {
            return Err(Error::Checkpoint {
                path,
                reason: format!(
                    "version {} is not supported (expected {CHECKPOINT_VERSION})",
                    cp.version
                ),
            });
        }
        let mut live = self.start_live();
        set_values(&live.params, &cp.params, "the checkpoint")?;
        // A private run's checkpoint holds no optimizer memory (see `optimizer_state`).
        if !cp.optimizer.is_null() {
            live.optimizer.load_state(cp.optimizer.clone())?;
        }
        // Steps at or after the one in flight are dropped from the log, so none is there twice.
        let events = self.out_dir.join(DATASET_EVENTS_FILE);
        if let Ok(old) = std::fs::read_to_string(&events) {
            let kept: Vec<&str> = old
                .lines()
                .filter(|l| {
                    serde_json::from_str::<DatasetEvent>(l).is_ok_and(|e| e.step < cp.next_step)
                })
                .collect();
            let mut text = kept.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            crate::util::write_atomic(&events, text.as_bytes())?;
        }
        self.say(format!(
            "resuming at step {} (best validation so far {})",
            cp.next_step + 1,
            cp.best.accuracy
        ));
        self.drive(live, cp)
    }

    fn drive(&self, mut live: Live, mut cp: DatasetCheckpoint) -> Result<DatasetSummary> {
        let started = std::time::Instant::now();
        let order = self.train_order();
        for step in cp.next_step..self.options.steps {
            let t0 = std::time::Instant::now();
            let minibatch: Vec<Item> = (0..self.options.minibatch.min(order.len()))
                .map(|k| {
                    self.splits.train[order[(step * self.options.minibatch + k) % order.len()]]
                        .clone()
                })
                .collect();
            // Forward on the minibatch; every output gets its own feedback.
            live.graph.rewind(live.mark);
            let runs = self.program.run(&live.graph, &live.params, &minibatch)?;
            let mut train = Accuracy { correct: 0, total: minibatch.len() };
            let mut feedback_log = Vec::new();
            for (item, run) in minibatch.iter().zip(&runs) {
                let (correct, feedback) = self.feedback(item, run);
                train.correct += correct as usize;
                if self.options.record_contents {
                    feedback_log.push(format!("{}: {feedback}", run.output.name()));
                }
                run.output.backward(&feedback)?;
            }
            let forward_s = t0.elapsed().as_secs_f64();
            // One optimizer step for the whole minibatch (nothing to fix when all were right).
            let t1 = std::time::Instant::now();
            let mut kept_note = String::new();
            let report = if train.correct < train.total && self.options.candidates > 1 {
                let searched = self.search_step(
                    live.optimizer.as_mut(),
                    &live.params,
                    &minibatch,
                    train.correct,
                    self.options.candidates,
                    step,
                )?;
                kept_note = match searched.kept {
                    Some(i) => format!(
                        " · kept candidate {i} of {} ({}/{} on the minibatch)",
                        searched.candidates.len(),
                        searched.candidates[i].correct.unwrap_or(0),
                        minibatch.len()
                    ),
                    None if searched.candidates.iter().all(|c| c.correct.is_none()) => format!(
                        " · none of {} candidates was usable; the values stay",
                        searched.candidates.len()
                    ),
                    None => format!(
                        " · no better candidate of {}; the values stay",
                        searched.candidates.len()
                    ),
                };
                Some(serde_json::json!({ "search": searched }))
            } else if train.correct < train.total {
                Some(match live.optimizer.step() {
                    Ok(r) => {
                        let mut v = serde_json::to_value(&r).unwrap_or_default();
                        if !self.options.record_contents {
                            if let Some(o) = v.as_object_mut() {
                                for k in ["messages", "reply", "reasoning", "answer"] {
                                    o.remove(k);
                                }
                            }
                        }
                        v
                    }
                    Err(e) => serde_json::json!({ "error": e.to_string() }),
                })
            } else {
                None
            };
            live.optimizer.zero_feedback();
            let optimizer_s = t1.elapsed().as_secs_f64();
            let t2 = std::time::Instant::now();
            let validation = self.score(&live, &self.splits.validation)?;
            let validation_s = t2.elapsed().as_secs_f64();
            // A later step must do strictly better to replace the kept parameters.
            if validation.correct > cp.best.accuracy.correct {
                cp.best = Best {
                    accuracy: validation,
                    after_step: step + 1,
                    params: values(&live.params),
                };
            }
            let step_s = t0.elapsed().as_secs_f64();
            cp.step_seconds.push(step_s);
            self.say(format!(
                "step {}/{}: train minibatch {train}{kept_note} · validation {validation} · best {} (after step {}) · {step_s:.1} s",
                step + 1,
                self.options.steps,
                cp.best.accuracy,
                cp.best.after_step
            ));
            self.append_event(&DatasetEvent {
                step,
                minibatch: minibatch.iter().map(|i| i.id).collect(),
                train,
                validation,
                best_validation: cp.best.accuracy,
                params: values(&live.params),
                optimizer: report,
                feedback: feedback_log,
                forward_s,
                optimizer_s,
                validation_s,
                step_s,
            })?;
            cp.next_step = step + 1;
            cp.params = values(&live.params);
            cp.optimizer = self.optimizer_state(live.optimizer.as_ref());
            self.save_checkpoint(&cp)?;
        }
        // Test with the parameters kept on validation.
        set_values(&live.params, &cp.best.params, "the best parameters")?;
        self.say(format!(
            "scoring the kept parameters (after step {}) on {} test items",
            cp.best.after_step,
            self.splits.test.len()
        ));
        let test_after = self.score(&live, &self.splits.test)?;
        self.say(format!("test accuracy {} before → {} after", cp.test_before, test_after));
        let summary = DatasetSummary {
            program: self.program.name(),
            out_dir: self.out_dir.clone(),
            steps_done: self.options.steps,
            test_before: cp.test_before,
            test_after,
            validation_before: cp.validation_before,
            best_validation: cp.best.accuracy,
            best_after_step: cp.best.after_step,
            initial_params: cp.initial_params.clone(),
            best_params: cp.best.params.clone(),
            step_seconds: cp.step_seconds.clone(),
            total_s: started.elapsed().as_secs_f64(),
        };
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
        crate::util::write_atomic(&self.out_dir.join(SUMMARY_FILE), text.as_bytes())?;
        Ok(summary)
    }

    /// Training items in the order the steps take them (shuffled by the seed, then cycled).
    fn train_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.splits.train.len()).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(self.options.seed));
        order
    }

    /// Whether the item was answered right, and the feedback text for its output.
    pub(super) fn feedback(&self, item: &Item, run: &ItemRun) -> (bool, String) {
        let (correct, mut text) = match &run.answer {
            Some(answer) if self.grader.is_correct(item, answer) => (true, "Correct.".to_string()),
            // The whole answer is in the prompt's #Outputs; the feedback quotes its ends.
            Some(answer) => (
                false,
                format!(
                    "Wrong answer: the expected answer is {:?}, the program returned {:?}.",
                    item.expected,
                    crate::util::abbreviate(answer, 60, 90)
                ),
            ),
            None => {
                (false, format!("The program failed; the expected answer is {:?}.", item.expected))
            }
        };
        for note in &run.notes {
            text.push(' ');
            text.push_str(note);
        }
        (correct, text)
    }

    /// Accuracy of the current parameters on `items`, `eval_batch` at a time, without feedback.
    fn score(&self, live: &Live, items: &[Item]) -> Result<Accuracy> {
        let mut acc = Accuracy { correct: 0, total: items.len() };
        for chunk in items.chunks(self.options.eval_batch) {
            live.graph.rewind(live.mark);
            let runs = self.program.run(&live.graph, &live.params, chunk)?;
            acc.correct += chunk
                .iter()
                .zip(&runs)
                .filter(|(item, run)| {
                    run.answer.as_deref().is_some_and(|a| self.grader.is_correct(item, a))
                })
                .count();
        }
        live.graph.rewind(live.mark);
        Ok(acc)
    }

    /// The optimizer's state for the checkpoint. Its memory quotes the feedback, and the
    /// feedback quotes the expected answers: a private run (`record_contents: false`) keeps none
    /// of it on disk, so a resumed private run continues with the kept parameters and a fresh
    /// optimizer memory.
    fn optimizer_state(&self, optimizer: &dyn Optimizer) -> serde_json::Value {
        if self.options.record_contents {
            optimizer.state()
        } else {
            serde_json::Value::Null
        }
    }

    fn save_checkpoint(&self, cp: &DatasetCheckpoint) -> Result<()> {
        let path = self.out_dir.join(CHECKPOINT_FILE);
        let text = serde_json::to_string_pretty(cp)
            .map_err(|e| Error::Checkpoint { path: path.clone(), reason: e.to_string() })?;
        crate::util::write_atomic(&path, text.as_bytes())
    }

    fn append_event(&self, event: &DatasetEvent) -> Result<()> {
        let path = self.out_dir.join(DATASET_EVENTS_FILE);
        let mut line = serde_json::to_string(event)
            .map_err(|e| Error::Checkpoint { path: path.clone(), reason: e.to_string() })?;
        line.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        f.write_all(line.as_bytes()).map_err(|e| Error::io(&path, e))
    }

    fn say(&self, line: String) {
        if self.progress {
            eprintln!("{line}");
        }
    }
}
