//! `Node`: a cheap handle to one node of a [`Graph`], with its accessors and the builder-style
//! setters for names, descriptions and constraints.

use super::arena::{Graph, NodeId, NodeKind, OpInfo};
use super::value::Value;
use crate::error::{Error, Result};

/// A handle to a node: the graph it lives in and its index. Clone freely.
#[derive(Clone)]
pub struct Node {
    graph: Graph,
    id: NodeId,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let data = self.graph.read();
        let n = &data.nodes[self.id];
        write!(f, "Node({} = {})", n.name, n.value.py_repr())
    }
}

impl PartialEq for Node {
    /// Identity, not value: two handles are equal when they point at the same node.
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.graph.same_as(&other.graph)
    }
}
impl Eq for Node {}

impl std::hash::Hash for Node {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
        (std::sync::Arc::as_ptr(&self.graph.inner) as usize).hash(state);
    }
}

impl Node {
    pub(crate) fn from_parts(graph: Graph, id: NodeId) -> Self {
        Node { graph, id }
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    fn with<T>(&self, f: impl FnOnce(&super::arena::NodeData) -> T) -> T {
        f(&self.graph.read().nodes[self.id])
    }

    /// The per-graph name (`float0`, `add3`): the name the LLM sees and must answer with.
    pub fn name(&self) -> String {
        self.with(|n| n.name.clone())
    }

    pub fn value(&self) -> Value {
        self.with(|n| n.value.clone())
    }

    /// Replaces the value (an untraced write, as an optimizer update is).
    pub fn set_value(&self, value: impl Into<Value>) {
        self.graph.write().nodes[self.id].value = value.into();
    }

    pub fn kind(&self) -> NodeKind {
        self.with(|n| n.kind)
    }

    pub fn is_trainable(&self) -> bool {
        self.with(|n| n.trainable)
    }

    pub fn is_parameter(&self) -> bool {
        self.kind() == NodeKind::Parameter
    }

    pub fn is_exception(&self) -> bool {
        self.kind() == NodeKind::Exception
    }

    pub fn is_root(&self) -> bool {
        self.with(|n| n.parents.is_empty())
    }

    pub fn is_leaf(&self) -> bool {
        self.with(|n| n.children.is_empty())
    }

    /// Longest path from a root (roots are level 0).
    pub fn level(&self) -> usize {
        self.with(|n| n.level)
    }

    pub fn description(&self) -> String {
        self.with(|n| n.description.clone())
    }

    pub fn constraint(&self) -> Option<String> {
        self.with(|n| n.constraint.clone())
    }

    /// Texts every new value must contain (see [`Node::must_contain`]).
    pub fn required_texts(&self) -> Vec<String> {
        self.with(|n| n.must_contain.clone())
    }

    /// The operator name of a message node (`add`, `bar`, `eval`), `None` for roots.
    pub fn op(&self) -> Option<String> {
        self.with(|n| n.info.as_ref().map(|i| i.op.clone()))
    }

    pub fn info(&self) -> Option<OpInfo> {
        self.with(|n| n.info.clone())
    }

    /// For an exception node: the full error text (traceback) to use as feedback.
    pub fn error_text(&self) -> Option<String> {
        self.with(|n| n.info.as_ref().and_then(|i| i.error.clone()))
    }

    pub fn parents(&self) -> Vec<Node> {
        self.with(|n| n.parents.clone())
            .into_iter()
            .map(|id| Node::from_parts(self.graph.clone(), id))
            .collect()
    }

    pub fn children(&self) -> Vec<Node> {
        self.with(|n| n.children.clone())
            .into_iter()
            .map(|id| Node::from_parts(self.graph.clone(), id))
            .collect()
    }

    /// Named inputs in call order; a node used twice (`x + x`) appears twice.
    pub fn inputs(&self) -> Vec<(String, Node)> {
        self.with(|n| n.inputs.clone())
            .into_iter()
            .map(|(k, id)| (k, Node::from_parts(self.graph.clone(), id)))
            .collect()
    }

    /// Renames the node; the name stays unique in its graph (numbered if taken).
    pub fn named(self, name: &str) -> Self {
        // Only fails for a foreign id, which a handle never has.
        let _ = self.graph.rename(self.id, name);
        self
    }

    /// Sets the natural-language constraint the optimizer shows for this parameter.
    pub fn constraint_text(self, text: impl Into<String>) -> Self {
        self.graph.write().nodes[self.id].constraint = Some(text.into());
        self
    }

    /// Requires every new value of this text parameter to contain `text`: an optimizer's update
    /// without it is rejected (the value stays) and the reason is shown to the model, e.g. a
    /// prompt template must keep its `{input}` slot.
    pub fn must_contain(self, text: impl Into<String>) -> Self {
        self.graph.write().nodes[self.id].must_contain.push(text.into());
        self
    }

    /// Sets the description; a description that does not start with `[...]` gets the kind's tag.
    pub fn described(self, text: impl Into<String>) -> Self {
        let text = text.into();
        let tagged = if text.starts_with('[') {
            text
        } else {
            let tag = match self.kind() {
                NodeKind::Parameter => "[ParameterNode]".to_string(),
                NodeKind::Plain => "[Node]".to_string(),
                _ => format!("[{}]", self.op().unwrap_or_else(|| "Node".into())),
            };
            format!("{tag} {text}")
        };
        self.graph.write().nodes[self.id].description = tagged;
        self
    }

    /// Turns trainability on or off (a frozen parameter is shown as an input).
    pub fn trainable(self, on: bool) -> Self {
        self.graph.write().nodes[self.id].trainable = on;
        self
    }

    /// A copy of this node's value as a new root (no parents): the reference's `detach`.
    pub fn detach(&self) -> Node {
        self.graph.value(self.value())
    }

    /// Returns an error if this node holds an exception (for code that wants `?` on results of
    /// operator overloads, which cannot return `Result`).
    pub fn check(self) -> Result<Node> {
        if self.is_exception() {
            let message = self.value().py_str();
            let op = self.op().unwrap_or_default();
            Err(Error::Execution { op, message, node: Some(self) })
        } else {
            Ok(self)
        }
    }
}
