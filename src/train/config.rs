//! `config.json`: what a run was asked to do and with what, so it can be replayed.

use serde::{Deserialize, Serialize};

/// Steps of a run unless told otherwise (the CLI's `--steps` default too).
pub const DEFAULT_STEPS: usize = 10;
/// Past (variables, feedback) pairs the optimizer is shown (the CLI's `--memory` default too).
pub const DEFAULT_MEMORY: usize = 5;
/// Token cap of an optimizer reply (the CLI's `--max-tokens` default too).
pub const DEFAULT_MAX_TOKENS: usize = 400;

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
    /// OptoPrime's line guard (`--no-line-guard` turns it off; on in folders written before).
    #[serde(default = "crate::util::yes")]
    pub line_guard: bool,
    /// OptoPrime's bracket hint (`--no-bracket-hint` turns it off; on in folders written before).
    #[serde(default = "crate::util::yes")]
    pub bracket_hint: bool,
}

impl Default for RunConfig {
    /// One seed of problem 0 with OptoPrime and the CLI's defaults: a program sets `task` and
    /// `model` (and what it changes) and takes the rest, `RunConfig { task, ..Default::default() }`.
    fn default() -> Self {
        RunConfig {
            task: String::new(),
            problem: 0,
            optimizer: "optoprime".into(),
            seeds: 1,
            first_seed: 0,
            steps: DEFAULT_STEPS,
            memory: DEFAULT_MEMORY,
            model: String::new(),
            model_sha256: None,
            temperature: 0.0,
            max_tokens: DEFAULT_MAX_TOKENS,
            threads: None,
            device: "cpu".into(),
            batch_size: 1,
            stop_on_success: true,
            opto_version: env!("CARGO_PKG_VERSION").into(),
            problems: Vec::new(),
            search: None,
            line_guard: true,
            bracket_hint: true,
        }
    }
}
