//! A scored candidate and what one search step did, as `events.jsonl` records them.

use crate::graph::Value;
use crate::llm::Usage;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// Where a candidate came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The model's reply.
    Model,
    /// Where two lines through the tried points on either side of the best meet (a V fit, the
    /// secant step for an error that falls to zero).
    Secant,
    /// The vertex of the parabola through the best point and its two neighbours.
    Parabola,
    /// The golden-section point of the larger gap beside the best point.
    Bracket,
    /// A step beyond the best point, away from its only neighbour (or to either side).
    Expand,
    /// Uniform within the task's bounds (baseline).
    Random,
    /// Evenly spaced within the bracket around the best (baseline).
    Section,
}

impl Source {
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Model => "model",
            Source::Secant => "secant",
            Source::Parabola => "parabola",
            Source::Bracket => "bracket",
            Source::Expand => "expand",
            Source::Random => "random",
            Source::Section => "section",
        }
    }
}

/// One candidate of a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoredCandidate {
    pub source: Source,
    /// Every parameter's value under this candidate.
    pub values: IndexMap<String, Value>,
    /// Model candidates: the sampling temperature and seed, and the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// Set when the candidate was scored.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::util::score_serde::option"
    )]
    pub score: Option<f64>,
    #[serde(default)]
    pub success: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub feedback: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Why the candidate was not scored (no usable update, a repeat of a tried value) or why
    /// its evaluation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl ScoredCandidate {
    pub fn new(source: Source, values: IndexMap<String, Value>) -> Self {
        ScoredCandidate {
            source,
            values,
            temperature: None,
            sample_seed: None,
            reply: None,
            score: None,
            success: false,
            feedback: String::new(),
            output: None,
            skipped: None,
        }
    }
}

/// What one search step did for one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchReport {
    pub strategy: String,
    /// Parameter sets the model was asked to improve this step.
    pub parents: usize,
    /// Model requests sent (all in the step's one batch).
    pub requests: usize,
    /// Candidates scored by the task's forward pass.
    pub evaluations: usize,
    /// Forward passes spent on the parents' feedback beyond the trainer's own one.
    pub parent_forwards: usize,
    /// Model candidates that repeated a tried value or another candidate of the step.
    pub duplicates: usize,
    /// Distinct values among the model's usable candidates.
    pub distinct_model: usize,
    pub candidates: Vec<ScoredCandidate>,
    /// Index of the candidate now on the parameters; `None`: the values before the step were
    /// still the best and were kept.
    pub chosen: Option<usize>,
    #[serde(default, with = "crate::util::score_serde::option")]
    pub best_score_before: Option<f64>,
    pub notes: Vec<String>,
    pub usage: Usage,
    pub llm_s: f64,
    pub evaluate_s: f64,
}
