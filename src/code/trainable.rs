//! `TrainableFn`: a Python function whose source text is a trainable parameter (the reference's
//! `bundle(trainable=True)`, REFERENCE §1.5). Its header (name and parameters) is fixed at
//! creation; the optimizer may replace the body, each new version is validated before it is
//! accepted and compiled once, on first call.

use super::constraint::code_constraint;
use super::convert::{coerce, Expected};
use super::error::{CodeError, CodeErrorKind};
use super::sandbox::{CallOutcome, CompiledFn, Limits, Sandbox};
use super::signature::Signature;
use super::validate::validate_rewrite;
use crate::graph::Value;
use std::fmt;
use std::sync::Mutex;

pub struct TrainableFn {
    signature: Signature,
    source: String,
    returns: Expected,
    /// The compile result for one source text (errors too, so broken code is not re-parsed each call).
    compiled: Mutex<Option<(String, Result<CompiledFn, CodeError>)>>,
}

impl TrainableFn {
    /// From the initial source; the first top-level `def` is the trainable function.
    pub fn new(source: &str) -> Result<Self, String> {
        let signature = Signature::first(source).ok_or_else(|| {
            "the initial code defines no top-level function (`def name(...):`)".to_string()
        })?;
        Ok(Self::from_parts(signature, source))
    }

    /// From the initial source, where several functions are defined and `fn_name` is the one called.
    pub fn named(source: &str, fn_name: &str) -> Result<Self, String> {
        let signature = Signature::find(source, fn_name).ok_or_else(|| {
            format!("the initial code does not define `def {fn_name}(...)` at top level")
        })?;
        Ok(Self::from_parts(signature, source))
    }

    fn from_parts(signature: Signature, source: &str) -> Self {
        TrainableFn {
            signature,
            source: source.to_string(),
            returns: Expected::Any,
            compiled: Mutex::new(None),
        }
    }

    /// Coerce every result to `returns` (e.g. `Expected::Float`, so `return 0` gives `0.0`).
    pub fn with_returns(mut self, returns: Expected) -> Self {
        self.returns = returns;
        self
    }

    pub fn name(&self) -> &str {
        &self.signature.name
    }
    /// The fixed header (of the initial source) every version must keep.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
    /// The current source text: the parameter's value.
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn returns(&self) -> &Expected {
        &self.returns
    }

    /// The constraint text for the code parameter (required first lines + the Python subset).
    pub fn constraint(&self) -> String {
        code_constraint(&self.signature)
    }

    /// Checks `new_source` (same name and parameters, not empty) and makes it current; on
    /// rejection the source is unchanged and the reason is for the next prompt. Syntax errors in
    /// the body are accepted here and reported by the next call, as the reference does.
    pub fn set_source(&mut self, new_source: &str) -> Result<(), String> {
        validate_rewrite(&self.signature, new_source)?;
        self.source = new_source.to_string();
        Ok(())
    }

    /// The compiled current version, compiled once per source text.
    pub fn compile(&self, sandbox: &dyn Sandbox) -> Result<CompiledFn, CodeError> {
        let mut cache = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((text, result)) = cache.as_ref() {
            if *text == self.source {
                return result.clone();
            }
        }
        let result = sandbox.compile(&self.source, self.name());
        *cache = Some((self.source.clone(), result.clone()));
        result
    }

    /// Runs the current version under `limits` and coerces the result to `returns`.
    pub fn run(&self, sandbox: &dyn Sandbox, args: &[Value], limits: &Limits) -> CallOutcome {
        let f = match self.compile(sandbox) {
            Ok(f) => f,
            Err(e) => return CallOutcome { result: Err(e), printed: String::new() },
        };
        let mut outcome = sandbox.run(&f, args, limits);
        outcome.result = outcome.result.and_then(|v| {
            coerce(v, &self.returns).map_err(|why| {
                let mut e = CodeError::bare(
                    CodeErrorKind::Exception,
                    "TypeError",
                    format!("{}() returned the wrong type: {why}", self.name()),
                );
                e.printed = outcome.printed.clone();
                e
            })
        });
        outcome
    }

    /// Runs the current version under the sandbox's limits and returns the coerced value.
    pub fn call(&self, sandbox: &dyn Sandbox, args: &[Value]) -> Result<Value, CodeError> {
        self.run(sandbox, args, &sandbox.limits()).result
    }
}

impl Clone for TrainableFn {
    fn clone(&self) -> Self {
        let cached = self.compiled.lock().unwrap_or_else(|p| p.into_inner()).clone();
        TrainableFn {
            signature: self.signature.clone(),
            source: self.source.clone(),
            returns: self.returns.clone(),
            compiled: Mutex::new(cached),
        }
    }
}

impl fmt::Debug for TrainableFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrainableFn")
            .field("signature", &self.signature.to_string())
            .field("returns", &self.returns)
            .field("source_len", &self.source.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::MontySandbox;

    const INITIAL: &str = "def act(x):\n    \"\"\"Returns the action for x.\"\"\"\n    return 0\n";

    #[test]
    fn result_is_coerced_to_the_declared_type() {
        let f = TrainableFn::new(INITIAL).unwrap().with_returns(Expected::Float);
        let sb = MontySandbox::default();
        assert_eq!(f.call(&sb, &[Value::Float(2.0)]), Ok(Value::Float(0.0)));
    }

    #[test]
    fn rejected_rewrite_keeps_the_old_source_and_says_why() {
        let mut f = TrainableFn::new(INITIAL).unwrap();
        let why = f.set_source("def act(x, y):\n    return x\n").unwrap_err();
        assert!(why.contains("(x) to (x, y)"), "{why}");
        assert_eq!(f.source(), INITIAL);
    }

    #[test]
    fn new_source_is_compiled_once_and_used() {
        let mut f = TrainableFn::new(INITIAL).unwrap();
        let sb = MontySandbox::default();
        f.set_source("def act(x):\n    return x * 2\n").unwrap();
        let first = f.compile(&sb).unwrap();
        let second = f.compile(&sb).unwrap();
        assert_eq!(first.id(), second.id(), "same source text must reuse the compiled function");
        assert_eq!(f.call(&sb, &[Value::Int(21)]), Ok(Value::Int(42)));
    }

    #[test]
    fn wrong_return_type_is_an_exception_naming_the_function() {
        let f = TrainableFn::new("def act(x):\n    return 'left'\n")
            .unwrap()
            .with_returns(Expected::Float);
        let err = f.call(&MontySandbox::default(), &[Value::Int(1)]).unwrap_err();
        assert_eq!(err.kind, CodeErrorKind::Exception);
        assert_eq!(
            err.traceback,
            "TypeError: act() returned the wrong type: expected float, got str 'left'"
        );
    }

    #[test]
    fn constraint_names_the_header_and_docstring() {
        let f = TrainableFn::new(INITIAL).unwrap();
        assert!(f.constraint().contains("def act(x):\n    \"\"\"Returns the action for x.\"\"\""));
    }
}
