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
use indexmap::IndexMap;
use std::sync::Arc;

/// The template parameter's name (what the optimizer sees).
const TEMPLATE_NAME: &str = "prompt";
/// The extraction code's name: the first code parameter of a graph.
const EXTRACTOR_NAME: &str = "__code0";

/// The starting template: the question with a plain request, as a user would first write it.
pub const INITIAL_TEMPLATE: &str = "Answer the question.\n\n{input}";

/// The starting answer extraction: the whole reply, trimmed.
pub const INITIAL_EXTRACTOR: &str = "def extract_answer(reply):\n    \"\"\"Returns the final answer from the model's reply.\"\"\"\n    return reply.strip()\n";

/// The optimizer's instruction, written for small models.
pub const OBJECTIVE: &str = "The program asks a language model each question with the template `prompt`, then `__code0` (Python) takes the model's reply and returns the final answer. Make the returned answers equal the expected answers. The feedback gives, for each question, the expected answer and what the program returned. You may change `prompt` (tell the model how to answer and in what exact form, e.g. to end with a line `Answer: ...`) and `__code0` (read the answer out of the reply, e.g. the text after the last `Answer:`). Keep {input} in the prompt. Do not answer the questions yourself, and write no question or answer into `prompt`: the program asks the model every question; your job is how it asks and how the answer is read.";

/// The program's own edit of the template: ask for the answer alone on a last `Answer:` line.
pub const ANSWER_LINE_REQUEST: &str =
    "\n\nWork it out briefly, then give the final answer alone on the last line, as: Answer: <answer>";

/// The program's own edit of the extraction: the text after the last `Answer:` (markdown stars
/// and a final period dropped), else the last non-empty line.
pub const ANSWER_LINE_EXTRACTOR: &str = "def extract_answer(reply):\n    \"\"\"Returns the final answer from the model's reply.\"\"\"\n    text = reply.strip()\n    if 'Answer:' in text:\n        text = text.split('Answer:')[-1].strip()\n        lines = [l.strip() for l in text.splitlines() if l.strip()]\n        text = lines[0] if lines else ''\n    else:\n        lines = [l.strip() for l in text.splitlines() if l.strip()]\n        text = lines[-1] if lines else ''\n    return text.rstrip('.').strip('*').strip().rstrip('.')\n";

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
        let template = template_parameter(graph, TEMPLATE_NAME, &self.initial_template);
        // The initial extractor is a constant that parses: this cannot fail.
        let code = TracedCode::new(graph, INITIAL_EXTRACTOR)
            .map(|c| c.param().clone())
            .unwrap_or_else(|_| graph.param(Value::Code(INITIAL_EXTRACTOR.into())));
        vec![template, code]
    }

    /// Answer-format edits, the usual first fix of a prompt: read the text after the last
    /// `Answer:` (with the template asking for that line where it does not yet), and the
    /// template's request alone when the extraction already reads it.
    fn proposals(
        &self,
        current: &IndexMap<String, Value>,
    ) -> Vec<(String, IndexMap<String, Value>)> {
        let (Some(Value::Str(template)), Some(Value::Code(extractor))) =
            (current.get(TEMPLATE_NAME), current.get(EXTRACTOR_NAME))
        else {
            return Vec::new();
        };
        let with = |t: Option<String>, e: Option<&str>| {
            let mut v = current.clone();
            if let Some(t) = t {
                v.insert(TEMPLATE_NAME.into(), Value::Str(t));
            }
            if let Some(e) = e {
                v.insert(EXTRACTOR_NAME.into(), Value::Code(e.into()));
            }
            v
        };
        let asks = template.contains("Answer:");
        let reads = extractor.as_str() == ANSWER_LINE_EXTRACTOR;
        let asked = format!("{}{ANSWER_LINE_REQUEST}", template.trim_end());
        let mut out = Vec::new();
        if !reads {
            out.push((
                "read the Answer: line".to_string(),
                with(None, Some(ANSWER_LINE_EXTRACTOR)),
            ));
        }
        if !asks {
            let both = if reads { None } else { Some(ANSWER_LINE_EXTRACTOR) };
            out.push(("ask for and read an Answer: line".to_string(), with(Some(asked), both)));
        }
        out
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
    fn the_programs_own_edits_ask_for_and_read_an_answer_line() {
        let program = PromptProgram::new(
            "t",
            Arc::new(ScriptedLlm::new(Vec::<String>::new())),
            GenerationParams::default(),
            Arc::new(MontySandbox::default()),
        );
        let g = Graph::new();
        let params = program.parameters(&g);
        let current: IndexMap<String, Value> =
            params.iter().map(|p| (p.name(), p.value())).collect();
        let edits = program.proposals(&current);
        assert_eq!(edits.len(), 2, "{edits:?}");
        let both = &edits[1].1;
        assert!(
            matches!(&both["prompt"], Value::Str(t) if t.contains("{input}") && t.contains("Answer: <answer>"))
        );
        assert_eq!(both["__code0"], Value::Code(ANSWER_LINE_EXTRACTOR.into()));
        assert!(program.proposals(both).is_empty(), "nothing left to propose");
        // The extraction runs in the sandbox and reads what small models write.
        params[1].set_value(Value::Code(ANSWER_LINE_EXTRACTOR.into()));
        let extract = TracedCode::bind(&params[1], INITIAL_EXTRACTOR).unwrap();
        for (reply, expected) in [
            ("Three apples and two pears.\nAnswer: **5**.", "5"),
            ("Answer: True\nI hope this helps.", "True"),
            ("Let me see.\n\nbadge pepper quiver", "badge pepper quiver"),
            ("", ""),
        ] {
            let got = extract.call(&MontySandbox::default(), &[&g.value(reply)]).unwrap();
            assert_eq!(got.value(), Value::Str(expected.into()), "{reply:?}");
        }
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
