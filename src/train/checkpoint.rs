//! `checkpoint.json`: everything needed to continue a run after a crash — the config, the next
//! step, and per seed the parameter values, the optimizer's state and the best-so-far. Written
//! atomically after every step, so a killed run loses at most the step in flight.

use crate::error::{Error, Result};
use crate::graph::Value;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::path::Path;

use super::config::RunConfig;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedState {
    pub seed: u64,
    pub params: IndexMap<String, Value>,
    pub optimizer: serde_json::Value,
    /// Score of every evaluated step so far.
    #[serde(with = "crate::util::score_serde::vec")]
    pub scores: Vec<f64>,
    #[serde(with = "crate::util::score_serde::option")]
    pub best_score: Option<f64>,
    pub best_params: IndexMap<String, Value>,
    /// Solved (the task's success criterion) at this step, if it was.
    pub solved_at: Option<usize>,
    /// What a search scored (absent without one, and in checkpoints from before searches).
    #[serde(default, skip_serializing_if = "crate::train::search::History::is_empty")]
    pub history: crate::train::search::History,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version, bumped when a field changes meaning.
    pub version: u32,
    pub config: RunConfig,
    /// The first step not yet done.
    pub next_step: usize,
    pub seeds: Vec<SeedState>,
}

pub const CHECKPOINT_VERSION: u32 = 1;
pub const CHECKPOINT_FILE: &str = "checkpoint.json";

impl Checkpoint {
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(CHECKPOINT_FILE);
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Checkpoint { path: path.clone(), reason: e.to_string() })?;
        crate::util::write_atomic(&path, text.as_bytes())
    }

    pub fn load(dir: &Path) -> Result<Checkpoint> {
        let path = dir.join(CHECKPOINT_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Checkpoint {
            path: path.clone(),
            reason: format!("cannot read: {e}"),
        })?;
        let cp: Checkpoint = serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
            path: path.clone(),
            reason: format!("not a valid checkpoint: {e}"),
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
        Ok(cp)
    }
}
