//! `Graph`: the arena that owns every node of one traced program, with per-graph names.
//!
//! There is no process-global graph (the reference's `GRAPH` grows forever and is shared by all
//! threads). Each seed of a run owns its own `Graph`, so seeds trace in parallel without locks
//! contending; a `Node` is a cheap handle (graph + index).

use super::node::Node;
use super::value::Value;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub type NodeId = usize;

/// What a node is. Parameters are the roots an optimizer may change; message nodes are operator
/// outputs; exception nodes hold an error that happened while computing them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Plain,
    Parameter,
    Message,
    Exception,
}

/// What a traced function recorded about itself: shown to the LLM as documentation and source.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpInfo {
    /// The operator or function name (`add`, `bar`, `eval`).
    pub op: String,
    /// Source text of a traced user function, when known.
    pub source: Option<String>,
    /// For an exception node: the error's full text (traceback) for feedback.
    pub error: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct NodeData {
    pub name: String,
    pub value: Value,
    pub kind: NodeKind,
    pub trainable: bool,
    pub description: String,
    pub constraint: Option<String>,
    /// Texts every new value of a text parameter must contain (a template's `{input}` slot).
    pub must_contain: Vec<String>,
    /// Named inputs in call order (`x`, `y`); the same node may appear twice (`x + x`).
    pub inputs: Vec<(String, NodeId)>,
    /// Distinct parents, in first-use order.
    pub parents: Vec<NodeId>,
    pub children: Vec<NodeId>,
    pub level: usize,
    pub info: Option<OpInfo>,
}

/// One call of `backward`: the output, its feedback, and the roots that received it.
#[derive(Clone, Debug)]
pub(crate) struct FeedbackRecord {
    pub output: NodeId,
    pub feedback: String,
    /// Every ancestor of `output` (the output included), as a bitset over node ids.
    pub cone: fixedbitset::FixedBitSet,
    /// Roots in the cone that still hold this feedback (`zero_feedback` removes them).
    pub receivers: fixedbitset::FixedBitSet,
}

#[derive(Debug, Default)]
pub(crate) struct GraphData {
    pub nodes: Vec<NodeData>,
    counters: HashMap<String, usize>,
    taken: std::collections::HashSet<String>,
    pub tracing_off: usize,
    pub feedback: Vec<FeedbackRecord>,
}

impl GraphData {
    /// `base` + the next free counter for it: `float0`, `float1`, `add0`.
    fn numbered_name(&mut self, base: &str) -> String {
        loop {
            let n = self.counters.entry(base.to_string()).or_insert(0);
            let candidate = format!("{base}{n}");
            *n += 1;
            if self.taken.insert(candidate.clone()) {
                return candidate;
            }
        }
    }

    /// A user-chosen name, kept as given when free, numbered otherwise.
    fn chosen_name(&mut self, name: &str) -> String {
        if self.taken.insert(name.to_string()) {
            name.to_string()
        } else {
            self.numbered_name(name)
        }
    }
}

/// The trace graph of one program run. Cloning a `Graph` clones the handle, not the nodes.
#[derive(Clone, Default)]
pub struct Graph {
    pub(crate) inner: Arc<RwLock<GraphData>>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Graph({} nodes)", self.len())
    }
}

/// How a new node is named.
pub(crate) enum Naming<'a> {
    /// Numbered after a base (`float` → `float0`).
    Base(&'a str),
    /// As the user asked, numbered only if taken.
    Chosen(&'a str),
}

impl Graph {
    pub fn new() -> Self {
        Graph::default()
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, GraphData> {
        // A poisoned lock only means another thread panicked mid-read; the data is still whole.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, GraphData> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.read().nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn same_as(&self, other: &Graph) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Every node, in creation (= topological) order.
    pub fn nodes(&self) -> Vec<Node> {
        (0..self.len()).map(|id| Node::from_parts(self.clone(), id)).collect()
    }

    /// The node with this name, if any.
    pub fn find(&self, name: &str) -> Option<Node> {
        let data = self.read();
        data.nodes.iter().position(|n| n.name == name).map(|id| Node::from_parts(self.clone(), id))
    }

    /// A constant (non-trainable) node, named after its type (`float0`, `str1`).
    pub fn value(&self, value: impl Into<Value>) -> Node {
        let value = value.into();
        let base = base_name(&value);
        self.add_node(
            Naming::Base(&base),
            value,
            NodeKind::Plain,
            false,
            "[Node] A constant input of the program.".into(),
            Vec::new(),
            None,
        )
    }

    /// A trainable parameter, named after its type (`float0`) unless renamed with [`Node::named`].
    pub fn param(&self, value: impl Into<Value>) -> Node {
        let value = value.into();
        let base = base_name(&value);
        self.add_node(
            Naming::Base(&base),
            value,
            NodeKind::Parameter,
            true,
            "[ParameterNode] A trainable parameter the optimizer may change.".into(),
            Vec::new(),
            None,
        )
    }

    /// A trainable parameter with a chosen name (kept as given when it is free in this graph).
    pub fn param_named(&self, name: &str, value: impl Into<Value>) -> Node {
        self.add_node(
            Naming::Chosen(name),
            value.into(),
            NodeKind::Parameter,
            true,
            "[ParameterNode] A trainable parameter the optimizer may change.".into(),
            Vec::new(),
            None,
        )
    }

    /// A constant input with a chosen name.
    pub fn value_named(&self, name: &str, value: impl Into<Value>) -> Node {
        self.add_node(
            Naming::Chosen(name),
            value.into(),
            NodeKind::Plain,
            false,
            "[Node] A constant input of the program.".into(),
            Vec::new(),
            None,
        )
    }

    /// Runs `f` with tracing off: operators still compute and return nodes, but those nodes
    /// record no parents (the reference's `stop_tracing`).
    pub fn untraced<T>(&self, f: impl FnOnce() -> T) -> T {
        self.write().tracing_off += 1;
        struct Restore<'a>(&'a Graph);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.write().tracing_off -= 1;
            }
        }
        let _restore = Restore(self);
        f()
    }

    pub fn is_tracing(&self) -> bool {
        self.read().tracing_off == 0
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_node(
        &self,
        naming: Naming<'_>,
        value: Value,
        kind: NodeKind,
        trainable: bool,
        description: String,
        inputs: Vec<(String, NodeId)>,
        info: Option<OpInfo>,
    ) -> Node {
        let mut data = self.write();
        let inputs = if data.tracing_off > 0 { Vec::new() } else { inputs };
        let mut parents: Vec<NodeId> = Vec::with_capacity(inputs.len());
        for (_, p) in &inputs {
            if !parents.contains(p) {
                parents.push(*p);
            }
        }
        let level = parents.iter().map(|&p| data.nodes[p].level + 1).max().unwrap_or(0);
        let name = match naming {
            Naming::Base(b) => data.numbered_name(b),
            Naming::Chosen(n) => data.chosen_name(n),
        };
        let id = data.nodes.len();
        for &p in &parents {
            data.nodes[p].children.push(id);
        }
        data.nodes.push(NodeData {
            name,
            value,
            kind,
            trainable,
            description,
            constraint: None,
            must_contain: Vec::new(),
            inputs,
            parents,
            children: Vec::new(),
            level,
            info,
        });
        drop(data);
        Node::from_parts(self.clone(), id)
    }

    /// Renames a node (keeps the new name unique within the graph).
    pub(crate) fn rename(&self, id: NodeId, name: &str) -> Result<()> {
        let mut data = self.write();
        if id >= data.nodes.len() {
            return Err(Error::Graph(format!("no node with id {id}")));
        }
        let old = std::mem::take(&mut data.nodes[id].name);
        data.taken.remove(&old);
        let new = data.chosen_name(name);
        data.nodes[id].name = new;
        Ok(())
    }
}

/// The default base name of a node holding `value`: its Python type name.
pub(crate) fn base_name(value: &Value) -> String {
    match value {
        Value::Code(_) => "__code".to_string(),
        Value::None => "none".to_string(),
        v => v.type_name().to_string(),
    }
}

impl Graph {
    /// The handle of node `id` (ids come from this graph).
    pub(crate) fn nodes_by_id(&self, id: NodeId) -> Node {
        Node::from_parts(self.clone(), id)
    }
}

impl Graph {
    /// A mark to [`Graph::rewind`] to: the current number of nodes.
    pub fn mark(&self) -> usize {
        self.len()
    }

    /// Drops every node created after `mark` and all feedback, and resets the name counters, so
    /// the next forward pass of a training loop reuses the same names (`add0` stays `add0` from
    /// step to step, which keeps prompts and memory entries comparable). Handles to dropped
    /// nodes must not be used afterwards; the nodes before the mark (the parameters) stay valid.
    pub fn rewind(&self, mark: usize) {
        let mut data = self.write();
        if mark >= data.nodes.len() {
            data.feedback.clear();
            return;
        }
        data.nodes.truncate(mark);
        for node in data.nodes.iter_mut() {
            node.children.retain(|&c| c < mark);
        }
        data.feedback.clear();
        data.counters.clear();
        data.taken.clear();
        let names: Vec<String> = data.nodes.iter().map(|n| n.name.clone()).collect();
        for name in names {
            // Keep counters past the surviving numbered names (`float0` → next float is float1).
            let digits = name.trim_end_matches(|c: char| c.is_ascii_digit());
            if let Ok(n) = name[digits.len()..].parse::<usize>() {
                let next = data.counters.entry(digits.to_string()).or_insert(0);
                *next = (*next).max(n + 1);
            }
            data.taken.insert(name);
        }
    }
}
