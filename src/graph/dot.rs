//! DOT text of a graph or a subgraph: parameters as pink boxes, exceptions in red, messages as
//! blue ellipses (the reference's colours), labels cut between words to a length limit — and
//! reading that text back (`read_dot`), so a run folder's `graph.dot` can be drawn later
//! without Graphviz (`picture.rs`).

use super::arena::{Graph, NodeKind};
use super::node::Node;
use crate::text::cut_words as cut;

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
    let mut out = String::from(
        "digraph trace {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n",
    );
    for n in &nodes {
        let style = match n.kind() {
            NodeKind::Parameter => {
                "shape=box, style=filled, fillcolor=\"#FFE5E5\", color=\"#FF7E79\""
            }
            NodeKind::Exception => {
                "shape=ellipse, style=filled, fillcolor=\"firebrick1\", color=\"#B22222\""
            }
            _ => "shape=ellipse, style=filled, fillcolor=\"#DEEBF6\", color=\"#5C9BD5\"",
        };
        let label = format!(
            "{}\n{}\n{}",
            n.name(),
            cut(&n.description(), label_limit),
            cut(&n.value().py_str(), label_limit)
        );
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

/// What a node of `graph.dot` is, as its style says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DotKind {
    Parameter,
    Exception,
    Message,
}

/// One node of a DOT text written by `to_dot`: its id, kind and label lines.
#[derive(Clone, Debug, PartialEq)]
pub struct DotNode {
    pub id: String,
    pub kind: DotKind,
    pub label: Vec<String>,
}

/// An edge of a read DOT graph: (from, to) as indices into its node list.
pub type Edge = (usize, usize);

/// Reads the nodes and edges of a DOT text that `to_dot` wrote (not DOT in general: one
/// statement per line, quoted labels). Edges name nodes by their index in the node list; an
/// edge to an unknown node is an error naming its line.
pub fn read_dot(text: &str) -> Result<(Vec<DotNode>, Vec<Edge>), String> {
    let mut nodes: Vec<DotNode> = Vec::new();
    let mut edge_ids: Vec<(String, String, usize)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        // A node line first: its label may hold "->".
        let Some((id, rest)) = line.split_once(" [label=\"").filter(|(id, _)| !id.contains(' '))
        else {
            if let Some((from, to)) = line.strip_suffix(';').and_then(|l| l.split_once("->")) {
                edge_ids.push((from.trim().to_string(), to.trim().to_string(), i + 1));
            }
            continue;
        };
        let (label, attrs) = unescape_until_quote(rest)
            .ok_or_else(|| format!("line {}: the label of {id} has no closing quote", i + 1))?;
        let kind = if attrs.contains("shape=box") {
            DotKind::Parameter
        } else if attrs.contains("firebrick") {
            DotKind::Exception
        } else {
            DotKind::Message
        };
        nodes.push(DotNode {
            id: id.to_string(),
            kind,
            label: label.split('\n').map(str::to_string).collect(),
        });
    }
    let index: std::collections::HashMap<&str, usize> =
        nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
    let edges = edge_ids
        .iter()
        .map(|(a, b, line)| match (index.get(a.as_str()), index.get(b.as_str())) {
            (Some(&a), Some(&b)) => Ok((a, b)),
            _ => Err(format!(
                "line {line}: the edge {a} -> {b} names a node the file does not define"
            )),
        })
        .collect::<Result<_, _>>()?;
    Ok((nodes, edges))
}

/// The text up to the first unescaped `"` (with `\n`, `\"` and `\\` undone), and what follows.
fn unescape_until_quote(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, other)) => out.push(other),
                None => return None,
            },
            other => out.push(other),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_cut_between_words_and_read_back_whole() {
        let g = Graph::new();
        let x = g
            .param_named("x", -1.0)
            .described("the input value of the generated arithmetic program");
        let y = &x * 2;
        let dot = to_dot(&g, None, 34);
        assert!(dot.contains("[ParameterNode] the input value…"), "{dot}");
        let (nodes, edges) = read_dot(&dot).unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].kind, DotKind::Parameter);
        assert_eq!(nodes[0].label[0], "x");
        assert_eq!(nodes.iter().filter(|n| n.label[0] == y.name()).count(), 1);
        assert_eq!(edges.len(), 2);
        assert!(read_dot("digraph t {\n  n0 -> n9;\n}\n").unwrap_err().contains("line 2"));
    }

    #[test]
    fn quotes_and_backslashes_survive_the_round_trip() {
        let g = Graph::new();
        g.value_named("s", crate::graph::Value::Str("say \"hi\" \\ bye".into()));
        let (nodes, _) = read_dot(&to_dot(&g, None, 40)).unwrap();
        assert_eq!(nodes[0].label[2], "say \"hi\" \\ bye");
    }
}
