//! OptoPrime: the paper's optimizer. Summary → problem text → one LLM request (with the reply
//! schema of the parameters) → parse → coerce → update.

pub mod bracket;
pub mod line_guard;
pub mod memory;
pub mod problem;
pub mod prompt;
pub mod reply;
pub mod update;

use super::{estimate_tokens, Optimizer, Parameters, Phase, StepReport};
use crate::error::{Error, Result};
use crate::llm::{GenerationParams, Llm, Message, Reply, ReplySchema, Request};
use crate::optim::reply_schema::{suggestion_schema, ParamType, SuggestionSchemaOptions};
use crate::propagate::Summary;
use line_guard::{direction_of, LineTry};
use memory::{Memory, MemoryOrder};
use problem::RenderOptions;
use prompt::{build_messages, MemoryEntry, PromptSpec, DEFAULT_OBJECTIVE};
use reply::{parse_reply, preview};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use update::{plan_updates, Outcome};

/// Settings of [`OptoPrime`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptoPrimeOptions {
    /// The `#Instruction` text (the paper's ω): what the optimization is for.
    pub objective: String,
    /// Section symbols, masks, value cut-off.
    pub render: RenderOptions,
    /// Past tries (values, output, feedback) shown in the prompt (0: none).
    pub memory_size: usize,
    /// Which tries the memory keeps when full, and in what order it shows them.
    #[serde(default)]
    pub memory_order: MemoryOrder,
    /// Budget for the whole prompt in tokens (`llm.count_tokens`, else chars/4). Over it, the
    /// prompt is shrunk step by step: oldest memory first, then shorter values, then no
    /// documentation, then fewer intermediate results.
    pub max_prompt_tokens: Option<usize>,
    /// Sampling settings of the request.
    pub generation: GenerationParams,
    /// Ask for an `answer` (when the instruction asks a question).
    pub with_answer: bool,
    /// Cap on the reasoning's length in the schema (0: no reasoning field).
    pub reasoning_max_chars: usize,
    /// Send the reply schema with the request (constrained decoding).
    pub use_schema: bool,
    /// Show last step's rejected suggestions and unknown keys in the next prompt.
    pub feed_back_rejections: bool,
    /// With one numeric variable, name the closest tried pair whose feedback differs
    /// ([`bracket::bracket_hint`]).
    #[serde(default = "crate::util::yes")]
    pub bracket_hint: bool,
    /// With one numeric variable and feedback that names a direction, replace a value the tries
    /// already rule out by a bisection or expansion step ([`line_guard`]).
    #[serde(default = "crate::util::yes")]
    pub line_guard: bool,
}

impl Default for OptoPrimeOptions {
    fn default() -> Self {
        OptoPrimeOptions {
            objective: DEFAULT_OBJECTIVE.to_string(),
            render: RenderOptions::default(),
            memory_size: 0,
            memory_order: MemoryOrder::Recent,
            max_prompt_tokens: Some(3000),
            generation: GenerationParams { max_tokens: 400, ..GenerationParams::default() },
            with_answer: false,
            reasoning_max_chars: 300,
            use_schema: true,
            feed_back_rejections: true,
            bracket_hint: true,
            line_guard: true,
        }
    }
}

/// What `prepare` left for `apply`.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub summary: Summary,
    pub messages: Vec<Message>,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    step: u64,
    memory: Memory,
    problems: Vec<String>,
    /// Every evaluated value of a lone numeric variable, for the line guard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    line: Vec<LineTry>,
}

/// The OptoPrime optimizer.
pub struct OptoPrime {
    params: Box<dyn Parameters>,
    llm: Arc<dyn Llm>,
    pub options: OptoPrimeOptions,
    state: State,
    pending: Option<Pending>,
}

impl OptoPrime {
    /// OptoPrime with default options.
    pub fn new(params: impl Parameters + 'static, llm: Arc<dyn Llm>) -> Self {
        Self::with_options(params, llm, OptoPrimeOptions::default())
    }

    pub fn with_options(
        params: impl Parameters + 'static,
        llm: Arc<dyn Llm>,
        options: OptoPrimeOptions,
    ) -> Self {
        OptoPrime { params: Box::new(params), llm, options, state: State::default(), pending: None }
    }

    /// The remembered (variables, feedback) pairs, oldest first.
    pub fn memory(&self) -> impl Iterator<Item = &MemoryEntry> {
        self.state.memory.iter()
    }

    /// Steps done so far.
    pub fn steps_done(&self) -> u64 {
        self.state.step
    }

    /// The messages this optimizer would send now (no state change).
    pub fn preview_messages(&self) -> Option<Vec<Message>> {
        let summary = self.params.summarize();
        if summary.variables.is_empty() {
            return None;
        }
        Some(self.fit_messages(&summary).0)
    }

    fn spec<'a>(&'a self, render: &'a RenderOptions) -> PromptSpec<'a> {
        PromptSpec {
            objective: &self.options.objective,
            render,
            with_answer: self.options.with_answer,
            reasoning: self.options.reasoning_max_chars > 0,
            bracket_hint: self.options.bracket_hint,
        }
    }

    /// Builds the messages, shrinking the prompt until it fits the token budget.
    fn fit_messages(&self, summary: &Summary) -> (Vec<Message>, Vec<String>) {
        let mut render = self.options.render.clone();
        let memory: Vec<MemoryEntry> = self.state.memory.shown(self.options.memory_order);
        let problems: &[String] =
            if self.options.feed_back_rejections { &self.state.problems } else { &[] };
        let mut mem_from = 0usize;
        let mut notes = Vec::new();
        let Some(budget) = self.options.max_prompt_tokens else {
            return (build_messages(summary, &self.spec(&render), &memory, problems), notes);
        };
        loop {
            let msgs = build_messages(summary, &self.spec(&render), &memory[mem_from..], problems);
            let tokens = estimate_tokens(self.llm.as_ref(), &msgs);
            if tokens <= budget {
                return (msgs, notes);
            }
            if mem_from < memory.len() {
                mem_from += 1;
                notes.push(format!("prompt over {budget} tokens: oldest memory entry left out"));
            } else if render.value_char_limit > 100 {
                render.value_char_limit /= 2;
                notes.push(format!(
                    "prompt over {budget} tokens: values cut at {} characters",
                    render.value_char_limit
                ));
            } else if !render.drop_documentation {
                render.drop_documentation = true;
                notes.push(format!("prompt over {budget} tokens: #Documentation left out"));
            } else if render.max_others.is_none_or(|k| k > 0) && !summary.others.is_empty() {
                let k = render.max_others.unwrap_or(summary.others.len()) / 2;
                render.max_others = Some(k);
                notes.push(format!(
                    "prompt over {budget} tokens: only the last {k} intermediate results shown"
                ));
            } else {
                notes.push(format!("prompt is {tokens} tokens, over the budget of {budget}, and cannot shrink further"));
                return (msgs, notes);
            }
        }
    }

    pub(crate) fn schema_for(&self, summary: &Summary) -> ReplySchema {
        suggestion_schema(
            summary.variables.iter().map(|v| (v.name.as_str(), ParamType::of(&v.value))),
            &SuggestionSchemaOptions {
                with_answer: self.options.with_answer,
                reasoning_max_chars: self.options.reasoning_max_chars,
            },
        )
    }

    /// Phase one: the request of this step, or `None` when there is nothing to do (no
    /// parameters, or no feedback since the last `zero_feedback`).
    pub fn prepare_one(&mut self) -> Result<Option<Request>> {
        let summary = self.params.summarize();
        if summary.variables.is_empty() || summary.feedback.is_empty() {
            self.pending = None;
            return Ok(None);
        }
        let (messages, notes) = self.fit_messages(&summary);
        let mut req = Request::new(messages.clone()).with_params(self.options.generation.clone());
        if self.options.use_schema {
            req = req.with_schema(self.schema_for(&summary));
        }
        // Remember this step after the prompt is built, so it is not shown twice.
        self.state.memory.remember(
            MemoryEntry::from_summary(&summary),
            self.options.memory_size,
            self.options.memory_order,
        );
        if let Some(t) = line_try(&summary) {
            self.state.line.push(t);
        }
        self.pending = Some(Pending { summary, messages, notes });
        Ok(Some(req))
    }

    /// Phase two: parse the reply, update the parameters, report.
    pub fn apply_one(&mut self, reply: Result<Reply>) -> StepReport {
        let pending = self.pending.take();
        self.state.step += 1;
        let mut report = StepReport {
            optimizer: "optoprime".into(),
            step: self.state.step,
            ..Default::default()
        };
        let Some(p) = pending else {
            report.error =
                Some("nothing to apply: prepare found no feedback (or was not called)".into());
            return report;
        };
        let names: Vec<String> = p.summary.variables.iter().map(|v| v.name.clone()).collect();
        report.messages = p.messages;
        report.notes = p.notes;
        let problems = apply_reply(self.params.as_ref(), &p.summary, reply, &mut report);
        self.state.problems = problems;
        if self.options.line_guard && !report.terminated {
            self.guard_line(&p.summary, &mut report);
        }
        debug_assert_eq!(report.updates.len(), names.len());
        report
    }

    /// The line guard on this step's update of a lone numeric variable: a value the tries rule
    /// out is replaced (and the report says by what and why).
    fn guard_line(&self, summary: &Summary, report: &mut StepReport) {
        let ([var], Some(last)) = (summary.variables.as_slice(), self.state.line.last()) else {
            return;
        };
        if last.x != var.value.as_f64().unwrap_or(f64::NAN) {
            return; // the line was not recorded for this step
        }
        let integer = matches!(var.value, crate::graph::Value::Int(_));
        let Some(update) = report.updates.iter_mut().find(|u| u.name == var.name) else { return };
        // A reply with no usable value changes nothing: the model is told why and asked again
        // (the guard steps in for values the tries rule out, not for replies it cannot read).
        let suggested = match &update.outcome {
            Outcome::Updated { new } => new.clone(),
            Outcome::Unchanged => var.value.clone(),
            Outcome::Rejected { .. } | Outcome::Missing => return,
        };
        let Some(r) = line_guard::guard(&self.state.line, suggested.as_f64(), integer) else {
            return;
        };
        let used = if integer {
            crate::graph::Value::Int(r.value as i64)
        } else {
            crate::graph::Value::Float(r.value)
        };
        if let Err(e) = self.params.set_value(&var.name, used.clone()) {
            report.notes.push(format!("line guard: {} could not be set: {e}", used.py_str()));
            return;
        }
        report.notes.push(format!(
            "{}: {} replaced by {} ({})",
            var.name,
            suggested.py_str(),
            used.py_str(),
            r.reason
        ));
        update.outcome = Outcome::Updated { new: used.clone() };
        report.replaced =
            Some(super::Replaced { name: var.name.clone(), suggested, used, reason: r.reason });
    }

    pub(crate) fn pending(&self) -> Option<&Pending> {
        self.pending.as_ref()
    }
}

/// Every variable of the step, unchanged for want of a usable reply.
fn all_missing(summary: &Summary) -> Vec<update::ParamUpdate> {
    summary
        .variables
        .iter()
        .map(|v| update::ParamUpdate {
            name: v.name.clone(),
            old: v.value.clone(),
            outcome: Outcome::Missing,
        })
        .collect()
}

/// The lone numeric variable's value, output and feedback direction, when the step has exactly
/// one numeric variable and one output.
fn line_try(summary: &Summary) -> Option<LineTry> {
    let ([var], [out]) = (summary.variables.as_slice(), summary.outputs.as_slice()) else {
        return None;
    };
    let x = match var.value {
        crate::graph::Value::Int(i) => i as f64,
        crate::graph::Value::Float(f) => f,
        _ => return None,
    };
    Some(LineTry {
        x,
        output: out.value.as_f64().filter(|y| y.is_finite()),
        direction: direction_of(&summary.feedback_text()),
    })
}

/// Shared by OptoPrime, OPRO and TextGrad's update: fills `report` from one reply and applies the
/// accepted values. Returns the problems to show the LLM next time.
pub(crate) fn apply_reply(
    params: &dyn Parameters,
    summary: &Summary,
    reply: Result<Reply>,
    report: &mut StepReport,
) -> Vec<String> {
    let missing = || all_missing(summary);
    let names: Vec<String> = summary.variables.iter().map(|v| v.name.clone()).collect();
    let reply = match reply {
        Ok(r) => r,
        Err(e) => {
            report.error = Some(e.to_string());
            report.updates = missing();
            return Vec::new();
        }
    };
    report.add_reply_stats(&reply);
    report.reply = Some(reply.text.clone());
    if reply.finish == crate::llm::FinishReason::Length {
        report.notes.push("the reply hit the token cap".into());
    }
    let parsed = match parse_reply(&reply.text) {
        Ok(p) => p,
        Err(e) => {
            report.error = Some(e.to_string());
            report.updates = missing();
            return vec![format!(
                "it could not be read ({}). Reply with one JSON object with the key \"suggestion\".",
                preview(&reply.text, 60)
            )];
        }
    };
    report.reasoning = parsed.reasoning.clone();
    report.answer = parsed.answer.clone();
    report.notes.extend(parsed.notes.iter().cloned());
    if parsed.terminate {
        report.terminated = true;
        report.updates = missing();
        return Vec::new();
    }
    let mut plan = plan_updates(&summary.variables, &parsed);
    reply::mark_rejected(&mut plan.updates, &parsed, &names);
    for u in plan.updates.iter_mut() {
        if let Outcome::Updated { new } = &u.outcome {
            if let Err(e) = params.set_value(&u.name, new.clone()) {
                u.outcome = Outcome::Rejected { suggested: new.py_str(), reason: e.to_string() };
            }
        }
    }
    let mut problems = plan.problems(&names);
    let absent: Vec<&str> = plan
        .updates
        .iter()
        .filter(|u| u.outcome == Outcome::Missing)
        .map(|u| u.name.as_str())
        .collect();
    if !absent.is_empty() {
        problems.push(format!("it had no value for {}", absent.join(", ")));
    }
    report.updates = plan.updates;
    report.unknown_keys = plan.unknown_keys;
    problems
}

impl Optimizer for OptoPrime {
    fn name(&self) -> &'static str {
        "optoprime"
    }

    fn prepare(&mut self) -> Result<Vec<Request>> {
        Ok(self.prepare_one()?.into_iter().collect())
    }

    fn apply(&mut self, replies: Vec<Result<Reply>>) -> Phase {
        let mut it = replies.into_iter();
        match (it.next(), self.pending.is_some()) {
            (Some(r), _) => Phase::Done(Box::new(self.apply_one(r))),
            (None, false) => {
                self.state.step += 1;
                let summary = self.params.summarize();
                let updates = all_missing(&summary);
                Phase::Done(Box::new(StepReport {
                    optimizer: "optoprime".into(),
                    step: self.state.step,
                    updates,
                    notes: vec!["no feedback: nothing to do".into()],
                    ..Default::default()
                }))
            }
            (None, true) => Phase::Done(Box::new(
                self.apply_one(Err(Error::Reply("no reply was given for the request".into()))),
            )),
        }
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

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        self.state = serde_json::from_value(state)
            .map_err(|e| Error::invalid("optimizer state", e.to_string()))?;
        self.pending = None;
        Ok(())
    }

    fn propose(&self, reply: &Reply) -> Option<crate::optim::Proposal> {
        self.pending.as_ref().map(|p| crate::optim::proposal::propose_from_reply(&p.summary, reply))
    }

    fn conclude_search_step(&mut self, tried: Vec<MemoryEntry>) {
        for entry in tried {
            self.state.memory.remember(entry, self.options.memory_size, self.options.memory_order);
        }
        self.pending = None;
        self.state.problems.clear();
        self.state.step += 1;
    }

    fn remember_rejections(&mut self, rejected: Vec<String>) {
        self.state.problems = rejected
            .into_iter()
            .map(|r| format!("one of your last suggestions was rejected: {r}"))
            .collect();
    }
}
