//! The numeric parameterization: a fixed control law with trainable gains, each with a range.
//! A gain outside its range is clamped for the rollout and the clamp is reported in the
//! feedback (never silently used); a gain that is not a finite number stops the rollout with
//! the reason. The law's formula is the rollout's documentation, so the #Code line
//! `rollout0 = rollout(start=start0, kp=kp, kd=kd)` reads with the law it runs.

use crate::graph::{Graph, Node, Value};
use std::sync::Arc;

/// One trainable gain.
#[derive(Clone, Debug, PartialEq)]
pub struct GainSpec {
    pub name: String,
    pub low: f64,
    pub high: f64,
    pub initial: f64,
    /// What the gain does, in a few words (shown in its constraint).
    pub meaning: String,
}

impl GainSpec {
    pub fn new(name: &str, low: f64, high: f64, initial: f64, meaning: &str) -> Self {
        GainSpec { name: name.into(), low, high, initial, meaning: meaning.into() }
    }

    /// The constraint text the optimizer sees.
    pub fn constraint(&self) -> String {
        format!("a float in [{}, {}]; {}", self.low, self.high, self.meaning)
    }
}

/// The action as a function of the gains and the observation (both in declaration order).
pub type LawFn = dyn Fn(&[f64], &[f64]) -> Vec<f64> + Send + Sync;

/// A control law with named gains.
#[derive(Clone)]
pub struct GainLaw {
    pub gains: Vec<GainSpec>,
    /// The law as the optimizer reads it (`fx = kp * (target_x - x) - kd * vx; ...`).
    pub formula: String,
    pub act: Arc<LawFn>,
}

impl std::fmt::Debug for GainLaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GainLaw")
            .field("gains", &self.gains)
            .field("formula", &self.formula)
            .finish_non_exhaustive()
    }
}

/// The gains a rollout runs with, and what had to be changed to get them.
#[derive(Clone, Debug, PartialEq)]
pub struct UsedGains {
    pub values: Vec<f64>,
    /// One sentence per clamped gain.
    pub notes: Vec<String>,
}

impl GainLaw {
    pub fn new(
        gains: Vec<GainSpec>,
        formula: &str,
        act: impl Fn(&[f64], &[f64]) -> Vec<f64> + Send + Sync + 'static,
    ) -> Self {
        GainLaw { gains, formula: formula.into(), act: Arc::new(act) }
    }

    /// PD control of a point mass towards its target, per axis.
    pub fn reach_pd() -> Self {
        GainLaw::new(
            vec![
                GainSpec::new("kp", 0.0, 20.0, 1.0, "how strongly the force pulls towards the target"),
                GainSpec::new("kd", 0.0, 10.0, 0.0, "how strongly the force brakes the velocity (damping)"),
            ],
            "fx = kp * (target_x - x) - kd * vx and fy = kp * (target_y - y) - kd * vy, each clipped to [-1, 1]",
            |k, o| vec![k[0] * (o[4] - o[0]) - k[1] * o[2], k[0] * (o[5] - o[1]) - k[1] * o[3]],
        )
    }

    /// Linear state feedback for the cart-pole.
    pub fn cartpole_linear() -> Self {
        GainLaw::new(
            vec![
                GainSpec::new("k_x", -100.0, 100.0, 0.0, "force per unit of cart position x"),
                GainSpec::new("k_v", -100.0, 100.0, 0.0, "force per unit of cart velocity x_dot"),
                GainSpec::new("k_theta", -100.0, 100.0, 5.0, "force per radian of pole angle theta"),
                GainSpec::new("k_omega", -100.0, 100.0, 0.0, "force per rad/s of pole angular velocity theta_dot"),
            ],
            "force = k_x * x + k_v * x_dot + k_theta * theta + k_omega * theta_dot, clipped to [-10, 10]",
            |k, o| vec![k.iter().zip(o).map(|(k, o)| k * o).sum()],
        )
    }

    /// The gain parameters, named after the gains, with their initial values and ranges.
    pub fn parameters(&self, graph: &Graph) -> Vec<Node> {
        self.gains
            .iter()
            .map(|g| graph.param_named(&g.name, g.initial).constraint_text(g.constraint()))
            .collect()
    }

    /// The gains to run with, from the parameters' values (in declaration order): clamped into
    /// range with a note, or the reason they cannot be used at all.
    pub fn used(&self, values: &[Value]) -> Result<UsedGains, String> {
        if values.len() != self.gains.len() {
            return Err(format!(
                "(ValueError) expected {} gains ({}), got {}",
                self.gains.len(),
                self.names().join(", "),
                values.len()
            ));
        }
        let mut used = UsedGains { values: Vec::new(), notes: Vec::new() };
        for (spec, v) in self.gains.iter().zip(values) {
            let x = v.as_f64().ok_or_else(|| {
                format!(
                    "(TypeError) {} must be a number, got {} {}",
                    spec.name,
                    v.type_name(),
                    v.py_repr()
                )
            })?;
            if !x.is_finite() {
                return Err(format!(
                    "(ValueError) {} is {x}, not a finite number in [{}, {}]",
                    spec.name, spec.low, spec.high
                ));
            }
            let clamped = x.clamp(spec.low, spec.high);
            if clamped != x {
                let side = if x > spec.high { "above" } else { "below" };
                used.notes.push(format!(
                    "{}={x} is {side} its range [{}, {}], so the rollouts used {}={clamped}",
                    spec.name, spec.low, spec.high, spec.name
                ));
            }
            used.values.push(clamped);
        }
        Ok(used)
    }

    pub fn names(&self) -> Vec<String> {
        self.gains.iter().map(|g| g.name.clone()).collect()
    }
}
