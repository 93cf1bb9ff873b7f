//! What `Trainer::resume` checks before it trusts a run folder: the configuration it is asked to
//! continue with must be the folder's own (a resumed run that silently switched problem or
//! optimizer would continue one run's state on another), and the checkpoint must agree with
//! `events.jsonl` (a checkpoint edited to skip steps claims steps the log never saw).
//!
//! The one thing a resume may change is the step count, and only upwards: that is an explicit
//! extension, recorded in `config.json` under `steps_extensions`.

use super::checkpoint::{Checkpoint, CHECKPOINT_FILE};
use super::config::RunConfig;
use super::log::{read_events, EVENTS_FILE};
use crate::error::{Error, Result};
use std::path::Path;

pub const CONFIG_FILE: &str = "config.json";

/// Fields of the folder's configuration that a resume may not change, with the flag that sets
/// each, and their two values where they differ.
pub fn disagreements(folder: &RunConfig, asked: &RunConfig) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    let mut cmp = |flag: &'static str, a: String, b: String| {
        if a != b {
            out.push((flag, a, b));
        }
    };
    cmp("TASK", folder.task.clone(), asked.task.clone());
    cmp("--problem", folder.problem.to_string(), asked.problem.to_string());
    cmp("--optimizer", folder.optimizer.clone(), asked.optimizer.clone());
    cmp("--seeds", folder.seeds.to_string(), asked.seeds.to_string());
    cmp("--first-seed", folder.first_seed.to_string(), asked.first_seed.to_string());
    cmp("--memory", folder.memory.to_string(), asked.memory.to_string());
    cmp("--temperature", folder.temperature.to_string(), asked.temperature.to_string());
    cmp("--max-tokens", folder.max_tokens.to_string(), asked.max_tokens.to_string());
    cmp(
        "--no-stop-on-success",
        (!folder.stop_on_success).to_string(),
        (!asked.stop_on_success).to_string(),
    );
    cmp("--problems", format!("{:?}", folder.problems), format!("{:?}", asked.problems));
    let search = |s: &Option<crate::train::search::SearchSettings>| {
        serde_json::to_string(s).unwrap_or_default()
    };
    cmp("--search", search(&folder.search), search(&asked.search));
    if let (Some(a), Some(b)) = (&folder.model_sha256, &asked.model_sha256) {
        cmp("--model (sha256)", a.clone(), b.clone());
    }
    out
}

/// Checks that `asked` may continue the folder's run; the step count may only grow.
pub fn check_config(dir: &Path, cp: &Checkpoint, asked: &RunConfig) -> Result<()> {
    let path = dir.join(CHECKPOINT_FILE);
    if let Some((flag, was, now)) = disagreements(&cp.config, asked).into_iter().next() {
        return Err(Error::Checkpoint {
            path,
            reason: format!("the run was made with {flag} {was}, not {now}; a resumed run keeps its configuration"),
        });
    }
    if asked.steps < cp.config.steps {
        return Err(Error::Checkpoint {
            path,
            reason: format!("the run has {} steps; a resume can extend it (--steps N with N > {}) but not shorten it to {}", cp.config.steps, cp.config.steps, asked.steps),
        });
    }
    Ok(())
}

/// Checks the checkpoint against the event log: each seed's recorded scores must be exactly the
/// scores of its logged steps before `next_step`, one per step, in order, and a seed must have
/// logged every step up to `next_step` (or up to the step it was solved at).
pub fn check_against_events(dir: &Path, cp: &Checkpoint) -> Result<()> {
    let cp_path = dir.join(CHECKPOINT_FILE);
    let bad = |reason: String| Error::Checkpoint { path: cp_path.clone(), reason };
    if cp.next_step > cp.config.steps {
        return Err(bad(format!(
            "says {} steps are done, but the run has only {}",
            cp.next_step, cp.config.steps
        )));
    }
    if cp.seeds.len() != cp.config.seeds {
        return Err(bad(format!(
            "holds {} seeds, its configuration {}",
            cp.seeds.len(),
            cp.config.seeds
        )));
    }
    let events_path = dir.join(EVENTS_FILE);
    if !events_path.exists() {
        if cp.next_step == 0 {
            return Ok(());
        }
        return Err(bad(format!(
            "says {} steps are done, but {} is missing",
            cp.next_step,
            events_path.display()
        )));
    }
    let events = read_events(&events_path)?;
    for (index, state) in cp.seeds.iter().enumerate() {
        let expected_seed = cp.config.first_seed.checked_add(index as u64);
        if Some(state.seed) != expected_seed {
            return Err(bad(format!(
                "seed {index} is numbered {}, its configuration says {expected_seed:?}",
                state.seed
            )));
        }
        let logged: Vec<(usize, f64)> = events
            .iter()
            .filter(|e| e.seed == state.seed && e.kind == "step" && e.step < cp.next_step)
            .map(|e| (e.step, e.score))
            .collect();
        // A seed steps every step until it is solved (and stops there when the run says so).
        let expected = match state.solved_at {
            Some(at) if cp.config.stop_on_success => (at + 1).min(cp.next_step),
            _ => cp.next_step,
        };
        let steps_in_order =
            logged.len() == expected && logged.iter().enumerate().all(|(i, (step, _))| *step == i);
        let same_scores = logged.len() == state.scores.len()
            && logged
                .iter()
                .zip(&state.scores)
                .all(|((_, a), b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
        if !steps_in_order || !same_scores {
            return Err(bad(format!(
                "does not match {}: seed {} has {} scores in the checkpoint (next step {}) but {} logged steps before it; the checkpoint or the log was edited or mixed with another run",
                events_path.display(),
                state.seed,
                state.scores.len(),
                cp.next_step,
                logged.len()
            )));
        }
        if let Some(at) = state.solved_at {
            if at > cp.next_step {
                return Err(bad(format!(
                    "seed {} is marked solved at step {at}, after the next step {}",
                    state.seed, cp.next_step
                )));
            }
        }
    }
    Ok(())
}

/// Records a step-count extension in `config.json`: `steps` becomes the new count and
/// `steps_extensions` lists every `{from, to, at}` so far. Keys this module does not know are
/// kept as they are.
pub fn record_extension(dir: &Path, from: usize, to: usize) -> Result<()> {
    let path = dir.join(CONFIG_FILE);
    let mut json: serde_json::Value = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
            path: path.clone(),
            reason: format!("not valid JSON: {e}"),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let Some(map) = json.as_object_mut() else {
        return Err(Error::Checkpoint { path, reason: "is not a JSON object".into() });
    };
    map.insert("steps".into(), serde_json::json!(to));
    let entry = serde_json::json!({ "from": from, "to": to, "at": crate::util::utc_stamp() });
    match map.get_mut("steps_extensions").and_then(serde_json::Value::as_array_mut) {
        Some(list) => list.push(entry),
        None => {
            map.insert("steps_extensions".into(), serde_json::json!([entry]));
        }
    }
    let text = serde_json::to_string_pretty(&json).unwrap_or_default();
    crate::util::write_atomic(&path, text.as_bytes())
}

/// Everything `Trainer::resume` checks, in order, plus the extension record. Returns the
/// checkpoint to continue from.
pub fn prepare_resume(dir: &Path, asked: &RunConfig) -> Result<Checkpoint> {
    let cp = Checkpoint::load(dir)?;
    check_config(dir, &cp, asked)?;
    check_against_events(dir, &cp)?;
    if asked.steps > cp.config.steps {
        record_extension(dir, cp.config.steps, asked.steps)?;
    }
    Ok(cp)
}
