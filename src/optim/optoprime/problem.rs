//! Rendering a [`Summary`] as the problem text: the reference's sections in the reference's
//! order, with its rendering rules (`(type) name=value`, code as `(code) name:source`,
//! constraints as `(type) name: constraint`).

use crate::graph::Value;
use crate::propagate::{NodeView, Summary};
use serde::{Deserialize, Serialize};

/// The sections of the problem, in the order they are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    Instruction,
    Code,
    Documentation,
    Variables,
    Constraints,
    Inputs,
    Others,
    Outputs,
    Feedback,
}

impl Section {
    pub const ALL: [Section; 9] = [
        Section::Instruction,
        Section::Code,
        Section::Documentation,
        Section::Variables,
        Section::Constraints,
        Section::Inputs,
        Section::Others,
        Section::Outputs,
        Section::Feedback,
    ];

    pub fn default_symbol(self) -> &'static str {
        match self {
            Section::Instruction => "#Instruction",
            Section::Code => "#Code",
            Section::Documentation => "#Documentation",
            Section::Variables => "#Variables",
            Section::Constraints => "#Constraints",
            Section::Inputs => "#Inputs",
            Section::Others => "#Others",
            Section::Outputs => "#Outputs",
            Section::Feedback => "#Feedback",
        }
    }

    fn index(self) -> usize {
        Section::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }
}

/// The section headers (the reference's `prompt_symbols`), e.g. `#Variables` → `#Parameters`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Symbols {
    symbols: Vec<String>,
}

impl Default for Symbols {
    fn default() -> Self {
        Symbols { symbols: Section::ALL.iter().map(|s| s.default_symbol().to_string()).collect() }
    }
}

impl Symbols {
    pub fn get(&self, s: Section) -> &str {
        &self.symbols[s.index()]
    }
    pub fn with(mut self, s: Section, symbol: impl Into<String>) -> Self {
        self.symbols[s.index()] = symbol.into();
        self
    }
}

/// The paper's "Trace Masked"/"NoTrace" ablation: hide the execution trace.
pub const NO_TRACE_MASK: [Section; 4] =
    [Section::Inputs, Section::Others, Section::Code, Section::Documentation];

/// How the problem is rendered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RenderOptions {
    pub symbols: Symbols,
    /// Sections left out entirely (header and content).
    pub mask: Vec<Section>,
    /// Values of inputs, others and outputs longer than this many characters are cut with a
    /// visible marker. Variables are never cut.
    pub value_char_limit: usize,
    /// Show headers of empty sections (the reference does; a small model does not need them).
    pub show_empty_sections: bool,
    /// Leave out `#Documentation` (used by the token budget).
    pub drop_documentation: bool,
    /// Keep at most this many `#Others` lines (the latest ones), `None` for all.
    pub max_others: Option<usize>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            symbols: Symbols::default(),
            mask: Vec::new(),
            value_char_limit: 1000,
            show_empty_sections: false,
            drop_documentation: false,
            max_others: None,
        }
    }
}

fn is_code(v: &NodeView) -> bool {
    matches!(v.value, crate::graph::Value::Code(_)) || v.name.contains("__code")
}

/// `(type) name=value`, or `(code) name:source`; the value cut at `limit` characters.
pub fn repr_node_value(v: &NodeView, limit: Option<usize>) -> String {
    let text = v.value.py_str();
    let text = match limit {
        Some(n) => cut(&text, n),
        None => text,
    };
    if is_code(v) {
        format!("(code) {}:{}", v.name, text)
    } else {
        format!("({}) {}={}", v.value.type_name(), v.name, text)
    }
}

/// `(type) name: constraint`, or `None` when the node has no constraint.
pub fn repr_node_constraint(v: &NodeView) -> Option<String> {
    let c = v.constraint.as_ref()?;
    let ty = if is_code(v) { "code" } else { v.value.type_name() };
    Some(format!("({ty}) {}: {c}", v.name))
}

/// `text` cut to `limit` characters with a marker saying how much was left out.
pub fn cut(text: &str, limit: usize) -> String {
    let n = text.chars().count();
    if n <= limit {
        return text.to_string();
    }
    let kept: String = text.chars().take(limit).collect();
    format!("{kept} …[{} more characters cut]", n - limit)
}

/// An output whose long text is exactly an intermediate result's (an answer extractor that
/// returns the whole reply) is named, not written out again: small models lose the thread in
/// long prompts, and this one text would otherwise stand there twice.
fn same_long_text<'a>(output: &NodeView, others: &'a [NodeView]) -> Option<&'a str> {
    const LONG: usize = 80;
    match &output.value {
        Value::Str(text) if text.chars().count() >= LONG => others
            .iter()
            .find(|o| matches!(&o.value, Value::Str(t) if t == text))
            .map(|o| o.name.as_str()),
        _ => None,
    }
}

/// The problem text: every section in order, each as `header\ncontent`, separated by blank lines.
pub fn render_problem(summary: &Summary, objective: &str, opts: &RenderOptions) -> String {
    let limit = Some(opts.value_char_limit);
    let lines = |vs: &[NodeView]| {
        vs.iter().map(|v| repr_node_value(v, limit)).collect::<Vec<_>>().join("\n")
    };
    let mut parts: Vec<String> = Vec::new();
    for s in Section::ALL {
        if opts.mask.contains(&s) {
            continue;
        }
        let content = match s {
            Section::Instruction => objective.trim().to_string(),
            Section::Code => summary.code.join("\n"),
            Section::Documentation if opts.drop_documentation => String::new(),
            Section::Documentation => summary
                .documentation
                .values()
                .map(|d| d.trim().to_string())
                .collect::<Vec<_>>()
                .join("\n"),
            Section::Variables => summary
                .variables
                .iter()
                .map(|v| repr_node_value(v, None))
                .collect::<Vec<_>>()
                .join("\n"),
            Section::Constraints => summary
                .variables
                .iter()
                .filter_map(repr_node_constraint)
                .collect::<Vec<_>>()
                .join("\n"),
            Section::Inputs => lines(&summary.inputs),
            Section::Others => match opts.max_others {
                Some(k) if summary.others.len() > k => {
                    let skip = summary.others.len() - k;
                    format!(
                        "({skip} earlier intermediate results left out)\n{}",
                        lines(&summary.others[skip..])
                    )
                }
                _ => lines(&summary.others),
            },
            Section::Outputs => summary
                .outputs
                .iter()
                .map(|v| match same_long_text(v, &summary.others) {
                    Some(twin) => format!(
                        "({}) {}: the same text as {twin} above",
                        v.value.type_name(),
                        v.name
                    ),
                    None => repr_node_value(v, limit),
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Section::Feedback => summary.feedback_text(),
        };
        if content.is_empty() && !opts.show_empty_sections {
            continue;
        }
        parts.push(format!("{}\n{}", opts.symbols.get(s), content));
    }
    parts.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, text: &str) -> NodeView {
        NodeView {
            name: name.into(),
            value: Value::Str(text.into()),
            constraint: None,
            must_contain: Vec::new(),
            description: String::new(),
        }
    }

    #[test]
    fn an_output_that_repeats_a_long_intermediate_text_names_it_instead() {
        let reply = "Here is a long reply from the model, with its reasoning first and then, at the end, the answer: 7";
        let summary = Summary {
            others: vec![view("call_llm0", reply)],
            outputs: vec![view("eval0", reply), view("eval1", "7")],
            ..Default::default()
        };
        let text = render_problem(&summary, "goal", &RenderOptions::default());
        assert_eq!(text.matches(reply).count(), 1, "{text}");
        assert!(text.contains("(str) eval0: the same text as call_llm0 above"), "{text}");
        assert!(text.contains("(str) eval1=7"), "{text}");
    }
}
