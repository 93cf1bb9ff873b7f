//! A user's own `Task`, written outside the crate and run by the `Trainer`: fit a line
//! `y = a * x + b` to a few measured points. Each seed is a different data set (a different
//! problem), and all seeds step together: their optimizer calls go to the LLM as one batch.
//!
//! `cargo run --release --example custom_task -- --seeds 3 --steps 8 --threads 2`

use clap::Parser;
use opto::graph::{Graph, Node, Value};
use opto::llm::local::{hub::resolve_model, LocalLlm, LocalOptions};
use opto::llm::{GenerationParams, Llm};
use opto::optim::{Optimizer, OptoPrime, OptoPrimeOptions};
use opto::train::{Evaluation, RunConfig, Task, Trainer};
use std::sync::Arc;

const XS: [f64; 4] = [0.0, 1.0, 2.0, 3.0];

/// The hidden line of data set `seed`: small integer slope and intercept, never the start (1, 0).
fn true_line(seed: u64) -> (f64, f64) {
    let a = [2.0, -1.0, 3.0, 0.5, -2.0, 4.0][seed as usize % 6];
    let b = [1.0, 4.0, -2.0, 3.0, 0.0, -1.0][seed as usize % 6];
    (a, b)
}

struct LineFit;

impl Task for LineFit {
    fn name(&self) -> String {
        "line-fit".into()
    }

    fn objective(&self) -> String {
        "Choose a and b so that the predictions a * x + b match the measured y at every point. The feedback gives the error at each point.".into()
    }

    fn parameters(&self, graph: &Graph, _seed: u64) -> Vec<Node> {
        vec![
            graph.param_named("a", 1.0).constraint_text("a float, the slope"),
            graph.param_named("b", 0.0).constraint_text("a float, the intercept"),
        ]
    }

    /// Traced: one `a * x + b` per point, so #Code shows how a and b make each prediction.
    fn forward(
        &self,
        graph: &Graph,
        params: &[Node],
        _seed: u64,
        _step: usize,
    ) -> opto::Result<Node> {
        let [a, b] = params else {
            return Err(opto::Error::Task { task: self.name(), reason: "expects a and b".into() });
        };
        let predictions: Vec<Node> = XS.iter().map(|&x| a * &graph.value(x) + b).collect();
        let collect = opto::graph::FnSpec::new(
            "predictions",
            "Collects the predictions at x = 0, 1, 2, 3 in a list.",
            &["p0", "p1", "p2", "p3"],
        );
        let refs: Vec<&Node> = predictions.iter().collect();
        collect.call_in(graph, &refs, |v| Ok(Value::List(v.to_vec())))
    }

    fn evaluate(&self, output: &Node, seed: u64, _step: usize) -> Evaluation {
        let (a, b) = true_line(seed);
        let Value::List(ps) = output.value() else {
            return Evaluation {
                score: f64::NEG_INFINITY,
                feedback: "The predictions are not a list.".into(),
                success: false,
            };
        };
        let mut lines = Vec::new();
        let mut squared = 0.0;
        for (x, p) in XS.iter().zip(&ps) {
            let (p, y) = (p.as_f64().unwrap_or(f64::NAN), a * x + b);
            squared += (p - y) * (p - y);
            if (p - y).abs() > 0.05 {
                lines.push(format!(
                    "at x={x} the prediction {p} should be {} (measured y={y})",
                    if p < y { "larger" } else { "smaller" }
                ));
            }
        }
        let mse = squared / XS.len() as f64;
        let success = mse < 0.01;
        let feedback = if success {
            "Success: every prediction matches.".to_string()
        } else {
            format!("Mean squared error {mse:.3}. {}.", lines.join("; "))
        };
        Evaluation { score: -mse, feedback, success }
    }
}

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = opto::llm::local::hub::DEFAULT_MODEL)]
    model: String,
    #[arg(long, default_value_t = 3)]
    seeds: usize,
    #[arg(long, default_value_t = 8)]
    steps: usize,
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn main() -> opto::Result<()> {
    let args = Args::parse();
    let llm: Arc<dyn Llm> = Arc::new(LocalLlm::load(
        resolve_model(&args.model)?,
        LocalOptions { threads: args.threads, ..Default::default() },
    )?);
    let task = Arc::new(LineFit);
    let config = RunConfig {
        task: task.name(),
        seeds: args.seeds,
        steps: args.steps,
        model: llm.describe(),
        max_tokens: 300,
        threads: Some(args.threads),
        batch_size: args.seeds,
        ..Default::default()
    };
    let objective = task.objective();
    let trainer = Trainer {
        task: task.clone(),
        llm,
        config,
        out_dir: std::env::temp_dir().join(format!("opto-line-fit-{}", std::process::id())),
        make_optimizer: Arc::new(move |params, llm, seed| {
            let generation = GenerationParams { max_tokens: 300, seed, ..Default::default() };
            Box::new(OptoPrime::with_options(
                params,
                llm,
                OptoPrimeOptions {
                    objective: objective.clone(),
                    memory_size: 5,
                    generation,
                    ..Default::default()
                },
            )) as Box<dyn Optimizer>
        }),
        progress: true,
    };
    let summary = trainer.run()?;
    let checkpoint = opto::train::Checkpoint::load(&summary.out_dir)?;
    for s in &checkpoint.seeds {
        let (a, b) = true_line(s.seed);
        let got: Vec<String> =
            s.params.iter().map(|(k, v)| format!("{k}={}", v.py_str())).collect();
        println!(
            "data set {} (true a={a}, b={b}): {} · solved at step {:?}",
            s.seed,
            got.join(" "),
            s.solved_at
        );
    }
    let batches: Vec<String> = summary.batch_seconds.iter().map(|s| format!("{s:.1}")).collect();
    println!("LLM batch per step (all seeds at once), seconds: {}", batches.join(", "));
    println!("run folder: {}", summary.out_dir.display());
    Ok(())
}
