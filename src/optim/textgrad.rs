//! TextGrad over the batch-first trait: a textual gradient per edge, from the outputs back to the
//! parameters, a reduction where a node received several, then one update per parameter.
//!
//! The graph is read from the [`Summary`] (`#Code` lines give the edges), so TextGrad works on
//! whatever the propagator produced. Each round batches every request that is ready: all edges of
//! the nodes whose consumers are done, all reductions, then all updates. Edges into parts of the
//! graph that lead to no parameter are skipped (the reference pays an LLM call for each of them).
//! Updates use the same JSON reply, schema, parser and coercion as OptoPrime.

use super::optoprime::apply_reply;
use super::optoprime::problem::{cut, repr_node_constraint, repr_node_value};
use super::optoprime::prompt::{format_line, key_list};
use super::optoprime::update::{Outcome, ParamUpdate};
use super::{Optimizer, Parameters, Phase, StepReport};
use crate::error::{Error, Result};
use crate::llm::{GenerationParams, Llm, Message, Reply, Request};
use crate::optim::reply_schema::{suggestion_schema, ParamType, SuggestionSchemaOptions};
use crate::propagate::{NodeView, Summary};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Settings of [`TextGrad`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextGradOptions {
    pub objective: String,
    /// Settings of the gradient and reduction requests (free text).
    pub gradient_generation: GenerationParams,
    /// Settings of the update requests (JSON with the parameter's schema).
    pub update_generation: GenerationParams,
    pub value_char_limit: usize,
    pub use_schema: bool,
}

impl Default for TextGradOptions {
    fn default() -> Self {
        TextGradOptions {
            objective: "Improve the variable so that the program's output gets better feedback."
                .into(),
            gradient_generation: GenerationParams {
                max_tokens: 150,
                ..GenerationParams::default()
            },
            update_generation: GenerationParams { max_tokens: 400, ..GenerationParams::default() },
            value_char_limit: 500,
            use_schema: true,
        }
    }
}

#[derive(Clone, Debug)]
enum Job {
    Edge { child: String, parent: String },
    Reduce { node: String },
    Update { param: String },
}

#[derive(Clone, Debug, PartialEq)]
enum Stage {
    Backward,
    Reduce,
    Update,
}

struct Op {
    op: String,
    args: Vec<(String, String)>,
    line: String,
}

struct Run {
    summary: Summary,
    ops: HashMap<String, Op>,
    consumers: HashMap<String, Vec<String>>,
    relevant: HashSet<String>,
    will_get: HashSet<String>,
    grads: HashMap<String, Vec<String>>,
    reduced: HashMap<String, String>,
    expanded: HashSet<String>,
    stage: Stage,
    jobs: Vec<Job>,
    report: StepReport,
}

/// The TextGrad optimizer.
pub struct TextGrad {
    params: Box<dyn Parameters>,
    llm: Arc<dyn Llm>,
    pub options: TextGradOptions,
    step: u64,
    run: Option<Run>,
}

fn grad_text(
    grads: &HashMap<String, Vec<String>>,
    reduced: &HashMap<String, String>,
    node: &str,
) -> Option<String> {
    if let Some(r) = reduced.get(node) {
        return Some(r.clone());
    }
    let g = grads.get(node)?;
    match g.len() {
        0 => None,
        1 => Some(g[0].clone()),
        _ => Some(g.join("\n")),
    }
}

/// `name = op(k=parent, ...)` → (name, op, args).
fn parse_code_line(line: &str) -> Option<(String, Op)> {
    let (name, call) = line.split_once(" = ")?;
    let open = call.find('(')?;
    let close = call.rfind(')')?;
    let op = call[..open].trim().to_string();
    let inner = &call[open + 1..close];
    let args = inner
        .split(", ")
        .filter_map(|a| {
            a.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    Some((name.trim().to_string(), Op { op, args, line: line.to_string() }))
}

impl TextGrad {
    pub fn new(params: impl Parameters + 'static, llm: Arc<dyn Llm>) -> Self {
        Self::with_options(params, llm, TextGradOptions::default())
    }

    pub fn with_options(
        params: impl Parameters + 'static,
        llm: Arc<dyn Llm>,
        options: TextGradOptions,
    ) -> Self {
        TextGrad { params: Box::new(params), llm, options, step: 0, run: None }
    }

    fn start(&self, summary: Summary) -> Run {
        let mut ops = HashMap::new();
        let mut consumers: HashMap<String, Vec<String>> = HashMap::new();
        for line in &summary.code {
            if let Some((name, op)) = parse_code_line(line) {
                for (_, p) in &op.args {
                    let c = consumers.entry(p.clone()).or_default();
                    if !c.contains(&name) {
                        c.push(name.clone());
                    }
                }
                ops.insert(name, op);
            }
        }
        // nodes from which a parameter can be reached going to parents
        let mut relevant: HashSet<String> =
            summary.variables.iter().map(|v| v.name.clone()).collect();
        for line in &summary.code {
            if let Some((name, op)) = parse_code_line(line) {
                if op.args.iter().any(|(_, p)| relevant.contains(p)) {
                    relevant.insert(name);
                }
            }
        }
        // nodes that will receive a gradient: outputs and their relevant ancestors
        let mut will_get: HashSet<String> =
            summary.outputs.iter().map(|o| o.name.clone()).collect();
        for line in summary.code.iter().rev() {
            if let Some((name, op)) = parse_code_line(line) {
                if will_get.contains(&name) {
                    for (_, p) in op.args {
                        if relevant.contains(&p) {
                            will_get.insert(p);
                        }
                    }
                }
            }
        }
        let mut grads: HashMap<String, Vec<String>> = HashMap::new();
        for o in &summary.outputs {
            let fb: Vec<String> = summary
                .feedback
                .iter()
                .filter(|f| f.output == o.name)
                .map(|f| f.feedback.clone())
                .collect();
            let fb = if fb.is_empty() { vec![summary.feedback_text()] } else { fb };
            grads.entry(o.name.clone()).or_default().extend(fb);
        }
        // Outputs that are parameters themselves (no ops) get the feedback directly.
        if summary.outputs.is_empty() {
            for v in &summary.variables {
                grads.entry(v.name.clone()).or_default().push(summary.feedback_text());
            }
        }
        let report =
            StepReport { optimizer: "textgrad".into(), step: self.step + 1, ..Default::default() };
        Run {
            summary,
            ops,
            consumers,
            relevant,
            will_get,
            grads,
            reduced: HashMap::new(),
            expanded: HashSet::new(),
            stage: Stage::Backward,
            jobs: Vec::new(),
            report,
        }
    }

    fn view<'a>(s: &'a Summary, name: &str) -> Option<&'a NodeView> {
        s.variables
            .iter()
            .chain(&s.inputs)
            .chain(&s.others)
            .chain(&s.outputs)
            .find(|v| v.name == name)
    }

    fn gradient_of(run: &Run, node: &str) -> Option<String> {
        grad_text(&run.grads, &run.reduced, node)
    }

    fn edge_request(&self, run: &Run, child: &str, parent: &str) -> Request {
        let s = &run.summary;
        let lim = Some(self.options.value_char_limit);
        let op = &run.ops[child];
        let doc = s.documentation.get(&op.op).map(|d| d.trim().to_string()).unwrap_or_default();
        let key =
            op.args.iter().find(|(_, p)| p == parent).map(|(k, _)| k.clone()).unwrap_or_default();
        let pv = Self::view(s, parent)
            .map(|v| repr_node_value(v, lim))
            .unwrap_or_else(|| parent.to_string());
        let cv = Self::view(s, child)
            .map(|v| repr_node_value(v, lim))
            .unwrap_or_else(|| child.to_string());
        let grad = Self::gradient_of(run, child).unwrap_or_default();
        let system = "You give feedback on one step of a program. In one to three sentences, say how the named input \
                      should change so that the feedback on the step's output is addressed. Be concrete; do not repeat the feedback.";
        let user = format!(
            "Step: {}\nWhat the operation does: {}\nInput `{key}`: {pv}\nOutput: {cv}\nFeedback on the output: {}\n\nHow should {parent} change?",
            op.line,
            if doc.is_empty() { "(no description)".into() } else { doc },
            cut(&grad, self.options.value_char_limit * 2)
        );
        Request::new(vec![Message::system(system), Message::user(user)])
            .with_params(self.options.gradient_generation.clone())
    }

    fn reduce_request(&self, run: &Run, node: &str) -> Request {
        let items: Vec<String> = run
            .grads
            .get(node)
            .map(|g| {
                g.iter().enumerate().map(|(i, t)| format!("{}. {}", i + 1, t.trim())).collect()
            })
            .unwrap_or_default();
        let user = format!(
            "Pieces of feedback on {node}:\n{}\n\nCombine them into one short paragraph.",
            items.join("\n")
        );
        Request::new(vec![
            Message::system("You merge pieces of feedback into one short paragraph that keeps every concrete request."),
            Message::user(user),
        ])
        .with_params(self.options.gradient_generation.clone())
    }

    fn update_messages(&self, run: &Run, param: &str) -> (Vec<Message>, Summary) {
        let s = &run.summary;
        let v = Self::view(s, param).cloned().unwrap_or(NodeView {
            name: param.into(),
            value: Default::default(),
            constraint: None,
            must_contain: Vec::new(),
            description: String::new(),
        });
        let one = std::slice::from_ref(&v);
        let system = format!(
            "You improve one variable using feedback.\nReply with one JSON object and nothing else:\n{}\nThe key of \"suggestion\" is exactly {}.",
            format_line(one, false, true),
            key_list(one)
        );
        let mut user = format!(
            "Objective: {}\nVariable: {}\n",
            self.options.objective.trim(),
            repr_node_value(&v, None)
        );
        if let Some(c) = repr_node_constraint(&v) {
            user.push_str(&format!("Constraint: {c}\n"));
        }
        user.push_str(&format!(
            "Feedback for {param}: {}\n\nNow reply with the JSON object. The key of \"suggestion\" is \"{param}\".",
            Self::gradient_of(run, param).unwrap_or_default()
        ));
        let mut sub = Summary { variables: vec![v.clone()], ..Default::default() };
        sub.feedback = s.feedback.clone();
        (vec![Message::system(system), Message::user(user)], sub)
    }

    /// The jobs of the next round (advancing stages until some job exists or the step is over).
    fn next_jobs(&self, run: &mut Run) -> Vec<Job> {
        let mut force = false;
        loop {
            match run.stage {
                Stage::Backward => {
                    let mut jobs = Vec::new();
                    let ready: Vec<String> = run
                        .ops
                        .keys()
                        .filter(|n| {
                            !run.expanded.contains(*n)
                                && run.grads.get(*n).is_some_and(|g| !g.is_empty())
                        })
                        .filter(|n| {
                            force
                                || run.consumers.get(*n).is_none_or(|cs| {
                                    cs.iter().all(|c| {
                                        run.expanded.contains(c) || !run.will_get.contains(c)
                                    })
                                })
                        })
                        .cloned()
                        .collect();
                    let mut ready = ready;
                    ready.sort();
                    for n in ready {
                        let many = run.grads[&n].len() > 1;
                        if many && !run.reduced.contains_key(&n) {
                            jobs.push(Job::Reduce { node: n });
                            continue;
                        }
                        let mut seen = HashSet::new();
                        for (_, p) in run.ops[&n].args.clone() {
                            if run.relevant.contains(&p) && seen.insert(p.clone()) {
                                jobs.push(Job::Edge { child: n.clone(), parent: p });
                            }
                        }
                        run.expanded.insert(n);
                    }
                    if jobs.is_empty() {
                        // nodes that can never become ready (no gradient reached them) are done
                        let stuck = run.ops.keys().any(|n| {
                            !run.expanded.contains(n)
                                && run.grads.get(n).is_some_and(|g| !g.is_empty())
                        });
                        if stuck && !force {
                            force = true;
                            continue;
                        }
                        run.stage = Stage::Reduce;
                        continue;
                    }
                    return jobs;
                }
                Stage::Reduce => {
                    run.stage = Stage::Update;
                    let jobs: Vec<Job> = run
                        .summary
                        .variables
                        .iter()
                        .filter(|v| run.grads.get(&v.name).is_some_and(|g| g.len() > 1))
                        .map(|v| Job::Reduce { node: v.name.clone() })
                        .collect();
                    if !jobs.is_empty() {
                        return jobs;
                    }
                }
                Stage::Update => {
                    return run
                        .summary
                        .variables
                        .iter()
                        .filter(|v| Self::gradient_of(run, &v.name).is_some())
                        .map(|v| Job::Update { param: v.name.clone() })
                        .collect();
                }
            }
        }
    }
}

impl Optimizer for TextGrad {
    fn name(&self) -> &'static str {
        "textgrad"
    }

    fn prepare(&mut self) -> Result<Vec<Request>> {
        let mut run = match self.run.take() {
            Some(r) => r,
            None => {
                let summary = self.params.summarize();
                if summary.variables.is_empty() || summary.feedback.is_empty() {
                    return Ok(Vec::new());
                }
                self.start(summary)
            }
        };
        let jobs = self.next_jobs(&mut run);
        let mut reqs = Vec::with_capacity(jobs.len());
        for j in &jobs {
            reqs.push(match j {
                Job::Edge { child, parent } => self.edge_request(&run, child, parent),
                Job::Reduce { node } => self.reduce_request(&run, node),
                Job::Update { param } => {
                    let (msgs, sub) = self.update_messages(&run, param);
                    let mut r =
                        Request::new(msgs).with_params(self.options.update_generation.clone());
                    if self.options.use_schema {
                        r = r.with_schema(suggestion_schema(
                            sub.variables
                                .iter()
                                .map(|v| (v.name.as_str(), ParamType::of(&v.value))),
                            &SuggestionSchemaOptions::default(),
                        ));
                    }
                    r
                }
            });
        }
        run.jobs = jobs;
        self.run = Some(run);
        Ok(reqs)
    }

    fn apply(&mut self, replies: Vec<Result<Reply>>) -> Phase {
        let Some(mut run) = self.run.take() else {
            self.step += 1;
            let s = self.params.summarize();
            return Phase::Done(Box::new(StepReport {
                optimizer: "textgrad".into(),
                step: self.step,
                updates: s
                    .variables
                    .iter()
                    .map(|v| ParamUpdate {
                        name: v.name.clone(),
                        old: v.value.clone(),
                        outcome: Outcome::Missing,
                    })
                    .collect(),
                notes: vec!["no feedback: nothing to do".into()],
                ..Default::default()
            }));
        };
        let jobs = std::mem::take(&mut run.jobs);
        let mut replies = replies.into_iter();
        let updating = jobs.iter().any(|j| matches!(j, Job::Update { .. }))
            || (jobs.is_empty() && run.stage == Stage::Update);
        let mut updates: HashMap<String, ParamUpdate> = HashMap::new();
        for job in jobs {
            let reply = replies
                .next()
                .unwrap_or_else(|| Err(Error::Reply("no reply was given for the request".into())));
            if let Ok(r) = &reply {
                if !updating {
                    run.report.add_reply_stats(r);
                }
            }
            match job {
                Job::Edge { child, parent } => match reply {
                    Ok(r) if !r.text.trim().is_empty() => {
                        run.grads.entry(parent).or_default().push(r.text.trim().to_string())
                    }
                    Ok(_) => {
                        run.report.notes.push(format!("empty gradient for {parent} from {child}"))
                    }
                    Err(e) => run
                        .report
                        .notes
                        .push(format!("gradient for {parent} from {child} failed: {e}")),
                },
                Job::Reduce { node } => {
                    let text = match reply {
                        Ok(r) if !r.text.trim().is_empty() => r.text.trim().to_string(),
                        other => {
                            if let Err(e) = other {
                                run.report.notes.push(format!(
                                    "reduction for {node} failed ({e}); the pieces are joined"
                                ));
                            }
                            run.grads.get(&node).map(|g| g.join("\n")).unwrap_or_default()
                        }
                    };
                    run.reduced.insert(node, text);
                }
                Job::Update { param } => {
                    let (msgs, sub) = self.update_messages(&run, &param);
                    let mut part = StepReport::default();
                    apply_reply(self.params.as_ref(), &sub, reply, &mut part);
                    if run.report.messages.is_empty() {
                        run.report.messages = msgs;
                        run.report.reply = part.reply.clone();
                        run.report.reasoning = part.reasoning.clone();
                    }
                    run.report.usage.prompt_tokens += part.usage.prompt_tokens;
                    run.report.usage.generated_tokens += part.usage.generated_tokens;
                    run.report.usage.cached_prompt_tokens += part.usage.cached_prompt_tokens;
                    run.report.timings.total_s += part.timings.total_s;
                    run.report.llm_calls += part.llm_calls;
                    if let Some(e) = part.error {
                        run.report.notes.push(format!("update of {param}: {e}"));
                    }
                    run.report.notes.extend(part.notes);
                    run.report.unknown_keys.extend(part.unknown_keys);
                    if let Some(u) = part.updates.into_iter().next() {
                        updates.insert(param, u);
                    }
                }
            }
        }
        if !updating {
            self.run = Some(run);
            return Phase::More;
        }
        self.step += 1;
        let mut report = run.report;
        report.step = self.step;
        for v in &run.summary.variables {
            if let Some(g) = grad_text(&run.grads, &run.reduced, &v.name) {
                report.notes.push(format!("gradient for {}: {}", v.name, cut(&g, 300)));
            }
        }
        report.updates = run
            .summary
            .variables
            .iter()
            .map(|v| {
                updates.remove(&v.name).unwrap_or(ParamUpdate {
                    name: v.name.clone(),
                    old: v.value.clone(),
                    outcome: Outcome::Missing,
                })
            })
            .collect();
        Phase::Done(Box::new(report))
    }

    fn llm(&self) -> &Arc<dyn Llm> {
        &self.llm
    }
    fn parameters(&self) -> &dyn Parameters {
        self.params.as_ref()
    }
    fn state(&self) -> serde_json::Value {
        serde_json::json!({"step": self.step})
    }
    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        self.step = state
            .get("step")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| Error::invalid("optimizer state", "missing `step`"))?;
        self.run = None;
        Ok(())
    }
}
