//! A user's own plant and controller, tuned on the device with the local model: altitude hold
//! for a small drone (a Rust `Plant`), a thrust law with three numeric gains and their ranges,
//! several seeds in one batch, held-out success before and after.
//!
//! `cargo run --release --example controller -- --steps 10 --seeds 2 --threads 2`

use clap::Parser;
use opto::llm::local::{hub::resolve_model, LocalLlm, LocalOptions};
use opto::llm::{GenerationParams, Llm};
use opto::optim::{Optimizer, OptoPrime, OptoPrimeOptions};
use opto::tasks::controller::{plant::noise, ControllerTask, GainLaw, GainSpec, Plant, Status};
use opto::train::{RunConfig, Task, Trainer};
use rand::rngs::StdRng;
use rand::Rng;
use std::sync::Arc;

/// A 0.5 kg drone that must climb or descend to a target altitude and hover there: within
/// 0.1 m, slower than 0.2 m/s, inside 300 steps of 0.02 s. Thrust is 0 to 12 N; gravity pulls
/// 4.9 N; gusts push it around. State: `[altitude, climb_rate, target]`.
struct Drone;

const MASS: f64 = 0.5;
const GRAVITY: f64 = 9.81;

impl Plant for Drone {
    fn name(&self) -> String {
        "drone".into()
    }
    fn goal(&self) -> String {
        "A 0.5 kg drone must reach its target altitude and hover there (within 0.1 m, climb rate below 0.2 m/s) within 300 steps of 0.02 s. Gravity pulls with 4.9 N; the thrust is limited to [0, 12] N.".into()
    }
    fn observation_names(&self) -> Vec<String> {
        vec!["altitude".into(), "climb_rate".into(), "target".into()]
    }
    fn action_names(&self) -> Vec<String> {
        vec!["thrust".into()]
    }
    fn action_limit(&self) -> f64 {
        12.0
    }
    fn max_steps(&self) -> usize {
        300
    }
    fn dt(&self) -> f64 {
        0.02
    }
    fn initial_state(&self, rng: &mut StdRng) -> Vec<f64> {
        vec![rng.gen_range(0.5..=3.0), 0.0, rng.gen_range(1.0..=4.0)]
    }
    fn observe(&self, s: &[f64]) -> Vec<f64> {
        s.to_vec()
    }
    fn step(&self, s: &mut [f64], action: &[f64], rng: &mut StdRng) {
        // Rotors cannot pull down: thrust below 0 is 0 (the generic clip allows ±limit).
        let thrust = action[0].max(0.0);
        let accel = thrust / MASS - GRAVITY + noise(rng, 0.5);
        s[1] += accel * self.dt();
        s[0] = (s[0] + s[1] * self.dt()).max(0.0);
    }
    fn status(&self, s: &[f64], steps: usize) -> Status {
        if (s[0] - s[2]).abs() < 0.1 && s[1].abs() < 0.2 {
            Status::Succeeded(format!("hovering at the target from step {steps}"))
        } else if s[0] <= 0.0 && steps > 5 {
            Status::Failed(format!("hit the ground at step {steps}"))
        } else {
            Status::Running
        }
    }
    fn at_budget(&self, s: &[f64]) -> Status {
        Status::Failed(format!(
            "time ran out {:.2} m from the target altitude",
            (s[0] - s[2]).abs()
        ))
    }
    fn tracked(&self, s: &[f64]) -> (&'static str, f64) {
        ("altitude_error", s[0] - s[2])
    }
}

/// thrust = hover + kp * (target - altitude) - kd * climb_rate
fn thrust_law() -> GainLaw {
    GainLaw::new(
        vec![
            GainSpec::new(
                "hover",
                0.0,
                12.0,
                2.0,
                "the thrust in newtons when the drone is at the target and still",
            ),
            GainSpec::new("kp", 0.0, 20.0, 1.0, "extra thrust per metre below the target"),
            GainSpec::new("kd", 0.0, 20.0, 0.0, "thrust taken off per m/s of climb (damping)"),
        ],
        "thrust = hover + kp * (target - altitude) - kd * climb_rate, limited to [0, 12]",
        |k, o| vec![k[0] + k[1] * (o[2] - o[0]) - k[2] * o[1]],
    )
}

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = opto::llm::local::hub::DEFAULT_MODEL)]
    model: String,
    #[arg(long, default_value_t = 10)]
    steps: usize,
    #[arg(long, default_value_t = 2)]
    seeds: usize,
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[arg(long, default_value_t = 5)]
    memory: usize,
    /// Run folder (default: a fresh temporary one).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

fn main() -> opto::Result<()> {
    let args = Args::parse();
    let task = Arc::new(ControllerTask::gains(Drone, thrust_law()));
    let llm: Arc<dyn Llm> = Arc::new(LocalLlm::load(
        resolve_model(&args.model)?,
        LocalOptions { threads: args.threads, ..Default::default() },
    )?);
    let out_dir = args
        .out
        .unwrap_or_else(|| std::env::temp_dir().join(format!("opto-drone-{}", std::process::id())));
    let config = RunConfig {
        task: task.name(),
        seeds: args.seeds,
        steps: args.steps,
        memory: args.memory,
        model: llm.describe(),
        max_tokens: 300,
        threads: Some(args.threads),
        batch_size: args.seeds,
        ..Default::default()
    };
    let (objective, memory) = (task.objective(), args.memory);
    let trainer = Trainer {
        task: task.clone(),
        llm,
        config,
        out_dir,
        make_optimizer: Arc::new(move |params, llm, seed| {
            let generation = GenerationParams { max_tokens: 300, seed, ..Default::default() };
            Box::new(OptoPrime::with_options(
                params,
                llm,
                OptoPrimeOptions {
                    objective: objective.clone(),
                    memory_size: memory,
                    generation,
                    ..Default::default()
                },
            )) as Box<dyn Optimizer>
        }),
        progress: true,
    };
    let summary = trainer.run()?;
    let checkpoint = opto::train::Checkpoint::load(&summary.out_dir)?;
    for (seed, h) in checkpoint.seeds.iter().zip(&summary.held_out) {
        let gains: Vec<String> =
            seed.params.iter().map(|(k, v)| format!("{k}={}", v.py_str())).collect();
        println!(
            "seed {}: solved at step {:?}; gains {}; held-out hovers {} before, {} after",
            seed.seed,
            seed.solved_at,
            gains.join(" "),
            h.before,
            h.after
        );
    }
    println!(
        "{:.1} s per step; run folder {}",
        summary.batch_seconds.iter().sum::<f64>() / summary.batch_seconds.len().max(1) as f64,
        summary.out_dir.display()
    );
    Ok(())
}
