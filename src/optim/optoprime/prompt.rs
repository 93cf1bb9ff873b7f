//! The two chat messages of an OptoPrime step. Our own wording, written for 0.5–1.5B models:
//! short, explicit, and it names the exact keys and types the suggestion must have.

use super::problem::{cut, render_problem, RenderOptions, Section};
use crate::graph::Value;
use crate::llm::Message;
use crate::propagate::{NodeView, Summary};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The default `#Instruction`.
pub const DEFAULT_OBJECTIVE: &str =
    "Change the values in #Variables so that the output improves as #Feedback asks.";

/// One remembered try: the variables' values, what the program output with them, and the
/// feedback they got. `score` is never shown to the model; a search uses it to decide which
/// tries to keep when the memory is full ([`super::memory::Memory`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub variables: IndexMap<String, Json>,
    /// The output values, as the prompt's #Outputs shows them (absent in checkpoints written
    /// before outputs were remembered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    pub feedback: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::util::score_serde::option"
    )]
    pub score: Option<f64>,
}

impl MemoryEntry {
    pub fn from_summary(summary: &Summary) -> Self {
        let outputs: Vec<String> = summary.outputs.iter().map(|o| o.value.py_str()).collect();
        MemoryEntry {
            variables: summary
                .variables
                .iter()
                .map(|v| (v.name.clone(), v.value.to_json()))
                .collect(),
            output: (!outputs.is_empty()).then(|| outputs.join(", ")),
            feedback: summary.feedback_text(),
            score: None,
        }
    }

    /// One compact JSON line; long strings cut at `limit` characters.
    pub fn render(&self, limit: usize) -> String {
        let vars: serde_json::Map<String, Json> = self
            .variables
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Json::String(s) => Json::String(cut(s, limit)),
                    other => other.clone(),
                };
                (k.clone(), v)
            })
            .collect();
        let fb = cut(&self.feedback, limit);
        match &self.output {
            Some(out) => {
                serde_json::json!({"variables": vars, "output": cut(out, limit), "feedback": fb})
                    .to_string()
            }
            None => serde_json::json!({"variables": vars, "feedback": fb}).to_string(),
        }
    }
}

/// A placeholder for a value of this parameter's type in the format line.
fn placeholder(v: &NodeView) -> String {
    match &v.value {
        Value::Bool(_) => "<true or false>".into(),
        Value::Int(_) => "<new int>".into(),
        Value::Float(_) => "<new float>".into(),
        Value::Str(_) => "\"<new text>\"".into(),
        Value::Code(_) => "\"<new Python function>\"".into(),
        Value::List(_) => "<new list>".into(),
        Value::Dict(_) => "<new dict>".into(),
        Value::None => "<new value>".into(),
    }
}

fn type_phrase(v: &NodeView) -> &'static str {
    match &v.value {
        Value::Bool(_) => "true or false",
        Value::Int(_) => "a whole number (int)",
        Value::Float(_) => "a number (float)",
        Value::Str(_) => "a string",
        Value::Code(_) => "a string holding the whole Python function",
        Value::List(_) => "a JSON list",
        Value::Dict(_) => "a JSON object",
        Value::None => "any JSON value",
    }
}

/// Quoted, comma-separated names.
pub fn key_list(variables: &[NodeView]) -> String {
    variables.iter().map(|v| format!("\"{}\"", v.name)).collect::<Vec<_>>().join(", ")
}

/// The JSON shape the reply must have, with placeholders.
pub fn format_line(variables: &[NodeView], with_answer: bool, reasoning: bool) -> String {
    let sugg = variables
        .iter()
        .map(|v| format!("\"{}\": {}", v.name, placeholder(v)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut parts = Vec::new();
    if reasoning {
        parts.push("\"reasoning\": \"<one or two short sentences>\"".to_string());
    }
    if with_answer {
        parts.push("\"answer\": \"<your answer to the question>\"".to_string());
    }
    parts.push(format!("\"suggestion\": {{{sugg}}}"));
    format!("{{{}}}", parts.join(", "))
}

/// Settings the messages depend on.
#[derive(Clone, Debug)]
pub struct PromptSpec<'a> {
    pub objective: &'a str,
    pub render: &'a RenderOptions,
    pub with_answer: bool,
    pub reasoning: bool,
    /// Name the closest tried pair of a single numeric variable whose feedback differs.
    pub bracket_hint: bool,
}

/// The system message: what the sections mean, the reply format, the rules.
pub fn system_message(variables: &[NodeView], spec: &PromptSpec) -> String {
    let sym = |s: Section| spec.render.symbols.get(s).to_string();
    let shown = |s: Section| !spec.render.mask.contains(&s);
    let mut out = String::from(
        "You improve a program by changing its variables.\n\nThe problem has these parts:\n",
    );
    let defs: [(Section, &str); 9] = [
        (Section::Instruction, "the goal"),
        (Section::Code, "the operations the program ran, one call per line"),
        (Section::Documentation, "what each operation does"),
        (Section::Variables, "the values you may change"),
        (Section::Constraints, "rules the variables must follow"),
        (Section::Inputs, "fixed values; do not change them"),
        (Section::Others, "intermediate results"),
        (Section::Outputs, "the results"),
        (Section::Feedback, "what should be better about the results"),
    ];
    for (s, d) in defs {
        if shown(s) {
            out.push_str(&format!("{}: {d}.\n", sym(s)));
        }
    }
    out.push_str(
        "A value is written (type) name=value; (code) name:source is Python source code.\n\n",
    );
    out.push_str("Reply with one JSON object and nothing else:\n");
    out.push_str(&format_line(variables, spec.with_answer, spec.reasoning));
    out.push_str("\n\nRules:\n");
    let others: Vec<String> = [Section::Inputs, Section::Others, Section::Outputs]
        .into_iter()
        .filter(|s| shown(*s))
        .map(sym)
        .collect();
    let not_vars = match others.len() {
        0 => String::new(),
        1 => format!(" Names from {} are not variables.", others[0]),
        n => format!(
            " Names from {} or {} are not variables.",
            others[..n - 1].join(", "),
            others[n - 1]
        ),
    };
    out.push_str(&format!(
        "- The keys of \"suggestion\" are exactly {}.{not_vars}\n",
        key_list(variables)
    ));
    for v in variables {
        out.push_str(&format!("- {} is {}.\n", v.name, type_phrase(v)));
    }
    out.push_str("- Suggest new values that make the results better. Do not copy numbers from the other parts.\n");
    if variables.iter().any(|v| matches!(v.value, Value::Code(_)) || v.name.contains("__code")) {
        out.push_str(
            "- Code must be a complete Python function with the same name and arguments.\n",
        );
    }
    out.trim_end().to_string()
}

/// The user message: the problem, the remembered steps, last step's problems, the request.
pub fn user_message(
    summary: &Summary,
    spec: &PromptSpec,
    memory: &[MemoryEntry],
    problems: &[String],
) -> String {
    let mut out = render_problem(summary, spec.objective, spec.render);
    if !memory.is_empty() {
        out.push_str(
            "\n\nEarlier values of the variables and the feedback they got (oldest first):\n",
        );
        let lines: Vec<String> =
            memory.iter().map(|m| m.render(spec.render.value_char_limit)).collect();
        out.push_str(&lines.join("\n"));
        if spec.bracket_hint {
            if let Some(hint) = super::bracket::bracket_hint(summary, memory) {
                out.push('\n');
                out.push_str(&hint);
            }
        }
    }
    if !problems.is_empty() {
        out.push_str("\n\nYour last reply had problems:\n");
        for p in problems {
            out.push_str(&format!("- {p}\n"));
        }
        out.truncate(out.trim_end().len());
    }
    out.push_str(&format!(
        "\n\nNow reply with the JSON object. The keys of \"suggestion\" are {}.",
        key_list(&summary.variables)
    ));
    out
}

/// Both messages.
pub fn build_messages(
    summary: &Summary,
    spec: &PromptSpec,
    memory: &[MemoryEntry],
    problems: &[String],
) -> Vec<Message> {
    vec![
        Message::system(system_message(&summary.variables, spec)),
        Message::user(user_message(summary, spec, memory, problems)),
    ]
}

/// Characters of all messages.
pub fn prompt_chars(messages: &[Message]) -> usize {
    messages.iter().map(|m| m.content.chars().count()).sum()
}
