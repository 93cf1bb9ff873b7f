//! One run of a task per seed, each owning its graph, parameters and optimizer, so seeds trace
//! in parallel without sharing anything but the LLM.

use super::checkpoint::SeedState;
use super::search::History;
use super::task::{Evaluation, Task};
use crate::error::{Error, Result};
use crate::graph::{Graph, Node, Value};
use crate::optim::Optimizer;
use indexmap::IndexMap;

pub struct SeedRun {
    pub seed: u64,
    pub graph: Graph,
    /// Graph mark after the parameters: each step rewinds here so node names repeat.
    pub mark: usize,
    pub params: Vec<Node>,
    pub optimizer: Box<dyn Optimizer>,
    pub scores: Vec<f64>,
    pub best_score: Option<f64>,
    pub best_params: IndexMap<String, Value>,
    pub solved_at: Option<usize>,
    /// Every parameter set a search scored for this run (empty without a search).
    pub history: History,
}

/// What one forward pass of one seed gave.
pub struct ForwardOutcome {
    pub params: IndexMap<String, Value>,
    pub evaluation: Evaluation,
    /// The output node's value as the prompt shows it.
    pub output: Option<String>,
    pub forward_s: f64,
}

/// Runs the task once on `graph` (whose parameters already hold the values to run) and scores
/// it; a program that fails yields its exception node and −inf, its error the feedback.
pub fn run_and_score(
    task: &dyn Task,
    graph: &Graph,
    params: &[Node],
    seed: u64,
    step: usize,
) -> Result<(Node, Evaluation)> {
    match task.forward(graph, params, seed, step) {
        Ok(out) => {
            let e = task.evaluate(&out, seed, step);
            Ok((out, e))
        }
        Err(Error::Execution { node: Some(node), message, .. }) => {
            let feedback = node.error_text().unwrap_or(message);
            Ok((node, Evaluation { score: f64::NEG_INFINITY, feedback, success: false }))
        }
        Err(e) => Err(e),
    }
}

/// Scores `values` on a fresh graph of their own (a candidate: nothing of the run is touched).
pub fn score_values(
    task: &dyn Task,
    seed: u64,
    step: usize,
    values: &IndexMap<String, Value>,
) -> Result<(Evaluation, Option<String>)> {
    let graph = Graph::new();
    let params = task.parameters(&graph, seed);
    set_values(&params, values)?;
    let (out, evaluation) = run_and_score(task, &graph, &params, seed, step)?;
    Ok((evaluation, Some(out.value().py_str())))
}

/// Puts `values` on the parameters of the same names; a name the parameters lack is an error.
pub fn set_values(params: &[Node], values: &IndexMap<String, Value>) -> Result<()> {
    for (name, v) in values {
        let p = params
            .iter()
            .find(|p| &p.name() == name)
            .ok_or_else(|| Error::Graph(format!("no parameter named `{name}` to set")))?;
        p.set_value(v.clone());
    }
    Ok(())
}

impl SeedRun {
    pub fn values(&self) -> IndexMap<String, Value> {
        self.params.iter().map(|p| (p.name(), p.value())).collect()
    }

    /// Rewinds the graph, runs the task, scores it, tracks the best, and (unless `no_backward`)
    /// gives the feedback to the output so the optimizer can step.
    pub fn forward(
        &mut self,
        task: &dyn Task,
        step: usize,
        no_backward: bool,
    ) -> Result<ForwardOutcome> {
        let start = std::time::Instant::now();
        self.graph.rewind(self.mark);
        let params = self.values();
        // A failed program's exception node is the output and its error the feedback.
        let (output, evaluation) = run_and_score(task, &self.graph, &self.params, self.seed, step)?;
        self.scores.push(evaluation.score);
        if self.best_score.is_none_or(|b| evaluation.score > b) {
            self.best_score = Some(evaluation.score);
            self.best_params = params.clone();
        }
        if evaluation.success && self.solved_at.is_none() {
            self.solved_at = Some(step);
        }
        // `rewind` above already dropped last step's feedback, so no zero_feedback is needed.
        if !no_backward && !evaluation.success {
            output.backward(&evaluation.feedback)?;
        }
        let output_text = Some(output.value().py_str());
        Ok(ForwardOutcome {
            params,
            evaluation,
            output: output_text,
            forward_s: start.elapsed().as_secs_f64(),
        })
    }

    pub fn state(&self) -> SeedState {
        SeedState {
            seed: self.seed,
            params: self.values(),
            optimizer: self.optimizer.state(),
            scores: self.scores.clone(),
            best_score: self.best_score,
            best_params: self.best_params.clone(),
            solved_at: self.solved_at,
            history: self.history.clone(),
        }
    }

    /// Restores a checkpointed seed into this freshly built one (same task, same seed).
    pub fn restore(&mut self, state: &SeedState) -> Result<()> {
        if state.seed != self.seed {
            return Err(Error::Graph(format!(
                "checkpoint holds seed {} where seed {} was expected",
                state.seed, self.seed
            )));
        }
        for p in &self.params {
            let name = p.name();
            let value = state.params.get(&name).ok_or_else(|| {
                Error::Graph(format!("checkpoint of seed {} lacks parameter `{name}`", self.seed))
            })?;
            p.set_value(value.clone());
        }
        self.optimizer.load_state(state.optimizer.clone())?;
        self.scores = state.scores.clone();
        self.best_score = state.best_score;
        self.best_params = state.best_params.clone();
        self.solved_at = state.solved_at;
        self.history = state.history.clone();
        Ok(())
    }
}
