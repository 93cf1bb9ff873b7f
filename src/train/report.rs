//! `report.html`: one self-contained page per run, readable at a laptop's width with nothing
//! else installed — the outcome per seed, the score chart (`chart.rs`), the parameter history
//! (feedback and tracebacks with their line breaks), the final trace graph drawn in pure Rust
//! (`graph::picture`), and every prompt and reply.

use super::chart::{legend, score_chart};
use super::format;
use super::log::{read_events, StepEvent, EVENTS_FILE};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

pub const REPORT_FILE: &str = "report.html";

/// Characters of a parameter value shown in the table before the rest folds away.
const VALUE_SHOWN: usize = 400;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;max-width:1000px;margin:1.5em auto;padding:0 1em;color:#222}\
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:3px}\
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:3px 6px;font-size:13px;vertical-align:top;text-align:left}\
table.history{table-layout:fixed}table.history td{overflow-wrap:anywhere}\
pre,.text{background:#f6f8fa;padding:6px;margin:0;white-space:pre-wrap;overflow-wrap:anywhere;font-family:'DejaVu Sans Mono',Menlo,monospace;font-size:12px}\
.text{background:none;padding:0}details{margin:4px 0}summary{cursor:pointer}\
.note{background:#fff6e0;border-left:4px solid #f0a500;padding:6px 10px}\
.legend .key{margin-right:1.2em;font-size:13px}.swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}\
.num{text-align:right;font-variant-numeric:tabular-nums}";

/// Per seed: its best score, the step it was solved at, and its last parameters.
fn outcome_rows(events: &[StepEvent]) -> String {
    let mut by_seed: BTreeMap<u64, Vec<&StepEvent>> = BTreeMap::new();
    for e in events {
        by_seed.entry(e.seed).or_default().push(e);
    }
    let mut html = String::from(
        "<table><tr><th>seed</th><th>best score</th><th>solved</th><th>final parameters</th></tr>",
    );
    for (seed, evs) in &by_seed {
        let best = evs.iter().map(|e| e.score).reduce(f64::max).unwrap_or(f64::NEG_INFINITY);
        let solved = evs.iter().filter(|e| e.success).map(|e| e.step).min();
        let last = evs.iter().max_by_key(|e| (e.step, e.kind == "final"));
        let params = last.map(|e| format::short_params(&e.params, 90)).unwrap_or_default();
        let _ = write!(
            html,
            "<tr><td class=\"num\">{seed}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            format::score(best, 4),
            solved.map(|s| format!("at step {s}")).unwrap_or_else(|| "no".into()),
            esc(&params)
        );
    }
    html.push_str("</table>");
    html
}

/// A parameter value: shown whole when short, else its start with the rest folded away.
fn value_cell(name: &str, value: &crate::graph::Value) -> String {
    let text = value.py_str();
    if text.chars().count() <= VALUE_SHOWN {
        return format!("<pre>{} = {}</pre>", esc(name), esc(&text));
    }
    format!(
        "<details><summary>{} = {}</summary><pre>{}</pre></details>",
        esc(name),
        esc(&format::short_value(value, 60)),
        esc(&text)
    )
}

/// Writes `report.html` for the run folder `dir` (from its config, events and graph).
pub fn write_report(dir: &Path) -> Result<()> {
    let events_path = dir.join(EVENTS_FILE);
    if !events_path.exists() {
        return Err(Error::Checkpoint {
            path: dir.into(),
            reason: "not a run folder (no events.jsonl)".into(),
        });
    }
    let events = read_events(&events_path)?;
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap_or_default();
    let title = serde_json::from_str::<serde_json::Value>(&config)
        .ok()
        .and_then(|c| c.get("task").and_then(|t| t.as_str()).map(str::to_string))
        .unwrap_or_else(|| "run".into());
    let mut html = format!("<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>opto: {}</title><style>{STYLE}</style></head><body>", esc(&title));
    let _ = write!(
        html,
        "<h1>opto run: {}</h1><p>{}</p>",
        esc(&title),
        esc(&dir.display().to_string())
    );
    let _ = write!(html, "<h2>Outcome</h2>{}", outcome_rows(&events));
    let _ = write!(
        html,
        "<details><summary>Configuration (config.json)</summary><pre>{}</pre></details>",
        esc(&config)
    );
    html.push_str("<h2>Score per step</h2>");
    let chart = score_chart(&events);
    if let Some(note) = &chart.note {
        let _ = write!(html, "<p class=\"note\">{}</p>", esc(note));
    }
    if let Some(svg) = chart.svg {
        html.push_str(&svg);
        html.push_str(&legend(&events));
    }
    html.push_str("<h2>Parameters and feedback per step</h2><table class=\"history\"><colgroup><col style=\"width:6%\"><col style=\"width:9%\"><col style=\"width:9%\"><col style=\"width:38%\"><col style=\"width:38%\"></colgroup><tr><th>seed</th><th>step</th><th>score</th><th>feedback</th><th>parameters</th></tr>");
    for e in &events {
        let params: String = e.params.iter().map(|(k, v)| value_cell(k, v)).collect();
        let step =
            if e.kind == "final" { format!("{} (final)", e.step) } else { e.step.to_string() };
        let _ = write!(
            html,
            "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td><div class=\"text\">{}</div></td><td>{}</td></tr>",
            e.seed,
            step,
            format::score(e.score, 4),
            esc(&e.feedback),
            params
        );
    }
    html.push_str("</table>");
    if let Ok(dot) = std::fs::read_to_string(dir.join("graph.dot")) {
        html.push_str("<h2>Trace graph (last forward pass, first seed)</h2>");
        match crate::graph::picture::dot_to_svg(&dot) {
            Ok(svg) => {
                html.push_str("<p>Pink boxes are the trainable parameters, blue the values and operations computed from them, red an error. Hover a box for its whole label.</p>");
                html.push_str(&svg);
            }
            Err(why) => {
                let _ = write!(
                    html,
                    "<p class=\"note\">No picture: {}. The DOT text is below.</p>",
                    esc(&why)
                );
            }
        }
        let _ = write!(html, "<details><summary>DOT text (graph.dot; <code>dot -Tsvg</code> draws it with Graphviz)</summary><pre>{}</pre></details>", esc(&dot));
    }
    html.push_str("<h2>Prompts and replies</h2>");
    for e in events.iter().filter(|e| e.optimizer.is_some()) {
        let opt = e.optimizer.as_ref().cloned().unwrap_or_default();
        let messages = opt.get("messages").and_then(|m| m.as_array()).cloned().unwrap_or_default();
        let prompt: Vec<String> = messages
            .iter()
            .map(|m| {
                format!(
                    "[{}]\n{}",
                    m["role"].as_str().unwrap_or("?"),
                    m["content"].as_str().unwrap_or("")
                )
            })
            .collect();
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
    crate::util::write_atomic(&dir.join(REPORT_FILE), html.as_bytes())
}
