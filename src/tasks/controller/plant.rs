//! The `Plant` trait: a seeded physical system with noise that a controller drives, step by
//! step, from its observations. The built-in ones are the point mass (`reach.rs`) and the
//! cart-pole (`cartpole.rs`); a user brings their own plant by implementing this trait (see
//! `examples/controller.rs`). A plant knows its physics, its goal and how to describe a
//! trajectory in a few words; it knows nothing of graphs or LLMs.

use rand::rngs::StdRng;

/// Where a rollout stands after a step.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Running,
    /// The goal was met; the text says how (`reached the target at step 83`).
    Succeeded(String),
    /// The rollout cannot succeed any more (`the pole fell past 12 degrees`).
    Failed(String),
}

/// A simulated system. One value serves every rollout: the state lives in the `Vec<f64>` the
/// methods are given, randomness comes from the `rng` passed in, so a rollout is a pure function
/// of its start state and noise seed.
pub trait Plant: Send + Sync {
    /// Short name for task names and logs (`reach`).
    fn name(&self) -> String;

    /// One or two sentences for the optimizer: the system, the goal, what counts as success.
    fn goal(&self) -> String;

    /// Names of the observation entries, in the order `observe` returns them; the Python
    /// controller gets them as the keys of its `obs` dict.
    fn observation_names(&self) -> Vec<String>;

    /// Names of the action entries (`fx`, `fy`); one name means the action is a single number.
    fn action_names(&self) -> Vec<String>;

    /// The actuator limit: each action entry is clipped to `[-limit, limit]` before it acts.
    fn action_limit(&self) -> f64;

    /// Steps in a rollout's budget.
    fn max_steps(&self) -> usize;

    /// Seconds per step.
    fn dt(&self) -> f64;

    /// A random start state (the task draws training and held-out states from separate streams).
    fn initial_state(&self, rng: &mut StdRng) -> Vec<f64>;

    /// What the controller sees of `state` (same length as `observation_names`).
    fn observe(&self, state: &[f64]) -> Vec<f64>;

    /// Advances `state` by one step under the (already clipped) `action`, with process noise.
    fn step(&self, state: &mut [f64], action: &[f64], rng: &mut StdRng);

    /// Whether the rollout is over after `steps` steps (success, failure or still running).
    fn status(&self, state: &[f64], steps: usize) -> Status;

    /// What the rollout says when the budget ran out while `status` was still `Running`
    /// (with the numbers that matter: the summary shows only the tracked value).
    fn at_budget(&self, state: &[f64]) -> Status;

    /// The one number tracked along a trajectory for its summary (`distance` to the target,
    /// `angle` of the pole), with its name.
    fn tracked(&self, state: &[f64]) -> (&'static str, f64);

    /// A short description of what went wrong in a trajectory that did not succeed, from the
    /// tracked values (one per step, the start included), e.g. "it passed the target 3 times
    /// without stopping". Empty when there is nothing to add.
    fn diagnose(&self, _tracked: &[f64]) -> String {
        String::new()
    }

    /// Whether lasting longer before a failure is progress (a balance task, where failing is
    /// falling). Then a failed rollout earns part of a success by how long it lasted, so the
    /// score ranks candidates before any succeeds; otherwise a failure scores 0.
    fn lasting_counts(&self) -> bool {
        false
    }
}

/// `x` rounded to 3 decimals: summaries shown to a small model need no more digits, and every
/// digit costs tokens.
pub fn round3(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1000.0).round() / 1000.0
    } else {
        x
    }
}

/// A uniform draw in `[-a, a]` (process noise; the simulators need nothing fancier).
pub fn noise(rng: &mut StdRng, a: f64) -> f64 {
    use rand::Rng;
    if a <= 0.0 {
        0.0
    } else {
        rng.gen_range(-a..=a)
    }
}
