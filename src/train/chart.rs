//! The report's score chart: score per step for each seed as an SVG line chart with ticked and
//! labelled axes. Failed evaluations (score −inf) cannot sit on a score axis, so they are marked
//! ✕ below it and counted in a note; a run with no finite score gets the note and no chart.

use super::format;
use super::log::StepEvent;
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const COLORS: [&str; 8] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

const W: f64 = 900.0;
const H: f64 = 320.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 16.0;
/// Room for the x tick labels, the axis title and the row of failure marks.
const BOTTOM: f64 = 62.0;

/// What the chart section shows: the SVG (absent when no score is finite) and a note.
pub struct Chart {
    pub svg: Option<String>,
    pub note: Option<String>,
}

/// Ticks at 1, 2 or 5 times a power of ten covering `lo..=hi`, about `target` of them, and the
/// decimals their labels need.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, usize) {
    let span = (hi - lo).abs().max(1e-9);
    let raw = span / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    // The round step nearest the raw one (in ratio), so a range gets 4 to 8 ticks.
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .min_by(|a, b| (a / raw).ln().abs().total_cmp(&(b / raw).ln().abs()))
        .unwrap_or(magnitude);
    let first = (lo / step).floor();
    let mut ticks = Vec::new();
    for i in 0..50 {
        let t = (first + i as f64) * step;
        ticks.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        if t >= hi - step * 1e-9 {
            break;
        }
    }
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    (ticks, decimals)
}

/// Integer step ticks for `0..=max_step`, at most about 12.
fn step_ticks(max_step: usize) -> Vec<usize> {
    let every = [1usize, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
        .into_iter()
        .find(|e| max_step / e <= 12)
        .unwrap_or(max_step.max(1));
    (0..=max_step).step_by(every).collect()
}

pub fn score_chart(events: &[StepEvent]) -> Chart {
    let mut series: BTreeMap<u64, Vec<(usize, f64)>> = BTreeMap::new();
    let mut failed: Vec<(u64, usize)> = Vec::new();
    for e in events {
        series.entry(e.seed).or_default();
        if e.score.is_finite() {
            series.entry(e.seed).or_default().push((e.step, e.score));
        } else {
            failed.push((e.seed, e.step));
        }
    }
    let total = events.len();
    let finite: Vec<f64> = series.values().flatten().map(|p| p.1).collect();
    if finite.is_empty() {
        let note = if total == 0 {
            "No step has been logged yet, so there is no score to draw.".to_string()
        } else {
            format!("Every evaluation failed ({total} of {total} scored −inf: the program raised an error or broke a rule of the task), so there is no score curve to draw. The feedback column of the table below shows each error.")
        };
        return Chart { svg: None, note: Some(note) };
    }
    let (lo, hi) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 1.0, hi + 1.0) };
    let (yticks, decimals) = nice_ticks(lo, hi, 5);
    let (lo, hi) = (yticks[0].min(lo), yticks[yticks.len() - 1].max(hi));
    let max_step = events.iter().map(|e| e.step).max().unwrap_or(1).max(1);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let x = |s: usize| LEFT + plot_w * s as f64 / max_step as f64;
    let y = |v: f64| TOP + plot_h * (1.0 - (v - lo) / (hi - lo));
    let axis_y = TOP + plot_h;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"score-chart\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" style=\"max-width:100%;height:auto\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\" role=\"img\" aria-label=\"score per step\">"
    );
    // Grid lines and y labels.
    for &t in &yticks {
        let ty = y(t);
        let _ = write!(svg, "<line class=\"ytick\" x1=\"{LEFT}\" y1=\"{ty:.1}\" x2=\"{:.1}\" y2=\"{ty:.1}\" stroke=\"#e4e4e4\"/>", W - RIGHT);
        let _ = write!(svg, "<text x=\"{:.1}\" y=\"{ty:.1}\" text-anchor=\"end\" dominant-baseline=\"central\">{}</text>", LEFT - 6.0, format::score(t, decimals));
    }
    for s in step_ticks(max_step) {
        let tx = x(s);
        let _ = write!(svg, "<line class=\"xtick\" x1=\"{tx:.1}\" y1=\"{axis_y:.1}\" x2=\"{tx:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>", axis_y + 5.0);
        let _ = write!(
            svg,
            "<text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{s}</text>",
            axis_y + 18.0
        );
    }
    let _ = write!(svg, "<line x1=\"{LEFT}\" y1=\"{axis_y:.1}\" x2=\"{:.1}\" y2=\"{axis_y:.1}\" stroke=\"#666\"/><line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{axis_y:.1}\" stroke=\"#666\"/>", W - RIGHT);
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">step</text>",
        LEFT + plot_w / 2.0,
        H - 4.0
    );
    let _ = write!(
        svg,
        "<text transform=\"translate(14,{:.1}) rotate(-90)\" text-anchor=\"middle\">score</text>",
        TOP + plot_h / 2.0
    );
    let color_of: BTreeMap<u64, &str> =
        series.keys().enumerate().map(|(i, &s)| (s, COLORS[i % COLORS.len()])).collect();
    for (seed, pts) in &series {
        let color = color_of[seed];
        let path: Vec<String> =
            pts.iter().map(|&(s, v)| format!("{:.1},{:.1}", x(s), y(v))).collect();
        if pts.len() > 1 {
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
                path.join(" ")
            );
        }
        for &(s, v) in pts {
            let _ = write!(svg, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{color}\"><title>seed {seed}, step {s}: score {}</title></circle>", x(s), y(v), format::score(v, 4));
        }
    }
    // Failed evaluations: a mark in the seed's colour on a row under the step labels' line.
    let fail_y = axis_y + 32.0;
    if !failed.is_empty() {
        let _ = write!(svg, "<text x=\"{:.1}\" y=\"{fail_y:.1}\" text-anchor=\"end\" dominant-baseline=\"central\" fill=\"#b22222\">failed</text>", LEFT - 6.0);
    }
    for &(seed, s) in &failed {
        let (cx, color) = (x(s), color_of.get(&seed).copied().unwrap_or("#b22222"));
        let _ = write!(svg, "<text class=\"failed\" x=\"{cx:.1}\" y=\"{fail_y:.1}\" text-anchor=\"middle\" dominant-baseline=\"central\" font-size=\"14\" fill=\"{color}\">✕<title>seed {seed}, step {s}: failed (score -inf)</title></text>");
    }
    svg.push_str("</svg>");
    let note = (!failed.is_empty()).then(|| format!("{} of {total} evaluations failed (score −inf) and are marked ✕ on the “failed” row; the table below shows their errors.", failed.len()));
    Chart { svg: Some(svg), note }
}

/// The colour key of the chart, as HTML.
pub fn legend(events: &[StepEvent]) -> String {
    let seeds: std::collections::BTreeSet<u64> = events.iter().map(|e| e.seed).collect();
    let items: Vec<String> = seeds
        .iter()
        .enumerate()
        .map(|(i, s)| format!("<span class=\"key\"><span class=\"swatch\" style=\"background:{}\"></span>seed {s}</span>", COLORS[i % COLORS.len()]))
        .collect();
    format!("<p class=\"legend\">{}</p>", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers_covering_the_range() {
        let (t, d) = nice_ticks(-12.3, -0.2, 5);
        assert_eq!(t, vec![-14.0, -12.0, -10.0, -8.0, -6.0, -4.0, -2.0, 0.0]);
        assert_eq!(d, 0);
        let (t, d) = nice_ticks(0.0, 0.3, 5);
        assert_eq!(d, 2);
        assert!(t.len() >= 4 && t[0] <= 0.0 && *t.last().unwrap() >= 0.3, "{t:?}");
        assert_eq!(step_ticks(10), (0..=10).collect::<Vec<_>>());
        assert_eq!(step_ticks(40), vec![0, 5, 10, 15, 20, 25, 30, 35, 40]);
    }
}
