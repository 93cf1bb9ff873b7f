//! How scores, durations and parameter values read where a person looks: the progress lines,
//! the final table and the report. One place, so the three never disagree (and none prints
//! "-0.0000" or a Rust debug value).

use crate::graph::Value;
use crate::text::cut_words;
use indexmap::IndexMap;

/// A score with `decimals` places; −inf (a failed program) reads `-inf`, and a value that
/// rounds to zero never keeps its minus sign.
pub fn score(value: f64, decimals: usize) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let text = format!("{value:.decimals$}");
    match text.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => text,
    }
}

/// Seconds as `4.2 s`, `3 min 05 s` or `1 h 02 min`.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "?".into();
    }
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let whole = seconds.round() as u64;
    if whole < 3600 {
        format!("{} min {:02} s", whole / 60, whole % 60)
    } else {
        format!("{} h {:02} min", whole / 3600, whole % 3600 / 60)
    }
}

/// One value on one line of at most `limit` characters: code shows its first line and its line
/// count, other values their Python text with line breaks shown as spaces.
pub fn short_value(value: &Value, limit: usize) -> String {
    let text = match value {
        Value::Code(source) => {
            let lines: Vec<&str> = source.lines().filter(|l| !l.trim().is_empty()).collect();
            let first = lines.first().map(|l| l.trim()).unwrap_or("");
            let whole = if lines.len() > 1 {
                format!("{first} … ({} lines)", lines.len())
            } else {
                first.to_string()
            };
            // Too long: the function's name and size say more than a cut header.
            let name = first.strip_prefix("def ").and_then(|rest| rest.split('(').next());
            match name {
                Some(name) if whole.chars().count() > limit => {
                    format!("def {name} ({} lines)", lines.len())
                }
                _ => whole,
            }
        }
        other => other.py_str().split_whitespace().collect::<Vec<_>>().join(" "),
    };
    cut_words(&text, limit)
}

/// `name = value` pairs, each shortened, joined by `; ` and cut to `limit` characters.
pub fn short_params(params: &IndexMap<String, Value>, limit: usize) -> String {
    let each = if params.is_empty() { limit } else { (limit / params.len()).max(16) };
    let parts: Vec<String> = params
        .iter()
        .map(|(name, v)| {
            format!(
                "{name} = {}",
                short_value(v, each.saturating_sub(name.chars().count() + 3).max(8))
            )
        })
        .collect();
    cut_words(&parts.join("; "), limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_never_show_a_negative_zero() {
        assert_eq!(score(-0.00001, 4), "0.0000");
        assert_eq!(score(-0.0, 3), "0.000");
        assert_eq!(score(-0.25, 3), "-0.250");
        assert_eq!(score(f64::NEG_INFINITY, 3), "-inf");
        assert_eq!(score(12.0, 1), "12.0");
    }

    #[test]
    fn durations_read_in_units_a_person_uses() {
        assert_eq!(duration(4.24), "4.2 s");
        assert_eq!(duration(185.0), "3 min 05 s");
        assert_eq!(duration(3720.0), "1 h 02 min");
    }

    #[test]
    fn code_is_shown_by_its_first_line_and_length() {
        let v =
            Value::Code("def act(map, plan):\n    \"\"\"Doc.\"\"\"\n    return [0, 0]\n".into());
        assert_eq!(short_value(&v, 60), "def act(map, plan): … (3 lines)");
        assert_eq!(short_value(&v, 20), "def act (3 lines)");
        assert_eq!(short_value(&Value::Float(2.5), 10), "2.5");
    }

    #[test]
    fn parameters_fit_their_width() {
        let mut p = IndexMap::new();
        p.insert("x".to_string(), Value::Float(-3.0));
        assert_eq!(short_params(&p, 40), "x = -3.0");
        p.insert(
            "prompt".to_string(),
            Value::Str("a long instruction that goes on and on and on".into()),
        );
        assert!(short_params(&p, 40).chars().count() <= 40, "{}", short_params(&p, 40));
    }
}
