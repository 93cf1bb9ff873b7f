//! One search step over every run that is still stepping: parents' prompts → ONE `generate`
//! batch of K diversified requests per run → proposals (the model's and the numeric ones),
//! never a value already tried → every candidate scored in parallel on a graph of its own →
//! the best set so far goes on the parameters, every scored candidate into the optimizer's
//! memory.

use super::candidate::{ScoredCandidate, SearchReport, Source};
use super::history::{key, Tried};
use super::numeric;
use super::parents;
use super::strategy::{SearchSettings, Strategy};
use crate::error::{Error, Result};
use crate::graph::Value;
use crate::llm::{Llm, Reply, Request};
use crate::optim::{MemoryEntry, Outcome, ParamUpdate, StepReport};
use crate::train::seeds::{score_values, set_values, ForwardOutcome, SeedRun};
use crate::train::Task;
use indexmap::IndexMap;
use rayon::prelude::*;
use std::time::Instant;

type Values = IndexMap<String, Value>;

/// What a run contributes to the step's batch.
struct Plan {
    candidates: Vec<ScoredCandidate>,
    /// Numeric proposals beyond the first share, to fill slots that model repeats leave empty.
    reserve: Vec<(Values, Source)>,
    /// (index into the step's batch, candidate index) of each model request.
    requests: Vec<(usize, usize)>,
    parents: Vec<usize>,
    parent_forwards: usize,
    messages: Vec<crate::llm::Message>,
    notes: Vec<String>,
    error: Option<String>,
}

/// Steps `runs` (each with the outcome of this step's forward pass of its current values) by
/// `settings`. Returns, per run, the optimizer-style report of the step and the search's own.
pub fn search_step(
    task: &dyn Task,
    llm: &dyn Llm,
    settings: &SearchSettings,
    step: usize,
    runs: &mut [&mut SeedRun],
    current: &[&ForwardOutcome],
) -> Vec<Result<(StepReport, SearchReport)>> {
    let k = settings.strategy.candidates();
    let bounds = |name: &str| task.bounds(name);
    let mut batch: Vec<Request> = Vec::new();
    let mut plans: Vec<Plan> = Vec::with_capacity(runs.len());
    let mut best_before = Vec::with_capacity(runs.len());

    // 1. Per run: record the current values, choose parents, plan the candidates.
    for (run, now) in runs.iter_mut().zip(current) {
        run.history.add(Tried {
            values: now.params.clone(),
            score: now.evaluation.score,
            feedback: now.evaluation.feedback.clone(),
            output: now.output.clone(),
            success: now.evaluation.success,
            step,
            expansions: 0,
        });
        best_before.push(run.history.best().map(|i| run.history.get(i).score));
        let params = numeric::numeric_params(&now.params, &bounds);
        let mut plan = Plan {
            candidates: Vec::new(),
            reserve: Vec::new(),
            requests: Vec::new(),
            parents: Vec::new(),
            parent_forwards: 0,
            messages: Vec::new(),
            notes: Vec::new(),
            error: None,
        };
        let seed = crate::util::mix_seed(run.seed, step as u64);
        match settings.strategy {
            Strategy::Random { .. } => {
                match numeric::random_sets(&run.history, &now.params, &params, k, seed) {
                    Ok(sets) => plan
                        .candidates
                        .extend(sets.into_iter().map(|v| ScoredCandidate::new(Source::Random, v))),
                    Err(e) => plan.error = Some(e),
                }
            }
            Strategy::Section { .. } => {
                match numeric::section_sets(&run.history, &now.params, &params, k, step) {
                    Ok(sets) => plan
                        .candidates
                        .extend(sets.into_iter().map(|v| ScoredCandidate::new(Source::Section, v))),
                    Err(e) => plan.error = Some(e),
                }
            }
            Strategy::Greedy => {
                plan.error =
                    Some("greedy is not a search: the trainer steps the optimizer itself".into())
            }
            Strategy::BestOf { .. } | Strategy::Beam { .. } | Strategy::Priority { .. } => {
                let mut classical = if settings.numeric_proposals {
                    numeric::proposals(&run.history, &params, step)
                } else {
                    Vec::new()
                };
                let share = classical.len().min(k / 2);
                plan.reserve = classical.split_off(share);
                plan.candidates
                    .extend(classical.into_iter().map(|(v, s)| ScoredCandidate::new(s, v)));
                plan.parents =
                    parents::choose(&run.history, &settings.strategy, settings.exploration);
                let slots = k - plan.candidates.len();
                if let Err(e) =
                    ask_model(run, task, settings, step, slots, seed, &mut plan, &mut batch)
                {
                    plan.error = Some(e.to_string());
                }
            }
        }
        plans.push(plan);
    }

    // 2. One batch for every run's model candidates.
    let llm_start = Instant::now();
    let mut replies: Vec<Option<Result<Reply>>> = if batch.is_empty() {
        Vec::new()
    } else {
        llm.generate(&batch).into_iter().map(Some).collect()
    };
    replies.resize_with(batch.len(), || None);
    let llm_s = llm_start.elapsed().as_secs_f64();

    // 3. Read the replies, drop repeats, fill freed slots from the numeric reserve.
    let mut usage = vec![crate::llm::Usage::default(); runs.len()];
    let mut llm_calls = vec![0usize; runs.len()];
    let mut to_score: Vec<(usize, usize)> = Vec::new();
    let mut duplicates = vec![0usize; runs.len()];
    let mut distinct = vec![0usize; runs.len()];
    for (r, plan) in plans.iter_mut().enumerate() {
        let run = &runs[r];
        for &(b, c) in &plan.requests {
            let cand = &mut plan.candidates[c];
            match replies[b].take() {
                Some(Ok(reply)) => {
                    usage[r].prompt_tokens += reply.usage.prompt_tokens;
                    usage[r].cached_prompt_tokens += reply.usage.cached_prompt_tokens;
                    usage[r].generated_tokens += reply.usage.generated_tokens;
                    llm_calls[r] += 1;
                    cand.reply = Some(reply.text.clone());
                    match run.optimizer.propose(&reply) {
                        Some(p) => {
                            cand.values = p.values;
                            cand.skipped = p.error;
                        }
                        None => {
                            cand.skipped = Some(format!(
                                "the {} optimizer cannot propose from one reply",
                                run.optimizer.name()
                            ))
                        }
                    }
                }
                Some(Err(e)) => cand.skipped = Some(e.to_string()),
                None => {
                    cand.skipped = Some("the backend returned fewer replies than requests".into())
                }
            }
        }
        // Repeats of a tried value or of an earlier candidate are not scored. The model's
        // candidates are seen first: where one proposes what a numeric step also would, the
        // model keeps it and the numeric slot goes to the next numeric proposal.
        let mut seen: Vec<String> = Vec::new();
        let mut model_values: Vec<String> = Vec::new();
        let order: Vec<usize> = (0..plan.candidates.len())
            .filter(|&c| plan.candidates[c].source == Source::Model)
            .chain(
                (0..plan.candidates.len()).filter(|&c| plan.candidates[c].source != Source::Model),
            )
            .collect();
        for c in order {
            let cand = &mut plan.candidates[c];
            if cand.skipped.is_some() {
                continue;
            }
            let k_ = key(&cand.values);
            if cand.source == Source::Model && !model_values.contains(&k_) {
                model_values.push(k_.clone());
            }
            if let Some(i) = run.history.find(&cand.values) {
                cand.skipped = Some(format!("already tried at step {}", run.history.get(i).step));
            } else if seen.contains(&k_) {
                cand.skipped = Some(if cand.source == Source::Model {
                    "the same values as an earlier candidate of this step".into()
                } else {
                    "the model proposed the same values".into()
                });
            } else {
                seen.push(k_);
                continue;
            }
            if cand.source == Source::Model {
                duplicates[r] += 1;
            }
        }
        distinct[r] = model_values.len();
        let mut scored = plan.candidates.iter().filter(|c| c.skipped.is_none()).count();
        for (values, source) in std::mem::take(&mut plan.reserve) {
            if scored >= k {
                break;
            }
            let k_ = key(&values);
            if !seen.contains(&k_) {
                seen.push(k_);
                plan.candidates.push(ScoredCandidate::new(source, values));
                scored += 1;
            }
        }
        to_score.extend(
            plan.candidates
                .iter()
                .enumerate()
                .filter(|(_, c)| c.skipped.is_none())
                .map(|(c, _)| (r, c)),
        );
    }

    // 4. Score every candidate of every run in parallel, each on a graph of its own.
    let eval_start = Instant::now();
    let seeds: Vec<u64> = runs.iter().map(|r| r.seed).collect();
    let jobs: Vec<(usize, usize, Values)> =
        to_score.iter().map(|&(r, c)| (r, c, plans[r].candidates[c].values.clone())).collect();
    type Scored = (usize, usize, Result<(crate::train::Evaluation, Option<String>)>);
    let results: Vec<Scored> = jobs
        .into_par_iter()
        .map(|(r, c, values)| (r, c, score_values(task, seeds[r], step, &values)))
        .collect();
    let evaluate_s = eval_start.elapsed().as_secs_f64();
    for (r, c, result) in results {
        let cand = &mut plans[r].candidates[c];
        match result {
            Ok((e, output)) => {
                cand.score = Some(e.score);
                cand.success = e.success;
                cand.feedback = e.feedback;
                cand.output = output;
            }
            Err(e) => {
                cand.score = Some(f64::NEG_INFINITY);
                cand.feedback = e.to_string();
                cand.skipped = Some(format!("the evaluation failed: {e}"));
            }
        }
    }

    // 5. Keep the best set so far; tell the optimizer what was tried.
    let mut out = Vec::with_capacity(runs.len());
    for (r, plan) in plans.into_iter().enumerate() {
        let run = &mut *runs[r];
        if let Some(e) = &plan.error {
            if plan.candidates.is_empty() {
                out.push(Err(Error::invalid("--search", e.clone())));
                continue;
            }
        }
        for &p in &plan.parents {
            run.history.get_mut(p).expansions += 1;
        }
        let evaluations =
            plan.candidates.iter().filter(|c| c.score.is_some() && c.skipped.is_none()).count();
        for cand in plan.candidates.iter().filter(|c| c.score.is_some()) {
            run.history.add(Tried {
                values: cand.values.clone(),
                score: cand.score.unwrap_or(f64::NEG_INFINITY),
                feedback: cand.feedback.clone(),
                output: cand.output.clone(),
                success: cand.success,
                step,
                expansions: 0,
            });
        }
        let before: Values = run.values();
        let best = run
            .history
            .best()
            .map(|i| run.history.get(i).values.clone())
            .unwrap_or_else(|| before.clone());
        let chosen = (key(&best) != key(&before))
            .then(|| {
                plan.candidates
                    .iter()
                    .position(|c| c.score.is_some() && key(&c.values) == key(&best))
            })
            .flatten();
        let set = if chosen.is_some() { set_values(&run.params, &best) } else { Ok(()) };
        if let Err(e) = set {
            out.push(Err(e));
            continue;
        }
        if settings.strategy.uses_model() {
            let mut tried: Vec<MemoryEntry> =
                plan.parents.iter().map(|&p| memory_entry(run.history.get(p))).collect();
            tried.extend(
                plan.candidates
                    .iter()
                    .filter(|c| c.score.is_some())
                    .map(|c| memory_entry_of(&c.values, &c.output, &c.feedback, c.score)),
            );
            run.optimizer.conclude_search_step(tried);
        }
        let mut notes = plan.notes;
        match chosen {
            Some(i) => notes.push(format!(
                "{}: kept candidate {i} ({}) of {}",
                settings.strategy.label(),
                plan.candidates[i].source.as_str(),
                plan.candidates.len()
            )),
            None => notes.push(format!(
                "{}: no candidate beat the best so far; it stays",
                settings.strategy.label()
            )),
        }
        if let Some(e) = plan.error {
            notes.push(e);
        }
        let updates = before
            .iter()
            .map(|(name, old)| {
                let new = run
                    .params
                    .iter()
                    .find(|p| &p.name() == name)
                    .map(|p| p.value())
                    .unwrap_or_else(|| old.clone());
                // the same comparison as the history's: equal when the values print the same
                let same = serde_json::to_string(&new).ok() == serde_json::to_string(old).ok();
                let outcome = if same { Outcome::Unchanged } else { Outcome::Updated { new } };
                ParamUpdate { name: name.clone(), old: old.clone(), outcome }
            })
            .collect();
        let chosen_reply = chosen.and_then(|i| plan.candidates[i].reply.clone());
        let step_report = StepReport {
            optimizer: if settings.strategy.uses_model() {
                run.optimizer.name().to_string()
            } else {
                settings.strategy.label()
            },
            step: step as u64 + 1,
            updates,
            messages: plan.messages,
            reply: chosen_reply,
            notes,
            usage: usage[r].clone(),
            llm_calls: llm_calls[r],
            ..Default::default()
        };
        let report = SearchReport {
            strategy: settings.strategy.label(),
            parents: plan.parents.len(),
            requests: plan.requests.len(),
            evaluations,
            parent_forwards: plan.parent_forwards,
            duplicates: duplicates[r],
            distinct_model: distinct[r],
            candidates: plan.candidates,
            chosen,
            best_score_before: best_before[r],
            notes: Vec::new(),
            usage: usage[r].clone(),
            llm_s,
            evaluate_s,
        };
        out.push(Ok((step_report, report)));
    }
    out
}

/// Candidates after the first end their prompt with one of a few generic nudges, so that copies
/// of one prompt do not all sample the same favourite value; the shared prompt head (everything
/// before the nudge) still comes from the prefix cache.
const NUDGES: [&str; 3] = [
    "Suggest a value that differs from every value tried so far.",
    "Make a bold change: a large step is fine if the feedback points that way.",
    "Make a careful change: a small step from the best value so far.",
];

fn nudge(req: &mut Request, i: usize) {
    if i == 0 {
        return;
    }
    if let Some(last) = req.messages.last_mut() {
        last.content.push('\n');
        last.content.push_str(NUDGES[(i - 1) % NUDGES.len()]);
    }
}

fn memory_entry(t: &Tried) -> MemoryEntry {
    memory_entry_of(&t.values, &t.output, &t.feedback, Some(t.score))
}

fn memory_entry_of(
    values: &Values,
    output: &Option<String>,
    feedback: &str,
    score: Option<f64>,
) -> MemoryEntry {
    MemoryEntry {
        variables: values.iter().map(|(k, v)| (k.clone(), v.to_json())).collect(),
        output: output.clone(),
        feedback: feedback.to_string(),
        score,
    }
}

/// Builds each parent's prompt (its own forward and backward when it is not the current values)
/// and adds `slots` diversified copies of it, shared among the parents, to the batch.
// One call site; the arguments are the step's state, which a struct would only rename.
#[allow(clippy::too_many_arguments)]
fn ask_model(
    run: &mut SeedRun,
    task: &dyn Task,
    settings: &SearchSettings,
    step: usize,
    slots: usize,
    seed: u64,
    plan: &mut Plan,
    batch: &mut Vec<Request>,
) -> Result<()> {
    if slots == 0 || plan.parents.is_empty() {
        return Ok(());
    }
    let before = run.values();
    let current = key(&before);
    let n_parents = plan.parents.len().min(slots);
    let mut made = 0usize;
    for (j, &parent) in plan.parents.iter().take(n_parents).enumerate() {
        let share = slots / n_parents + usize::from(j < slots % n_parents);
        let values = run.history.get(parent).values.clone();
        if key(&values) != current {
            // the prompt must show this parent's trace and feedback
            set_values(&run.params, &values)?;
            run.graph.rewind(run.mark);
            let (output, evaluation) =
                crate::train::seeds::run_and_score(task, &run.graph, &run.params, run.seed, step)?;
            if !evaluation.success {
                output.backward(&evaluation.feedback)?;
            }
            plan.parent_forwards += 1;
        }
        let requests = run.optimizer.prepare()?;
        let Some(template) = requests.into_iter().next() else {
            plan.notes.push(format!("parent {j}: the optimizer had nothing to ask (no feedback)"));
            continue;
        };
        if plan.messages.is_empty() {
            plan.messages = template.messages.clone();
        }
        for _ in 0..share {
            let mut req = template.clone();
            nudge(&mut req, made);
            req.params.temperature = settings.temperature(made, slots);
            req.params.seed = crate::util::mix_seed(seed, made as u64);
            let mut cand = ScoredCandidate::new(Source::Model, values.clone());
            cand.temperature = Some(req.params.temperature);
            cand.sample_seed = Some(req.params.seed);
            plan.requests.push((batch.len(), plan.candidates.len()));
            plan.candidates.push(cand);
            batch.push(req);
            made += 1;
        }
    }
    // the parameters hold the current values again until the step decides
    set_values(&run.params, &before)
}
