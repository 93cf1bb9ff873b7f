//! Python semantics of the traced operators over [`Value`]s: what `a + b`, `a // b`,
//! `s.split()` ... compute, and the Python-style error (`TypeError: ...`) when they cannot.

use super::value::Value;
use indexmap::IndexMap;

/// An error raised by an operator, named as Python would name it.
#[derive(Clone, Debug, PartialEq)]
pub struct PyError {
    pub kind: &'static str,
    pub message: String,
}

impl PyError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        PyError { kind, message: message.into() }
    }
    pub fn type_error(message: impl Into<String>) -> Self {
        PyError::new("TypeError", message)
    }
    /// The text an exception node holds: `(ZeroDivisionError) division by zero`.
    pub fn node_text(&self) -> String {
        format!("({}) {}", self.kind, self.message)
    }
}

impl std::fmt::Display for PyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

pub type PyResult = Result<Value, PyError>;

fn unsupported(op: &str, a: &Value, b: &Value) -> PyError {
    PyError::type_error(format!(
        "unsupported operand type(s) for {op}: '{}' and '{}'",
        a.type_name(),
        b.type_name()
    ))
}

/// Numbers as Python sees them in mixed arithmetic.
enum Num {
    I(i64),
    F(f64),
}

fn num(v: &Value) -> Option<Num> {
    match v {
        Value::Bool(b) => Some(Num::I(*b as i64)),
        Value::Int(i) => Some(Num::I(*i)),
        Value::Float(f) => Some(Num::F(*f)),
        _ => None,
    }
}

fn overflow() -> PyError {
    PyError::new("OverflowError", "integer result too large")
}

/// Applies an arithmetic op with int/int staying int (checked) and anything with a float → float.
fn arith(
    a: &Value,
    b: &Value,
    sym: &str,
    ints: impl Fn(i64, i64) -> Result<Value, PyError>,
    floats: impl Fn(f64, f64) -> PyResult,
) -> PyResult {
    match (num(a), num(b)) {
        (Some(Num::I(x)), Some(Num::I(y))) => ints(x, y),
        (Some(x), Some(y)) => {
            let f = |n: Num| match n {
                Num::I(i) => i as f64,
                Num::F(f) => f,
            };
            floats(f(x), f(y))
        }
        _ => Err(unsupported(sym, a, b)),
    }
}

pub fn add(a: &Value, b: &Value) -> PyResult {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(Value::Str(format!("{x}{y}"))),
        (Value::List(x), Value::List(y)) => Ok(Value::List(x.iter().chain(y).cloned().collect())),
        _ => arith(
            a,
            b,
            "+",
            |x, y| x.checked_add(y).map(Value::Int).ok_or_else(overflow),
            |x, y| Ok(Value::Float(x + y)),
        ),
    }
}

pub fn sub(a: &Value, b: &Value) -> PyResult {
    arith(
        a,
        b,
        "-",
        |x, y| x.checked_sub(y).map(Value::Int).ok_or_else(overflow),
        |x, y| Ok(Value::Float(x - y)),
    )
}

pub fn mul(a: &Value, b: &Value) -> PyResult {
    let repeat = |n: i64| n.max(0) as usize;
    match (a, b) {
        (Value::Str(s), Value::Int(n)) | (Value::Int(n), Value::Str(s)) => {
            Ok(Value::Str(s.repeat(repeat(*n))))
        }
        (Value::List(l), Value::Int(n)) | (Value::Int(n), Value::List(l)) => {
            Ok(Value::List(std::iter::repeat_n(l.iter().cloned(), repeat(*n)).flatten().collect()))
        }
        _ => arith(
            a,
            b,
            "*",
            |x, y| x.checked_mul(y).map(Value::Int).ok_or_else(overflow),
            |x, y| Ok(Value::Float(x * y)),
        ),
    }
}

fn zero_division(what: &str) -> PyError {
    PyError::new("ZeroDivisionError", what)
}

pub fn truediv(a: &Value, b: &Value) -> PyResult {
    arith(
        a,
        b,
        "/",
        |x, y| {
            if y == 0 {
                Err(zero_division("division by zero"))
            } else {
                Ok(Value::Float(x as f64 / y as f64))
            }
        },
        |x, y| {
            if y == 0.0 {
                Err(zero_division("float division by zero"))
            } else {
                Ok(Value::Float(x / y))
            }
        },
    )
}

pub fn floordiv(a: &Value, b: &Value) -> PyResult {
    arith(
        a,
        b,
        "//",
        |x, y| {
            if y == 0 {
                Err(zero_division("integer division or modulo by zero"))
            } else {
                Ok(Value::Int(x.div_euclid(y) - if y < 0 && x.rem_euclid(y) != 0 { 1 } else { 0 }))
            }
        },
        |x, y| {
            if y == 0.0 {
                Err(zero_division("float floor division by zero"))
            } else {
                Ok(Value::Float((x / y).floor()))
            }
        },
    )
}

pub fn modulo(a: &Value, b: &Value) -> PyResult {
    arith(
        a,
        b,
        "%",
        |x, y| {
            if y == 0 {
                return Err(zero_division("integer modulo by zero"));
            }
            // Python's result takes the divisor's sign.
            let r = x % y;
            Ok(Value::Int(if r != 0 && ((r < 0) != (y < 0)) { r + y } else { r }))
        },
        |x, y| {
            if y == 0.0 {
                return Err(zero_division("float modulo"));
            }
            let r = x % y;
            Ok(Value::Float(if r != 0.0 && ((r < 0.0) != (y < 0.0)) { r + y } else { r }))
        },
    )
}

pub fn pow(a: &Value, b: &Value) -> PyResult {
    arith(
        a,
        b,
        "**",
        |x, y| {
            if y < 0 {
                if x == 0 {
                    return Err(zero_division("0.0 cannot be raised to a negative power"));
                }
                return Ok(Value::Float((x as f64).powf(y as f64)));
            }
            u32::try_from(y)
                .ok()
                .and_then(|e| x.checked_pow(e))
                .map(Value::Int)
                .ok_or_else(overflow)
        },
        |x, y| {
            if x == 0.0 && y < 0.0 {
                return Err(zero_division("0.0 cannot be raised to a negative power"));
            }
            if x < 0.0 && y.fract() != 0.0 {
                return Err(PyError::new(
                    "ValueError",
                    "negative number cannot be raised to a fractional power",
                ));
            }
            Ok(Value::Float(x.powf(y)))
        },
    )
}

fn bad_unary(op: &str, a: &Value) -> PyError {
    PyError::type_error(format!("bad operand type for {op}: '{}'", a.type_name()))
}

pub fn neg(a: &Value) -> PyResult {
    match num(a) {
        Some(Num::I(i)) => i.checked_neg().map(Value::Int).ok_or_else(overflow),
        Some(Num::F(f)) => Ok(Value::Float(-f)),
        None => Err(bad_unary("unary -", a)),
    }
}

pub fn abs(a: &Value) -> PyResult {
    match num(a) {
        Some(Num::I(i)) => i.checked_abs().map(Value::Int).ok_or_else(overflow),
        Some(Num::F(f)) => Ok(Value::Float(f.abs())),
        None => Err(bad_unary("abs()", a)),
    }
}

/// Python's `round(x, n)`: ties to even; `n = None` gives an int.
pub fn round(a: &Value, ndigits: Option<i64>) -> PyResult {
    match (num(a), ndigits) {
        (Some(Num::I(i)), _) => Ok(Value::Int(i)),
        (Some(Num::F(f)), None) => float_to_int(f.round_ties_even()),
        (Some(Num::F(f)), Some(n)) => {
            let scale = 10f64.powi(n.clamp(-300, 300) as i32);
            Ok(Value::Float((f * scale).round_ties_even() / scale))
        }
        (None, _) => Err(PyError::type_error(format!(
            "type {} doesn't define __round__ method",
            a.type_name()
        ))),
    }
}

fn float_to_int(f: f64) -> PyResult {
    if !f.is_finite() {
        return Err(PyError::new(
            "OverflowError",
            "cannot convert float infinity or NaN to integer",
        ));
    }
    if f.abs() >= 9.2e18 {
        return Err(overflow());
    }
    Ok(Value::Int(f as i64))
}

pub fn floor(a: &Value) -> PyResult {
    match num(a) {
        Some(Num::I(i)) => Ok(Value::Int(i)),
        Some(Num::F(f)) => float_to_int(f.floor()),
        None => Err(PyError::type_error(format!("must be real number, not {}", a.type_name()))),
    }
}

pub fn ceil(a: &Value) -> PyResult {
    match num(a) {
        Some(Num::I(i)) => Ok(Value::Int(i)),
        Some(Num::F(f)) => float_to_int(f.ceil()),
        None => Err(PyError::type_error(format!("must be real number, not {}", a.type_name()))),
    }
}

/// Ordering as Python defines it for numbers, strings and lists.
pub fn compare(a: &Value, b: &Value, sym: &str) -> Result<std::cmp::Ordering, PyError> {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::List(x), Value::List(y)) => {
            for (p, q) in x.iter().zip(y) {
                if p != q {
                    return compare(p, q, sym);
                }
            }
            Ok(x.len().cmp(&y.len()))
        }
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => Ok(x.partial_cmp(&y).unwrap_or(Ordering::Equal)),
            _ => Err(PyError::type_error(format!(
                "'{sym}' not supported between instances of '{}' and '{}'",
                a.type_name(),
                b.type_name()
            ))),
        },
    }
}

/// Python `==`: numbers compare across int/float/bool.
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if !matches!(a, Value::Str(_)) => x == y,
        _ => a == b,
    }
}

fn index(len: usize, i: i64) -> Option<usize> {
    let i = if i < 0 { i + len as i64 } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

pub fn getitem(a: &Value, key: &Value) -> PyResult {
    match (a, key) {
        (Value::List(l), Value::Int(i)) => index(l.len(), *i)
            .map(|i| l[i].clone())
            .ok_or_else(|| PyError::new("IndexError", "list index out of range")),
        (Value::Str(s), Value::Int(i)) => {
            let chars: Vec<char> = s.chars().collect();
            index(chars.len(), *i)
                .map(|i| Value::Str(chars[i].to_string()))
                .ok_or_else(|| PyError::new("IndexError", "string index out of range"))
        }
        (Value::Dict(d), k) => {
            let k = dict_key(k)?;
            d.get(&k).cloned().ok_or_else(|| PyError::new("KeyError", super::value::py_quote(&k)))
        }
        (Value::List(_) | Value::Str(_), k) => Err(PyError::type_error(format!(
            "{} indices must be integers, not {}",
            a.type_name(),
            k.type_name()
        ))),
        _ => Err(PyError::type_error(format!("'{}' object is not subscriptable", a.type_name()))),
    }
}

/// Dict keys are strings; ints and bools are accepted as their text, as JSON does.
pub fn dict_key(k: &Value) -> Result<String, PyError> {
    match k {
        Value::Str(s) => Ok(s.clone()),
        Value::Int(_) | Value::Bool(_) | Value::Float(_) => Ok(k.py_str()),
        other => Err(PyError::type_error(format!("unhashable type: '{}'", other.type_name()))),
    }
}

pub fn len(a: &Value) -> PyResult {
    match a {
        Value::Str(s) | Value::Code(s) => Ok(Value::Int(s.chars().count() as i64)),
        Value::List(l) => Ok(Value::Int(l.len() as i64)),
        Value::Dict(d) => Ok(Value::Int(d.len() as i64)),
        _ => Err(PyError::type_error(format!("object of type '{}' has no len()", a.type_name()))),
    }
}

pub fn contains(container: &Value, item: &Value) -> PyResult {
    match container {
        Value::Str(s) => match item {
            Value::Str(x) => Ok(Value::Bool(s.contains(x.as_str()))),
            _ => Err(PyError::type_error(format!(
                "'in <string>' requires string as left operand, not {}",
                item.type_name()
            ))),
        },
        Value::List(l) => Ok(Value::Bool(l.iter().any(|v| equal(v, item)))),
        Value::Dict(d) => Ok(Value::Bool(d.contains_key(&dict_key(item)?))),
        _ => Err(PyError::type_error(format!(
            "argument of type '{}' is not iterable",
            container.type_name()
        ))),
    }
}

pub fn str_of<'a>(a: &'a Value, method: &str) -> Result<&'a str, PyError> {
    match a {
        Value::Str(s) => Ok(s),
        _ => Err(PyError::new(
            "AttributeError",
            format!("'{}' object has no attribute '{method}'", a.type_name()),
        )),
    }
}

/// Python's `str.title()`: first letter of each alphabetic run upper, the rest lower.
pub fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_alpha = false;
    for c in s.chars() {
        if c.is_alphabetic() {
            if prev_alpha {
                out.extend(c.to_lowercase());
            } else {
                out.extend(c.to_uppercase());
            }
            prev_alpha = true;
        } else {
            out.push(c);
            prev_alpha = false;
        }
    }
    out
}

pub fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars.flat_map(char::to_lowercase)).collect(),
        None => String::new(),
    }
}

pub fn swapcase(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_uppercase() {
                c.to_lowercase().collect::<Vec<_>>()
            } else {
                c.to_uppercase().collect()
            }
        })
        .collect()
}

/// `str.split(sep)`; `None` splits on runs of whitespace.
pub fn split(s: &str, sep: Option<&str>) -> PyResult {
    let parts: Vec<Value> = match sep {
        None => s.split_whitespace().map(Value::from).collect(),
        Some("") => return Err(PyError::new("ValueError", "empty separator")),
        Some(sep) => s.split(sep).map(Value::from).collect(),
    };
    Ok(Value::List(parts))
}

pub fn join(sep: &str, items: &Value) -> PyResult {
    let Value::List(items) = items else {
        return Err(PyError::type_error("can only join an iterable"));
    };
    let mut parts = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        match v {
            Value::Str(s) => parts.push(s.as_str()),
            other => {
                return Err(PyError::type_error(format!(
                    "sequence item {i}: expected str instance, {} found",
                    other.type_name()
                )))
            }
        }
    }
    Ok(Value::Str(parts.join(sep)))
}

/// Python's `str.format` for `{}`, `{0}`, `{name}` and `{{`/`}}` (no format specs).
pub fn format(template: &str, args: &[Value], kwargs: &IndexMap<String, Value>) -> PyResult {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    let mut auto = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut field = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(ch) => field.push(ch),
                        None => {
                            return Err(PyError::new(
                                "ValueError",
                                "expected '}' before end of string",
                            ))
                        }
                    }
                }
                let field = field.split(':').next().unwrap_or("").to_string();
                let value = if field.is_empty() {
                    auto += 1;
                    args.get(auto - 1).ok_or_else(|| {
                        PyError::new(
                            "IndexError",
                            format!(
                                "Replacement index {} out of range for positional args tuple",
                                auto - 1
                            ),
                        )
                    })?
                } else if let Ok(i) = field.parse::<usize>() {
                    args.get(i).ok_or_else(|| {
                        PyError::new(
                            "IndexError",
                            format!("Replacement index {i} out of range for positional args tuple"),
                        )
                    })?
                } else {
                    kwargs
                        .get(&field)
                        .ok_or_else(|| PyError::new("KeyError", super::value::py_quote(&field)))?
                };
                out.push_str(&value.py_str());
            }
            '}' => {
                return Err(PyError::new("ValueError", "Single '}' encountered in format string"))
            }
            c => out.push(c),
        }
    }
    Ok(Value::Str(out))
}

pub fn list_of<'a>(a: &'a Value, method: &str) -> Result<&'a Vec<Value>, PyError> {
    match a {
        Value::List(l) => Ok(l),
        _ => Err(PyError::new(
            "AttributeError",
            format!("'{}' object has no attribute '{method}'", a.type_name()),
        )),
    }
}

pub fn dict_of<'a>(a: &'a Value, method: &str) -> Result<&'a IndexMap<String, Value>, PyError> {
    match a {
        Value::Dict(d) => Ok(d),
        _ => Err(PyError::new(
            "AttributeError",
            format!("'{}' object has no attribute '{method}'", a.type_name()),
        )),
    }
}

/// Sorts like Python's `sorted` (numbers, strings, lists); mixed types are a TypeError.
pub fn sorted(items: &[Value]) -> PyResult {
    let mut out = items.to_vec();
    let mut error = None;
    out.sort_by(|a, b| match compare(a, b, "<") {
        Ok(o) => o,
        Err(e) => {
            error.get_or_insert(e);
            std::cmp::Ordering::Equal
        }
    });
    match error {
        Some(e) => Err(e),
        None => Ok(Value::List(out)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_follows_python() {
        assert_eq!(add(&1.into(), &2.into()), Ok(Value::Int(3)));
        assert_eq!(add(&1.into(), &2.5.into()), Ok(Value::Float(3.5)));
        assert_eq!(add(&"a".into(), &"b".into()), Ok(Value::from("ab")));
        assert_eq!(truediv(&1.into(), &2.into()), Ok(Value::Float(0.5)));
        assert_eq!(floordiv(&(-7).into(), &2.into()), Ok(Value::Int(-4)));
        assert_eq!(floordiv(&7.into(), &(-2).into()), Ok(Value::Int(-4)));
        assert_eq!(modulo(&(-7).into(), &3.into()), Ok(Value::Int(2)));
        assert_eq!(modulo(&7.into(), &(-3).into()), Ok(Value::Int(-2)));
        assert_eq!(pow(&2.into(), &10.into()), Ok(Value::Int(1024)));
        assert_eq!(pow(&2.into(), &(-1).into()), Ok(Value::Float(0.5)));
        assert_eq!(round(&2.5.into(), None), Ok(Value::Int(2)));
        assert_eq!(round(&3.5.into(), None), Ok(Value::Int(4)));
        assert_eq!(mul(&"ab".into(), &3.into()), Ok(Value::from("ababab")));
        assert_eq!(truediv(&1.into(), &0.into()).unwrap_err().kind, "ZeroDivisionError");
        assert_eq!(
            add(&1.into(), &"a".into()).unwrap_err().to_string(),
            "TypeError: unsupported operand type(s) for +: 'int' and 'str'"
        );
        assert_eq!(pow(&i64::MAX.into(), &2.into()).unwrap_err().kind, "OverflowError");
    }

    #[test]
    fn strings_and_containers_follow_python() {
        assert_eq!(title("hello wORLD 2go"), "Hello World 2Go");
        assert_eq!(capitalize("hELLO"), "Hello");
        assert_eq!(split(" a  b ", None), Ok(Value::from(vec!["a", "b"])));
        assert_eq!(split("a,b", Some(",")), Ok(Value::from(vec!["a", "b"])));
        let kw: IndexMap<String, Value> = [("n".to_string(), Value::from(3))].into_iter().collect();
        assert_eq!(format("{} has {n} {{x}}", &["x".into()], &kw), Ok(Value::from("x has 3 {x}")));
        assert_eq!(getitem(&Value::from(vec![1, 2, 3]), &(-1).into()), Ok(Value::Int(3)));
        assert_eq!(getitem(&Value::from(vec![1]), &5.into()).unwrap_err().kind, "IndexError");
        assert_eq!(contains(&Value::from(vec![1, 2]), &2.0.into()), Ok(Value::Bool(true)));
        assert_eq!(
            sorted(&[3.into(), 1.into(), 2.5.into()]),
            Ok(Value::List(vec![1.into(), 2.5.into(), 3.into()]))
        );
        assert!(sorted(&[3.into(), "a".into()]).is_err());
    }
}
