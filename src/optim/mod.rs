//! Optimizers: OptoPrime (and its multi-candidate variant), OPRO and TextGrad, over the
//! batch-first [`Llm`] interface.
//!
//! Every optimizer is driven in rounds: [`Optimizer::prepare`] returns the requests of one round,
//! the caller answers them (possibly in one `generate` call together with other seeds' requests,
//! see [`step_lockstep`]), and [`Optimizer::apply`] takes the replies and says whether the step is
//! done. OptoPrime and OPRO need one round of one request; OptoPrimeMulti one round of N requests;
//! TextGrad several rounds. [`Optimizer::step`] does the whole loop with the optimizer's own LLM.

pub mod multi;
pub mod opro;
pub mod optoprime;
pub mod proposal;
mod relaxed_json;
pub mod reply_schema;
pub mod textgrad;

pub use multi::{Candidate, OptoPrimeMulti, ScoreFn, Selector};
pub use opro::{Opro, OproOptions};
pub use optoprime::memory::{Memory, MemoryOrder};
pub use optoprime::problem::{render_problem, RenderOptions, Section, Symbols, NO_TRACE_MASK};
pub use optoprime::prompt::{MemoryEntry, DEFAULT_OBJECTIVE};
pub use optoprime::reply::{parse_reply, ParsedReply, ReplyFormat};
pub use optoprime::update::{coerce, Outcome, ParamUpdate};
pub use optoprime::{OptoPrime, OptoPrimeOptions};
pub use proposal::Proposal;
pub use textgrad::{TextGrad, TextGradOptions};

use crate::error::{Error, Result};
use crate::graph::{Node, Value};
use crate::llm::{Llm, Message, Reply, Request, Timings, Usage};
use crate::propagate::Summary;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// The trainable parameters an optimizer works on, and the view of the graph it gets from them.
///
/// Implemented for `Vec<Node>` (the graph's parameters) and for [`SummaryParams`] (a summary
/// built by hand: tests, or a caller that renders its own problem).
pub trait Parameters: Send + Sync {
    /// The problem of this step: the union of the subgraphs the parameters received since the
    /// last `zero_feedback`; `variables` holds every parameter with its current value.
    fn summarize(&self) -> Summary;
    /// Sets a parameter's value (untraced).
    fn set_value(&self, name: &str, value: Value) -> Result<()>;
    /// Forgets the feedback the parameters received.
    fn zero_feedback(&self);
}

/// Parameters described by a hand-built [`Summary`]: `set_value` changes the value shown in
/// `variables`. The summary can be replaced between steps ([`SummaryParams::set_summary`]); the
/// variables' current values are kept across replacements.
#[derive(Debug, Default)]
pub struct SummaryParams {
    summary: Mutex<Summary>,
}

impl SummaryParams {
    pub fn new(summary: Summary) -> Self {
        SummaryParams { summary: Mutex::new(summary) }
    }

    /// A new problem for the next step; variables keep the values set by the optimizer.
    pub fn set_summary(&self, mut summary: Summary) {
        let mut cur = self.summary.lock().unwrap_or_else(|e| e.into_inner());
        for v in summary.variables.iter_mut() {
            if let Some(old) = cur.variables.iter().find(|o| o.name == v.name) {
                v.value = old.value.clone();
            }
        }
        *cur = summary;
    }

    pub fn value(&self, name: &str) -> Option<Value> {
        let cur = self.summary.lock().unwrap_or_else(|e| e.into_inner());
        cur.variables.iter().find(|v| v.name == name).map(|v| v.value.clone())
    }
}

impl Parameters for SummaryParams {
    fn summarize(&self) -> Summary {
        self.summary.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn set_value(&self, name: &str, value: Value) -> Result<()> {
        let mut cur = self.summary.lock().unwrap_or_else(|e| e.into_inner());
        match cur.variables.iter_mut().find(|v| v.name == name) {
            Some(v) => {
                v.value = value;
                Ok(())
            }
            None => Err(Error::invalid("parameter", format!("no parameter named `{name}`"))),
        }
    }
    fn zero_feedback(&self) {
        self.summary.lock().unwrap_or_else(|e| e.into_inner()).feedback.clear();
    }
}

/// The graph's parameters: `summarize` is [`crate::propagate::summarize`]; only trainable
/// parameters are written.
impl Parameters for Vec<Node> {
    fn summarize(&self) -> Summary {
        crate::propagate::summarize(self)
    }
    fn set_value(&self, name: &str, value: Value) -> Result<()> {
        match self.iter().find(|n| n.name() == name) {
            Some(n) if n.is_trainable() => {
                n.set_value(value);
                Ok(())
            }
            Some(_) => Err(Error::invalid("parameter", format!("`{name}` is not trainable"))),
            None => Err(Error::invalid("parameter", format!("no parameter named `{name}`"))),
        }
    }
    fn zero_feedback(&self) {
        for n in self {
            n.zero_feedback();
        }
    }
}

impl<T: Parameters + ?Sized> Parameters for Arc<T> {
    fn summarize(&self) -> Summary {
        (**self).summarize()
    }
    fn set_value(&self, name: &str, value: Value) -> Result<()> {
        (**self).set_value(name, value)
    }
    fn zero_feedback(&self) {
        (**self).zero_feedback()
    }
}

/// What one optimizer step did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// `optoprime`, `opro`, `textgrad`, `optoprime-multi`.
    pub optimizer: String,
    /// 1 for the first step.
    pub step: u64,
    /// One line per parameter, in parameter order.
    pub updates: Vec<ParamUpdate>,
    /// Suggestion keys that named no parameter.
    pub unknown_keys: Vec<String>,
    /// The (main) prompt sent.
    pub messages: Vec<Message>,
    /// The (chosen) reply text.
    pub reply: Option<String>,
    pub reasoning: Option<String>,
    pub answer: Option<String>,
    /// The model said `TERMINATE`: nothing changed.
    pub terminated: bool,
    /// Why the step produced no update (LLM error, unreadable reply), if it did not.
    pub error: Option<String>,
    /// Repairs, prompt reductions and other remarks.
    pub notes: Vec<String>,
    /// Summed over every LLM call of the step.
    pub usage: Usage,
    pub timings: Timings,
    pub llm_calls: usize,
    /// OptoPrimeMulti: every candidate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
    /// A value the optimizer used in place of the model's (OptoPrime's line guard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<Replaced>,
}

/// A parameter value the optimizer put in place of the one the model suggested, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Replaced {
    pub name: String,
    /// The model's value.
    pub suggested: Value,
    pub used: Value,
    pub reason: String,
}

impl StepReport {
    /// Number of parameters that got a new value.
    pub fn changed(&self) -> usize {
        self.updates.iter().filter(|u| matches!(u.outcome, Outcome::Updated { .. })).count()
    }

    /// The new value of a parameter, if it was updated.
    pub fn new_value(&self, name: &str) -> Option<&Value> {
        self.updates.iter().find(|u| u.name == name).and_then(ParamUpdate::new_value)
    }

    pub(crate) fn add_reply_stats(&mut self, r: &Reply) {
        self.usage.prompt_tokens += r.usage.prompt_tokens;
        self.usage.cached_prompt_tokens += r.usage.cached_prompt_tokens;
        self.usage.generated_tokens += r.usage.generated_tokens;
        self.timings.prefill_s += r.timings.prefill_s;
        self.timings.decode_s += r.timings.decode_s;
        self.timings.total_s += r.timings.total_s;
        self.llm_calls += 1;
    }
}

/// Result of [`Optimizer::apply`].
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// Another round is needed: call `prepare` again.
    More,
    /// The step is finished (parameters already updated).
    Done(Box<StepReport>),
}

/// An optimizer driven in rounds of batched requests.
pub trait Optimizer: Send {
    /// Short name for logs.
    fn name(&self) -> &'static str;

    /// The requests of the next round. An empty batch means there is nothing to ask (no feedback,
    /// or no parameters): `apply(vec![])` then finishes the step without an LLM call.
    fn prepare(&mut self) -> Result<Vec<Request>>;

    /// Takes the replies to the last `prepare`'s requests, in order.
    fn apply(&mut self, replies: Vec<Result<Reply>>) -> Phase;

    /// The LLM [`Optimizer::step`] uses.
    fn llm(&self) -> &Arc<dyn Llm>;

    fn parameters(&self) -> &dyn Parameters;

    fn zero_feedback(&mut self) {
        self.parameters().zero_feedback();
    }

    /// Memory, step counter and the like, for checkpoints (parameters are not included).
    fn state(&self) -> serde_json::Value;

    fn load_state(&mut self, state: serde_json::Value) -> Result<()>;

    /// Search support: the update that one reply to the requests of the last `prepare` would
    /// make, read without applying it. `None` when this optimizer cannot propose from a single
    /// reply in this round (TextGrad, whose update takes several rounds): a search then falls
    /// back to ordinary steps.
    fn propose(&self, _reply: &Reply) -> Option<Proposal> {
        None
    }

    /// Search support: a search scored candidates for the last `prepare` and set the values it
    /// kept on the parameters itself. `tried` holds every candidate it scored (values, output,
    /// feedback, score), for the optimizer's memory; the optimizer counts the step as done.
    fn conclude_search_step(&mut self, _tried: Vec<MemoryEntry>) {}

    /// Search support: suggestions of the last step that were rejected (`name: reason`), to show
    /// the model on the next prompt as a plain step would. Call after `conclude_search_step`.
    fn remember_rejections(&mut self, _rejected: Vec<String>) {}

    /// One whole step with the optimizer's own LLM.
    fn step(&mut self) -> Result<StepReport> {
        for _ in 0..MAX_ROUNDS {
            let requests = self.prepare()?;
            let replies =
                if requests.is_empty() { Vec::new() } else { self.llm().generate(&requests) };
            if let Phase::Done(r) = self.apply(replies) {
                return Ok(*r);
            }
        }
        Err(Error::Llm {
            backend: self.name().into(),
            reason: format!("the step did not finish within {MAX_ROUNDS} rounds"),
        })
    }
}

const MAX_ROUNDS: usize = 10_000;

/// Steps several optimizers (one per seed, say) together: each round, the requests of all of them
/// go to `llm` in ONE `generate` call. Reports come back in the optimizers' order.
pub fn step_lockstep(
    optimizers: &mut [&mut dyn Optimizer],
    llm: &dyn Llm,
) -> Vec<Result<StepReport>> {
    let n = optimizers.len();
    let mut results: Vec<Option<Result<StepReport>>> = (0..n).map(|_| None).collect();
    for _ in 0..MAX_ROUNDS {
        let mut batch: Vec<Request> = Vec::new();
        let mut spans: Vec<(usize, usize, usize)> = Vec::new(); // (optimizer, start, len)
        for (i, opt) in optimizers.iter_mut().enumerate() {
            if results[i].is_some() {
                continue;
            }
            match opt.prepare() {
                Ok(reqs) => {
                    spans.push((i, batch.len(), reqs.len()));
                    batch.extend(reqs);
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        if spans.is_empty() {
            break;
        }
        let mut replies: Vec<Option<Result<Reply>>> = if batch.is_empty() {
            Vec::new()
        } else {
            llm.generate(&batch).into_iter().map(Some).collect()
        };
        replies.resize_with(batch.len(), || None);
        for (i, start, len) in spans {
            let mine: Vec<Result<Reply>> = replies[start..start + len]
                .iter_mut()
                .map(|r| {
                    r.take().unwrap_or_else(|| {
                        Err(Error::Llm {
                            backend: llm.describe(),
                            reason: "the backend returned fewer replies than requests".into(),
                        })
                    })
                })
                .collect();
            if let Phase::Done(r) = optimizers[i].apply(mine) {
                results[i] = Some(Ok(*r));
            }
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(Error::Llm {
                    backend: llm.describe(),
                    reason: "the step did not finish".into(),
                })
            })
        })
        .collect()
}

/// Prompt size estimate in tokens: the backend's tokenizer when it has one, else chars/4.
pub(crate) fn estimate_tokens(llm: &dyn Llm, messages: &[Message]) -> usize {
    let text: String = messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n");
    llm.count_tokens(&text).unwrap_or_else(|| text.chars().count().div_ceil(4))
}
