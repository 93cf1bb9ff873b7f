//! From a parsed suggestion to parameter updates: match keys, coerce each value to the
//! parameter's current type, and report what was applied, unchanged or rejected.
//!
//! Coercion is total and honest: a value that does not fit the type is rejected with a reason,
//! never garbled (the reference's `type(old)(new)` turns a string into a list of characters).

use super::reply::{preview, resolve_keys, ParsedReply};
use crate::graph::Value;
use crate::optim::relaxed_json::parse_relaxed;
use crate::propagate::NodeView;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// What happened to one parameter in a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    /// The new value was set.
    Updated { new: Value },
    /// The suggestion equals the current value.
    Unchanged,
    /// The suggestion could not be used.
    Rejected { suggested: String, reason: String },
    /// The reply did not mention this parameter.
    Missing,
}

/// One parameter's line of a step report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamUpdate {
    pub name: String,
    pub old: Value,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl ParamUpdate {
    pub fn new_value(&self) -> Option<&Value> {
        match &self.outcome {
            Outcome::Updated { new } => Some(new),
            _ => None,
        }
    }
}

/// Converts a suggested JSON value to the type of `target` (the parameter's current value).
pub fn coerce(target: &Value, suggested: &Json) -> Result<Value, String> {
    // `{"value": x}` around a scalar/list suggestion
    if !matches!(target, Value::Dict(_) | Value::None) {
        if let Json::Object(m) = suggested {
            if m.len() == 1 {
                if let Some(inner) = m.get("value").or_else(|| m.get("new_value")) {
                    return coerce(target, inner);
                }
            }
        }
    }
    match target {
        Value::Int(_) => to_int(suggested),
        Value::Float(_) => to_float(suggested).map(Value::Float),
        Value::Bool(_) => to_bool(suggested),
        Value::Str(_) => match suggested {
            Json::String(s) => Ok(Value::Str(s.clone())),
            Json::Number(n) => Ok(Value::Str(n.to_string())),
            Json::Bool(b) => Ok(Value::Str(if *b { "True" } else { "False" }.into())),
            Json::Null => Err("expected text, got null".into()),
            Json::Array(_) => Err("expected text, got a list".into()),
            Json::Object(_) => Err("expected text, got an object".into()),
        },
        Value::Code(_) => match suggested {
            Json::String(s) => {
                let code = strip_fences(s);
                if code.trim().is_empty() {
                    Err("the code is empty".into())
                } else {
                    Ok(Value::Code(code))
                }
            }
            other => Err(format!("expected Python source as a string, got {}", json_kind(other))),
        },
        Value::List(_) => match suggested {
            Json::Array(_) => Ok(Value::from_json(suggested)),
            Json::String(s) => match parse_relaxed(&strip_fences(s)) {
                Some(j @ Json::Array(_)) => Ok(Value::from_json(&j)),
                _ => Err(format!("expected a list, got the text {:?}", preview(s, 60))),
            },
            other => Err(format!("expected a list, got {}", json_kind(other))),
        },
        Value::Dict(_) => match suggested {
            Json::Object(_) => Ok(Value::from_json(suggested)),
            Json::String(s) => match parse_relaxed(&strip_fences(s)) {
                Some(j @ Json::Object(_)) => Ok(Value::from_json(&j)),
                _ => Err(format!("expected a dict, got the text {:?}", preview(s, 60))),
            },
            other => Err(format!("expected a dict, got {}", json_kind(other))),
        },
        Value::None => Ok(Value::from_json(suggested)),
    }
}

fn json_kind(j: &Json) -> &'static str {
    match j {
        Json::Null => "null",
        Json::Bool(_) => "a bool",
        Json::Number(_) => "a number",
        Json::String(_) => "text",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

fn to_float(j: &Json) -> Result<f64, String> {
    match j {
        Json::Number(n) => n.as_f64().ok_or_else(|| format!("{n} is not a float")),
        Json::String(s) => {
            let t = s.trim().trim_end_matches(['.', ',']).replace('_', "");
            match t.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(f),
                Ok(_) => Err(format!("{:?} is not a finite number", preview(s, 40))),
                Err(_) => Err(format!("expected a float, got the text {:?}", preview(s, 60))),
            }
        }
        Json::Bool(_) => Err("expected a float, got a bool".into()),
        other => Err(format!("expected a float, got {}", json_kind(other))),
    }
}

fn to_int(j: &Json) -> Result<Value, String> {
    let from_f = |f: f64, shown: &str| {
        if f.fract() == 0.0 && f.abs() < 9.0e15 {
            Ok(Value::Int(f as i64))
        } else {
            Err(format!("expected an int, got {shown}, which is not a whole number"))
        }
    };
    match j {
        Json::Number(n) => match n.as_i64() {
            Some(i) => Ok(Value::Int(i)),
            None => from_f(n.as_f64().unwrap_or(f64::NAN), &n.to_string()),
        },
        Json::String(s) => {
            let t = s.trim().trim_end_matches(',').replace('_', "");
            if let Ok(i) = t.parse::<i64>() {
                return Ok(Value::Int(i));
            }
            match t.parse::<f64>() {
                Ok(f) => from_f(f, s.trim()),
                Err(_) => Err(format!("expected an int, got the text {:?}", preview(s, 60))),
            }
        }
        Json::Bool(_) => Err("expected an int, got a bool".into()),
        other => Err(format!("expected an int, got {}", json_kind(other))),
    }
}

fn to_bool(j: &Json) -> Result<Value, String> {
    match j {
        Json::Bool(b) => Ok(Value::Bool(*b)),
        Json::Number(n) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
            Ok(Value::Bool(n.as_i64() == Some(1)))
        }
        Json::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("expected true or false, got the text {:?}", preview(s, 60))),
        },
        other => Err(format!("expected true or false, got {}", json_kind(other))),
    }
}

/// Removes a surrounding ``` fence (with or without a language tag) from code.
pub fn strip_fences(s: &str) -> String {
    let t = s.trim();
    if let Some(rest) = t.strip_prefix("```") {
        let body = match rest.find('\n') {
            Some(i) => &rest[i + 1..],
            None => rest,
        };
        let body = body.trim_end();
        let body = body.strip_suffix("```").unwrap_or(body);
        return body.trim_end().to_string();
    }
    s.to_string()
}

/// The plan for one step: an outcome per variable (in order) and the unknown keys.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdatePlan {
    pub updates: Vec<ParamUpdate>,
    pub unknown_keys: Vec<String>,
}

impl UpdatePlan {
    /// One line per rejection / unknown key, to show the LLM on the next step.
    pub fn problems(&self, allowed: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for u in &self.updates {
            match &u.outcome {
                Outcome::Rejected { suggested, reason } => {
                    out.push(format!("{}: your value {} was rejected: {}", u.name, preview(suggested, 80), reason));
                }
                // Small models often answer with the current value; saying so breaks the loop.
                Outcome::Unchanged => out.push(format!(
                    "{}: you suggested its current value {}, so nothing changed; suggest a different value",
                    u.name,
                    preview(&u.old.py_str(), 80)
                )),
                _ => {}
            }
        }
        if !self.unknown_keys.is_empty() {
            out.push(format!(
                "{} cannot be changed; use only these keys: {}",
                self.unknown_keys.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", "),
                allowed.join(", ")
            ));
        }
        out
    }
}

/// A code rewrite must keep the function's name and parameters and compile (checked before it
/// replaces the working code; nothing runs).
fn keeps_code_header(old: &Value, new: Value) -> Result<Value, String> {
    if let (Value::Code(old_source), Value::Code(new_source)) = (old, &new) {
        if let Some(signature) = crate::code::Signature::first(old_source) {
            crate::code::validate_rewrite(&signature, new_source)?;
            if new_source != old_source {
                crate::code::check_compiles(&signature, new_source)?;
            }
        }
    }
    Ok(new)
}

/// A text parameter's new value must keep each of its required texts (a template's `{input}`).
fn keeps_required_text(required: &[String], new: Value) -> Result<Value, String> {
    if let Value::Str(text) | Value::Code(text) = &new {
        let missing: Vec<&str> =
            required.iter().filter(|r| !text.contains(r.as_str())).map(|r| r.as_str()).collect();
        if !missing.is_empty() {
            return Err(format!(
                "it must contain {} exactly as written, so the program can fill it in",
                missing.join(" and ")
            ));
        }
    }
    Ok(new)
}

/// Matches the reply's suggestion to `variables` and coerces each value. Nothing is applied here.
pub fn plan_updates(variables: &[NodeView], parsed: &ParsedReply) -> UpdatePlan {
    let names: Vec<String> = variables.iter().map(|v| v.name.clone()).collect();
    let resolved = resolve_keys(&parsed.suggestion, &names);
    let updates = variables
        .iter()
        .map(|var| {
            let outcome = match resolved.matched.get(&var.name) {
                None => Outcome::Missing,
                Some((_, j)) => {
                    let checked = coerce(&var.value, j)
                        .and_then(|new| keeps_code_header(&var.value, new))
                        .and_then(|new| keeps_required_text(&var.must_contain, new));
                    match checked {
                        Ok(new) if new == var.value => Outcome::Unchanged,
                        Ok(new) => Outcome::Updated { new },
                        Err(reason) => Outcome::Rejected {
                            suggested: match j {
                                Json::String(s) => s.clone(),
                                other => other.to_string(),
                            },
                            reason,
                        },
                    }
                }
            };
            ParamUpdate { name: var.name.clone(), old: var.value.clone(), outcome }
        })
        .collect();
    UpdatePlan { updates, unknown_keys: resolved.unknown }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ints() {
        let t = Value::Int(0);
        assert_eq!(coerce(&t, &json!(3)), Ok(Value::Int(3)));
        assert_eq!(coerce(&t, &json!("3")), Ok(Value::Int(3)));
        assert_eq!(coerce(&t, &json!(3.0)), Ok(Value::Int(3)));
        assert!(coerce(&t, &json!(3.5)).is_err());
        assert!(coerce(&t, &json!("abc")).is_err());
    }

    #[test]
    fn floats_bools_text() {
        assert_eq!(coerce(&Value::Float(0.0), &json!("2.5")), Ok(Value::Float(2.5)));
        assert_eq!(coerce(&Value::Float(0.0), &json!(2)), Ok(Value::Float(2.0)));
        assert_eq!(coerce(&Value::Bool(false), &json!("true")), Ok(Value::Bool(true)));
        assert_eq!(coerce(&Value::Str("a".into()), &json!("b")), Ok(Value::Str("b".into())));
    }

    #[test]
    fn lists_are_never_characters() {
        let t = Value::List(vec![]);
        assert_eq!(
            coerce(&t, &json!("[1, 'a']")),
            Ok(Value::List(vec![Value::Int(1), Value::Str("a".into())]))
        );
        assert!(coerce(&t, &json!("hello")).is_err());
        assert!(coerce(&Value::Dict(Default::default()), &json!("[1]")).is_err());
    }

    #[test]
    fn a_template_that_drops_its_slot_is_rejected_and_says_what_it_lost() {
        let var = NodeView {
            name: "prompt".into(),
            value: Value::Str("Answer: {input}".into()),
            constraint: None,
            must_contain: vec!["{input}".into()],
            description: String::new(),
        };
        let reply = |text: &str| {
            super::super::reply::parse_reply(&json!({"suggestion": {"prompt": text}}).to_string())
                .unwrap()
        };
        let pasted = plan_updates(
            std::slice::from_ref(&var),
            &reply("Sort these words: pear apple fig. End with Answer:"),
        );
        match &pasted.updates[0].outcome {
            Outcome::Rejected { reason, .. } => assert!(reason.contains("{input}"), "{reason}"),
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert!(pasted.problems(&["prompt".into()])[0].contains("must contain {input}"));
        let kept = plan_updates(
            std::slice::from_ref(&var),
            &reply("Think step by step.\n\n{input}\n\nEnd with a line `Answer: ...`."),
        );
        assert!(matches!(kept.updates[0].outcome, Outcome::Updated { .. }), "{kept:?}");
    }

    #[test]
    fn code_rewrites_must_keep_the_header() {
        let var = NodeView {
            name: "__code0".into(),
            value: Value::Code("def f(x):\n    return x\n".into()),
            constraint: None,
            must_contain: Vec::new(),
            description: String::new(),
        };
        let reply = |code: &str| {
            super::super::reply::parse_reply(&json!({"suggestion": {"__code0": code}}).to_string())
                .unwrap()
        };
        let plan =
            plan_updates(std::slice::from_ref(&var), &reply("def g(x):\n    return 2 * x\n"));
        assert!(
            matches!(&plan.updates[0].outcome, Outcome::Rejected { reason, .. } if reason.contains('f')),
            "{:?}",
            plan.updates[0]
        );
        let plan =
            plan_updates(std::slice::from_ref(&var), &reply("def f(x):\n    return 2 * x\n"));
        assert!(matches!(plan.updates[0].outcome, Outcome::Updated { .. }));
        let plan = plan_updates(std::slice::from_ref(&var), &reply(""));
        assert!(matches!(plan.updates[0].outcome, Outcome::Rejected { .. }));
        let plan = plan_updates(std::slice::from_ref(&var), &reply("def f(x):\n    return x\n"));
        assert!(plan.problems(&["__code0".into()])[0].contains("current value"));
        // Code that does not compile never replaces the working code; its error is the reason.
        let plan = plan_updates(std::slice::from_ref(&var), &reply("def f(x):\n    return (x +\n"));
        assert!(
            matches!(&plan.updates[0].outcome, Outcome::Rejected { reason, .. } if reason.contains("SyntaxError")),
            "{:?}",
            plan.updates[0]
        );
        assert!(plan.problems(&["__code0".into()])[0].contains("does not compile"));
    }

    #[test]
    fn code_strips_fences() {
        let t = Value::Code("def f(): pass".into());
        assert_eq!(
            coerce(&t, &json!("```python\ndef f():\n    return 1\n```")),
            Ok(Value::Code("def f():\n    return 1".into()))
        );
        assert!(coerce(&t, &json!("  ")).is_err());
    }
}
