//! The table a finished run prints: per seed its best score, the step it was solved at and its
//! final parameters (shortened), then the totals — what a person reads first, in plain text.
//!
//! Hand-written (four aligned columns) rather than a table crate: one small format is not worth
//! a dependency.

use super::format;
use super::log::StepEvent;
use super::trainer::RunSummary;

/// Characters of the parameters column.
const PARAMS_WIDTH: usize = 60;

/// The final table of `summary`, with each seed's final parameters taken from its last event.
pub fn outcome_table(summary: &RunSummary, events: &[StepEvent], first_seed: u64) -> String {
    let header = ["seed", "best score", "solved", "final parameters"].map(String::from);
    let mut rows = vec![header];
    for (i, (solved_at, best)) in summary.solved_at.iter().zip(&summary.best_scores).enumerate() {
        let seed = first_seed + i as u64;
        let last =
            events.iter().filter(|e| e.seed == seed).max_by_key(|e| (e.step, e.kind == "final"));
        rows.push([
            seed.to_string(),
            best.map(|b| format::score(b, 4)).unwrap_or_else(|| "none".into()),
            solved_at.map(|s| format!("at step {s}")).unwrap_or_else(|| "no".into()),
            last.map(|e| format::short_params(&e.params, PARAMS_WIDTH)).unwrap_or_default(),
        ]);
    }
    let widths: Vec<usize> =
        (0..4).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &rows {
        // Numbers right-aligned, text left-aligned; the last column is not padded.
        let line = format!(
            "{:>w0$}  {:>w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let solved = summary.solved_at.iter().filter(|s| s.is_some()).count();
    let seeds = summary.solved_at.len();
    let per_step = if summary.batch_seconds.is_empty() {
        String::new()
    } else {
        format!(
            " · {} per LLM batch",
            format::duration(
                summary.batch_seconds.iter().sum::<f64>() / summary.batch_seconds.len() as f64
            )
        )
    };
    // Steps actually taken: a run whose seeds all solved early stops before `steps_done`.
    let steps_run = events
        .iter()
        .filter(|e| e.kind == "step")
        .map(|e| e.step + 1)
        .max()
        .unwrap_or(summary.steps_done);
    let all_failed = summary.best_scores.iter().all(|b| b.is_none_or(|b| b == f64::NEG_INFINITY));
    out.push_str(&format!(
        "solved {solved} of {seeds} seed{} · {} steps{per_step} · {} in all\n",
        if seeds == 1 { "" } else { "s" },
        steps_run,
        format::duration(summary.total_s)
    ));
    if all_failed && seeds > 0 {
        out.push_str("every program failed (score -inf): the report's feedback column shows why\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Value;
    use indexmap::IndexMap;

    fn event(seed: u64, step: usize, x: f64, kind: &str) -> StepEvent {
        let mut params = IndexMap::new();
        params.insert("x".to_string(), Value::Float(x));
        StepEvent {
            step,
            seed,
            params,
            score: -x.abs(),
            feedback: String::new(),
            success: false,
            optimizer: None,
            batch_s: None,
            batch_size: None,
            forward_s: 0.0,
            kind: kind.into(),
            search: None,
        }
    }

    #[test]
    fn one_row_per_seed_then_the_totals() {
        let summary = RunSummary {
            out_dir: "runs/x".into(),
            steps_done: 3,
            solved_at: vec![Some(2), None],
            best_scores: vec![Some(-0.0), Some(-12.5)],
            batch_seconds: vec![6.0, 8.0],
            total_s: 20.0,
            held_out: Vec::new(),
        };
        let events = vec![
            event(0, 0, 1.0, "step"),
            event(0, 2, 0.0, "step"),
            event(1, 2, 7.0, "step"),
            event(1, 3, 8.0, "final"),
        ];
        let table = outcome_table(&summary, &events, 0);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "seed  best score  solved     final parameters");
        assert_eq!(lines[1], "   0      0.0000  at step 2  x = 0.0");
        assert_eq!(lines[2], "   1    -12.5000  no         x = 8.0");
        assert_eq!(lines[3], "solved 1 of 2 seeds · 3 steps · 7.0 s per LLM batch · 20.0 s in all");
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn an_all_failed_run_says_so() {
        let summary = RunSummary {
            out_dir: "r".into(),
            steps_done: 1,
            solved_at: vec![None],
            best_scores: vec![Some(f64::NEG_INFINITY)],
            batch_seconds: vec![],
            total_s: 1.0,
            held_out: Vec::new(),
        };
        let table = outcome_table(&summary, &[], 5);
        assert!(table.contains("\n   5        -inf  no\n"), "{table}");
        assert!(table.contains("every program failed"), "{table}");
    }
}
