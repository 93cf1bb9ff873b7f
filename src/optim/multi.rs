//! OptoPrimeMulti: N candidate replies to the same prompt in ONE batched `generate` call (each
//! with its own temperature and seed), then a selector picks the one that is applied.

use super::optoprime::reply::parse_reply;
use super::optoprime::update::{plan_updates, Outcome};
use super::{Optimizer, OptoPrime, OptoPrimeOptions, Parameters, Phase, StepReport};
use crate::error::{Error, Result};
use crate::graph::Value;
use crate::llm::{Llm, Reply, Request};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One candidate of a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub index: usize,
    pub temperature: f32,
    pub seed: u64,
    pub reply: Option<String>,
    pub error: Option<String>,
    /// The values this candidate would set (accepted suggestions that differ from the current).
    pub values: IndexMap<String, Value>,
    /// Rejected suggestions, `name: reason`.
    pub rejected: Vec<String>,
}

/// A candidate's score (higher is better; `None`: cannot tell).
pub type ScoreFn = Arc<dyn Fn(&Candidate) -> Option<f64> + Send + Sync>;

/// How the applied candidate is chosen.
#[derive(Clone)]
pub enum Selector {
    /// The last candidate that parsed (the reference's default: the lowest temperature).
    Last,
    /// The candidate with the highest score; `None` scores are skipped. Falls back to `Last`.
    Score(ScoreFn),
}

/// OptoPrime with several candidates per step.
pub struct OptoPrimeMulti {
    inner: OptoPrime,
    pub num_candidates: usize,
    /// Temperatures spaced linearly from the first to the second (max → min, as the reference).
    pub temperature_range: (f32, f32),
    pub selector: Selector,
}

impl OptoPrimeMulti {
    pub fn new(
        params: impl Parameters + 'static,
        llm: Arc<dyn Llm>,
        options: OptoPrimeOptions,
        num_candidates: usize,
    ) -> Self {
        OptoPrimeMulti {
            inner: OptoPrime::with_options(params, llm, options),
            num_candidates: num_candidates.max(1),
            temperature_range: (1.0, 0.0),
            selector: Selector::Last,
        }
    }

    pub fn with_selector(mut self, selector: Selector) -> Self {
        self.selector = selector;
        self
    }

    pub fn with_temperature_range(mut self, max: f32, min: f32) -> Self {
        self.temperature_range = (max, min);
        self
    }

    pub fn inner(&self) -> &OptoPrime {
        &self.inner
    }

    /// Candidate `i` samples with seed `base + i`, where the base mixes the run's seed with the
    /// step number: the same step of a resumed run draws the same candidates, but two steps (or
    /// two runs with different seeds) never draw the same ones.
    fn candidate_seed_base(&self) -> u64 {
        crate::util::mix_seed(self.inner.options.generation.seed, self.inner.steps_done())
    }

    fn temperatures(&self) -> Vec<f32> {
        let n = self.num_candidates;
        let (hi, lo) = self.temperature_range;
        if n == 1 {
            return vec![lo];
        }
        (0..n).map(|i| hi + (lo - hi) * i as f32 / (n - 1) as f32).map(|t| t.max(0.0)).collect()
    }
}

impl Optimizer for OptoPrimeMulti {
    fn name(&self) -> &'static str {
        "optoprime-multi"
    }

    fn prepare(&mut self) -> Result<Vec<Request>> {
        let Some(req) = self.inner.prepare_one()? else { return Ok(Vec::new()) };
        let base_seed = self.candidate_seed_base();
        Ok(self
            .temperatures()
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let mut r = req.clone();
                r.params.temperature = t;
                r.params.seed = base_seed.wrapping_add(i as u64);
                r
            })
            .collect())
    }

    fn apply(&mut self, replies: Vec<Result<Reply>>) -> Phase {
        let Some(pending) = self.inner.pending().cloned() else {
            let mut r = match self.inner.apply(Vec::new()) {
                Phase::Done(r) => *r,
                Phase::More => StepReport::default(),
            };
            r.optimizer = "optoprime-multi".into();
            return Phase::Done(Box::new(r));
        };
        let temps = self.temperatures();
        let base_seed = self.candidate_seed_base();
        let mut candidates = Vec::new();
        let mut usable = Vec::new();
        let mut replies: Vec<Option<Result<Reply>>> = replies.into_iter().map(Some).collect();
        for (i, slot) in replies.iter().enumerate() {
            let mut c = Candidate {
                index: i,
                temperature: temps.get(i).copied().unwrap_or(0.0),
                seed: base_seed.wrapping_add(i as u64),
                reply: None,
                error: None,
                values: IndexMap::new(),
                rejected: Vec::new(),
            };
            match slot {
                Some(Ok(r)) => {
                    c.reply = Some(r.text.clone());
                    match parse_reply(&r.text) {
                        Ok(p) if !p.terminate => {
                            let plan = plan_updates(&pending.summary.variables, &p);
                            for u in &plan.updates {
                                match &u.outcome {
                                    Outcome::Updated { new } => {
                                        c.values.insert(u.name.clone(), new.clone());
                                    }
                                    Outcome::Rejected { reason, .. } => {
                                        c.rejected.push(format!("{}: {reason}", u.name))
                                    }
                                    _ => {}
                                }
                            }
                            usable.push(i);
                        }
                        Ok(_) => c.error = Some("TERMINATE".into()),
                        Err(e) => c.error = Some(e.to_string()),
                    }
                }
                Some(Err(e)) => c.error = Some(e.to_string()),
                None => {}
            }
            candidates.push(c);
        }
        let last = usable.last().copied();
        let chosen = match &self.selector {
            Selector::Last => last,
            Selector::Score(f) => usable
                .iter()
                .filter_map(|&i| f(&candidates[i]).filter(|s| !s.is_nan()).map(|s| (i, s)))
                .fold(None::<(usize, f64)>, |best, (i, s)| match best {
                    Some((_, bs)) if bs >= s => best,
                    _ => Some((i, s)),
                })
                .map(|(i, _)| i)
                .or(last),
        };
        let reply = match chosen {
            Some(i) => replies[i].take().unwrap_or_else(|| Err(Error::Reply("missing".into()))),
            // nothing usable: apply the first reply (or error) so the report explains why
            None => replies
                .iter_mut()
                .find_map(Option::take)
                .unwrap_or_else(|| Err(Error::Reply("no reply was given".into()))),
        };
        // the replies not applied still cost tokens
        let mut others_usage = StepReport::default();
        for r in replies.iter().flatten().flatten() {
            others_usage.add_reply_stats(r);
        }
        let mut report = self.inner.apply_one(reply);
        report.optimizer = "optoprime-multi".into();
        report.llm_calls = candidates.iter().filter(|c| c.reply.is_some()).count();
        report.usage.prompt_tokens += others_usage.usage.prompt_tokens;
        report.usage.cached_prompt_tokens += others_usage.usage.cached_prompt_tokens;
        report.usage.generated_tokens += others_usage.usage.generated_tokens;
        report.timings.prefill_s += others_usage.timings.prefill_s;
        report.timings.decode_s += others_usage.timings.decode_s;
        report.timings.total_s += others_usage.timings.total_s;
        if let Some(i) = chosen {
            report.notes.push(format!("candidate {i} of {} chosen", candidates.len()));
        }
        report.candidates = candidates;
        Phase::Done(Box::new(report))
    }

    fn llm(&self) -> &Arc<dyn Llm> {
        self.inner.llm()
    }
    fn parameters(&self) -> &dyn Parameters {
        self.inner.parameters()
    }
    fn state(&self) -> serde_json::Value {
        self.inner.state()
    }
    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        self.inner.load_state(state)
    }
    fn propose(&self, reply: &Reply) -> Option<super::Proposal> {
        self.inner.propose(reply)
    }
    fn conclude_search_step(&mut self, tried: Vec<super::MemoryEntry>) {
        self.inner.conclude_search_step(tried)
    }
}
