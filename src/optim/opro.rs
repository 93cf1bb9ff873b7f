//! OPRO, the paper's baseline: the LLM sees only the history of (variables, feedback) pairs and
//! the objective — never the graph. The current pair is added to the history before the prompt is
//! built (as in the reference), so the latest values and feedback are the last entry.

use super::optoprime::apply_reply;
use super::optoprime::prompt::{format_line, key_list, MemoryEntry};
use super::{estimate_tokens, Optimizer, Parameters, Phase, StepReport};
use crate::error::{Error, Result};
use crate::llm::{GenerationParams, Llm, Message, Reply, Request};
use crate::optim::reply_schema::{suggestion_schema, ParamType, SuggestionSchemaOptions};
use crate::propagate::Summary;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Settings of [`Opro`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OproOptions {
    pub objective: String,
    /// Keep at most this many pairs (`None`: all, as the reference does).
    pub history_size: Option<usize>,
    /// Token budget: the oldest pairs are left out of the prompt until it fits.
    pub max_prompt_tokens: Option<usize>,
    /// Long strings in the history are cut at this many characters.
    pub value_char_limit: usize,
    pub generation: GenerationParams,
    pub use_schema: bool,
}

impl Default for OproOptions {
    fn default() -> Self {
        OproOptions {
            objective: "Propose new values of the variables that improve the result, following the feedback.".into(),
            history_size: None,
            max_prompt_tokens: Some(3000),
            value_char_limit: 1000,
            generation: GenerationParams { max_tokens: 300, ..GenerationParams::default() },
            use_schema: true,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    step: u64,
    history: Vec<MemoryEntry>,
}

/// The OPRO optimizer (parameter–feedback pairs as in-context examples).
pub struct Opro {
    params: Box<dyn Parameters>,
    llm: Arc<dyn Llm>,
    pub options: OproOptions,
    state: State,
    pending: Option<(Summary, Vec<Message>)>,
}

impl Opro {
    pub fn new(params: impl Parameters + 'static, llm: Arc<dyn Llm>) -> Self {
        Self::with_options(params, llm, OproOptions::default())
    }

    pub fn with_options(
        params: impl Parameters + 'static,
        llm: Arc<dyn Llm>,
        options: OproOptions,
    ) -> Self {
        Opro { params: Box::new(params), llm, options, state: State::default(), pending: None }
    }

    fn messages(&self, summary: &Summary, history: &[MemoryEntry]) -> Vec<Message> {
        let system = format!(
            "You propose better values for variables.\nReply with one JSON object and nothing else:\n{}\nThe keys of \"suggestion\" are exactly {}.{}",
            format_line(&summary.variables, false, false),
            key_list(&summary.variables),
            if summary.variables.iter().any(|v| matches!(v.value, crate::graph::Value::Code(_))) {
                "\nCode must be a complete Python function with the same name and arguments."
            } else {
                ""
            }
        );
        let lines: Vec<String> =
            history.iter().map(|m| m.render(self.options.value_char_limit)).collect();
        let user = format!(
            "Values the variables had and the feedback each got (oldest first, the last is the current one):\n{}\n\n====\n\n{}\n\nNow reply with the JSON object. The keys of \"suggestion\" are {}.",
            lines.join("\n"),
            self.options.objective.trim(),
            key_list(&summary.variables)
        );
        vec![Message::system(system), Message::user(user)]
    }

    pub fn prepare_one(&mut self) -> Result<Option<Request>> {
        let summary = self.params.summarize();
        if summary.variables.is_empty() || summary.feedback.is_empty() {
            self.pending = None;
            return Ok(None);
        }
        self.state.history.push(MemoryEntry::from_summary(&summary));
        if let Some(k) = self.options.history_size {
            let extra = self.state.history.len().saturating_sub(k);
            self.state.history.drain(..extra);
        }
        let mut from = 0;
        let mut msgs = self.messages(&summary, &self.state.history);
        if let Some(budget) = self.options.max_prompt_tokens {
            while from + 1 < self.state.history.len()
                && estimate_tokens(self.llm.as_ref(), &msgs) > budget
            {
                from += 1;
                msgs = self.messages(&summary, &self.state.history[from..]);
            }
        }
        let mut req = Request::new(msgs.clone()).with_params(self.options.generation.clone());
        if self.options.use_schema {
            req = req.with_schema(suggestion_schema(
                summary.variables.iter().map(|v| (v.name.as_str(), ParamType::of(&v.value))),
                &SuggestionSchemaOptions { with_answer: false, reasoning_max_chars: 0 },
            ));
        }
        self.pending = Some((summary, msgs));
        Ok(Some(req))
    }

    pub fn apply_one(&mut self, reply: Result<Reply>) -> StepReport {
        self.state.step += 1;
        let mut report =
            StepReport { optimizer: "opro".into(), step: self.state.step, ..Default::default() };
        match self.pending.take() {
            None => {
                report.error =
                    Some("nothing to apply: prepare found no feedback (or was not called)".into())
            }
            Some((summary, msgs)) => {
                report.messages = msgs;
                apply_reply(self.params.as_ref(), &summary, reply, &mut report);
            }
        }
        report
    }
}

impl Optimizer for Opro {
    fn name(&self) -> &'static str {
        "opro"
    }
    fn prepare(&mut self) -> Result<Vec<Request>> {
        Ok(self.prepare_one()?.into_iter().collect())
    }
    fn apply(&mut self, replies: Vec<Result<Reply>>) -> Phase {
        let r = replies.into_iter().next().unwrap_or_else(|| Err(Error::Reply("no reply".into())));
        let mut report = self.apply_one(r);
        if report.messages.is_empty() {
            report.error = None;
            report.notes.push("no feedback: nothing to do".into());
        }
        Phase::Done(Box::new(report))
    }
    fn llm(&self) -> &Arc<dyn Llm> {
        &self.llm
    }
    fn parameters(&self) -> &dyn Parameters {
        self.params.as_ref()
    }
    fn state(&self) -> serde_json::Value {
        serde_json::to_value(&self.state).unwrap_or(serde_json::Value::Null)
    }
    fn propose(&self, reply: &Reply) -> Option<super::Proposal> {
        self.pending
            .as_ref()
            .map(|(summary, _)| super::proposal::propose_from_reply(summary, reply))
    }

    fn conclude_search_step(&mut self, tried: Vec<MemoryEntry>) {
        self.state.history.extend(tried);
        if let Some(k) = self.options.history_size {
            let extra = self.state.history.len().saturating_sub(k);
            self.state.history.drain(..extra);
        }
        self.pending = None;
        self.state.step += 1;
    }

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        self.state = serde_json::from_value(state)
            .map_err(|e| Error::invalid("optimizer state", e.to_string()))?;
        self.pending = None;
        Ok(())
    }
}
