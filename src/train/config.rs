//! `config.json`: what a run was asked to do and with what, so it can be replayed.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub task: String,
    pub problem: usize,
    pub optimizer: String,
    pub seeds: usize,
    /// Seed numbers are `first_seed .. first_seed + seeds`.
    pub first_seed: u64,
    pub steps: usize,
    pub memory: usize,
    /// The model's description (backend, name, sha256 where known).
    pub model: String,
    pub model_sha256: Option<String>,
    pub temperature: f32,
    pub max_tokens: usize,
    pub threads: Option<usize>,
    pub device: String,
    /// Requests per LLM batch (= seeds stepping together).
    pub batch_size: usize,
    /// Stop a seed once the task counts it as solved.
    pub stop_on_success: bool,
    pub opto_version: String,
    /// Several problems side by side (run `i` is seed `i % seeds` of problem `i / seeds`);
    /// empty: the one `problem`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<usize>,
    /// The search over candidates (absent: the optimizer's own one-candidate step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<crate::train::search::SearchSettings>,
}
