//! `prompt`: the program that prompt tuning trains. For each question it asks the language
//! model (a traced [`LlmCall`]: the trainable `prompt` template + the question) and runs a
//! trainable, sandboxed Python function `extract_answer(reply)` on the reply; the result is the
//! answer, graded against the expected one. Both the template and the function are the
//! optimizer's to change. The model that answers is the same in-process model the optimizer uses.

use crate::call::{template_parameter, LlmCall};
use crate::code::{Sandbox, TracedCode};
use crate::error::{Error, Result};
use crate::graph::{Graph, Node, Value};
use crate::llm::{GenerationParams, Llm};
use crate::train::{DatasetProgram, Item, ItemRun};
use std::sync::Arc;

/// The starting template: the question with a plain request, as a user would first write it.
pub const INITIAL_TEMPLATE: &str = "Answer the question.\n\n{input}";

/// The starting answer extraction: the whole reply, trimmed.
pub const INITIAL_EXTRACTOR: &str = "def extract_answer(reply):\n    \"\"\"Returns the final answer from the model's reply.\"\"\"\n    return reply.strip()\n";

/// The optimizer's instruction, written for small models.
pub const OBJECTIVE: &str = "The program asks a language model each question with the template `prompt`, then `__code0` (Python) takes the model's reply and returns the final answer. Make the returned answers equal the expected answers. The feedback gives, for each question, the expected answer and what the program returned. You may change `prompt` (tell the model how to answer and in what exact form, e.g. to end with a line `Answer: ...`) and `__code0` (read the answer out of the reply, e.g. the text after the last `Answer:`). Keep {input} in the prompt. Do not answer the questions yourself, and write no question or answer into `prompt`: the program asks the model every question; your job is how it asks and how the answer is read.";

/// The prompt-tuning program.
pub struct PromptProgram {
    name: String,
    call: LlmCall,
    sandbox: Arc<dyn Sandbox>,
    initial_template: String,
}

impl PromptProgram {
    /// `llm` answers the questions (share the optimizer's); `call_params` are the answers'
    /// generation settings (their `max_tokens` bounds each reply).
    pub fn new(
        name: impl Into<String>,
        llm: Arc<dyn Llm>,
        call_params: GenerationParams,
        sandbox: Arc<dyn Sandbox>,
    ) -> Self {
        PromptProgram {
            name: name.into(),
            call: LlmCall::new(llm, call_params),
            sandbox,
            initial_template: INITIAL_TEMPLATE.into(),
        }
    }

    /// Starts from another template.
    pub fn with_template(mut self, template: impl Into<String>) -> Self {
        self.initial_template = template.into();
        self
    }
}

impl DatasetProgram for PromptProgram {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn objective(&self) -> String {
        OBJECTIVE.into()
    }

    fn parameters(&self, graph: &Graph) -> Vec<Node> {
        let template = template_parameter(graph, "prompt", &self.initial_template);
        // The initial extractor is a constant that parses: this cannot fail.
        let code = TracedCode::new(graph, INITIAL_EXTRACTOR)
            .map(|c| c.param().clone())
            .unwrap_or_else(|_| graph.param(Value::Code(INITIAL_EXTRACTOR.into())));
        vec![template, code]
    }

    fn run(&self, graph: &Graph, params: &[Node], items: &[Item]) -> Result<Vec<ItemRun>> {
        let [template, code] = params else {
            return Err(Error::Task {
                task: self.name.clone(),
                reason: format!(
                    "expected 2 parameters (prompt, extraction code), got {}",
                    params.len()
                ),
            });
        };
        let extract = TracedCode::bind(code, INITIAL_EXTRACTOR)?;
        let questions: Vec<Node> = items
            .iter()
            .enumerate()
            .map(|(i, item)| graph.value_named(&format!("question{i}"), item.input.as_str()))
            .collect();
        let replies = self.call.call_many(template, &questions)?;
        replies
            .into_iter()
            .map(|reply| {
                let mut notes: Vec<String> = reply.problem.iter().cloned().collect();
                let run = match extract.call(self.sandbox.as_ref(), &[&reply.node]) {
                    Ok(answer) => {
                        let value = answer.value();
                        if let Some(note) = not_text_note(&value) {
                            notes.push(note);
                        }
                        ItemRun {
                            answer: Some(value.py_str()),
                            output: answer,
                            notes,
                            generated_tokens: reply.generated_tokens,
                        }
                    }
                    Err(Error::Execution { node: Some(node), message, .. }) => {
                        notes.push(format!(
                            "extract_answer failed: {}",
                            node.error_text().unwrap_or(message)
                        ));
                        ItemRun {
                            output: node,
                            answer: None,
                            notes,
                            generated_tokens: reply.generated_tokens,
                        }
                    }
                    Err(e) => return Err(e),
                };
                Ok(run)
            })
            .collect()
    }
}

/// The answers are graded as text: an extractor that returns a list, a dict or None is told so
/// (its value is still graded as Python prints it, which is almost never the expected text).
fn not_text_note(value: &Value) -> Option<String> {
    match value {
        Value::Str(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_) => None,
        other => Some(format!(
            "extract_answer returned a {} ({}), but the answer is compared as text: return a str written like the expected answer.",
            other.type_name(),
            crate::util::preview(&other.py_repr(), 60)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::MontySandbox;
    use crate::llm::scripted::ScriptedLlm;
    use crate::propagate::summarize;

    #[test]
    fn a_reply_flows_through_the_extractor_and_feedback_reaches_both_parameters() {
        let llm = Arc::new(ScriptedLlm::from_fn(|r| {
            Ok(format!("Let me think. {} Answer: 4", r.messages[0].content.len()))
        }));
        let program = PromptProgram::new(
            "t",
            llm,
            GenerationParams::default(),
            Arc::new(MontySandbox::default()),
        );
        let g = Graph::new();
        let params = program.parameters(&g);
        let mark = g.mark();
        assert_eq!(params.iter().map(|p| p.name()).collect::<Vec<_>>(), vec!["prompt", "__code0"]);
        let item = Item { id: 0, input: "2+2".into(), expected: "4".into(), split: None };
        let runs = program.run(&g, &params, std::slice::from_ref(&item)).unwrap();
        assert!(runs[0].answer.as_deref().unwrap().ends_with("Answer: 4"));
        // A better extractor (as the optimizer would write it) reads the answer out.
        params[1].set_value(Value::Code(
            "def extract_answer(reply):\n    return reply.split('Answer:')[-1].strip()\n".into(),
        ));
        g.rewind(mark);
        let runs = program.run(&g, &params, std::slice::from_ref(&item)).unwrap();
        assert_eq!(runs[0].answer.as_deref(), Some("4"));
        runs[0].output.backward("Correct.").unwrap();
        let s = summarize(&params);
        assert_eq!(
            s.code,
            vec![
                "call_llm0 = call_llm(template=prompt, input=question0)",
                "eval0 = eval(reply=call_llm0, __code=__code0)"
            ]
        );
    }

    #[test]
    fn an_extractor_that_returns_a_list_is_told_to_return_text() {
        let llm = Arc::new(ScriptedLlm::from_fn(|_| Ok("b a".into())));
        let program = PromptProgram::new(
            "t",
            llm,
            GenerationParams::default(),
            Arc::new(MontySandbox::default()),
        );
        let g = Graph::new();
        let params = program.parameters(&g);
        params[1].set_value(Value::Code(
            "def extract_answer(reply):\n    return sorted(reply.split())\n".into(),
        ));
        let item = Item { id: 0, input: "q".into(), expected: "a b".into(), split: None };
        let runs = program.run(&g, &params, std::slice::from_ref(&item)).unwrap();
        assert_eq!(runs[0].answer.as_deref(), Some("['a', 'b']"));
        assert!(
            runs[0].notes.iter().any(|n| n.contains("returned a list") && n.contains("str")),
            "{:?}",
            runs[0].notes
        );
    }

    #[test]
    fn an_extractor_that_raises_is_a_wrong_answer_with_its_traceback() {
        let llm = Arc::new(ScriptedLlm::from_fn(|_| Ok("no answer here".into())));
        let program = PromptProgram::new(
            "t",
            llm,
            GenerationParams::default(),
            Arc::new(MontySandbox::default()),
        );
        let g = Graph::new();
        let params = program.parameters(&g);
        params[1].set_value(Value::Code(
            "def extract_answer(reply):\n    return reply.split('Answer:')[1]\n".into(),
        ));
        let runs = program
            .run(
                &g,
                &params,
                &[Item { id: 0, input: "q".into(), expected: "a".into(), split: None }],
            )
            .unwrap();
        assert_eq!(runs[0].answer, None);
        assert!(runs[0].output.is_exception());
        assert!(runs[0].notes[0].contains("IndexError"), "{:?}", runs[0].notes);
    }
}
