//! One run of a task per seed, each owning its graph, parameters and optimizer, so seeds trace
//! in parallel without sharing anything but the LLM.

use super::checkpoint::SeedState;
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
}

/// What one forward pass of one seed gave.
pub struct ForwardOutcome {
    pub params: IndexMap<String, Value>,
    pub evaluation: Evaluation,
    pub forward_s: f64,
}

impl SeedRun {
    pub fn values(&self) -> IndexMap<String, Value> {
        self.params.iter().map(|p| (p.name(), p.value())).collect()
    }

    /// Rewinds the graph, runs the task, scores it, tracks the best, and (unless `no_backward`)
    /// gives the feedback to the output so the optimizer can step.
    pub fn forward(&mut self, task: &dyn Task, step: usize, no_backward: bool) -> Result<ForwardOutcome> {
        let start = std::time::Instant::now();
        self.graph.rewind(self.mark);
        let params = self.values();
        let (output, evaluation) = match task.forward(&self.graph, &self.params, self.seed, step) {
            Ok(out) => {
                let e = task.evaluate(&out, self.seed, step);
                (out, e)
            }
            // The program failed: the exception node is the output and its error the feedback.
            Err(Error::Execution { node: Some(node), message, .. }) => {
                let feedback = node.error_text().unwrap_or(message);
                (node, Evaluation { score: f64::NEG_INFINITY, feedback, success: false })
            }
            Err(e) => return Err(e),
        };
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
        Ok(ForwardOutcome { params, evaluation, forward_s: start.elapsed().as_secs_f64() })
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
        }
    }

    /// Restores a checkpointed seed into this freshly built one (same task, same seed).
    pub fn restore(&mut self, state: &SeedState) -> Result<()> {
        if state.seed != self.seed {
            return Err(Error::Graph(format!("checkpoint holds seed {} where seed {} was expected", state.seed, self.seed)));
        }
        for p in &self.params {
            let name = p.name();
            let value = state.params.get(&name).ok_or_else(|| Error::Graph(format!("checkpoint of seed {} lacks parameter `{name}`", self.seed)))?;
            p.set_value(value.clone());
        }
        self.optimizer.load_state(state.optimizer.clone())?;
        self.scores = state.scores.clone();
        self.best_score = state.best_score;
        self.best_params = state.best_params.clone();
        self.solved_at = state.solved_at;
        Ok(())
    }
}
