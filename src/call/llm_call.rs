//! `LlmCall`: asks an [`Llm`] with a prompt built from graph values (a template and an input)
//! and records the reply as a `call_llm` node whose inputs are the template and the input.
//! [`LlmCall::call_many`] asks for several inputs at once from separate threads, so a local
//! engine decodes them in one batch (and with anything else running), and records the replies in
//! input order, so node names do not depend on which reply came first.
//!
//! A reply cut at `max_tokens`, an empty reply, or a failed request is not an error of the
//! program: the node holds what text there is, and [`CallReply::problem`] says what went wrong,
//! for the caller to put in the feedback.
//!
//! Greedy calls (temperature 0) are remembered by (template, input): greedy decoding gives the
//! same reply to the same prompt, and a dataset run asks the same prompt again and again — the
//! validation split after an update that changed only the extraction code, the test split when
//! the kept template is the starting one, search candidates that share a template.

use crate::error::Result;
use crate::graph::{FnSpec, Graph, Node, Value};
use crate::llm::{FinishReason, GenerationParams, Llm, Message, Request};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Greedy replies remembered at most; past it the memory starts again (a bound, not a policy).
const MEMO_CAPACITY: usize = 4096;

/// Where the item's input goes in a template.
pub const INPUT_SLOT: &str = "{input}";

/// What a traced call gave.
#[derive(Clone, Debug)]
pub struct CallReply {
    /// The `call_llm` node; its value is the reply text.
    pub node: Node,
    /// Why the reply is not a whole answer (cut off, empty, failed), for the feedback.
    pub problem: Option<String>,
    /// Tokens the model generated for this call (0 when the reply was remembered).
    pub generated_tokens: usize,
}

/// A greedy reply as remembered: its text and what was wrong with it.
#[derive(Clone)]
struct Remembered {
    text: String,
    problem: Option<String>,
}

/// The messages a template and an input make: with `{input}` in the template, one user message
/// with the input put there; without it, the template is the system message and the input the
/// user message (so a template that lost its slot still shows the model the question).
pub fn render_prompt(template: &str, input: &str) -> Vec<Message> {
    if template.contains(INPUT_SLOT) {
        vec![Message::user(template.replace(INPUT_SLOT, input))]
    } else if template.trim().is_empty() {
        vec![Message::user(input)]
    } else {
        vec![Message::system(template), Message::user(input)]
    }
}

/// A trainable prompt template parameter named `name`, with the constraint that explains the
/// `{input}` slot to the optimizer. When `initial` has the slot, every update must keep it:
/// small models otherwise paste one training question over it, and every later question is
/// asked under the wrong one.
pub fn template_parameter(graph: &Graph, name: &str, initial: &str) -> Node {
    let param = graph.param_named(name, initial);
    let constraint = if initial.contains(INPUT_SLOT) {
        format!("The prompt sent to the language model for each question. It must contain {INPUT_SLOT} where the question goes (the program puts each question there). Do not write a question into it. Keep it short and plain.")
    } else {
        format!("The prompt sent to the language model for each question. Write {INPUT_SLOT} where the question goes; without {INPUT_SLOT}, the question is sent after this text. Keep it short and plain.")
    };
    let param = if initial.contains(INPUT_SLOT) { param.must_contain(INPUT_SLOT) } else { param };
    param
        .constraint_text(constraint)
        .described("The prompt template of the language-model call; trainable.")
}

/// A traced call to one model with fixed generation settings.
pub struct LlmCall {
    llm: Arc<dyn Llm>,
    params: GenerationParams,
    spec: FnSpec,
    /// Greedy replies by (template, input); failed calls are not remembered.
    memo: Mutex<HashMap<(String, String), Remembered>>,
}

impl LlmCall {
    pub fn new(llm: Arc<dyn Llm>, params: GenerationParams) -> Self {
        let spec = FnSpec::new(
            "call_llm",
            format!(
                "Asks the language model and returns its reply text. The prompt is `template` with {INPUT_SLOT} replaced by `input` (a template without {INPUT_SLOT} is sent first, then `input`). The reply is cut after {} tokens.",
                params.max_tokens
            ),
            &["template", "input"],
        )
        .with_source(format!(
            "def call_llm(template, input):\n    prompt = template.replace(\"{INPUT_SLOT}\", input) if \"{INPUT_SLOT}\" in template else template + \"\\n\\n\" + input\n    return llm(prompt, max_tokens={})\n",
            params.max_tokens
        ));
        LlmCall { llm, params, spec, memo: Mutex::new(HashMap::new()) }
    }

    pub fn llm(&self) -> &Arc<dyn Llm> {
        &self.llm
    }

    pub fn params(&self) -> &GenerationParams {
        &self.params
    }

    /// One call, blocking until the reply is in.
    pub fn call(&self, template: &Node, input: &Node) -> Result<CallReply> {
        self.call_many(template, std::slice::from_ref(input)).map(|mut v| v.remove(0))
    }

    /// One call per input, made concurrently from separate threads; replies recorded in input
    /// order.
    pub fn call_many(&self, template: &Node, inputs: &[Node]) -> Result<Vec<CallReply>> {
        let template_text = text_of(&template.value());
        let keys: Vec<(String, String)> =
            inputs.iter().map(|i| (template_text.clone(), text_of(&i.value()))).collect();
        let greedy = self.params.temperature <= 0.0;
        let remembered: Vec<Option<Remembered>> = {
            let memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
            keys.iter().map(|k| if greedy { memo.get(k).cloned() } else { None }).collect()
        };
        let asked: Vec<(usize, Request)> = keys
            .iter()
            .enumerate()
            .filter(|(i, _)| remembered[*i].is_none())
            .map(|(i, (t, input))| {
                (i, Request::new(render_prompt(t, input)).with_params(self.params.clone()))
            })
            .collect();
        let answers: Vec<Option<Result<crate::llm::Reply>>> = std::thread::scope(|s| {
            let handles: Vec<_> = asked
                .iter()
                .map(|(_, r)| s.spawn(move || self.llm.generate(std::slice::from_ref(r)).pop()))
                .collect();
            handles.into_iter().map(|h| h.join().ok().flatten()).collect()
        });
        let mut fresh: Vec<Option<(Remembered, usize)>> = vec![None; inputs.len()];
        for ((i, _), answer) in asked.iter().zip(answers) {
            let (text, problem, tokens, keep) = match answer {
                Some(Ok(r)) if r.finish == FinishReason::Length => {
                    let why = format!(
                        "the model's reply was cut off at {} tokens (the limit), before it finished",
                        self.params.max_tokens
                    );
                    (r.text, Some(why), r.usage.generated_tokens, true)
                }
                Some(Ok(r)) if r.text.trim().is_empty() => {
                    let why = "the model's reply was empty".to_string();
                    (r.text, Some(why), r.usage.generated_tokens, true)
                }
                Some(Ok(r)) => (r.text, None, r.usage.generated_tokens, true),
                Some(Err(e)) => {
                    (String::new(), Some(format!("the model call failed: {e}")), 0, false)
                }
                None => {
                    let why = "the model call failed: no reply came back".to_string();
                    (String::new(), Some(why), 0, false)
                }
            };
            let reply = Remembered { text, problem };
            if greedy && keep {
                let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
                if memo.len() >= MEMO_CAPACITY {
                    memo.clear();
                }
                memo.insert(keys[*i].clone(), reply.clone());
            }
            fresh[*i] = Some((reply, tokens));
        }
        let graph = template.graph().clone();
        inputs
            .iter()
            .zip(remembered.into_iter().map(|r| r.map(|r| (r, 0))).zip(fresh))
            .map(|(input, (old, new))| {
                let (reply, generated_tokens) = old.or(new).unwrap_or_else(|| {
                    let why = "the model call failed: no reply came back".to_string();
                    (Remembered { text: String::new(), problem: Some(why) }, 0)
                });
                let text = reply.text;
                let node =
                    self.spec.call_in(&graph, &[template, input], |_| Ok(Value::Str(text)))?;
                Ok(CallReply { node, problem: reply.problem, generated_tokens })
            })
            .collect()
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Str(s) | Value::Code(s) => s.clone(),
        other => other.py_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::scripted::ScriptedLlm;
    use crate::propagate::summarize;

    #[test]
    fn a_template_with_or_without_the_slot_makes_the_prompt() {
        assert_eq!(render_prompt("Q: {input}\nA:", "2+2"), vec![Message::user("Q: 2+2\nA:")]);
        assert_eq!(
            render_prompt("Answer briefly.", "2+2"),
            vec![Message::system("Answer briefly."), Message::user("2+2")]
        );
        assert_eq!(render_prompt("  ", "2+2"), vec![Message::user("2+2")]);
    }

    #[test]
    fn feedback_on_the_reply_reaches_the_template_and_the_code_shows_the_call() {
        let llm = Arc::new(ScriptedLlm::from_fn(|r| {
            Ok(format!("echo: {}", r.messages.last().unwrap().content))
        }));
        let g = Graph::new();
        let template = template_parameter(&g, "prompt", "Answer: {input}");
        let inputs = vec![g.value("2+2"), g.value("3+3")];
        let call =
            LlmCall::new(llm.clone(), GenerationParams { max_tokens: 20, ..Default::default() });
        let replies = call.call_many(&template, &inputs).unwrap();
        assert_eq!(replies[0].node.value(), Value::Str("echo: Answer: 2+2".into()));
        assert_eq!(replies[1].node.value(), Value::Str("echo: Answer: 3+3".into()));
        assert!(replies.iter().all(|r| r.problem.is_none()));
        assert_eq!(
            llm.batch_sizes(),
            vec![1, 1],
            "each input is its own request, from its own thread"
        );
        replies[0].node.backward("wrong: expected 4").unwrap();
        replies[1].node.backward("right").unwrap();
        let s = summarize(std::slice::from_ref(&template));
        assert_eq!(
            s.code,
            vec![
                "call_llm0 = call_llm(template=prompt, input=str0)",
                "call_llm1 = call_llm(template=prompt, input=str1)"
            ]
        );
        assert!(s.documentation["call_llm"].contains("{input}"), "{:?}", s.documentation);
        assert_eq!(s.feedback.len(), 2);
        assert!(s.variables[0].constraint.as_deref().unwrap().contains("{input}"));
        assert_eq!(s.variables[0].must_contain, vec!["{input}".to_string()]);
    }

    #[test]
    fn an_empty_or_failed_reply_is_an_ordinary_output_with_the_reason() {
        let llm = Arc::new(ScriptedLlm::new(["  "]));
        let g = Graph::new();
        let template = template_parameter(&g, "prompt", "Be brief.");
        let call = LlmCall::new(llm, GenerationParams::default());
        let empty = call.call(&template, &g.value("q")).unwrap();
        assert_eq!(empty.node.value(), Value::Str("  ".into()));
        assert_eq!(empty.problem.as_deref(), Some("the model's reply was empty"));
        // The queue is empty now: the request fails, the program goes on with an empty reply.
        let failed = call.call(&template, &g.value("another q")).unwrap();
        assert!(!failed.node.is_exception());
        assert_eq!(failed.node.value(), Value::Str(String::new()));
        assert!(
            failed.problem.as_deref().unwrap().starts_with("the model call failed"),
            "{:?}",
            failed.problem
        );
    }

    #[test]
    fn a_greedy_prompt_asked_again_is_answered_from_memory_and_a_sampled_one_is_not() {
        let llm = Arc::new(ScriptedLlm::from_fn(|r| {
            Ok(format!("reply to {}", r.messages.last().unwrap().content))
        }));
        let g = Graph::new();
        let template = template_parameter(&g, "prompt", "Q: {input}");
        let call = LlmCall::new(llm.clone(), GenerationParams::default());
        let first = call.call_many(&template, &[g.value("a"), g.value("b")]).unwrap();
        let again = call.call_many(&template, &[g.value("b"), g.value("c")]).unwrap();
        assert_eq!(llm.requests().len(), 3, "b was asked once");
        assert_eq!(again[0].node.value(), first[1].node.value());
        assert_eq!(again[0].generated_tokens, 0);
        assert_eq!(again[1].node.value(), Value::Str("reply to Q: c".into()));
        // Another template is another prompt.
        template.set_value(Value::Str("Question: {input}".into()));
        call.call(&template, &g.value("a")).unwrap();
        assert_eq!(llm.requests().len(), 4);
        // Sampling asks every time.
        let sampled =
            LlmCall::new(llm.clone(), GenerationParams { temperature: 0.7, ..Default::default() });
        sampled.call(&template, &g.value("a")).unwrap();
        sampled.call(&template, &g.value("a")).unwrap();
        assert_eq!(llm.requests().len(), 6);
    }
}
