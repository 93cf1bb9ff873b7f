//! One rollout: a plant driven from a start state by a policy (gains or Python) until it
//! succeeds, fails or runs out of steps, and the short summary the optimizer sees of it. A
//! policy that raises, returns the wrong shape or a non-finite number stops the rollout: that
//! failure, with the step and the observation, is what the caller reports.

use super::plant::{round3, Plant, Status};
use crate::graph::Value;
use indexmap::IndexMap;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// How many tracked values a summary shows at most (plus the start): a rollout of hundreds of
/// steps must not put hundreds of numbers in the prompt.
pub const SUMMARY_SAMPLES: usize = 8;

/// Why a policy could not give an action: `summary` is one line (`(ZeroDivisionError) ...`),
/// `detail` the full text for the feedback (a traceback).
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyError {
    pub summary: String,
    pub detail: String,
}

/// A controller as the rollout calls it: observation in, action (or the reason it failed) out.
pub type Policy<'a> = dyn FnMut(&[f64]) -> Result<Vec<f64>, PolicyError> + 'a;

impl PolicyError {
    pub fn plain(text: impl Into<String>) -> Self {
        let text = text.into();
        PolicyError { summary: text.clone(), detail: text }
    }
}

/// A rollout stopped by its controller.
#[derive(Clone, Debug, PartialEq)]
pub struct ControllerFailure {
    pub step: usize,
    pub observation: Vec<f64>,
    pub error: PolicyError,
}

/// What happened in a rollout that ran to its end.
#[derive(Clone, Debug, PartialEq)]
pub struct Rollout {
    pub success: bool,
    /// Steps simulated.
    pub steps: usize,
    /// The plant's words for the outcome (`reached the target and stopped at step 83`).
    pub outcome: String,
    pub tracked_name: &'static str,
    /// The tracked value at the start and after every step.
    pub tracked: Vec<f64>,
    /// The first observation and the action the policy gave for it (before clipping).
    pub first_step: (Vec<f64>, Vec<f64>),
    /// Steps where some action entry was beyond the actuator limit and was clipped.
    pub saturated_steps: usize,
    pub diagnosis: String,
}

/// Runs `policy` on `plant` from `start` with the noise stream `noise_seed`.
pub fn run_rollout(
    plant: &dyn Plant,
    start: &[f64],
    noise_seed: u64,
    policy: &mut Policy<'_>,
) -> Result<Rollout, ControllerFailure> {
    let mut rng = StdRng::seed_from_u64(noise_seed);
    let mut state = start.to_vec();
    let dims = plant.action_names().len();
    let limit = plant.action_limit();
    let mut tracked = vec![plant.tracked(&state).1];
    let mut first_step = None;
    let mut saturated_steps = 0;
    let mut status = Status::Running;
    let mut steps = 0;
    while steps < plant.max_steps() {
        let obs = plant.observe(&state);
        let fail =
            |error: PolicyError| ControllerFailure { step: steps, observation: obs.clone(), error };
        let action = policy(&obs).map_err(fail)?;
        if action.len() != dims {
            return Err(fail(PolicyError::plain(format!(
                "(ValueError) the action has {} entries; it must have {dims} ({})",
                action.len(),
                plant.action_names().join(", ")
            ))));
        }
        if let Some(bad) = action.iter().find(|a| !a.is_finite()) {
            return Err(fail(PolicyError::plain(format!(
                "(ValueError) the action {} holds {}, not a finite number",
                fmt_list(&action),
                crate::graph::value::py_float(*bad)
            ))));
        }
        if first_step.is_none() {
            first_step = Some((obs.clone(), action.clone()));
        }
        if action.iter().any(|a| a.abs() > limit) {
            saturated_steps += 1;
        }
        let clipped: Vec<f64> = action.iter().map(|a| a.clamp(-limit, limit)).collect();
        plant.step(&mut state, &clipped, &mut rng);
        steps += 1;
        tracked.push(plant.tracked(&state).1);
        status = plant.status(&state, steps);
        if status != Status::Running {
            break;
        }
    }
    if status == Status::Running {
        status = plant.at_budget(&state);
    }
    let (success, outcome) = match status {
        Status::Succeeded(t) => (true, t),
        Status::Failed(t) => (false, t),
        Status::Running => (false, "still running".into()),
    };
    let diagnosis = if success { String::new() } else { plant.diagnose(&tracked) };
    Ok(Rollout {
        success,
        steps,
        outcome,
        tracked_name: plant.tracked(&state).0,
        tracked,
        first_step: first_step.unwrap_or_default(),
        saturated_steps,
        diagnosis,
    })
}

/// `[0.5, -1.0]`, rounded.
pub fn fmt_list(xs: &[f64]) -> String {
    format!(
        "[{}]",
        xs.iter().map(|x| crate::graph::value::py_float(round3(*x))).collect::<Vec<_>>().join(", ")
    )
}

/// Named numbers as a dict value, rounded.
pub fn named(names: &[String], xs: &[f64]) -> Value {
    Value::Dict(names.iter().zip(xs).map(|(k, x)| (k.clone(), Value::Float(round3(*x)))).collect())
}

impl Rollout {
    /// Every `stride`-th tracked value (the start first), so the summary has at most
    /// `SUMMARY_SAMPLES + 1` of them, and the stride.
    pub fn samples(&self, max_steps: usize) -> (usize, Vec<f64>) {
        let stride = max_steps.div_ceil(SUMMARY_SAMPLES).max(1);
        (stride, self.tracked.iter().step_by(stride).map(|x| round3(*x)).collect())
    }

    /// The summary the graph records as the rollout's value: success, the outcome and a
    /// diagnosis in words, a few samples of the tracked value and the first action. The start
    /// state is the rollout's input already, so it is not repeated: every token counts on a
    /// small device.
    pub fn to_value(&self, plant: &dyn Plant) -> Value {
        let mut d = IndexMap::new();
        d.insert("success".to_string(), Value::Bool(self.success));
        d.insert("steps".to_string(), Value::Int(self.steps as i64));
        d.insert("result".to_string(), Value::Str(self.outcome.clone()));
        if !self.diagnosis.is_empty() {
            d.insert("diagnosis".to_string(), Value::Str(self.diagnosis.clone()));
        }
        let (stride, samples) = self.samples(plant.max_steps());
        d.insert(
            format!("{}_every_{stride}_steps", self.tracked_name),
            Value::List(samples.into_iter().map(Value::Float).collect()),
        );
        d.insert("first_action".to_string(), named(&plant.action_names(), &self.first_step.1));
        if self.saturated_steps > 0 {
            d.insert("steps_at_force_limit".to_string(), Value::Int(self.saturated_steps as i64));
        }
        Value::Dict(d)
    }
}
