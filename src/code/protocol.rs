//! The worker protocol: one JSON object per line over the child's stdin/stdout. Values travel in
//! a small JSON encoding of their own because JSON has no NaN or infinity and cannot tell code
//! from a string: plain JSON for None, bools, ints, finite floats (always written with a `.` or
//! exponent, so ints stay ints), strings and lists; one-key objects for the rest.

use super::error::CodeError;
use super::sandbox::Limits;
use crate::graph::Value;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Parse `source` and keep the program under `id`.
    Compile { id: u64, fn_name: String, source: String },
    /// Run program `id` with encoded `args` (a JSON array).
    Call { id: u64, args: Json, limits: WireLimits },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Compiled,
    Value {
        value: Json,
        printed: String,
    },
    Error {
        error: CodeError,
    },
    /// The worker holds no program under this id (it was restarted or evicted it): compile again.
    Unknown {
        id: u64,
    },
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct WireLimits {
    pub wall_time_us: u64,
    pub max_recursion_depth: usize,
    pub max_memory_bytes: Option<usize>,
}

impl From<&Limits> for WireLimits {
    fn from(l: &Limits) -> Self {
        WireLimits {
            wall_time_us: u64::try_from(l.wall_time.as_micros()).unwrap_or(u64::MAX),
            max_recursion_depth: l.max_recursion_depth,
            max_memory_bytes: l.max_memory_bytes,
        }
    }
}

impl From<WireLimits> for Limits {
    fn from(w: WireLimits) -> Self {
        Limits {
            wall_time: Duration::from_micros(w.wall_time_us),
            max_recursion_depth: w.max_recursion_depth,
            max_memory_bytes: w.max_memory_bytes,
        }
    }
}

pub fn encode(value: &Value) -> Json {
    match value {
        Value::None => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => Json::Number(n),
            None => {
                json!({ "f": if f.is_nan() { "nan" } else if *f > 0.0 { "inf" } else { "-inf" } })
            }
        },
        Value::Str(s) => Json::String(s.clone()),
        Value::Code(s) => json!({ "c": s }),
        Value::List(items) => Json::Array(items.iter().map(encode).collect()),
        Value::Dict(map) => {
            json!({ "d": map.iter().map(|(k, v)| (k.clone(), encode(v))).collect::<serde_json::Map<_, _>>() })
        }
    }
}

pub fn decode(json: &Json) -> Result<Value, String> {
    Ok(match json {
        Json::Null => Value::None,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) if !n.is_f64() => Value::Int(i),
            _ => Value::Float(n.as_f64().ok_or_else(|| format!("number out of range: {n}"))?),
        },
        Json::String(s) => Value::Str(s.clone()),
        Json::Array(items) => Value::List(items.iter().map(decode).collect::<Result<_, _>>()?),
        Json::Object(obj) => match obj.iter().next() {
            Some((tag, inner)) if obj.len() == 1 => match (tag.as_str(), inner) {
                ("f", Json::String(s)) => Value::Float(match s.as_str() {
                    "nan" => f64::NAN,
                    "inf" => f64::INFINITY,
                    "-inf" => f64::NEG_INFINITY,
                    other => return Err(format!("bad float tag {other:?}")),
                }),
                ("c", Json::String(s)) => Value::Code(s.clone()),
                ("d", Json::Object(map)) => Value::Dict(
                    map.iter()
                        .map(|(k, v)| Ok((k.clone(), decode(v)?)))
                        .collect::<Result<IndexMap<_, _>, String>>()?,
                ),
                _ => return Err(format!("unknown value tag {tag:?}")),
            },
            _ => return Err("a value object must have exactly one tag".into()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_survives_the_wire_including_nan_and_code() {
        let mut d = IndexMap::new();
        d.insert("d".to_string(), Value::Float(f64::INFINITY));
        d.insert(
            "x".to_string(),
            Value::List(vec![Value::Int(2), Value::Float(2.0), Value::Float(f64::NEG_INFINITY)]),
        );
        let v = Value::List(vec![
            Value::Dict(d),
            Value::Code("def f(): pass".into()),
            Value::Str("s".into()),
            Value::None,
        ]);
        let line = serde_json::to_string(&encode(&v)).unwrap();
        let back = decode(&serde_json::from_str(&line).unwrap()).unwrap();
        assert_eq!(back, v);
        let nan = decode(
            &serde_json::from_str(
                &serde_json::to_string(&encode(&Value::Float(f64::NAN))).unwrap(),
            )
            .unwrap(),
        );
        assert!(matches!(nan, Ok(Value::Float(f)) if f.is_nan()));
    }

    #[test]
    fn malformed_values_are_errors_not_panics() {
        assert!(decode(&json!({"q": 1})).is_err());
        assert!(decode(&json!({"f": "big"})).is_err());
        assert!(decode(&json!({"d": {}, "c": "x"})).is_err());
    }
}
