//! The trace graph as an SVG picture with no external tool: nodes read from `graph.dot`
//! (`dot::read_dot`), laid out in layers (`layout.rs`), drawn as boxes whose labels are wrapped
//! between words. The picture scales down to the width of the page it sits in.

use super::dot::{read_dot, DotKind, DotNode};
use super::layout::layered;
use crate::text::wrap_words;
use std::fmt::Write as _;

/// Characters per label line, and lines kept per label part (description, value).
const WRAP: usize = 30;
const PART_LINES: usize = 3;
/// Average glyph advance of the 12 px sans-serif font, and the line height.
const CHAR_W: f64 = 6.9;
const LINE_H: f64 = 15.0;
const PAD: f64 = 8.0;
/// Graphs larger than this are not drawn (the layout stays readable up to about this size).
pub const MAX_NODES: usize = 400;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The label of a node as lines: its name, then its description and its value, each wrapped.
fn label_lines(node: &DotNode) -> Vec<(String, bool)> {
    let mut lines = Vec::new();
    let mut parts = node.label.iter();
    if let Some(name) = parts.next() {
        lines.push((name.clone(), true));
    }
    for part in parts.filter(|p| !p.trim().is_empty()) {
        lines.extend(wrap_words(part, WRAP, PART_LINES).into_iter().map(|l| (l, false)));
    }
    lines
}

/// An SVG picture of the DOT text `to_dot` wrote, or why it cannot be drawn.
pub fn dot_to_svg(dot: &str) -> Result<String, String> {
    let (nodes, edges) = read_dot(dot)?;
    if nodes.is_empty() {
        return Err("the graph has no nodes".into());
    }
    if nodes.len() > MAX_NODES {
        return Err(format!(
            "the graph has {} nodes; pictures are drawn up to {MAX_NODES}",
            nodes.len()
        ));
    }
    let labels: Vec<Vec<(String, bool)>> = nodes.iter().map(label_lines).collect();
    let sizes: Vec<(f64, f64)> = labels
        .iter()
        .map(|ls| {
            let chars = ls
                .iter()
                .map(|(l, bold)| l.chars().count() as f64 * if *bold { 1.08 } else { 1.0 })
                .fold(0.0, f64::max);
            ((chars * CHAR_W + 2.0 * PAD).max(56.0), ls.len() as f64 * LINE_H + 2.0 * PAD - 4.0)
        })
        .collect();
    let layout = layered(&sizes, &edges);
    let (w, h) = (layout.width.ceil(), layout.height.ceil());
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"trace-graph\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" style=\"max-width:100%;height:auto\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\" role=\"img\" aria-label=\"trace graph with {} nodes\">",
        nodes.len()
    );
    svg.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#666\"/></marker></defs>");
    for pts in layout.edges.iter().filter(|p| p.len() >= 2) {
        let mut d = format!("M{:.1},{:.1}", pts[0].0, pts[0].1);
        for pair in pts.windows(2) {
            let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
            let mid = (y1 - y0) / 2.0;
            let _ = write!(
                d,
                " C{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}",
                x0,
                y0 + mid,
                x1,
                y1 - mid,
                x1,
                y1
            );
        }
        let _ = write!(svg, "<path d=\"{d}\" fill=\"none\" stroke=\"#666\" stroke-width=\"1.2\" marker-end=\"url(#arrow)\"/>");
    }
    for ((node, lines), (&(cx, cy), &(bw, bh))) in
        nodes.iter().zip(&labels).zip(layout.centers.iter().zip(&sizes))
    {
        let (fill, stroke, rx) = match node.kind {
            DotKind::Parameter => ("#FFE5E5", "#FF7E79", 3.0),
            DotKind::Exception => ("#F9C0C0", "#B22222", 10.0),
            DotKind::Message => ("#DEEBF6", "#5C9BD5", 10.0),
        };
        let (x, y) = (cx - bw / 2.0, cy - bh / 2.0);
        let title = esc(&node.label.join("\n"));
        let _ = write!(svg, "<g class=\"node\"><title>{title}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" rx=\"{rx}\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.2\"/>");
        for (i, (line, bold)) in lines.iter().enumerate() {
            let ty = y + PAD + LINE_H * (i as f64 + 0.5) - 2.0;
            let weight = if *bold { " font-weight=\"bold\"" } else { "" };
            let _ = write!(svg, "<text x=\"{cx:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\" dominant-baseline=\"central\"{weight}>{}</text>", esc(line));
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Graph;

    #[test]
    fn a_graph_becomes_an_svg_with_one_box_per_node_and_one_arrow_per_edge() {
        let g = Graph::new();
        let x = g
            .param_named("x", 2.0)
            .described("The value the optimizer changes to make the output larger");
        let y = &(&x * 3) + 1;
        let svg = dot_to_svg(&super::super::dot::to_dot(&g, None, 90)).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), g.nodes().len());
        assert_eq!(svg.matches("marker-end").count(), 4, "x→mul, 3→mul, mul→add, 1→add");
        assert!(svg.contains(&format!(">{}</text>", y.name())));
        // The description is wrapped between words, none cut in half.
        assert!(
            svg.contains(">[ParameterNode] The value the</text>")
                && svg.contains(">optimizer changes to make the</text>"),
            "{svg}"
        );
        assert!(svg.contains("max-width:100%"), "scales to the page");
    }

    #[test]
    fn bad_or_empty_dot_is_a_reason_not_a_panic() {
        assert!(dot_to_svg("digraph trace {\n}\n").unwrap_err().contains("no nodes"));
        assert!(dot_to_svg("  n0 [label=\"x, shape=box];\n")
            .unwrap_err()
            .contains("closing quote"));
    }
}
