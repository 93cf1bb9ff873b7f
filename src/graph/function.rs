//! Traced user functions (the reference's `bundle`): a Rust function with a name, a doc line and
//! its source text becomes ONE operator in the graph, its inputs named after its arguments.
//! An error (or a panic) inside it becomes an exception node the caller can backpropagate from.

use super::arena::{Graph, Naming, NodeKind, OpInfo};
use super::node::Node;
use super::semantics::PyError;
use super::value::Value;
use crate::error::Result;
use indexmap::IndexMap;

/// What the graph records about a traced function.
#[derive(Clone, Debug, PartialEq)]
pub struct FnSpec {
    pub name: String,
    /// One-line documentation (the doc comment), shown in #Documentation.
    pub doc: String,
    /// Source text, when captured (the `traced!` macro captures it).
    pub source: Option<String>,
    /// Argument names, in order: they name the inputs (`bar(x=float0)`).
    pub args: Vec<String>,
}

impl FnSpec {
    pub fn new(name: impl Into<String>, doc: impl Into<String>, args: &[&str]) -> Self {
        FnSpec {
            name: name.into(),
            doc: doc.into(),
            source: None,
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// `[name] doc` — with no doubled period (a reference bug).
    pub fn description(&self) -> String {
        let doc = self.doc.trim();
        if doc.is_empty() {
            format!("[{}] A user-defined function.", self.name)
        } else {
            format!("[{}] {}", self.name, doc)
        }
    }

    /// Calls the function on traced inputs: one message node for the result, or an exception
    /// node (returned as `Err(Error::Execution)` holding it) when `body` fails or panics.
    pub fn call(
        &self,
        args: &[&Node],
        body: impl FnOnce(&[Value]) -> std::result::Result<Value, String>,
    ) -> Result<Node> {
        let graph = args.first().map(|n| n.graph().clone()).ok_or_else(|| {
            crate::Error::Graph(format!(
                "traced function `{}` needs at least one node argument (use call_in for none)",
                self.name
            ))
        })?;
        self.call_in(&graph, args, body)
    }

    /// As [`FnSpec::call`], in an explicit graph (for functions with no node arguments).
    pub fn call_in(
        &self,
        graph: &Graph,
        args: &[&Node],
        body: impl FnOnce(&[Value]) -> std::result::Result<Value, String>,
    ) -> Result<Node> {
        self.call_detailed(graph, args, |values| {
            body(values).map_err(|e| CallFailure { summary: e.clone(), detail: e })
        })
    }

    /// As [`FnSpec::call_in`], for failures with a short text for the node's value and a long
    /// one (a traceback) for feedback.
    pub fn call_detailed(
        &self,
        graph: &Graph,
        args: &[&Node],
        body: impl FnOnce(&[Value]) -> std::result::Result<Value, CallFailure>,
    ) -> Result<Node> {
        if args.len() != self.args.len() {
            return Err(crate::Error::Graph(format!(
                "traced function `{}` takes {} arguments, got {}",
                self.name,
                self.args.len(),
                args.len()
            )));
        }
        let inputs: Vec<(&str, &Node)> =
            self.args.iter().map(String::as_str).zip(args.iter().copied()).collect();
        let mut info = OpInfo { op: self.name.clone(), source: self.source.clone(), error: None };
        let ids: Vec<(String, usize)> =
            inputs.iter().map(|(k, n)| (k.to_string(), n.id())).collect();
        let values: Vec<Value> = args.iter().map(|n| n.value()).collect();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&values)));
        let failure = match outcome {
            Ok(Ok(value)) => {
                let node = graph.add_node(
                    Naming::Base(&self.name),
                    value,
                    NodeKind::Message,
                    false,
                    self.description(),
                    ids,
                    Some(info),
                );
                return Ok(node);
            }
            Ok(Err(failure)) => failure,
            Err(panic) => {
                let text = panic_message(&panic);
                CallFailure { summary: text.clone(), detail: text }
            }
        };
        info.error = Some(failure.detail);
        graph.exception(&self.name, ids, failure.summary, Some(info)).check()
    }
}

/// Why a traced call failed: `summary` becomes the exception node's value
/// (`(ZeroDivisionError) division by zero`), `detail` its feedback text (a traceback).
#[derive(Clone, Debug, PartialEq)]
pub struct CallFailure {
    pub summary: String,
    pub detail: String,
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into());
    format!("(RuntimeError) {text}")
}

/// Converts a node's value into a Rust argument of a traced function.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> std::result::Result<Self, String>;
}

fn wrong_type(expected: &str, v: &Value) -> String {
    PyError::type_error(format!("expected {expected}, got {} {}", v.type_name(), v.py_repr()))
        .node_text()
}

impl FromValue for f64 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        v.as_f64().ok_or_else(|| wrong_type("a number", v))
    }
}
impl FromValue for i64 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        v.as_i64().ok_or_else(|| wrong_type("an int", v))
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Ok(v.truthy())
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        v.as_str().map(str::to_string).ok_or_else(|| wrong_type("a str", v))
    }
}
impl FromValue for Value {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Ok(v.clone())
    }
}
impl<T: FromValue> FromValue for Vec<T> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::List(l) => l.iter().map(T::from_value).collect(),
            other => Err(wrong_type("a list", other)),
        }
    }
}
impl<T: FromValue> FromValue for IndexMap<String, T> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Dict(d) => d.iter().map(|(k, v)| Ok((k.clone(), T::from_value(v)?))).collect(),
            other => Err(wrong_type("a dict", other)),
        }
    }
}

/// Converts what a traced function returns into the node's value, or its error text.
pub trait IntoTracedOutput {
    fn into_output(self) -> std::result::Result<Value, String>;
}

macro_rules! output_via_value {
    ($($t:ty),*) => {$(
        impl IntoTracedOutput for $t {
            fn into_output(self) -> std::result::Result<Value, String> { Ok(Value::from(self)) }
        }
    )*};
}
output_via_value!(f64, f32, i64, i32, usize, bool, String, &str, Value);

impl<T: Into<Value>> IntoTracedOutput for Vec<T> {
    fn into_output(self) -> std::result::Result<Value, String> {
        Ok(Value::List(self.into_iter().map(Into::into).collect()))
    }
}
impl<T: IntoTracedOutput, E: std::fmt::Display> IntoTracedOutput for std::result::Result<T, E> {
    fn into_output(self) -> std::result::Result<Value, String> {
        match self {
            Ok(v) => v.into_output(),
            Err(e) => Err(format!("(Error) {e}")),
        }
    }
}

/// Defines a traced function from an ordinary Rust function, capturing its doc comment and
/// source text. The result is a closure taking `&Node` arguments and returning
/// `Result<Node>`:
///
/// ```
/// use opto::graph::Graph;
/// let g = Graph::new();
/// let x = g.param(-1.0);
/// let bar = opto::traced!(
///     /// Negative scaling.
///     fn bar(x: f64) -> f64 { -2.0 * x }
/// );
/// let y = bar(&x).unwrap();
/// assert_eq!(y.value(), opto::graph::Value::Float(2.0));
/// assert_eq!(y.op().as_deref(), Some("bar"));
/// ```
#[macro_export]
macro_rules! traced {
    ($(#[doc = $doc:expr])* fn $name:ident($($arg:ident : $ty:ty),* $(,)?) -> $ret:ty $body:block) => {{
        let spec = $crate::graph::FnSpec::new(
            stringify!($name),
            [$($doc),*].iter().map(|d: &&str| d.trim()).collect::<Vec<_>>().join(" "),
            &[$(stringify!($arg)),*],
        )
        .with_source(stringify!(fn $name($($arg: $ty),*) -> $ret $body));
        move |$($arg: &$crate::graph::Node),*| -> $crate::Result<$crate::graph::Node> {
            let nodes: Vec<&$crate::graph::Node> = vec![$($arg),*];
            spec.call(&nodes, |values: &[$crate::graph::Value]| {
                let mut _it = values.iter();
                $(let $arg: $ty = <$ty as $crate::graph::FromValue>::from_value(_it.next().expect("arity checked"))?;)*
                let out: $ret = (|| $body)();
                $crate::graph::IntoTracedOutput::into_output(out)
            })
        }
    }};
}
