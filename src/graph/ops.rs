//! Traced operators: each computes a Python-semantics result (see `semantics.rs`) and records a
//! message node `name = op(arg=parent, ...)` whose description is the operator's one-line doc.
//!
//! An operator that fails records an exception node instead (its data is the error text), so the
//! failure is part of the graph and feedback can flow back from it. Operator overloads cannot
//! return `Result`; they return that exception node, and every `try_*` method (or
//! [`Node::check`]) turns it into an `Err`.

use super::arena::{Graph, Naming, NodeKind, OpInfo};
use super::node::Node;
use super::semantics::{self as py, PyError, PyResult};
use super::value::Value;
use crate::error::Result;
use indexmap::IndexMap;

/// One line of documentation per operator, shown in the prompt's #Documentation section.
pub fn op_doc(op: &str) -> &'static str {
    match op {
        "add" => "Returns x + y: numbers are added, strings and lists are concatenated.",
        "subtract" => "Returns x - y.",
        "multiply" => "Returns x * y (a string or list times an int repeats it).",
        "divide" => "Returns x / y as a float (true division).",
        "floor_divide" => "Returns x // y, the quotient rounded down.",
        "mod" => "Returns x % y, the remainder with the sign of y.",
        "power" => "Returns x ** y.",
        "neg" => "Returns -x.",
        "abs" => "Returns the absolute value of x.",
        "round" => "Rounds x to n digits (ties to even); without n, to an int.",
        "floor" => "Returns the largest int <= x.",
        "ceil" => "Returns the smallest int >= x.",
        "lt" => "Returns x < y.",
        "le" => "Returns x <= y.",
        "gt" => "Returns x > y.",
        "ge" => "Returns x >= y.",
        "eq" => "Returns x == y.",
        "ne" => "Returns x != y.",
        "and_" => "Returns x and y (Python's and: x if x is false, else y).",
        "or_" => "Returns x or y (Python's or: x if x is true, else y).",
        "not_" => "Returns not x.",
        "cond" => "Returns x if condition is true, else y.",
        "in_" => "Returns whether x is in y.",
        "concat" => "Returns the string x followed by the string y.",
        "format" => "Returns the template x with its {} fields filled from the arguments.",
        "lower" => "Returns the string x in lower case.",
        "upper" => "Returns the string x in upper case.",
        "title" => "Returns the string x with each word capitalized.",
        "capitalize" => {
            "Returns the string x with its first letter upper case and the rest lower case."
        }
        "swapcase" => "Returns the string x with upper and lower case swapped.",
        "split" => "Splits the string x at sep (at whitespace when sep is None) into a list.",
        "strip" => "Returns the string x without leading and trailing whitespace.",
        "replace" => "Returns the string x with every old replaced by new.",
        "join" => "Joins the strings of the list y with the separator x.",
        "getitem" => "Returns x[index].",
        "len_" => "Returns the number of items (or characters) in x.",
        "make_list" => "Returns a list of the inputs.",
        "make_dict" => "Returns a dict of the inputs, keyed by their names.",
        "keys" => "Returns the keys of the dict x as a list.",
        "values" => "Returns the values of the dict x as a list.",
        "items" => "Returns the [key, value] pairs of the dict x as a list.",
        "list_append" => "Returns a copy of the list x with y appended.",
        "list_extend" => "Returns a copy of the list x extended by the list y.",
        "list_insert" => "Returns a copy of the list x with y inserted at index.",
        "list_pop" => "Returns a copy of the list x without the item at index.",
        "list_remove" => "Returns a copy of the list x without the first item equal to y.",
        "list_reverse" => "Returns a copy of the list x reversed.",
        "list_sort" => "Returns a sorted copy of the list x.",
        "dict_update" => "Returns a copy of the dict x updated with the dict y.",
        "dict_pop" => "Returns a copy of the dict x without the key.",
        "identity" => "Returns x unchanged.",
        "clone" => "Returns a copy of x.",
        _ => "A traced operation.",
    }
}

impl Graph {
    /// Records one operator call. `f` computes the result from the input values; an input that
    /// already holds an exception makes the result an exception too (the error travels on).
    pub fn apply_op(
        &self,
        op: &str,
        description: &str,
        inputs: &[(&str, &Node)],
        f: impl FnOnce(&[Value]) -> PyResult,
    ) -> Node {
        for (_, n) in inputs {
            debug_assert!(n.graph().same_as(self), "operator inputs must belong to the same graph");
        }
        let ids: Vec<(String, usize)> =
            inputs.iter().map(|(k, n)| (k.to_string(), n.id())).collect();
        let (values, failed): (Vec<Value>, Option<Value>) = {
            let data = self.read();
            let values = inputs.iter().map(|(_, n)| data.nodes[n.id()].value.clone()).collect();
            let failed = inputs
                .iter()
                .find(|(_, n)| data.nodes[n.id()].kind == NodeKind::Exception)
                .map(|(_, n)| data.nodes[n.id()].value.clone());
            (values, failed)
        };
        let info = |error: Option<String>| Some(OpInfo { op: op.to_string(), source: None, error });
        if let Some(previous) = failed {
            return self.exception(op, ids, previous.py_str(), info(None));
        }
        match f(&values) {
            Ok(value) => self.add_node(
                Naming::Base(op),
                value,
                NodeKind::Message,
                false,
                format!("[{op}] {description}"),
                ids,
                info(None),
            ),
            Err(e) => self.exception(op, ids, e.node_text(), info(Some(e.to_string()))),
        }
    }

    /// Records an exception raised by `op` with these inputs.
    pub(crate) fn exception(
        &self,
        op: &str,
        inputs: Vec<(String, usize)>,
        text: String,
        info: Option<OpInfo>,
    ) -> Node {
        let description = format!("[exception] The operator {op} raised an exception.");
        self.add_node(
            Naming::Base(&format!("exception_{op}")),
            Value::Str(text),
            NodeKind::Exception,
            false,
            description,
            inputs,
            info,
        )
    }

    fn builtin(
        &self,
        op: &str,
        inputs: &[(&str, &Node)],
        f: impl FnOnce(&[Value]) -> PyResult,
    ) -> Node {
        self.apply_op(op, op_doc(op), inputs, f)
    }

    /// A list node made of these nodes (traced).
    pub fn make_list(&self, items: &[&Node]) -> Node {
        let names: Vec<String> = (0..items.len()).map(|i| format!("args_{i}")).collect();
        let inputs: Vec<(&str, &Node)> =
            names.iter().map(String::as_str).zip(items.iter().copied()).collect();
        self.builtin("make_list", &inputs, |v| Ok(Value::List(v.to_vec())))
    }

    /// A dict node `{key: node}` (traced; the keys become the input names).
    pub fn make_dict(&self, items: &[(&str, &Node)]) -> Node {
        let keys: Vec<String> = items.iter().map(|(k, _)| k.to_string()).collect();
        self.builtin("make_dict", items, move |v| {
            Ok(Value::Dict(keys.into_iter().zip(v.iter().cloned()).collect()))
        })
    }

    /// `cond ? x : y`, traced with all three as inputs.
    pub fn cond(&self, condition: &Node, x: &Node, y: &Node) -> Node {
        self.builtin("cond", &[("condition", condition), ("x", x), ("y", y)], |v| {
            Ok(if v[0].truthy() { v[1].clone() } else { v[2].clone() })
        })
    }

    /// `template.format(*args, **kwargs)`.
    pub fn format(&self, template: &Node, args: &[&Node], kwargs: &[(&str, &Node)]) -> Node {
        let arg_names: Vec<String> = (0..args.len()).map(|i| format!("args_{i}")).collect();
        let mut inputs: Vec<(&str, &Node)> = vec![("x", template)];
        inputs.extend(arg_names.iter().map(String::as_str).zip(args.iter().copied()));
        inputs.extend(kwargs.iter().copied());
        let n_args = args.len();
        let kw_names: Vec<String> = kwargs.iter().map(|(k, _)| k.to_string()).collect();
        self.builtin("format", &inputs, move |v| {
            let template = py::str_of(&v[0], "format")?;
            let kw: IndexMap<String, Value> =
                kw_names.into_iter().zip(v[1 + n_args..].iter().cloned()).collect();
            py::format(template, &v[1..1 + n_args], &kw)
        })
    }
}

/// Anything that can stand on one side of a traced operator: a node, or a plain value that
/// becomes a constant node of the same graph.
pub trait Operand {
    fn to_node(&self, graph: &Graph) -> Node;
}

impl Operand for Node {
    fn to_node(&self, _: &Graph) -> Node {
        self.clone()
    }
}
impl Operand for &Node {
    fn to_node(&self, _: &Graph) -> Node {
        (*self).clone()
    }
}
macro_rules! constant_operand {
    ($($t:ty),*) => {$(
        impl Operand for $t {
            fn to_node(&self, graph: &Graph) -> Node { graph.value(self.clone()) }
        }
    )*};
}
constant_operand!(f64, f32, i64, i32, usize, bool, &str, String, Value);

macro_rules! binary_methods {
    ($($method:ident, $try_method:ident => $op:literal, $f:path;)*) => {
        impl Node {
            $(
                #[doc = concat!("Traced `", $op, "`; an error becomes an exception node.")]
                pub fn $method(&self, other: impl Operand) -> Node {
                    let other = other.to_node(self.graph());
                    self.graph().builtin($op, &[("x", self), ("y", &other)], |v| $f(&v[0], &v[1]))
                }
                #[doc = concat!("Traced `", $op, "`, with an error as `Err` (holding the exception node).")]
                pub fn $try_method(&self, other: impl Operand) -> Result<Node> {
                    self.$method(other).check()
                }
            )*
        }
    };
}

binary_methods! {
    add, try_add => "add", py::add;
    sub, try_sub => "subtract", py::sub;
    mul, try_mul => "multiply", py::mul;
    div, try_div => "divide", py::truediv;
    floor_div, try_floor_div => "floor_divide", py::floordiv;
    rem, try_rem => "mod", py::modulo;
    pow, try_pow => "power", py::pow;
    getitem, try_getitem => "getitem", py::getitem;
}

fn compare_with(
    sym: &'static str,
    accept: fn(std::cmp::Ordering) -> bool,
) -> impl Fn(&Value, &Value) -> PyResult {
    move |a, b| py::compare(a, b, sym).map(|o| Value::Bool(accept(o)))
}

impl Node {
    fn unary(&self, op: &str, f: impl FnOnce(&Value) -> PyResult) -> Node {
        self.graph().builtin(op, &[("x", self)], |v| f(&v[0]))
    }

    fn binary(
        &self,
        op: &str,
        other: impl Operand,
        f: impl FnOnce(&Value, &Value) -> PyResult,
    ) -> Node {
        let other = other.to_node(self.graph());
        self.graph().builtin(op, &[("x", self), ("y", &other)], |v| f(&v[0], &v[1]))
    }

    pub fn neg(&self) -> Node {
        self.unary("neg", py::neg)
    }
    pub fn abs(&self) -> Node {
        self.unary("abs", py::abs)
    }
    pub fn round(&self, ndigits: Option<i64>) -> Node {
        self.unary("round", |v| py::round(v, ndigits))
    }
    pub fn floor(&self) -> Node {
        self.unary("floor", py::floor)
    }
    pub fn ceil(&self) -> Node {
        self.unary("ceil", py::ceil)
    }
    pub fn lt(&self, other: impl Operand) -> Node {
        self.binary("lt", other, compare_with("<", |o| o.is_lt()))
    }
    pub fn le(&self, other: impl Operand) -> Node {
        self.binary("le", other, compare_with("<=", |o| o.is_le()))
    }
    pub fn gt(&self, other: impl Operand) -> Node {
        self.binary("gt", other, compare_with(">", |o| o.is_gt()))
    }
    pub fn ge(&self, other: impl Operand) -> Node {
        self.binary("ge", other, compare_with(">=", |o| o.is_ge()))
    }
    /// Traced equality (the handle's own `==` compares identity, untraced).
    pub fn eq_(&self, other: impl Operand) -> Node {
        self.binary("eq", other, |a, b| Ok(Value::Bool(py::equal(a, b))))
    }
    pub fn ne_(&self, other: impl Operand) -> Node {
        self.binary("ne", other, |a, b| Ok(Value::Bool(!py::equal(a, b))))
    }
    pub fn and_(&self, other: impl Operand) -> Node {
        self.binary("and_", other, |a, b| Ok(if a.truthy() { b.clone() } else { a.clone() }))
    }
    pub fn or_(&self, other: impl Operand) -> Node {
        self.binary("or_", other, |a, b| Ok(if a.truthy() { a.clone() } else { b.clone() }))
    }
    pub fn not_(&self) -> Node {
        self.unary("not_", |v| Ok(Value::Bool(!v.truthy())))
    }
    /// Traced `self in container`.
    pub fn is_in(&self, container: impl Operand) -> Node {
        self.binary("in_", container, |x, c| py::contains(c, x))
    }
    pub fn concat(&self, other: impl Operand) -> Node {
        self.binary("concat", other, |a, b| match (a, b) {
            (Value::Str(x), Value::Str(y)) => Ok(Value::Str(format!("{x}{y}"))),
            _ => Err(PyError::type_error(format!(
                "can only concatenate str (not \"{}\") to str",
                b.type_name()
            ))),
        })
    }
    pub fn lower(&self) -> Node {
        self.unary("lower", |v| Ok(Value::Str(py::str_of(v, "lower")?.to_lowercase())))
    }
    pub fn upper(&self) -> Node {
        self.unary("upper", |v| Ok(Value::Str(py::str_of(v, "upper")?.to_uppercase())))
    }
    pub fn title(&self) -> Node {
        self.unary("title", |v| Ok(Value::Str(py::title(py::str_of(v, "title")?))))
    }
    pub fn capitalize(&self) -> Node {
        self.unary("capitalize", |v| Ok(Value::Str(py::capitalize(py::str_of(v, "capitalize")?))))
    }
    pub fn swapcase(&self) -> Node {
        self.unary("swapcase", |v| Ok(Value::Str(py::swapcase(py::str_of(v, "swapcase")?))))
    }
    pub fn strip(&self) -> Node {
        self.unary("strip", |v| Ok(Value::Str(py::str_of(v, "strip")?.trim().to_string())))
    }
    pub fn split(&self, sep: Option<&str>) -> Node {
        match sep {
            None => self.unary("split", |v| py::split(py::str_of(v, "split")?, None)),
            Some(sep) => self.binary("split", sep, |v, s| {
                py::split(py::str_of(v, "split")?, Some(py::str_of(s, "split")?))
            }),
        }
    }
    pub fn replace(&self, old: impl Operand, new: impl Operand) -> Node {
        let (old, new) = (old.to_node(self.graph()), new.to_node(self.graph()));
        self.graph().builtin("replace", &[("x", self), ("old", &old), ("new", &new)], |v| {
            Ok(Value::Str(
                py::str_of(&v[0], "replace")?
                    .replace(py::str_of(&v[1], "replace")?, py::str_of(&v[2], "replace")?),
            ))
        })
    }
    /// `self.join(items)`: self is the separator.
    pub fn join(&self, items: impl Operand) -> Node {
        self.binary("join", items, |sep, items| py::join(py::str_of(sep, "join")?, items))
    }
    pub fn len(&self) -> Node {
        self.unary("len_", py::len)
    }
    pub fn keys(&self) -> Node {
        self.unary("keys", |v| {
            Ok(Value::List(py::dict_of(v, "keys")?.keys().map(|k| Value::Str(k.clone())).collect()))
        })
    }
    pub fn values(&self) -> Node {
        self.unary("values", |v| {
            Ok(Value::List(py::dict_of(v, "values")?.values().cloned().collect()))
        })
    }
    pub fn items(&self) -> Node {
        self.unary("items", |v| {
            Ok(Value::List(
                py::dict_of(v, "items")?
                    .iter()
                    .map(|(k, v)| Value::List(vec![Value::Str(k.clone()), v.clone()]))
                    .collect(),
            ))
        })
    }
    pub fn append(&self, item: impl Operand) -> Node {
        self.binary("list_append", item, |l, x| {
            let mut l = py::list_of(l, "append")?.clone();
            l.push(x.clone());
            Ok(Value::List(l))
        })
    }
    pub fn extend(&self, other: impl Operand) -> Node {
        self.binary("list_extend", other, |l, x| {
            let mut l = py::list_of(l, "extend")?.clone();
            l.extend(py::list_of(x, "extend")?.iter().cloned());
            Ok(Value::List(l))
        })
    }
    pub fn insert(&self, index: i64, item: impl Operand) -> Node {
        let index_node = self.graph().value(index);
        let item = item.to_node(self.graph());
        self.graph().builtin(
            "list_insert",
            &[("x", self), ("index", &index_node), ("y", &item)],
            |v| {
                let mut l = py::list_of(&v[0], "insert")?.clone();
                let i = v[1].as_i64().unwrap_or(0);
                let at = if i < 0 {
                    (l.len() as i64 + i).max(0) as usize
                } else {
                    (i as usize).min(l.len())
                };
                l.insert(at, v[2].clone());
                Ok(Value::List(l))
            },
        )
    }
    pub fn pop_index(&self, index: i64) -> Node {
        self.binary("list_pop", index, |l, i| {
            let mut l = py::list_of(l, "pop")?.clone();
            let n = l.len() as i64;
            let i = i.as_i64().unwrap_or(-1);
            let at = if i < 0 { i + n } else { i };
            if !(0..n).contains(&at) {
                return Err(PyError::new("IndexError", "pop index out of range"));
            }
            l.remove(at as usize);
            Ok(Value::List(l))
        })
    }
    pub fn remove(&self, item: impl Operand) -> Node {
        self.binary("list_remove", item, |l, x| {
            let mut l = py::list_of(l, "remove")?.clone();
            let at = l
                .iter()
                .position(|v| py::equal(v, x))
                .ok_or_else(|| PyError::new("ValueError", "list.remove(x): x not in list"))?;
            l.remove(at);
            Ok(Value::List(l))
        })
    }
    pub fn reversed(&self) -> Node {
        self.unary("list_reverse", |l| {
            Ok(Value::List(py::list_of(l, "reverse")?.iter().rev().cloned().collect()))
        })
    }
    pub fn sorted(&self) -> Node {
        self.unary("list_sort", |l| py::sorted(py::list_of(l, "sort")?))
    }
    pub fn update(&self, other: impl Operand) -> Node {
        self.binary("dict_update", other, |d, o| {
            let mut d = py::dict_of(d, "update")?.clone();
            d.extend(py::dict_of(o, "update")?.iter().map(|(k, v)| (k.clone(), v.clone())));
            Ok(Value::Dict(d))
        })
    }
    pub fn pop_key(&self, key: impl Operand) -> Node {
        self.binary("dict_pop", key, |d, k| {
            let mut d = py::dict_of(d, "pop")?.clone();
            let key = py::dict_key(k)?;
            d.shift_remove(&key)
                .ok_or_else(|| PyError::new("KeyError", super::value::py_quote(&key)))?;
            Ok(Value::Dict(d))
        })
    }
    /// A traced copy (`identity`): a new node that depends on this one.
    pub fn identity(&self) -> Node {
        self.unary("identity", |v| Ok(v.clone()))
    }
    pub fn clone_node(&self) -> Node {
        self.unary("clone", |v| Ok(v.clone()))
    }

    /// Traced iteration: one `getitem` node per item of a list (or per key of a dict, like
    /// Python's `for k in d`). A value that cannot be iterated is an error.
    pub fn iter_items(&self) -> Result<Vec<Node>> {
        match self.value() {
            Value::List(l) => Ok((0..l.len() as i64).map(|i| self.getitem(i)).collect()),
            Value::Str(s) => Ok((0..s.chars().count() as i64).map(|i| self.getitem(i)).collect()),
            Value::Dict(d) => {
                let keys = self.keys();
                Ok((0..d.len() as i64).map(|i| keys.getitem(i)).collect())
            }
            other => {
                let e =
                    PyError::type_error(format!("'{}' object is not iterable", other.type_name()));
                let node = self.graph().exception(
                    "iter",
                    vec![("x".into(), self.id())],
                    e.node_text(),
                    Some(OpInfo { op: "iter".into(), source: None, error: Some(e.to_string()) }),
                );
                node.check().map(|_| Vec::new())
            }
        }
    }

    /// Traced `(key, value)` pairs of a dict node.
    pub fn iter_pairs(&self) -> Result<Vec<(Node, Node)>> {
        let keys = self.iter_items()?;
        if !matches!(self.value(), Value::Dict(_)) {
            return Err(crate::Error::Graph(format!(
                "{} is a {}, not a dict",
                self.name(),
                self.value().type_name()
            )));
        }
        Ok(keys.into_iter().map(|k| (k.clone(), self.getitem(&k))).collect())
    }
}

macro_rules! overload {
    ($trait:ident, $method:ident, $node_method:ident) => {
        impl<R: Operand> std::ops::$trait<R> for &Node {
            type Output = Node;
            fn $method(self, rhs: R) -> Node {
                self.$node_method(rhs)
            }
        }
        impl<R: Operand> std::ops::$trait<R> for Node {
            type Output = Node;
            fn $method(self, rhs: R) -> Node {
                (&self).$node_method(rhs)
            }
        }
        overload!(@reflected $trait, $method, $node_method, f64, i64);
    };
    (@reflected $trait:ident, $method:ident, $node_method:ident, $($t:ty),*) => {$(
        impl std::ops::$trait<&Node> for $t {
            type Output = Node;
            fn $method(self, rhs: &Node) -> Node {
                rhs.graph().value(self).$node_method(rhs)
            }
        }
        impl std::ops::$trait<Node> for $t {
            type Output = Node;
            fn $method(self, rhs: Node) -> Node {
                rhs.graph().value(self).$node_method(&rhs)
            }
        }
    )*};
}

overload!(Add, add, add);
overload!(Sub, sub, sub);
overload!(Mul, mul, mul);
overload!(Div, div, div);
overload!(Rem, rem, rem);

impl std::ops::Neg for &Node {
    type Output = Node;
    fn neg(self) -> Node {
        Node::neg(self)
    }
}
impl std::ops::Neg for Node {
    type Output = Node;
    fn neg(self) -> Node {
        Node::neg(&self)
    }
}
