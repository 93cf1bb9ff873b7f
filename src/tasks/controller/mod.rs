//! `controller`: tune a controller for a simulated physical system, the paper's robot-control
//! use on a device with no network. Plants: the point-mass reach (`reach.rs`) and the cart-pole
//! balance (`cartpole.rs`), or a user's own [`Plant`]. Parameterizations: numeric gains of a
//! fixed law with ranges (`gains.rs`) or a trainable Python `controller(obs)` (`python.rs`).
//!
//! What the optimizer sees (the trace design): each forward pass runs a few training rollouts
//! (3 by default, the seed's own start states), and each rollout is ONE traced call —
//! `rollout0 = rollout(start=start0, kp=kp, kd=kd)` — whose documentation is the control law and
//! whose value is a summary (outcome, a diagnosis, the tracked distance or angle at ~8 points,
//! the final state, the first observation → action). A rollout of hundreds of steps thus costs a
//! line of #Code and ~80 tokens of #Others instead of hundreds of near-identical lines; the law
//! is in the documentation (gains) or the source (code) and the sample shows it acting on an
//! observation. The output `count_successes(...)` gets the feedback: how many rollouts
//! succeeded, what went wrong in the others, and any gain that was clamped into its range.
//!
//! Success on training = every training rollout succeeds; `held_out` reports success on 10 start
//! states no training rollout uses, for before/after figures.

pub mod cartpole;
pub mod gains;
pub mod plant;
pub mod python;
pub mod reach;
pub mod rollout;

pub use cartpole::CartPole;
pub use gains::{GainLaw, GainSpec};
pub use plant::{Plant, Status};
pub use python::PythonLaw;
pub use reach::PointMass;
pub use rollout::{run_rollout, ControllerFailure, PolicyError, Rollout};

use crate::code::{find_worker_program, Limits, MontySandbox, Sandbox, WorkerSandbox};
use crate::error::{Error, Result};
use crate::graph::{CallFailure, FnSpec, Graph, Node, Value};
use crate::train::{CandidateEvaluation, Evaluation, HeldOut, Task};
use indexmap::IndexMap;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::Arc;
use std::time::Duration;

/// Training rollouts per forward pass (each seed has its own start states).
pub const TRAINING_STARTS: usize = 3;
/// Start states of the held-out check.
pub const HELD_OUT_STARTS: usize = 10;
/// Time limit of one `controller(obs)` call.
pub const CALL_TIME_LIMIT: Duration = Duration::from_millis(50);

/// How the controller is parameterized.
#[derive(Clone, Debug)]
pub enum Law {
    Gains(GainLaw),
    Python(PythonLaw),
}

/// The controller task over one plant and one parameterization.
pub struct ControllerTask {
    pub plant: Arc<dyn Plant>,
    pub law: Law,
    /// Picks the draw of start states (`--problem`).
    pub problem: usize,
    pub training_starts: usize,
    pub held_out_starts: usize,
    sandbox: Arc<dyn Sandbox>,
}

/// The variants `opto run` knows, by task name.
pub const VARIANTS: [&str; 4] = [
    "controller-reach-gains",
    "controller-reach-code",
    "controller-cartpole-gains",
    "controller-cartpole-code",
];

impl ControllerTask {
    /// Gains of `law` on `plant`.
    pub fn gains(plant: impl Plant + 'static, law: GainLaw) -> Self {
        Self::build(Arc::new(plant), Law::Gains(law))
    }

    /// A Python controller on `plant`, starting from `law.initial`, run in the worker sandbox
    /// (memory-capped) when its binary is found, else in-process.
    pub fn python(plant: impl Plant + 'static, law: PythonLaw) -> Self {
        Self::build(Arc::new(plant), Law::Python(law))
    }

    fn build(plant: Arc<dyn Plant>, law: Law) -> Self {
        let sandbox: Arc<dyn Sandbox> = match &law {
            Law::Python(_) => default_sandbox(),
            Law::Gains(_) => Arc::new(MontySandbox::new(Limits::default())),
        };
        ControllerTask {
            plant,
            law,
            problem: 0,
            training_starts: TRAINING_STARTS,
            held_out_starts: HELD_OUT_STARTS,
            sandbox,
        }
    }

    /// Runs the Python controller in `sandbox` instead.
    pub fn with_sandbox(mut self, sandbox: Arc<dyn Sandbox>) -> Self {
        self.sandbox = sandbox;
        self
    }

    pub fn with_problem(mut self, problem: usize) -> Self {
        self.problem = problem;
        self
    }

    pub fn with_training_starts(mut self, n: usize) -> Self {
        self.training_starts = n.max(1);
        self
    }

    /// A built-in variant by task name: `controller` (= `controller-reach-gains`),
    /// `controller-reach[-gains|-code]`, `controller-cartpole[-gains|-code]`.
    pub fn from_name(name: &str, problem: usize) -> Result<Self> {
        let rest = name.strip_prefix("controller").unwrap_or(name);
        let parts: Vec<&str> = rest.split('-').filter(|s| !s.is_empty()).collect();
        let (plant, law) = match parts.as_slice() {
            [] => ("reach", "gains"),
            [p] => (*p, "gains"),
            [p, l] => (*p, *l),
            _ => ("", ""),
        };
        let task = match (plant, law) {
            ("reach", "gains") => Self::gains(PointMass, GainLaw::reach_pd()),
            ("reach", "code") => Self::python(PointMass, PythonLaw::reach()),
            ("cartpole", "gains") => Self::gains(CartPole, GainLaw::cartpole_linear()),
            ("cartpole", "code") => Self::python(CartPole, PythonLaw::cartpole()),
            _ => {
                return Err(Error::Task {
                    task: name.to_string(),
                    reason: format!(
                        "unknown controller variant; available: controller, {}",
                        VARIANTS.join(", ")
                    ),
                })
            }
        };
        Ok(task.with_problem(problem))
    }

    fn law_kind(&self) -> &'static str {
        match self.law {
            Law::Gains(_) => "gains",
            Law::Python(_) => "code",
        }
    }

    /// Start states with their noise seeds: the seed's training set, or the held-out set
    /// (`seed == None`), from separate streams so they never coincide by construction.
    pub fn starts(&self, seed: Option<u64>) -> Vec<(Vec<f64>, u64)> {
        let (stream, n) = match seed {
            Some(s) => {
                (0x7EA1_0000_u64 ^ s.wrapping_mul(0x9E37_79B9_7F4A_7C15), self.training_starts)
            }
            None => (0x4E1D_0000_u64, self.held_out_starts),
        };
        let mut rng = StdRng::seed_from_u64(stream.wrapping_add((self.problem as u64) << 32));
        (0..n)
            .map(|_| {
                let state: Vec<f64> =
                    self.plant.initial_state(&mut rng).into_iter().map(plant::round3).collect();
                (state, rand::Rng::gen(&mut rng))
            })
            .collect()
    }

    fn rollout_spec(&self, args: &[&str]) -> FnSpec {
        let plant = self.plant.as_ref();
        let how = match &self.law {
            Law::Gains(law) => format!("the controller acting at every step as {}", law.formula),
            Law::Python(_) => format!(
                "calling controller(obs) at every step with obs = {{{}}} and applying the action it returns, clipped to [-{limit}, {limit}]",
                plant.observation_names().join(", "),
                limit = plant.action_limit()
            ),
        };
        FnSpec::new("rollout", format!("Simulates the system from start for up to {} steps, {how}. Returns a summary of the rollout.", plant.max_steps()), args)
    }

    /// Runs one rollout with the current parameter values; `Err` when the controller stopped it.
    fn run_one(
        &self,
        values: &[Value],
        start: &[f64],
        noise_seed: u64,
    ) -> std::result::Result<(Rollout, Vec<String>), ControllerFailure> {
        let plant = self.plant.as_ref();
        let early = |error: PolicyError| ControllerFailure {
            step: 0,
            observation: plant.observe(start),
            error,
        };
        match &self.law {
            Law::Gains(law) => {
                let used = law.used(values).map_err(|e| early(PolicyError::plain(e)))?;
                let mut policy = |obs: &[f64]| Ok::<_, PolicyError>((law.act)(&used.values, obs));
                Ok((run_rollout(plant, start, noise_seed, &mut policy)?, used.notes))
            }
            Law::Python(law) => {
                let source = values.first().cloned().unwrap_or_default();
                let mut policy =
                    law.policy(&source, plant, self.sandbox.as_ref()).map_err(early)?;
                Ok((run_rollout(plant, start, noise_seed, &mut policy)?, Vec::new()))
            }
        }
    }

    /// The failure text for the feedback: which rollout, where, on what, and the error.
    fn failure_text(&self, index: usize, f: &ControllerFailure) -> CallFailure {
        let obs = rollout::named(&self.plant.observation_names(), &f.observation).py_repr();
        CallFailure {
            summary: f.error.summary.clone(),
            detail: format!("rollout{index} stopped at step {} (obs = {obs}) because the controller failed:\n{}", f.step, f.error.detail),
        }
    }
}

/// The sandbox for Python controllers: the worker process (hard memory cap) when its binary
/// is next to this program or named by `OPTO_SANDBOX_WORKER`, else in-process with a warning.
pub fn default_sandbox() -> Arc<dyn Sandbox> {
    let limits = Limits::default().with_wall_time(CALL_TIME_LIMIT);
    match find_worker_program() {
        Ok(program) => Arc::new(WorkerSandbox::with_program(
            program,
            limits,
            rayon::current_num_threads().max(1),
        )),
        Err(why) => {
            eprintln!("warning: {why}; Python controllers run in-process, where memory is capped only for single large allocations");
            Arc::new(MontySandbox::new(limits))
        }
    }
}

impl Task for ControllerTask {
    fn name(&self) -> String {
        format!("controller-{}-{}", self.plant.name(), self.law_kind())
    }

    fn objective(&self) -> String {
        let n = self.training_starts;
        let what = match &self.law {
            Law::Gains(law) => format!("Choose the gains {} of the controller {}.", law.names().join(", "), law.formula),
            Law::Python(_) => "Write the Python function controller(obs) that returns the action for each observation.".to_string(),
        };
        format!("{} {what} Each rollout starts from a different state; all {n} rollouts must succeed. Use the rollout summaries and the feedback to see what goes wrong.", self.plant.goal())
    }

    fn parameters(&self, graph: &Graph, _seed: u64) -> Vec<Node> {
        match &self.law {
            Law::Gains(law) => law.parameters(graph),
            // The built-in and user sources are checked by `python()` callers' tests; a source
            // with no `def` leaves the task with no parameter and forward says so.
            Law::Python(law) => law.parameter(graph).map(|p| vec![p]).unwrap_or_default(),
        }
    }

    fn forward(&self, graph: &Graph, params: &[Node], seed: u64, _step: usize) -> Result<Node> {
        if params.is_empty() {
            return Err(Error::Task {
                task: self.name(),
                reason: "has no parameters (is the starting controller code a `def`?)".into(),
            });
        }
        let mut arg_names: Vec<String> = vec!["start".into()];
        match &self.law {
            Law::Gains(law) => arg_names.extend(law.names()),
            Law::Python(_) => arg_names.push("controller".into()),
        }
        let arg_refs: Vec<&str> = arg_names.iter().map(String::as_str).collect();
        let spec = self.rollout_spec(&arg_refs);
        let mut rollouts = Vec::new();
        for (i, (start, noise_seed)) in self.starts(Some(seed)).into_iter().enumerate() {
            let start_node = graph.value_named(
                &format!("start{i}"),
                rollout::named(&self.plant.observation_names(), &start),
            );
            let mut inputs = vec![&start_node];
            inputs.extend(params.iter());
            let node = spec.call_detailed(graph, &inputs, |values| {
                let (r, notes) = self
                    .run_one(&values[1..], &start, noise_seed)
                    .map_err(|f| self.failure_text(i, &f))?;
                let mut v = r.to_value(self.plant.as_ref());
                if let (Value::Dict(d), false) = (&mut v, notes.is_empty()) {
                    d.insert("clamped".into(), Value::Str(notes.join("; ")));
                }
                Ok(v)
            })?;
            rollouts.push(node);
        }
        let names: Vec<String> = (0..rollouts.len()).map(|i| format!("rollout{i}")).collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let count = FnSpec::new(
            "count_successes",
            "Counts the rollouts that succeeded; all of them must.",
            &name_refs,
        );
        let refs: Vec<&Node> = rollouts.iter().collect();
        count.call_in(graph, &refs, |vs| {
            let ok = vs
                .iter()
                .filter(|v| summary_field(v, "success").is_some_and(|s| s.truthy()))
                .count();
            Ok(Value::Dict(IndexMap::from([
                ("succeeded".to_string(), Value::Int(ok as i64)),
                ("rollouts".to_string(), Value::Int(vs.len() as i64)),
            ])))
        })
    }

    fn evaluate(&self, output: &Node, _seed: u64, _step: usize) -> Evaluation {
        let rollouts = output.parents();
        let n = rollouts.len().max(1);
        let ok = rollouts
            .iter()
            .filter(|r| summary_field(&r.value(), "success").is_some_and(|s| s.truthy()))
            .count();
        let success = ok == rollouts.len() && ok > 0;
        let mut lines = vec![if success {
            format!("Success: all {ok} rollouts succeeded.")
        } else {
            format!("{ok} of {} rollouts succeeded; all {} must.", rollouts.len(), rollouts.len())
        }];
        let mut notes: Vec<String> = Vec::new();
        // A failed rollout of a balance task earns up to half a success by the share of its
        // budget it lasted (see `Plant::lasting_counts`).
        let budget = self.plant.max_steps().max(1) as f64;
        let mut lasted = 0.0;
        for r in &rollouts {
            let v = r.value();
            let text = |k: &str| summary_field(&v, k).map(|x| x.py_str()).unwrap_or_default();
            if !summary_field(&v, "success").is_some_and(|s| s.truthy()) {
                lines.push(format!("{}: {}.", r.name(), text("result")));
                if let (true, Some(Value::Int(steps))) =
                    (self.plant.lasting_counts(), summary_field(&v, "steps"))
                {
                    lasted += 0.5 * (steps as f64 / budget).min(1.0);
                }
            }
            let clamped = text("clamped");
            if !clamped.is_empty() && !notes.contains(&clamped) {
                notes.push(clamped);
            }
        }
        for note in notes {
            lines.push(format!("Note: {note}."));
        }
        let score = (ok as f64 + lasted) / n as f64;
        Evaluation { score, feedback: lines.join("\n"), success }
    }

    /// A simulator acts on nothing: a search may score as many candidates as it likes.
    fn candidate_evaluation(&self) -> CandidateEvaluation {
        CandidateEvaluation::Offline
    }

    /// A gain's range (a search stays inside it; the rollouts clamp to it anyway).
    fn bounds(&self, name: &str) -> Option<(f64, f64)> {
        match &self.law {
            Law::Gains(law) => law.gains.iter().find(|g| g.name == name).map(|g| (g.low, g.high)),
            Law::Python(_) => None,
        }
    }

    fn held_out(&self, params: &IndexMap<String, Value>) -> Option<HeldOut> {
        let graph = Graph::new();
        let names: Vec<String> = self.parameters(&graph, 0).iter().map(Node::name).collect();
        let values: Vec<Value> =
            match names.iter().map(|n| params.get(n).cloned()).collect::<Option<Vec<_>>>() {
                Some(v) => v,
                None => {
                    return Some(HeldOut {
                        successes: 0,
                        trials: self.held_out_starts,
                        note: Some(format!("the parameters lack one of {}", names.join(", "))),
                    })
                }
            };
        let mut successes = 0;
        let mut failures = Vec::new();
        for (i, (start, noise_seed)) in self.starts(None).into_iter().enumerate() {
            match self.run_one(&values, &start, noise_seed) {
                Ok((r, _)) if r.success => successes += 1,
                Ok(_) => {}
                Err(f) => failures.push(format!("state {i}: {}", f.error.summary)),
            }
        }
        let note = (!failures.is_empty()).then(|| {
            format!("the controller failed on {} state(s): {}", failures.len(), failures.join("; "))
        });
        Some(HeldOut { successes, trials: self.held_out_starts, note })
    }
}

/// A key of a rollout summary dict.
fn summary_field(v: &Value, key: &str) -> Option<Value> {
    match v {
        Value::Dict(d) => d.get(key).cloned(),
        _ => None,
    }
}
