//! DOT text of a graph or a subgraph: parameters as pink boxes, exceptions in red, messages as
//! blue ellipses (the reference's colours), labels cut to a length limit.

use super::arena::{Graph, NodeKind};
use super::node::Node;

/// Cuts `text` to `limit` characters, marking the cut.
fn cut(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(limit).collect::<String>())
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// DOT for `nodes` (or the whole graph when `None`), edges parent → child among them.
pub fn to_dot(graph: &Graph, nodes: Option<&[Node]>, label_limit: usize) -> String {
    let nodes: Vec<Node> = match nodes {
        Some(n) => n.to_vec(),
        None => graph.nodes(),
    };
    let shown: std::collections::HashSet<usize> = nodes.iter().map(Node::id).collect();
    let mut out = String::from("digraph trace {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n");
    for n in &nodes {
        let style = match n.kind() {
            NodeKind::Parameter => "shape=box, style=filled, fillcolor=\"#FFE5E5\", color=\"#FF7E79\"",
            NodeKind::Exception => "shape=ellipse, style=filled, fillcolor=\"firebrick1\", color=\"#B22222\"",
            _ => "shape=ellipse, style=filled, fillcolor=\"#DEEBF6\", color=\"#5C9BD5\"",
        };
        let label = format!("{}\n{}\n{}", n.name(), cut(&n.description(), label_limit), cut(&n.value().py_str(), label_limit));
        out.push_str(&format!("  n{} [label=\"{}\", {}];\n", n.id(), escape(&label), style));
    }
    for n in &nodes {
        for p in n.parents() {
            if shown.contains(&p.id()) {
                out.push_str(&format!("  n{} -> n{};\n", p.id(), n.id()));
            }
        }
    }
    out.push_str("}\n");
    out
}
