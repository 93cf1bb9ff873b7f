//! `Summary`: what an optimizer shows the LLM about one step — the union of the subgraphs its
//! parameters received, split into the paper's sections (the reference's `FunctionFeedback`).

use crate::graph::Value;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// One node as the prompt shows it: `(type) name=value`, plus its constraint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// The per-graph name (`float0`, `add3`, `__code0`): the key the LLM must use.
    pub name: String,
    pub value: Value,
    /// Natural-language constraint of a parameter (`None` when it has none).
    pub constraint: Option<String>,
    /// Texts a new value must contain (empty for most parameters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must_contain: Vec<String>,
    /// The node's description (`[ParameterNode] ...`, `[add] ...`).
    pub description: String,
}

/// Feedback given at one output, kept with the output it belongs to (several outputs or a
/// minibatch give several entries instead of the reference's assertion failure).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedbackEntry {
    /// Name of the node `backward` was called on.
    pub output: String,
    pub feedback: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `name = op(arg=parent, ...)`, one line per operator call, in topological order.
    pub code: Vec<String>,
    /// Operator name → its description (starts with `[op]`), in first-use order.
    pub documentation: IndexMap<String, String>,
    /// Trainable parameters of the optimizer that asked (every one of them, even those that
    /// received no feedback this step — the reference silently drops those).
    pub variables: Vec<NodeView>,
    /// Other roots of the subgraph: constants, inputs, non-trainable parameters, blanket nodes.
    pub inputs: Vec<NodeView>,
    /// Intermediate results.
    pub others: Vec<NodeView>,
    /// The nodes feedback was given at (the sinks of the subgraph).
    pub outputs: Vec<NodeView>,
    pub feedback: Vec<FeedbackEntry>,
}

impl Summary {
    /// The feedback as one text: the text itself when there is one entry, otherwise one line per
    /// output naming it.
    pub fn feedback_text(&self) -> String {
        match self.feedback.as_slice() {
            [] => String::new(),
            [one] => one.feedback.clone(),
            many => many
                .iter()
                .map(|f| format!("{}: {}", f.output, f.feedback))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}
