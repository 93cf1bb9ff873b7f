//! The `Task` trait: what the trainer needs from a problem — its parameters, a traced forward
//! pass, and feedback (a score and a text) on the outputs.

use crate::error::Result;
use crate::graph::{Graph, Node, Value};
use indexmap::IndexMap;

/// How one forward pass did.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// Higher is better; −inf when the program failed.
    #[serde(with = "crate::util::score_serde")]
    pub score: f64,
    /// The text given to `backward` (the paper's feedback).
    pub feedback: String,
    /// Whether the task counts as solved.
    pub success: bool,
}

/// Whether a task can score a candidate update without acting on the world, which decides what
/// a search may do: evaluate many candidates per step, or only the one it applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CandidateEvaluation {
    /// The forward pass is a computation (a simulator, a program, a dataset): running it on a
    /// candidate has no effect outside the process, so a search can score K candidates per step.
    Offline,
    /// Running the forward pass acts on the world (a real robot, a paid API, a user): only the
    /// applied update may run. A search falls back to one candidate per step.
    ActsOnWorld,
}

/// Success on cases the optimizer never sees (a controller's held-out start states).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeldOut {
    pub successes: usize,
    pub trials: usize,
    /// What went wrong beyond plain misses (the program failed on some cases), if anything.
    pub note: Option<String>,
}

impl HeldOut {
    pub fn rate(&self) -> f64 {
        if self.trials == 0 {
            0.0
        } else {
            self.successes as f64 / self.trials as f64
        }
    }
}

impl std::fmt::Display for HeldOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.successes, self.trials)
    }
}

/// A problem the trainer optimizes. One `Task` value serves every seed: it must not hold
/// per-run state (each seed's state lives in its own graph and parameters).
pub trait Task: Send + Sync {
    fn name(&self) -> String;

    /// The optimizer's instruction (#Instruction): what the parameters are for.
    fn objective(&self) -> String;

    /// Creates the trainable parameters in `graph` for run `seed`, with their starting values.
    fn parameters(&self, graph: &Graph, seed: u64) -> Vec<Node>;

    /// Runs the program on the current parameter values. Returns the node feedback is given at
    /// (an exception node when the program failed) — traced, so backward reaches the parameters.
    fn forward(&self, graph: &Graph, params: &[Node], seed: u64, step: usize) -> Result<Node>;

    /// Scores the output node.
    fn evaluate(&self, output: &Node, seed: u64, step: usize) -> Evaluation;

    /// Whether candidates can be scored without acting on the world (default: they can).
    fn candidate_evaluation(&self) -> CandidateEvaluation {
        CandidateEvaluation::Offline
    }

    /// The range a numeric parameter lives in, when the task knows one: random search and
    /// bracketing searches stay inside it, and a proposal outside it is clamped.
    fn bounds(&self, _name: &str) -> Option<(f64, f64)> {
        None
    }

    /// Success of these parameter values on the task's held-out cases, for before/after
    /// figures; `None` (the default) when the task has none. Runs on its own graph, untraced.
    fn held_out(&self, _params: &IndexMap<String, Value>) -> Option<HeldOut> {
        None
    }

    /// Parameter values by name (for logs and checkpoints).
    fn snapshot(&self, params: &[Node]) -> IndexMap<String, Value> {
        params.iter().map(|p| (p.name(), p.value())).collect()
    }
}
