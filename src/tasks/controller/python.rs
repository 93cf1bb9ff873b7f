//! The code parameterization: a trainable Python function `controller(obs)` (a `code`
//! parameter, `__code0`) that maps the observation dict to the action, run step by step in the
//! sandbox. Each rollout is ONE traced call, `rollout(start=start0, controller=__code0)`, whose
//! value is the rollout's summary: the function is shown once as source in #Variables, not
//! hundreds of times as per-step `eval` lines. Whatever stops the function — a syntax error,
//! an exception, a time-out, a memory stop, a wrong shape, NaN — stops the rollout, and the
//! text (traceback, step, observation) becomes the feedback.

use super::plant::Plant;
use super::rollout::PolicyError;
use crate::code::{Sandbox, TracedCode, TrainableFn};
use crate::error::Result;
use crate::graph::{Graph, Node, Value};
use std::time::{Duration, Instant};

/// The whole rollout's budget for controller calls (each call also has the sandbox's own
/// limit): a controller that is slow on every step fails instead of stalling the run.
pub const ROLLOUT_CODE_BUDGET: Duration = Duration::from_secs(3);

/// The trainable controller function and its starting source.
#[derive(Clone, Debug, PartialEq)]
pub struct PythonLaw {
    pub initial: String,
}

impl PythonLaw {
    pub fn new(initial: &str) -> Self {
        PythonLaw { initial: initial.into() }
    }

    /// Pulls towards the target with no damping: it overshoots and keeps oscillating.
    pub fn reach() -> Self {
        PythonLaw::new(
            "def controller(obs):\n    \"\"\"Returns the force [fx, fy] (each in [-1, 1]) for the point mass, from obs: a dict with x, y, vx, vy, target_x, target_y.\"\"\"\n    return [obs['target_x'] - obs['x'], obs['target_y'] - obs['y']]\n",
        )
    }

    /// Pushes a little towards the lean: too weak, the pole falls.
    pub fn cartpole() -> Self {
        PythonLaw::new(
            "def controller(obs):\n    \"\"\"Returns the force (a number in [-10, 10]) on the cart, from obs: a dict with x, x_dot, theta, theta_dot.\"\"\"\n    return 5.0 * obs['theta']\n",
        )
    }

    /// The code parameter `__code<N>` with the starting source. Its constraint is shorter than
    /// the sandbox's general one: a controller needs arithmetic and `math`, and the full list of
    /// what the sandbox lacks would be a fifth of every prompt.
    pub fn parameter(&self, graph: &Graph) -> Result<Node> {
        let param = TracedCode::new(graph, &self.initial)?.param().clone();
        let header =
            crate::code::Signature::first(&self.initial).map(|s| s.text).unwrap_or_default();
        Ok(param.constraint_text(format!(
            "The code should start with:\n{header}\nKeep the function name and its parameter unchanged. It runs in a restricted Python: plain arithmetic, if/else, loops, `import math` (no numpy, random or other modules). Each call must return within {} ms.",
            super::CALL_TIME_LIMIT.as_millis()
        )))
    }

    /// The function to run for `source` (the parameter's current value): its header checked
    /// against the starting one and compiled once.
    pub fn compile(
        &self,
        source: &Value,
        sandbox: &dyn Sandbox,
    ) -> std::result::Result<(TrainableFn, crate::code::CompiledFn), PolicyError> {
        let text = match source {
            Value::Code(s) | Value::Str(s) => s,
            other => {
                return Err(PolicyError::plain(format!(
                    "(TypeError) the controller must be Python source, got {}",
                    other.type_name()
                )))
            }
        };
        let mut fun = TrainableFn::new(&self.initial)
            .map_err(|e| PolicyError::plain(format!("(ValueError) starting code: {e}")))?;
        fun.set_source(text).map_err(|e| PolicyError::plain(format!("(ValueError) {e}")))?;
        let compiled = fun
            .compile(sandbox)
            .map_err(|e| PolicyError { summary: e.summary(), detail: e.feedback() })?;
        Ok((fun, compiled))
    }

    /// A policy that calls the compiled function on each observation (as a dict named by the
    /// plant) and reads its result as the action.
    pub fn policy<'a>(
        &self,
        source: &Value,
        plant: &'a dyn Plant,
        sandbox: &'a dyn Sandbox,
    ) -> std::result::Result<
        impl FnMut(&[f64]) -> std::result::Result<Vec<f64>, PolicyError> + 'a,
        PolicyError,
    > {
        let (fun, compiled) = self.compile(source, sandbox)?;
        let names = plant.observation_names();
        let actions = plant.action_names();
        let limits = sandbox.limits();
        let mut spent = Duration::ZERO;
        let mut calls = 0usize;
        Ok(move |obs: &[f64]| {
            let arg = Value::Dict(
                names.iter().cloned().zip(obs.iter().map(|x| Value::Float(*x))).collect(),
            );
            let started = Instant::now();
            let outcome = sandbox.run(&compiled, &[arg], &limits);
            spent += started.elapsed();
            calls += 1;
            let value = outcome
                .result
                .map_err(|e| PolicyError { summary: e.summary(), detail: e.feedback() })?;
            if spent > ROLLOUT_CODE_BUDGET {
                return Err(PolicyError::plain(format!(
                    "(TimeoutError) {}() took {:.1} s over its first {calls} calls; a rollout allows {} s in all, so each call must be fast",
                    fun.name(),
                    spent.as_secs_f64(),
                    ROLLOUT_CODE_BUDGET.as_secs()
                )));
            }
            action_of(&value, &actions).map_err(|why| {
                PolicyError::plain(format!(
                    "(ValueError) {}() returned {}: {why}",
                    fun.name(),
                    short(&value.py_repr(), 80)
                ))
            })
        })
    }
}

/// The action in a controller's result: one number for a one-entry action, else a list of
/// exactly that many numbers.
pub fn action_of(value: &Value, names: &[String]) -> std::result::Result<Vec<f64>, String> {
    let want = if names.len() == 1 {
        format!("it must return one number ({})", names[0])
    } else {
        format!("it must return a list of {} numbers [{}]", names.len(), names.join(", "))
    };
    let number = |v: &Value| match v {
        Value::Float(x) => Some(*x),
        Value::Int(i) => Some(*i as f64),
        Value::Bool(_)
        | Value::None
        | Value::Str(_)
        | Value::List(_)
        | Value::Dict(_)
        | Value::Code(_) => None,
    };
    let xs = match value {
        Value::List(items) if items.len() == names.len() => {
            items.iter().map(number).collect::<Option<Vec<f64>>>()
        }
        Value::List(items) if names.len() == 1 && items.len() == 1 => {
            items.iter().map(number).collect()
        }
        v if names.len() == 1 => number(v).map(|x| vec![x]),
        _ => None,
    };
    let xs = xs.ok_or(want)?;
    if let Some(bad) = xs.iter().find(|x| !x.is_finite()) {
        return Err(format!("{} is not a finite number", crate::graph::value::py_float(*bad)));
    }
    Ok(xs)
}

/// `text` cut to `n` characters with an ellipsis.
fn short(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(n).collect::<String>())
    }
}
