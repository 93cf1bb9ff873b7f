//! `report.html`: one self-contained page per run — score curves per seed (SVG), the parameter
//! history, the final trace graph (DOT rendered to SVG by Graphviz when it is installed, the DOT
//! text otherwise), and every prompt and reply.

use super::log::{read_events, StepEvent, EVENTS_FILE};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

pub const REPORT_FILE: &str = "report.html";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const COLORS: [&str; 8] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// Score per step for each seed as an SVG line chart (non-finite scores are left out).
pub fn score_chart(events: &[StepEvent]) -> String {
    let mut series: BTreeMap<u64, Vec<(usize, f64)>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.score.is_finite()) {
        series.entry(e.seed).or_default().push((e.step, e.score));
    }
    let (w, h, pad) = (640.0, 260.0, 40.0);
    let points = series.values().flatten();
    let max_step = points.clone().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let (lo, hi) = points.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo, hi) } else if lo.is_finite() { (lo - 1.0, lo + 1.0) } else { (0.0, 1.0) };
    let x = |s: usize| pad + (w - 2.0 * pad) * s as f64 / max_step;
    let y = |v: f64| h - pad - (h - 2.0 * pad) * (v - lo) / (hi - lo);
    let mut svg = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">");
    let _ = write!(svg, "<line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/>", h - pad, w - pad, h - pad);
    let _ = write!(svg, "<line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"#999\"/>", h - pad);
    let _ = write!(svg, "<text x=\"{pad}\" y=\"{}\">step</text><text x=\"4\" y=\"{}\">{hi:.3}</text><text x=\"4\" y=\"{}\">{lo:.3}</text>", h - 8.0, pad, h - pad);
    for (i, (seed, pts)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = pts.iter().map(|&(s, v)| format!("{:.1},{:.1}", x(s), y(v))).collect();
        let _ = write!(svg, "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>", path.join(" "));
        for &(s, v) in pts {
            let _ = write!(svg, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"><title>seed {seed} step {s}: {v}</title></circle>", x(s), y(v));
        }
        let _ = write!(svg, "<text x=\"{}\" y=\"{}\" fill=\"{color}\">seed {seed}</text>", w - pad - 50.0, pad + 14.0 * i as f64);
    }
    svg.push_str("</svg>");
    svg
}

/// Renders DOT to SVG with Graphviz's `dot` when it is installed.
fn render_dot(dot: &str) -> Option<String> {
    use std::io::Write;
    let mut child = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(dot.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Writes `report.html` for the run folder `dir` (from its config, events and graph).
pub fn write_report(dir: &Path) -> Result<()> {
    let events_path = dir.join(EVENTS_FILE);
    if !events_path.exists() {
        return Err(Error::Checkpoint { path: dir.into(), reason: "not a run folder (no events.jsonl)".into() });
    }
    let events = read_events(&events_path)?;
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap_or_default();
    let mut html = String::from("<!doctype html><html><head><meta charset=\"utf-8\"><title>opto run</title><style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:3px 8px;font-size:13px}pre{background:#f6f8fa;padding:8px;overflow-x:auto;white-space:pre-wrap}details{margin:4px 0}</style></head><body>");
    let _ = write!(html, "<h1>opto run</h1><h2>Configuration</h2><pre>{}</pre>", esc(&config));
    let _ = write!(html, "<h2>Score per step</h2>{}", score_chart(&events));
    // Parameter history.
    html.push_str("<h2>Parameters</h2><table><tr><th>seed</th><th>step</th><th>score</th><th>feedback</th><th>parameters</th></tr>");
    for e in &events {
        let params: Vec<String> = e.params.iter().map(|(k, v)| format!("{k} = {}", crate::optim::optoprime::problem::cut(&v.py_str(), 200))).collect();
        let step = if e.kind == "final" { format!("{} (final)", e.step) } else { e.step.to_string() };
        let _ = write!(html, "<tr><td>{}</td><td>{}</td><td>{:.4}</td><td>{}</td><td><pre>{}</pre></td></tr>", e.seed, step, e.score, esc(&e.feedback), esc(&params.join("\n")));
    }
    html.push_str("</table>");
    if let Ok(dot) = std::fs::read_to_string(dir.join("graph.dot")) {
        html.push_str("<h2>Trace graph (last forward pass, first seed)</h2>");
        match render_dot(&dot) {
            Some(svg) => html.push_str(&svg),
            None => {
                let _ = write!(html, "<p>Graphviz is not installed; the DOT text follows (render it with <code>dot -Tsvg</code>).</p><pre>{}</pre>", esc(&dot));
            }
        }
    }
    html.push_str("<h2>Prompts and replies</h2>");
    for e in events.iter().filter(|e| e.optimizer.is_some()) {
        let opt = e.optimizer.as_ref().cloned().unwrap_or_default();
        let messages = opt.get("messages").and_then(|m| m.as_array()).cloned().unwrap_or_default();
        let prompt: Vec<String> = messages.iter().map(|m| format!("[{}]\n{}", m["role"].as_str().unwrap_or("?"), m["content"].as_str().unwrap_or(""))).collect();
        let reply = opt.get("reply").and_then(|r| r.as_str()).unwrap_or("");
        let error = opt.get("error").and_then(|r| r.as_str()).unwrap_or("");
        let _ = write!(
            html,
            "<details><summary>seed {} step {}{}</summary><h4>Prompt</h4><pre>{}</pre><h4>Reply</h4><pre>{}</pre></details>",
            e.seed,
            e.step,
            if error.is_empty() { String::new() } else { format!(" — {}", esc(error)) },
            esc(&prompt.join("\n\n")),
            esc(reply)
        );
    }
    html.push_str("</body></html>");
    crate::util::write_atomic(&dir.join(super::report::REPORT_FILE), html.as_bytes())
}
