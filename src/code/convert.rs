//! Values across the sandbox boundary: `Value` → `MontyObject` for arguments, `MontyObject` →
//! `Value` for results, and `coerce` to fit a result to the type the caller expects (Python code
//! happily returns `0` where a float is meant).

use crate::graph::Value;
use indexmap::IndexMap;
use monty_types::MontyObject;

/// A `Value` as the interpreter's input object. Code text goes in as a plain string.
pub fn to_monty(value: &Value) -> MontyObject {
    match value {
        Value::None => MontyObject::None,
        Value::Bool(b) => MontyObject::Bool(*b),
        Value::Int(i) => MontyObject::Int(*i),
        Value::Float(f) => MontyObject::Float(*f),
        Value::Str(s) | Value::Code(s) => MontyObject::String(s.clone()),
        Value::List(items) => MontyObject::List(items.iter().map(to_monty).collect()),
        Value::Dict(map) => MontyObject::dict(
            map.iter()
                .map(|(k, v)| (MontyObject::String(k.clone()), to_monty(v)))
                .collect::<Vec<_>>(),
        ),
    }
}

/// A result object as a `Value`. Tuples and sets become lists, dataclass instances and named
/// tuples become dicts, non-string dict keys become their `str()`; anything else that is not
/// data (functions, classes, file handles, ...) is an error naming the Python type.
pub fn from_monty(obj: &MontyObject) -> Result<Value, String> {
    from_monty_at(obj, 0)
}

/// Nesting allowed in a result; deeper structures are refused rather than risking the stack
/// (and JSON parsers stop at 128 levels).
pub const MAX_NESTING: usize = 100;

fn from_monty_at(obj: &MontyObject, depth: usize) -> Result<Value, String> {
    if depth > MAX_NESTING {
        return Err(format!("the value is nested more than {MAX_NESTING} levels deep"));
    }
    let from_monty = |o: &MontyObject| from_monty_at(o, depth + 1);
    Ok(match obj {
        MontyObject::None => Value::None,
        MontyObject::Bool(b) => Value::Bool(*b),
        MontyObject::Int(i) => Value::Int(*i),
        MontyObject::BigInt(b) => {
            return Err(format!("the integer {b} does not fit in 64 bits"));
        }
        MontyObject::Float(f) => Value::Float(*f),
        MontyObject::String(s) => Value::Str(s.clone()),
        MontyObject::List(items)
        | MontyObject::Tuple(items)
        | MontyObject::Set(items)
        | MontyObject::FrozenSet(items) => {
            Value::List(items.iter().map(from_monty).collect::<Result<_, _>>()?)
        }
        MontyObject::NamedTuple { field_names, values, .. } => {
            let mut map = IndexMap::new();
            for (k, v) in field_names.iter().zip(values) {
                map.insert(k.clone(), from_monty(v)?);
            }
            Value::Dict(map)
        }
        MontyObject::Dict(pairs) => {
            let mut map = IndexMap::new();
            for (k, v) in pairs.iter() {
                map.insert(key_text(k)?, from_monty(v)?);
            }
            Value::Dict(map)
        }
        MontyObject::ClassInstance(inst) => {
            let mut map = IndexMap::new();
            for (k, v) in inst.attrs.iter() {
                map.insert(key_text(k)?, from_monty(v)?);
            }
            Value::Dict(map)
        }
        MontyObject::Cycle(..) => return Err("the result contains a reference cycle".into()),
        other => {
            return Err(format!("a value of type '{}' cannot leave the sandbox", other.type_name()))
        }
    })
}

/// Dict keys become strings the way `json.dumps` does (`1` → `"1"`, `True` → `"True"` as str()).
fn key_text(key: &MontyObject) -> Result<String, String> {
    match key {
        MontyObject::String(s) => Ok(s.clone()),
        MontyObject::Int(_)
        | MontyObject::BigInt(_)
        | MontyObject::Float(_)
        | MontyObject::Bool(_)
        | MontyObject::None => Ok(key.to_string()),
        MontyObject::Tuple(_) => Ok(key.py_repr()),
        other => {
            Err(format!("a dict key of type '{}' cannot leave the sandbox", other.type_name()))
        }
    }
}

/// The type a caller expects back. `Any` keeps the value as it came.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Expected {
    #[default]
    Any,
    None,
    Bool,
    Int,
    Float,
    Str,
    /// A list whose items all have the inner type.
    List(Box<Expected>),
    /// A dict whose values all have the inner type.
    Dict(Box<Expected>),
}

impl Expected {
    /// The type of an example value: its containers' first item (or the first value) decides the
    /// item type. Used to keep a trainable function's output shaped like its first output.
    pub fn like(example: &Value) -> Expected {
        match example {
            Value::None => Expected::Any,
            Value::Bool(_) => Expected::Bool,
            Value::Int(_) => Expected::Int,
            Value::Float(_) => Expected::Float,
            Value::Str(_) | Value::Code(_) => Expected::Str,
            Value::List(items) => {
                Expected::List(Box::new(items.first().map(Expected::like).unwrap_or(Expected::Any)))
            }
            Value::Dict(map) => Expected::Dict(Box::new(
                map.values().next().map(Expected::like).unwrap_or(Expected::Any),
            )),
        }
    }

    fn name(&self) -> String {
        match self {
            Expected::Any => "any value".into(),
            Expected::None => "None".into(),
            Expected::Bool => "bool".into(),
            Expected::Int => "int".into(),
            Expected::Float => "float".into(),
            Expected::Str => "str".into(),
            Expected::List(inner) => format!("list of {}", inner.name()),
            Expected::Dict(inner) => format!("dict of {}", inner.name()),
        }
    }
}

/// Fits `value` to `expected`: int/bool → float, a float with no fractional part → int,
/// bool ↔ int as Python allows, recursively through lists and dicts. Anything else is an error
/// text in Python's words, e.g. `expected float, got str 'fast'`.
pub fn coerce(value: Value, expected: &Expected) -> Result<Value, String> {
    let mismatch = |v: &Value| {
        let mut shown = v.py_repr();
        if shown.len() > 80 {
            let cut = (0..=77).rev().find(|&i| shown.is_char_boundary(i)).unwrap_or(0);
            shown.truncate(cut);
            shown.push_str("...");
        }
        Err(format!("expected {}, got {} {}", expected.name(), v.type_name(), shown))
    };
    match (expected, value) {
        (Expected::Any, v) => Ok(v),
        (Expected::None, Value::None) => Ok(Value::None),
        (Expected::Bool, Value::Bool(b)) => Ok(Value::Bool(b)),
        (Expected::Bool, Value::Int(i)) if i == 0 || i == 1 => Ok(Value::Bool(i == 1)),
        (Expected::Int, Value::Int(i)) => Ok(Value::Int(i)),
        (Expected::Int, Value::Bool(b)) => Ok(Value::Int(b as i64)),
        (Expected::Int, Value::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            Ok(Value::Int(f as i64))
        }
        (Expected::Float, Value::Float(f)) => Ok(Value::Float(f)),
        (Expected::Float, Value::Int(i)) => Ok(Value::Float(i as f64)),
        (Expected::Float, Value::Bool(b)) => Ok(Value::Float(b as i64 as f64)),
        (Expected::Str, Value::Str(s)) => Ok(Value::Str(s)),
        (Expected::Str, Value::Code(s)) => Ok(Value::Str(s)),
        (Expected::List(inner), Value::List(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| coerce(v, inner).map_err(|e| format!("item {i}: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::List),
        (Expected::Dict(inner), Value::Dict(map)) => map
            .into_iter()
            .map(|(k, v)| match coerce(v, inner) {
                Ok(v) => Ok((k, v)),
                Err(e) => Err(format!("key {}: {e}", crate::graph::value::py_quote(&k))),
            })
            .collect::<Result<IndexMap<_, _>, _>>()
            .map(Value::Dict),
        (_, v) => mismatch(&v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_become_floats_where_floats_are_expected() {
        assert_eq!(coerce(Value::Int(0), &Expected::Float), Ok(Value::Float(0.0)));
        let nested = Value::List(vec![Value::Int(1), Value::Float(2.5)]);
        assert_eq!(
            coerce(nested, &Expected::List(Box::new(Expected::Float))),
            Ok(Value::List(vec![Value::Float(1.0), Value::Float(2.5)]))
        );
    }

    #[test]
    fn integral_floats_become_ints_but_fractions_do_not() {
        assert_eq!(coerce(Value::Float(3.0), &Expected::Int), Ok(Value::Int(3)));
        let err = coerce(Value::Float(3.5), &Expected::Int).unwrap_err();
        assert_eq!(err, "expected int, got float 3.5");
    }

    #[test]
    fn mismatches_name_the_place_and_the_type() {
        let mut d = IndexMap::new();
        d.insert("gain".to_string(), Value::Str("fast".into()));
        let err = coerce(Value::Dict(d), &Expected::Dict(Box::new(Expected::Float))).unwrap_err();
        assert_eq!(err, "key 'gain': expected float, got str 'fast'");
    }

    #[test]
    fn expected_shape_follows_an_example() {
        let ex = Value::List(vec![Value::Float(0.0); 4]);
        assert_eq!(Expected::like(&ex), Expected::List(Box::new(Expected::Float)));
    }

    #[test]
    fn values_round_trip_through_monty_objects() {
        let mut d = IndexMap::new();
        d.insert(
            "a".to_string(),
            Value::List(vec![Value::Int(1), Value::Float(-0.5), Value::None]),
        );
        d.insert("b".to_string(), Value::Bool(true));
        let v = Value::Dict(d);
        assert_eq!(from_monty(&to_monty(&v)), Ok(v));
    }

    #[test]
    fn tuples_become_lists_and_int_keys_become_strings() {
        let obj = MontyObject::dict(vec![(
            MontyObject::Int(3),
            MontyObject::Tuple(vec![MontyObject::Int(1), MontyObject::String("x".into())]),
        )]);
        let v = from_monty(&obj).unwrap();
        assert_eq!(v.py_repr(), "{'3': [1, 'x']}");
    }
}
