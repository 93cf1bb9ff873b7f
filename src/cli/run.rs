//! `opto run TASK`: optimize a task with the local model (or a remote server), several seeds in
//! lockstep, and leave a run folder with config, events, checkpoint and report.

use crate::error::{Error, Result};
use crate::graph::Node;
use crate::llm::{GenerationParams, Llm};
use crate::optim::{Opro, OproOptions, OptoPrime, OptoPrimeOptions, Optimizer, TextGrad, TextGradOptions};
use crate::train::{default_out_dir, RunConfig, Trainer};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The task: numeric.
    pub task: String,
    /// Model id (see `opto models list`) or a .gguf path; pulled on first use.
    #[arg(long, default_value = crate::llm::local::hub::DEFAULT_MODEL)]
    pub model: String,
    /// Use an OpenAI-compatible server instead of the local model (base URL, e.g. http://127.0.0.1:8080/v1).
    #[arg(long)]
    pub remote: Option<String>,
    /// Model name to ask the remote server for.
    #[arg(long, requires = "remote")]
    pub remote_model: Option<String>,
    /// Independent runs stepped together (their LLM calls share one batch).
    #[arg(long, default_value_t = 1)]
    pub seeds: usize,
    #[arg(long, default_value_t = 0)]
    pub first_seed: u64,
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Past (variables, feedback) pairs shown to the optimizer.
    #[arg(long, default_value_t = 5)]
    pub memory: usize,
    #[arg(long, default_value = "optoprime", value_parser = ["optoprime", "opro", "textgrad"])]
    pub optimizer: String,
    /// Which problem of the task's generator.
    #[arg(long, default_value_t = 0)]
    pub problem: usize,
    /// Compute threads for the local model (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// cpu, cuda:N or metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 400)]
    pub max_tokens: usize,
    /// Keep stepping a seed after it solved the task.
    #[arg(long)]
    pub no_stop_on_success: bool,
    /// Run folder (default: runs/<task>-<time>).
    #[arg(long, conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// The `prompt` task's dataset and splits.
    #[command(flatten)]
    pub prompt: super::prompt::PromptArgs,
}

fn check(args: &RunArgs) -> Result<()> {
    if args.seeds == 0 {
        return Err(Error::invalid("--seeds", "must be at least 1"));
    }
    if args.steps == 0 {
        return Err(Error::invalid("--steps", "must be at least 1"));
    }
    if args.threads == Some(0) {
        return Err(Error::invalid("--threads", "must be at least 1"));
    }
    if !(0.0..=5.0).contains(&args.temperature) {
        return Err(Error::invalid("--temperature", "must be between 0 and 5"));
    }
    Ok(())
}

/// The LLM the run uses: the remote server when asked, else the local model.
pub(crate) fn build_llm(args: &RunArgs) -> Result<(Arc<dyn Llm>, Option<String>)> {
    if let Some(url) = &args.remote {
        let config = crate::llm::remote::RemoteConfig::resolve(Some(url), args.remote_model.as_deref(), None)?;
        return Ok((Arc::new(crate::llm::remote::RemoteLlm::new(config)), None));
    }
    let path = crate::llm::local::hub::resolve_model(&args.model)?;
    let device = args.device.parse()?;
    let opts = crate::llm::local::LocalOptions { threads: args.threads.unwrap_or(0), device, ..Default::default() };
    eprintln!("loading {} ...", path.display());
    let llm = crate::llm::local::LocalLlm::load(&path, opts)?;
    let sha = crate::llm::local::hub::cached_sha256(&path);
    Ok((Arc::new(llm), sha))
}

pub fn run(args: RunArgs) -> Result<()> {
    if args.task == "prompt" {
        return super::prompt::run(&args);
    }
    check(&args)?;
    let task: Arc<dyn crate::train::Task> = Arc::from(crate::tasks::by_name(&args.task, args.problem)?);
    if let Some(dir) = &args.resume {
        // Fail on a bad folder before loading a model.
        crate::train::Checkpoint::load(dir)?;
    }
    let (llm, model_sha256) = build_llm(&args)?;
    let config = RunConfig {
        task: args.task.clone(),
        problem: args.problem,
        optimizer: args.optimizer.clone(),
        seeds: args.seeds,
        first_seed: args.first_seed,
        steps: args.steps,
        memory: args.memory,
        model: llm.describe(),
        model_sha256,
        temperature: args.temperature,
        max_tokens: args.max_tokens,
        threads: args.threads,
        device: args.device.clone(),
        batch_size: args.seeds,
        stop_on_success: !args.no_stop_on_success,
        opto_version: env!("CARGO_PKG_VERSION").into(),
    };
    let generation = GenerationParams { max_tokens: args.max_tokens, temperature: args.temperature, ..Default::default() };
    let (kind, memory, objective) = (args.optimizer.clone(), args.memory, task.objective());
    let make_optimizer = Arc::new(move |params: Vec<Node>, llm: Arc<dyn Llm>, seed: u64| -> Box<dyn Optimizer> {
        let generation = GenerationParams { seed, ..generation.clone() };
        match kind.as_str() {
            "opro" => Box::new(Opro::with_options(params, llm, OproOptions { objective: objective.clone(), generation, ..Default::default() })),
            "textgrad" => Box::new(TextGrad::with_options(
                params,
                llm,
                TextGradOptions { objective: objective.clone(), gradient_generation: generation.clone(), update_generation: generation, ..Default::default() },
            )),
            _ => Box::new(OptoPrime::with_options(params, llm, OptoPrimeOptions { objective: objective.clone(), memory_size: memory, generation, ..Default::default() })),
        }
    });
    let out_dir = args.resume.clone().or(args.out.clone()).unwrap_or_else(|| default_out_dir(&args.task));
    let trainer = Trainer { task, llm, config, out_dir, make_optimizer, progress: true };
    let summary = if args.resume.is_some() { trainer.resume()? } else { trainer.run()? };
    let solved = summary.solved_at.iter().filter(|s| s.is_some()).count();
    let mean_batch = if summary.batch_seconds.is_empty() { 0.0 } else { summary.batch_seconds.iter().sum::<f64>() / summary.batch_seconds.len() as f64 };
    println!(
        "solved {solved}/{} seeds · steps to solve {:?} · {:.1} s per step · {:.1} s total",
        summary.solved_at.len(),
        summary.solved_at,
        mean_batch,
        summary.total_s
    );
    println!("run folder: {}", summary.out_dir.display());
    Ok(())
}
