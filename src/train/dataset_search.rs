//! Search in the dataset loop: one step asks the optimizer for K candidate updates in ONE batch
//! (the copies share the prompt head in the prefix cache), runs every distinct candidate on the
//! step's minibatch side by side (each in a scratch graph, so their model calls share decode
//! batches), and keeps the candidate that answers the most minibatch items.
//!
//! The first candidate is the plain greedy reply; the others sample at higher temperatures, and
//! with two or more parameters each is also asked to change only one of them, so a better
//! extraction function is not lost because the same reply broke the template. A candidate that
//! only changes the extraction code costs no model calls at all: the program's greedy calls are
//! remembered by prompt ([`crate::call::LlmCall`]).
//!
//! Beside the model's candidates, the program may propose edits of its own
//! ([`super::DatasetProgram::proposals`]; the prompt program: ask for a final `Answer:` line and
//! read it), as the numeric search adds bracketing steps: each candidate records its `source`,
//! so a report can say which kind of candidate was kept.
//!
//! Which candidate is kept: the best on the minibatch if it beats the current values; among
//! equals, the first (the greedy one), so a step still moves when nothing is better; the current
//! values when every candidate is worse. Validation still decides what the run keeps in the end.

use super::dataset::Item;
use super::dataset_trainer::{DatasetTrainer, ItemRun};
use crate::error::Result;
use crate::graph::{Graph, Value};
use crate::llm::{Reply, Request};
use crate::optim::optoprime::prompt::MemoryEntry;
use crate::optim::Optimizer;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// Distinct rejected suggestions shown on the next prompt, at most.
const MAX_REJECTIONS_SHOWN: usize = 3;

/// Spread of the sampled candidates' temperatures (the first one is greedy).
const SPREAD: (f32, f32) = (0.6, 1.1);

/// One candidate of a dataset search step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetCandidate {
    /// Who proposed it: `model`, or the program's own edit (`program: <label>`).
    #[serde(default = "model_source")]
    pub source: String,
    /// The model's sampling temperature (0 for the program's edits).
    pub temperature: f32,
    /// What this candidate was asked besides the step's prompt (none for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nudge: Option<String>,
    /// The parameters the candidate proposes (the current values where it changes nothing).
    pub values: IndexMap<String, Value>,
    /// Correct minibatch answers with these values; `None` when it was not run.
    pub correct: Option<usize>,
    /// Why it was not run (an unreadable reply, no change, the same as an earlier candidate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

fn model_source() -> String {
    "model".into()
}

/// What a dataset search step did (the step event's `search`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetSearchReport {
    /// Correct minibatch answers with the values the step started from.
    pub current_correct: usize,
    pub candidates: Vec<DatasetCandidate>,
    /// The candidate whose values were applied; `None`: the current values stay.
    pub kept: Option<usize>,
    /// Model calls the candidates' minibatch runs made (remembered replies not counted).
    pub program_calls: usize,
}

impl DatasetSearchReport {
    /// Adds a candidate, marked skipped when it repeats the current values or an earlier one.
    fn push_distinct(&mut self, mut cand: DatasetCandidate, current: &IndexMap<String, Value>) {
        if cand.skipped.is_none() {
            if cand.values == *current {
                cand.skipped = Some("the current values".into());
            } else if let Some(j) = self.candidates.iter().position(|c| c.values == cand.values) {
                cand.skipped = Some(format!("the same values as candidate {j}"));
            }
        }
        self.candidates.push(cand);
    }
}

impl DatasetTrainer {
    /// One search step over `k` candidates. The optimizer's feedback for the current values
    /// (the minibatch's) must be in place; on return the parameters hold the kept values and the
    /// optimizer has counted the step.
    pub(super) fn search_step(
        &self,
        optimizer: &mut dyn Optimizer,
        params: &[crate::graph::Node],
        minibatch: &[Item],
        current_correct: usize,
        k: usize,
        step: usize,
    ) -> Result<DatasetSearchReport> {
        let current: IndexMap<String, Value> =
            params.iter().map(|p| (p.name(), p.value())).collect();
        let mut report = DatasetSearchReport {
            current_correct,
            candidates: Vec::new(),
            kept: None,
            program_calls: 0,
        };
        let Some(base) = optimizer.prepare()?.into_iter().next() else {
            optimizer.conclude_search_step(Vec::new());
            return Ok(report);
        };
        let names: Vec<String> = current.keys().cloned().collect();
        let batch: Vec<Request> = (0..k)
            .map(|i| {
                let mut req = base.clone();
                req.params.temperature = temperature(i, k);
                req.params.seed = crate::util::mix_seed(self.options.seed, (step * k + i) as u64);
                if let Some(n) = nudge(i, &names) {
                    if let Some(last) = req.messages.last_mut() {
                        last.content.push('\n');
                        last.content.push_str(&n);
                    }
                }
                req
            })
            .collect();
        let replies = self.llm.generate(&batch);
        let mut rejected: Vec<String> = Vec::new();
        for (i, reply) in replies.into_iter().enumerate() {
            let mut cand = DatasetCandidate {
                source: model_source(),
                temperature: batch[i].params.temperature,
                nudge: nudge(i, &names),
                values: current.clone(),
                correct: None,
                skipped: None,
            };
            match reply.map(|r: Reply| optimizer.propose(&r)) {
                Ok(Some(p)) => {
                    for r in p.rejected {
                        if !rejected.contains(&r) && rejected.len() < MAX_REJECTIONS_SHOWN {
                            rejected.push(r);
                        }
                    }
                    cand.values = p.values;
                    cand.skipped = p.error;
                }
                Ok(None) => {
                    cand.skipped = Some(format!(
                        "the {} optimizer cannot propose from one reply",
                        optimizer.name()
                    ))
                }
                Err(e) => cand.skipped = Some(format!("the model call failed: {e}")),
            }
            report.push_distinct(cand, &current);
        }
        // The program's own edits, after the model's (so a tie keeps the model's).
        let own = if self.options.program_proposals {
            self.program.proposals(&current)
        } else {
            Vec::new()
        };
        for (label, values) in own {
            let cand = DatasetCandidate {
                source: format!("program: {label}"),
                temperature: 0.0,
                nudge: None,
                values,
                correct: None,
                skipped: None,
            };
            report.push_distinct(cand, &current);
        }
        // Every distinct candidate on the minibatch, side by side.
        let to_run: Vec<usize> = (0..report.candidates.len())
            .filter(|&i| report.candidates[i].skipped.is_none())
            .collect();
        let results: Vec<Result<Vec<ItemRun>>> = std::thread::scope(|s| {
            let handles: Vec<_> = to_run
                .iter()
                .map(|&i| {
                    let values = &report.candidates[i].values;
                    s.spawn(move || self.run_with(values, minibatch))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(crate::error::Error::Graph("a candidate's run panicked".into()))
                    })
                })
                .collect()
        });
        let mut tried = Vec::new();
        for (&i, result) in to_run.iter().zip(results) {
            let runs = result?;
            let graded: Vec<(bool, String)> =
                minibatch.iter().zip(&runs).map(|(item, run)| self.feedback(item, run)).collect();
            let correct = graded.iter().filter(|(ok, _)| *ok).count();
            report.program_calls += runs.iter().filter(|r| r.generated_tokens > 0).count();
            let cand = &mut report.candidates[i];
            cand.correct = Some(correct);
            let first_wrong = graded.iter().find(|(ok, _)| !ok).map(|(_, f)| f.as_str());
            tried.push(MemoryEntry {
                variables: cand.values.iter().map(|(k, v)| (k.clone(), v.to_json())).collect(),
                output: None,
                feedback: match first_wrong {
                    Some(f) => format!(
                        "{correct} of {} minibatch answers correct; for example: {}",
                        minibatch.len(),
                        crate::util::preview(f, 300)
                    ),
                    None => format!("all {} minibatch answers correct", minibatch.len()),
                },
                score: Some(correct as f64),
            });
        }
        let best = report.candidates.iter().filter_map(|c| c.correct).max();
        report.kept = match best {
            Some(b) if b >= current_correct => {
                report.candidates.iter().position(|c| c.correct == Some(b))
            }
            _ => None,
        };
        if let Some(i) = report.kept {
            let values = report.candidates[i].values.clone();
            for p in params {
                if let Some(v) = values.get(&p.name()) {
                    p.set_value(v.clone());
                }
            }
        }
        optimizer.conclude_search_step(tried);
        optimizer.remember_rejections(rejected);
        Ok(report)
    }

    /// The program on `items` with `values`, in a scratch graph of its own.
    fn run_with(&self, values: &IndexMap<String, Value>, items: &[Item]) -> Result<Vec<ItemRun>> {
        let graph = Graph::new();
        let params = self.program.parameters(&graph);
        for p in &params {
            if let Some(v) = values.get(&p.name()) {
                p.set_value(v.clone());
            }
        }
        self.program.run(&graph, &params, items)
    }
}

/// Candidate `i` of `k`: the first greedy, the rest spread over [`SPREAD`].
fn temperature(i: usize, k: usize) -> f32 {
    if i == 0 {
        return 0.0;
    }
    let (lo, hi) = SPREAD;
    if k <= 2 {
        return hi;
    }
    lo + (hi - lo) * (i - 1) as f32 / (k - 2) as f32
}

/// What candidate `i` is asked besides the prompt: with several parameters, candidates 1, 2, …
/// each change one parameter only (in turn), so the levers are tried apart; then free again.
fn nudge(i: usize, names: &[String]) -> Option<String> {
    if i == 0 || names.len() < 2 {
        return None;
    }
    let j = i - 1;
    if j < 2 * names.len() {
        let name = &names[j % names.len()];
        Some(format!(
            "This time change only `{name}`; give the other variables their current values."
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_candidate_is_greedy_and_free_and_the_next_change_one_parameter_each() {
        assert_eq!(temperature(0, 4), 0.0);
        assert!(temperature(1, 4) > 0.0 && temperature(3, 4) <= SPREAD.1 + 1e-6);
        let names = vec!["prompt".to_string(), "__code0".to_string()];
        assert_eq!(nudge(0, &names), None);
        assert!(nudge(1, &names).unwrap().contains("`prompt`"));
        assert!(nudge(2, &names).unwrap().contains("`__code0`"));
        assert!(nudge(3, &names).unwrap().contains("`prompt`"));
        assert_eq!(nudge(5, &names), None);
        assert_eq!(nudge(1, &names[..1]), None);
    }
}
