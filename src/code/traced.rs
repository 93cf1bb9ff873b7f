//! Trainable code in the graph: a Python function whose source is a `code` parameter
//! (`__code0`). Calling it records the reference's shape — one `eval` operator whose inputs are
//! the arguments (named after the function's parameters) plus `__code` — and runs the current
//! source in a [`Sandbox`]. A syntax error, an exception, a time-out or a memory stop becomes an
//! exception node: its value is the one-line error, its feedback text the full traceback.

use super::error::CodeError;
use super::sandbox::Sandbox;
use super::signature::Signature;
use super::trainable::TrainableFn;
use crate::error::{Error, Result};
use crate::graph::{CallFailure, FnSpec, Graph, Node, Value};
use std::sync::Mutex;

/// A trainable Python function bound to its code parameter.
pub struct TracedCode {
    param: Node,
    fun: Mutex<TrainableFn>,
}

impl TracedCode {
    /// Creates the code parameter (`__code<N>`) in `graph` from the initial source; its
    /// constraint tells the LLM the required first lines and the supported Python.
    pub fn new(graph: &Graph, source: &str) -> Result<TracedCode> {
        let fun =
            TrainableFn::new(source).map_err(|e| Error::Sandbox(format!("initial code: {e}")))?;
        let param = graph
            .param(Value::Code(source.to_string()))
            .constraint_text(fun.constraint())
            .described(format!("The Python source of the function `{}`; trainable.", fun.name()));
        Ok(TracedCode { param, fun: Mutex::new(fun) })
    }

    /// Binds an existing code parameter (e.g. recreated for each forward pass). `original` is the
    /// initial source, whose header every version must keep.
    pub fn bind(param: &Node, original: &str) -> Result<TracedCode> {
        let fun =
            TrainableFn::new(original).map_err(|e| Error::Sandbox(format!("initial code: {e}")))?;
        Ok(TracedCode { param: param.clone(), fun: Mutex::new(fun) })
    }

    pub fn param(&self) -> &Node {
        &self.param
    }

    pub fn signature(&self) -> Signature {
        self.lock().signature().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrainableFn> {
        self.fun.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the current source on `args` (one node per Python parameter) and records the call.
    pub fn call(&self, sandbox: &dyn Sandbox, args: &[&Node]) -> Result<Node> {
        let graph = self.param.graph().clone();
        let source = match self.param.value() {
            Value::Code(s) | Value::Str(s) => s,
            other => {
                return Err(Error::Sandbox(format!(
                    "{} holds a {}, not code",
                    self.param.name(),
                    other.type_name()
                )))
            }
        };
        let mut fun = self.lock();
        let signature = fun.signature().clone();
        let mut names: Vec<&str> = signature
            .params
            .iter()
            .map(|p| p.trim_start_matches('*'))
            .filter(|p| !p.is_empty() && *p != "/")
            .collect();
        if names.len() != args.len() {
            return Err(Error::Graph(format!(
                "`{}` takes {} arguments, got {}",
                signature.name,
                names.len(),
                args.len()
            )));
        }
        names.push("__code");
        let spec = FnSpec::new(
            "eval",
            format!(
                "Runs the Python function `{}` defined in {} on the inputs and returns its result.",
                signature.name,
                self.param.name()
            ),
            &names,
        )
        .with_source(source.clone());
        let mut inputs: Vec<&Node> = args.to_vec();
        inputs.push(&self.param);
        // A source that breaks the fixed header was set around the optimizer's checks: report it
        // as this call's error rather than running something else.
        let rejected = if fun.source() != source { fun.set_source(&source).err() } else { None };
        spec.call_detailed(&graph, &inputs, |values| {
            if let Some(reason) = rejected {
                return Err(CallFailure {
                    summary: format!("(ValueError) {reason}"),
                    detail: reason,
                });
            }
            let args = &values[..values.len() - 1];
            fun.call(sandbox, args).map_err(|e: CodeError| CallFailure {
                summary: format!("({}) {}", e.exc_type, e.message),
                detail: e.feedback(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::Limits;
    use crate::code::MontySandbox;
    use crate::propagate::summarize;

    const SQUARE: &str = "def my_fun(x):\n    \"\"\"Test function\"\"\"\n    return x**2 + 1\n";

    #[test]
    fn a_call_is_one_eval_node_with_the_code_as_input() {
        let g = Graph::new();
        let code = TracedCode::new(&g, SQUARE).unwrap();
        assert_eq!(code.param().name(), "__code0");
        let x = g.value(3);
        let y = code.call(&MontySandbox::new(Limits::default()), &[&x]).unwrap();
        assert_eq!(y.value(), Value::Int(10));
        assert_eq!(y.op().as_deref(), Some("eval"));
        y.backward("make it smaller").unwrap();
        let s = summarize(&[code.param().clone()]);
        assert_eq!(s.code, vec!["eval0 = eval(x=int0, __code=__code0)"]);
        assert!(s.variables[0].constraint.as_deref().unwrap().contains("def my_fun(x):"));
    }

    #[test]
    fn errors_become_exception_nodes_with_tracebacks() {
        let g = Graph::new();
        let code = TracedCode::new(&g, SQUARE).unwrap();
        code.param().set_value(Value::Code(
            "def my_fun(x):\n    \"\"\"Test function\"\"\"\n    return x / 0\n".into(),
        ));
        let x = g.value(3);
        let err = code.call(&MontySandbox::new(Limits::default()), &[&x]).unwrap_err();
        let Error::Execution { node: Some(node), .. } = err else {
            panic!("expected an execution error")
        };
        assert_eq!(node.name(), "exception_eval0");
        assert!(node.value().py_str().starts_with("(ZeroDivisionError)"), "{}", node.value());
        let feedback = node.error_text().unwrap();
        assert!(feedback.contains("line 3") && feedback.contains("return x / 0"), "{feedback}");
        assert_eq!(node.parents(), vec![x.clone(), code.param().clone()]);
        // A syntax error is feedback too.
        code.param().set_value(Value::Code("def my_fun(x):\n    return (x +\n".into()));
        let err = code.call(&MontySandbox::new(Limits::default()), &[&x]).unwrap_err();
        assert!(err.to_string().contains("SyntaxError"), "{err}");
    }
}
