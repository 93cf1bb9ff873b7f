//! `events.jsonl`: one JSON line per seed per step (parameters, score, feedback, prompt, reply,
//! token counts, timings, rejected suggestions), appended and flushed as the run goes.

use crate::error::{Error, Result};
use crate::graph::Value;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const EVENTS_FILE: &str = "events.jsonl";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepEvent {
    pub step: usize,
    pub seed: u64,
    /// Parameter values the forward pass ran with.
    pub params: IndexMap<String, Value>,
    /// −inf when the program failed (written as "-inf": JSON has no infinities).
    #[serde(with = "crate::util::score_serde")]
    pub score: f64,
    pub feedback: String,
    pub success: bool,
    /// What the optimizer did (absent when the seed was already solved or this is the final
    /// evaluation).
    pub optimizer: Option<serde_json::Value>,
    /// Seconds the whole LLM batch of this step took, and how many requests it held.
    pub batch_s: Option<f64>,
    pub batch_size: Option<usize>,
    /// Seconds of this seed's forward + backward.
    pub forward_s: f64,
    /// `step`, or `final` for the evaluation after the last step.
    pub kind: String,
    /// What a search did this step: every candidate with its source, score and feedback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<crate::train::search::SearchReport>,
}

pub struct EventLog {
    path: PathBuf,
    file: std::fs::File,
}

impl EventLog {
    /// Opens the log for appending. On resume, events of steps at or after `keep_before` (a step
    /// that was in flight when the run died) are dropped first, so no step is logged twice.
    pub fn open(dir: &Path, keep_before: Option<usize>) -> Result<EventLog> {
        let path = dir.join(EVENTS_FILE);
        if let Some(limit) = keep_before {
            if path.exists() {
                let kept: Vec<String> = read_events(&path)?
                    .into_iter()
                    .filter(|e| e.step < limit && e.kind == "step")
                    .map(|e| serde_json::to_string(&e).unwrap_or_default())
                    .collect();
                let mut text = kept.join("\n");
                if !text.is_empty() {
                    text.push('\n');
                }
                crate::util::write_atomic(&path, text.as_bytes())?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(EventLog { path, file })
    }

    pub fn append(&mut self, event: &StepEvent) -> Result<()> {
        let mut line = serde_json::to_string(event)
            .map_err(|e| Error::Checkpoint { path: self.path.clone(), reason: e.to_string() })?;
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(|e| Error::io(&self.path, e))?;
        self.file.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// All events of a run folder's log; a malformed line is an error naming its line number.
pub fn read_events(path: &Path) -> Result<Vec<StepEvent>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::Checkpoint {
                path: path.into(),
                reason: format!("line {}: {e}", i + 1),
            })
        })
        .collect()
}
