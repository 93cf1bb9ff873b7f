//! The same OptoPrime optimizer against an OpenAI-compatible server (vLLM, llama.cpp's server,
//! Ollama) given by URL, on the point-mass reach controller: a few steps, then the held-out
//! success before and after. Nothing else changes: the optimizer sees an `Llm`, local or remote.
//!
//! `cargo run --release --example remote -- http://127.0.0.1:8080/v1 --model qwen2.5-coder --steps 5`
//! (`OPTO_REMOTE_API_KEY` is sent as the bearer token when set.)

use clap::Parser;
use opto::llm::remote::{RemoteConfig, RemoteLlm};
use opto::llm::{GenerationParams, Llm};
use opto::optim::{Optimizer, OptoPrime, OptoPrimeOptions};
use opto::tasks::controller::{ControllerTask, GainLaw, PointMass};
use opto::train::{RunConfig, Task, Trainer};
use std::sync::Arc;

#[derive(Parser)]
struct Args {
    /// Base URL of the server, e.g. http://127.0.0.1:8080/v1
    url: String,
    /// Model name the server knows.
    #[arg(long, default_value = "default")]
    model: String,
    #[arg(long, default_value_t = 5)]
    steps: usize,
    #[arg(long, default_value_t = 2)]
    seeds: usize,
}

fn main() -> opto::Result<()> {
    let args = Args::parse();
    let config = RemoteConfig::resolve(Some(&args.url), Some(&args.model), None)?;
    let llm: Arc<dyn Llm> = Arc::new(RemoteLlm::new(config));
    let task = Arc::new(ControllerTask::gains(PointMass, GainLaw::reach_pd()));
    let run = RunConfig {
        task: task.name(),
        seeds: args.seeds,
        steps: args.steps,
        model: llm.describe(),
        max_tokens: 300,
        device: "remote".into(),
        batch_size: args.seeds,
        ..Default::default()
    };
    let objective = task.objective();
    let trainer = Trainer {
        task: task.clone(),
        llm,
        config: run,
        out_dir: std::env::temp_dir().join(format!("opto-remote-{}", std::process::id())),
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
    println!(
        "asked {} for {} step(s) of {} seed(s)",
        args.url,
        summary.batch_seconds.len(),
        args.seeds
    );
    for h in &summary.held_out {
        println!("seed {}: held-out reach {} before, {} after", h.seed, h.before, h.after);
    }
    println!("run folder: {}", summary.out_dir.display());
    Ok(())
}
