//! The bracket hint: when the program has one numeric variable and two of its tried values got
//! different feedback, the value the feedback asks for most likely lies between the closest such
//! pair. Small models do not find that pair in a list of tries on their own (they drift in one
//! direction, or circle back), so the prompt names it in one sentence, with both values and both
//! feedbacks. Nothing here knows a task's wording: "different feedback" is string inequality.

use super::prompt::MemoryEntry;
use crate::graph::Value;
use crate::propagate::Summary;
use serde_json::Value as Json;

/// The sentence, or `None` when there is no single numeric variable or no change of feedback.
pub fn bracket_hint(summary: &Summary, memory: &[MemoryEntry]) -> Option<String> {
    let [var] = summary.variables.as_slice() else { return None };
    let current = match &var.value {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => return None,
    };
    let mut points: Vec<(f64, String)> = memory
        .iter()
        .filter_map(|m| match m.variables.get(&var.name) {
            Some(Json::Number(n)) => n.as_f64().map(|x| (x, m.feedback.trim().to_string())),
            _ => None,
        })
        .collect();
    points.push((current, summary.feedback_text().trim().to_string()));
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points.dedup_by(|a, b| a.0 == b.0);
    // the closest neighbours whose feedback differs
    let pair = points
        .windows(2)
        .filter(|w| w[0].1 != w[1].1 && !w[0].1.is_empty() && !w[1].1.is_empty())
        .min_by(|a, b| (a[1].0 - a[0].0).total_cmp(&(b[1].0 - b[0].0)))?;
    let (lo, hi) = (&pair[0], &pair[1]);
    Some(format!(
        "The feedback changes between {name}={lo_x} (\"{lo_f}\") and {name}={hi_x} (\"{hi_f}\"), so a better {name} is most likely between {lo_x} and {hi_x}.",
        name = var.name,
        lo_x = Value::Float(lo.0).py_str(),
        hi_x = Value::Float(hi.0).py_str(),
        lo_f = short(&lo.1),
        hi_f = short(&hi.1),
    ))
}

fn short(s: &str) -> String {
    let one_line = s.lines().next().unwrap_or_default();
    if one_line.chars().count() <= 60 {
        one_line.to_string()
    } else {
        format!("{}…", one_line.chars().take(60).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propagate::{FeedbackEntry, NodeView};

    fn summary(x: f64, feedback: &str) -> Summary {
        Summary {
            variables: vec![NodeView {
                name: "x".into(),
                value: Value::Float(x),
                constraint: None,
                must_contain: Vec::new(),
                description: String::new(),
            }],
            feedback: vec![FeedbackEntry { output: "y".into(), feedback: feedback.into() }],
            ..Default::default()
        }
    }

    fn tried(x: f64, feedback: &str) -> MemoryEntry {
        MemoryEntry {
            variables: [("x".to_string(), serde_json::json!(x))].into_iter().collect(),
            output: None,
            feedback: feedback.into(),
            score: None,
        }
    }

    #[test]
    fn the_closest_pair_with_different_feedback_is_named() {
        let memory = [tried(0.0, "larger"), tried(5.0, "smaller"), tried(2.0, "larger")];
        let hint = bracket_hint(&summary(3.0, "smaller"), &memory).unwrap();
        assert!(hint.contains("x=2.0 (\"larger\") and x=3.0 (\"smaller\")"), "{hint}");
    }

    #[test]
    fn no_hint_without_a_change_or_without_one_numeric_variable() {
        assert!(bracket_hint(&summary(1.0, "larger"), &[tried(0.0, "larger")]).is_none());
        assert!(bracket_hint(&summary(1.0, "larger"), &[]).is_none());
        let mut two = summary(1.0, "larger");
        two.variables.push(NodeView {
            name: "y".into(),
            value: Value::Float(0.0),
            constraint: None,
            must_contain: Vec::new(),
            description: String::new(),
        });
        assert!(bracket_hint(&two, &[tried(0.0, "smaller")]).is_none());
    }
}
