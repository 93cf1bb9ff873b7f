//! `opto run TASK`: optimize a task with the local model (or a remote server), several seeds in
//! lockstep, and leave a run folder with config, events, checkpoint and report.

use crate::error::{Error, Result};
use crate::graph::Node;
use crate::llm::{GenerationParams, Llm};
use crate::optim::{
    MemoryOrder, Opro, OproOptions, Optimizer, OptoPrime, OptoPrimeMulti, OptoPrimeOptions,
    TextGrad, TextGradOptions,
};
use crate::train::search::{SearchSettings, Strategy};
use crate::train::{default_out_dir, RunConfig, Trainer};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The task: numeric (the paper's §5.1 problems, real-valued solutions), numeric-easy (small
    /// integer solutions), battleship, or controller-{reach,cartpole}-{gains,code} (`controller`
    /// is controller-reach-gains; see the README's controller section).
    pub task: String,
    /// Model id (see `opto models list`, pulled on first use), a .gguf path, or a model another
    /// tool keeps, read in place: ollama:NAME or ollama:NAME:TAG, lmstudio:PUBLISHER/REPO,
    /// hf:ORG/REPO (either with /FILE.gguf after it to pick a file).
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
    /// Steps in all; with --resume too (a run stopped after step 6 resumed with --steps 10 does 4 more).
    #[arg(long, default_value_t = crate::train::config::DEFAULT_STEPS)]
    pub steps: usize,
    /// Past (variables, feedback) pairs shown to the optimizer.
    #[arg(long, default_value_t = crate::train::config::DEFAULT_MEMORY)]
    pub memory: usize,
    #[arg(long, default_value = "optoprime", value_parser = ["optoprime", "opro", "textgrad", "optoprime-multi"])]
    pub optimizer: String,
    /// Which problem of the task's generator.
    #[arg(long, default_value_t = 0, conflicts_with = "problems")]
    pub problem: usize,
    /// Several problems side by side in one batch: `0-29`, `0,4,7`; each runs --seeds seeds.
    #[arg(long)]
    pub problems: Option<String>,
    /// How a step picks its update: greedy (one candidate, the paper's), best-of:K, beam:B:K,
    /// priority:K (K optional: best-of, beam:B, priority); the baselines random:K and section:K
    /// use no model.
    #[arg(long, default_value = "greedy")]
    pub search: String,
    /// Candidates per run per step for --search (and optoprime-multi's replies).
    #[arg(long, default_value_t = 6)]
    pub candidates: usize,
    /// Under --search, only the model proposes (no bracketing/interpolation steps for numbers).
    #[arg(long)]
    pub no_numeric_proposals: bool,
    /// Which tries the memory shows: recent (the latest) or ranked (the best so far); default:
    /// ranked under a search, recent otherwise.
    #[arg(long, value_parser = ["recent", "ranked"])]
    pub memory_order: Option<String>,
    /// Do not name the closest pair of tried values whose feedback differs (one numeric variable).
    #[arg(long)]
    pub no_bracket_hint: bool,
    /// Keep the model's value even where the tries rule it out (one numeric variable, feedback
    /// that names a direction); by default such a value is replaced by a bisection or
    /// expansion step.
    #[arg(long)]
    pub no_line_guard: bool,
    /// Compute threads for the local model (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// cpu, cuda:N or metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = crate::train::config::DEFAULT_MAX_TOKENS)]
    pub max_tokens: usize,
    /// Keep stepping a seed after it solved the task.
    #[arg(long)]
    pub no_stop_on_success: bool,
    /// Run folder (default: runs/TASK-TIME).
    #[arg(long, conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint (with the folder's configuration;
    /// `--steps N` extends it).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Ids of the flags typed on the command line (set by `cli::parse`; empty when built by hand).
    #[arg(skip)]
    pub explicit: Vec<String>,
    /// The `prompt` task's dataset and splits.
    #[command(flatten)]
    pub prompt: super::prompt::PromptArgs,
}

/// The search the flags ask for (`None`: greedy), checked against the optimizer.
fn search_settings(args: &RunArgs) -> Result<Option<SearchSettings>> {
    let strategy = Strategy::parse(&args.search, args.candidates)?;
    if strategy == Strategy::Greedy {
        return Ok(None);
    }
    if strategy.uses_model() && args.optimizer == "textgrad" {
        return Err(Error::invalid("--search", "needs an optimizer that proposes from one reply (optoprime, opro, optoprime-multi); textgrad's update takes several rounds"));
    }
    let mut settings = SearchSettings::new(strategy);
    settings.numeric_proposals = !args.no_numeric_proposals;
    settings.base_temperature = args.temperature;
    Ok(Some(settings))
}

/// The task, or the set of problems, the flags name.
fn build_task(args: &RunArgs) -> Result<(Arc<dyn crate::train::Task>, Vec<usize>, usize)> {
    let Some(list) = &args.problems else {
        return Ok((
            Arc::from(crate::tasks::by_name(&args.task, args.problem)?),
            Vec::new(),
            args.seeds,
        ));
    };
    let problems = crate::tasks::problem_set::parse_problems(list)?;
    let tasks = problems
        .iter()
        .map(|&p| crate::tasks::by_name(&args.task, p).map(|t| (p, t)))
        .collect::<Result<Vec<_>>>()?;
    let set = crate::tasks::ProblemSet::new(args.task.clone(), tasks, args.seeds, args.first_seed)?;
    let runs = set.runs();
    Ok((Arc::new(set), problems, runs))
}

/// A baseline search needs what it draws from: candidates it may score, and numbers with bounds.
fn check_baseline(strategy: &Strategy, task: &dyn crate::train::Task, seed: u64) -> Result<()> {
    if strategy.uses_model() {
        return Ok(());
    }
    if task.candidate_evaluation() == crate::train::CandidateEvaluation::ActsOnWorld {
        return Err(Error::invalid(
            "--search",
            format!(
                "{} scores many candidates per step, but {} acts on the world when it runs",
                strategy.label(),
                task.name()
            ),
        ));
    }
    let graph = crate::graph::Graph::new();
    let values: indexmap::IndexMap<String, crate::graph::Value> =
        task.parameters(&graph, seed).iter().map(|p| (p.name(), p.value())).collect();
    let numbers = crate::train::search::numeric::numeric_params(&values, &|name| task.bounds(name));
    if numbers.is_empty() {
        return Err(Error::invalid(
            "--search",
            format!(
                "{} moves numbers, and {} has no numeric parameter",
                strategy.label(),
                task.name()
            ),
        ));
    }
    if let Some(p) = numbers.iter().find(|p| p.bounds.is_none()) {
        return Err(Error::invalid(
            "--search",
            format!(
                "{} draws within bounds, and {}'s parameter `{}` has none",
                strategy.label(),
                task.name(),
                p.name
            ),
        ));
    }
    Ok(())
}

fn check(args: &RunArgs) -> Result<()> {
    super::bounds::check_run_counts(
        args.seeds,
        args.first_seed,
        args.steps,
        args.memory,
        args.max_tokens,
        args.threads,
        args.problem,
    )?;
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
        let config = crate::llm::remote::RemoteConfig::resolve(
            Some(url),
            args.remote_model.as_deref(),
            None,
        )?;
        let remote = crate::llm::remote::RemoteLlm::new(config);
        remote.check_health()?;
        return Ok((Arc::new(remote), None));
    }
    let path = crate::llm::local::hub::resolve_model(&args.model)?;
    let device = args.device.parse()?;
    let opts = crate::llm::local::LocalOptions {
        threads: args.threads.unwrap_or(0),
        device,
        ..Default::default()
    };
    eprintln!("loading {} ...", path.display());
    let llm = crate::llm::local::LocalLlm::load(&path, opts)?;
    let sha = crate::llm::local::hub::cached_sha256(&path);
    Ok((Arc::new(llm), sha))
}

pub fn run(mut args: RunArgs) -> Result<()> {
    if args.task == "prompt" {
        return super::prompt::run(&args);
    }
    // Fail on a bad or busy folder, and on flags that disagree with it, before loading a model.
    super::resume::apply_folder_config(&mut args)?;
    check(&args)?;
    let mut search = search_settings(&args)?;
    if let Some(folder) = super::resume::folder_search(&args, &search)? {
        search = folder;
    }
    let (task, problems, runs) = build_task(&args)?;
    if let Some(dir) = args.resume.as_ref().or(args.out.as_ref()) {
        crate::train::lock::RunLock::check_free(dir)?;
    }
    if let Some(s) = &search {
        check_baseline(&s.strategy, task.as_ref(), args.first_seed)?;
    }
    if search.is_some()
        && task.candidate_evaluation() == crate::train::CandidateEvaluation::ActsOnWorld
    {
        eprintln!("note: {} acts on the world when it runs, so candidates cannot be scored first: one candidate per step (--search greedy)", task.name());
        search = None;
    }
    let needs_model = search.as_ref().is_none_or(|s| s.strategy.uses_model());
    let (llm, model_sha256): (Arc<dyn Llm>, Option<String>) = if needs_model {
        build_llm(&args)?
    } else {
        // the baselines never ask a model; nothing is loaded
        (Arc::new(crate::llm::scripted::ScriptedLlm::new(Vec::<String>::new())), None)
    };
    let config = RunConfig {
        task: args.task.clone(),
        problem: args.problem,
        optimizer: args.optimizer.clone(),
        seeds: runs,
        first_seed: args.first_seed,
        steps: args.steps,
        memory: args.memory,
        model: if needs_model {
            llm.describe()
        } else {
            "none (a baseline search asks no model)".into()
        },
        model_sha256,
        temperature: args.temperature,
        max_tokens: args.max_tokens,
        threads: args.threads,
        device: args.device.clone(),
        batch_size: runs * search.as_ref().map_or(1, |s| s.strategy.candidates()),
        stop_on_success: !args.no_stop_on_success,
        opto_version: env!("CARGO_PKG_VERSION").into(),
        problems,
        search: search.clone(),
        line_guard: !args.no_line_guard,
        bracket_hint: !args.no_bracket_hint,
    };
    let memory_order = match args.memory_order.as_deref() {
        Some("ranked") => MemoryOrder::Ranked,
        Some(_) => MemoryOrder::Recent,
        None if search.is_some() => MemoryOrder::Ranked,
        None => MemoryOrder::Recent,
    };
    let candidates = args.candidates;
    let bracket_hint = !args.no_bracket_hint;
    let line_guard = !args.no_line_guard;
    let generation = GenerationParams {
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        ..Default::default()
    };
    let (kind, memory, objective) = (args.optimizer.clone(), args.memory, task.objective());
    let make_optimizer =
        Arc::new(move |params: Vec<Node>, llm: Arc<dyn Llm>, seed: u64| -> Box<dyn Optimizer> {
            let generation = GenerationParams { seed, ..generation.clone() };
            let optoprime_options = |generation| OptoPrimeOptions {
                objective: objective.clone(),
                memory_size: memory,
                memory_order,
                generation,
                bracket_hint,
                line_guard,
                ..Default::default()
            };
            match kind.as_str() {
                "opro" => Box::new(Opro::with_options(
                    params,
                    llm,
                    OproOptions { objective: objective.clone(), generation, ..Default::default() },
                )),
                "textgrad" => Box::new(TextGrad::with_options(
                    params,
                    llm,
                    TextGradOptions {
                        objective: objective.clone(),
                        gradient_generation: generation.clone(),
                        update_generation: generation,
                        ..Default::default()
                    },
                )),
                // OptoPrime and OptoPrimeMulti take the same options
                "optoprime-multi" => Box::new(OptoPrimeMulti::new(
                    params,
                    llm,
                    optoprime_options(generation),
                    candidates,
                )),
                _ => Box::new(OptoPrime::with_options(params, llm, optoprime_options(generation))),
            }
        });
    let out_dir =
        args.resume.clone().or(args.out.clone()).unwrap_or_else(|| default_out_dir(&args.task));
    let trainer = Trainer { task, llm, config, out_dir, make_optimizer, progress: true };
    let summary = if args.resume.is_some() { trainer.resume()? } else { trainer.run()? };
    let events =
        crate::train::log::read_events(&summary.out_dir.join(crate::train::log::EVENTS_FILE))?;
    print!(
        "\n{}",
        crate::train::table::outcome_table(&summary, &events, trainer.config.first_seed)
    );
    for h in &summary.held_out {
        println!(
            "seed {}: held-out success {} before, {} after, {} with the best-scoring parameters",
            h.seed, h.before, h.after, h.best
        );
    }
    println!("run folder: {} (report.html)", summary.out_dir.display());
    Ok(())
}
