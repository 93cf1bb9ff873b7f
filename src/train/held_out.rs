//! Held-out figures of a run: for each seed, the task's success on its held-out cases with the
//! starting parameters, the final ones and the best-scoring ones (by training score), written to
//! `held_out.json` in the run folder. Only tasks that have held-out cases (`Task::held_out`)
//! produce them; the others leave no file.

use super::seeds::SeedRun;
use super::task::{HeldOut, Task};
use crate::error::Result;
use crate::graph::Graph;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const HELD_OUT_FILE: &str = "held_out.json";

/// One seed's held-out success before and after the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeldOutFigures {
    pub seed: u64,
    /// With the parameters the task starts from.
    pub before: HeldOut,
    /// With the parameters the last step left.
    pub after: HeldOut,
    /// With the parameters of the best training score.
    pub best: HeldOut,
}

/// Evaluates every seed (in parallel) and writes `held_out.json` into `out_dir`; an empty list
/// (and no file) when the task has no held-out cases.
pub fn evaluate_seeds(
    task: &dyn Task,
    seeds: &[SeedRun],
    out_dir: &Path,
) -> Result<Vec<HeldOutFigures>> {
    // The parameter sets first (a seed's optimizer is not `Sync`), then the rollouts in parallel.
    let sets: Vec<_> = seeds.iter().map(|s| (s.seed, s.values(), s.best_params.clone())).collect();
    let figures: Vec<HeldOutFigures> = sets
        .into_par_iter()
        .filter_map(|(seed, last, best)| {
            let initial = task.snapshot(&task.parameters(&Graph::new(), seed));
            let before = task.held_out(&initial)?;
            let after = task.held_out(&last)?;
            let best = if best.is_empty() { after.clone() } else { task.held_out(&best)? };
            Some(HeldOutFigures { seed, before, after, best })
        })
        .collect();
    if !figures.is_empty() {
        let text = serde_json::to_string_pretty(&figures).unwrap_or_default();
        crate::util::write_atomic(&out_dir.join(HELD_OUT_FILE), text.as_bytes())?;
    }
    Ok(figures)
}
