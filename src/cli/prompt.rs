//! `opto run prompt`: prompt tuning with the dataset loop. `--data FILE.jsonl` tunes on the
//! user's own pairs (checked whole before any model is loaded; the run folder records the file's
//! path and sha256, not its contents, unless `--copy-data`); without it, generated question sets
//! of the BIG-Bench Hard kind (`--questions NAME|all`).

use super::run::RunArgs;
use crate::code::MontySandbox;
use crate::error::{Error, Result};
use crate::graph::Node;
use crate::llm::{GenerationParams, Llm};
use crate::optim::{Optimizer, OptoPrime, OptoPrimeOptions};
use crate::tasks::bbh::BbhTask;
use crate::tasks::prompt::PromptProgram;
use crate::train::dataset::{load_jsonl, split};
use crate::train::{
    DataSource, DatasetOptions, DatasetSummary, DatasetTrainer, SplitSizes, Splits,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args, Debug, Clone)]
pub struct PromptArgs {
    /// `prompt` task: your own JSONL file, one {"input": ..., "answer": ...} per line (optional
    /// "split": train, validation or test). Nothing of it leaves the machine.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Copy the data file into the run folder and log prompts and replies (by default the run
    /// folder records only the file's path and sha256).
    #[arg(long, requires = "data")]
    pub copy_data: bool,
    /// `prompt` task without --data: which generated question set (word_sorting,
    /// object_counting, boolean_expressions, dyck_languages, multistep_arithmetic, navigate), or
    /// `all`, or several separated by commas.
    #[arg(long, default_value = "all")]
    pub questions: String,
    /// Training items (`prompt` task).
    #[arg(long, default_value_t = 15)]
    pub train: usize,
    /// Validation items: the best parameters on them are kept.
    #[arg(long, default_value_t = 5)]
    pub validation: usize,
    /// Test items (default: 100 generated; with --data, the rest of the file).
    #[arg(long)]
    pub test: Option<usize>,
    /// Training items per step; their feedbacks go to one optimizer step.
    #[arg(long, default_value_t = 5)]
    pub minibatch: usize,
    /// Token cap of each of the program's own model calls.
    #[arg(long, default_value_t = 160)]
    pub call_max_tokens: usize,
    /// Items answered at once when scoring a split.
    #[arg(long, default_value_t = 8)]
    pub eval_batch: usize,
    /// Under --search best-of:K, only the model proposes (not the program's own answer-line
    /// edits).
    #[arg(long)]
    pub no_program_proposals: bool,
}

/// One dataset to tune on.
struct Job {
    name: String,
    splits: Splits,
    source: Option<DataSource>,
}

fn check(args: &RunArgs) -> Result<()> {
    let p = &args.prompt;
    if args.steps == 0 {
        return Err(Error::invalid("--steps", "must be at least 1"));
    }
    if args.threads == Some(0) {
        return Err(Error::invalid("--threads", "must be at least 1"));
    }
    for (name, v) in [
        ("--train", p.train),
        ("--validation", p.validation),
        ("--minibatch", p.minibatch),
        ("--call-max-tokens", p.call_max_tokens),
        ("--eval-batch", p.eval_batch),
    ] {
        if v == 0 {
            return Err(Error::invalid(name, "must be at least 1"));
        }
    }
    if p.test == Some(0) {
        return Err(Error::invalid("--test", "must be at least 1"));
    }
    if args.optimizer != "optoprime" {
        return Err(Error::invalid("--optimizer", "the prompt task runs with optoprime"));
    }
    if args.problems.is_some() {
        return Err(Error::invalid(
            "--problems",
            "the prompt task tunes on a dataset (--data or --questions), not on problem sets",
        ));
    }
    candidates(args)?;
    Ok(())
}

/// Candidates per step: 1 for `--search greedy`, K for `best-of:K` (each run on the minibatch).
fn candidates(args: &RunArgs) -> Result<usize> {
    use crate::train::search::Strategy;
    match Strategy::parse(&args.search, args.candidates)? {
        Strategy::Greedy => Ok(1),
        Strategy::BestOf { k } => Ok(k),
        other => Err(Error::invalid(
            "--search",
            format!("the prompt task searches with greedy or best-of:K, not {}", other.label()),
        )),
    }
}

/// The datasets of this run, read and checked (no model loaded yet).
fn jobs(args: &RunArgs) -> Result<Vec<Job>> {
    let p = &args.prompt;
    if let Some(path) = &p.data {
        let (items, source) = load_jsonl(path)?;
        let splits = split(
            items,
            SplitSizes { train: p.train, validation: p.validation, test: p.test },
            args.first_seed,
            path,
        )?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".into());
        return Ok(vec![Job { name, splits, source: Some(source) }]);
    }
    let sets: Vec<BbhTask> = if p.questions == "all" {
        BbhTask::ALL.to_vec()
    } else {
        p.questions.split(',').map(|n| BbhTask::from_name(n.trim())).collect::<Result<_>>()?
    };
    sets.into_iter()
        .map(|t| {
            Ok(Job {
                name: t.name().to_string(),
                splits: t.splits(p.train, p.validation, p.test.unwrap_or(100), args.first_seed)?,
                source: None,
            })
        })
        .collect()
}

pub fn run(args: &RunArgs) -> Result<()> {
    check(args)?;
    let jobs = jobs(args)?;
    if args.resume.is_some() && jobs.len() != 1 {
        return Err(Error::invalid(
            "--resume",
            "continues one dataset: give --data or one --questions set",
        ));
    }
    if let Some(dir) = &args.resume {
        // Fail on a bad folder before loading a model.
        if !is_dataset_run(dir) {
            return Err(Error::invalid(
                "--resume",
                format!(
                    "{} holds no prompt-tuning run ({} is missing)",
                    dir.display(),
                    crate::train::dataset_trainer::DATASET_EVENTS_FILE
                ),
            ));
        }
    }
    let base = args
        .resume
        .clone()
        .or(args.out.clone())
        .unwrap_or_else(|| crate::train::default_out_dir("prompt"));
    let (llm, model_sha256) = super::run::build_llm(args)?;
    let single = jobs.len() == 1;
    let mut done: Vec<DatasetSummary> = Vec::new();
    for job in jobs {
        // One set (or the user's file) runs in the folder itself, several in one folder each.
        let out_dir = if single { base.clone() } else { base.join(&job.name) };
        let summary = run_one(args, &job, llm.clone(), model_sha256.clone(), out_dir)?;
        println!(
            "{}: test accuracy {} before → {} after (kept the parameters of step {}, validation {}) · {:.1} s per step",
            summary.program,
            summary.test_before,
            summary.test_after,
            summary.best_after_step,
            summary.best_validation,
            mean(&summary.step_seconds)
        );
        done.push(summary);
    }
    if done.len() > 1 {
        let gain: f64 =
            done.iter().map(|s| s.test_after.percent() - s.test_before.percent()).sum::<f64>()
                / done.len() as f64;
        println!("mean change in test accuracy over {} sets: {gain:+.1} points", done.len());
    }
    println!("run folder: {}", base.display());
    Ok(())
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

fn run_one(
    args: &RunArgs,
    job: &Job,
    llm: Arc<dyn Llm>,
    model_sha256: Option<String>,
    out_dir: PathBuf,
) -> Result<DatasetSummary> {
    let p = &args.prompt;
    let private = job.source.is_some() && !p.copy_data;
    let candidates = candidates(args)?;
    if let (true, None, Some(path)) = (p.copy_data, &args.resume, &p.data) {
        std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
        let copy = out_dir.join("data.jsonl");
        std::fs::copy(path, &copy).map_err(|e| Error::io(&copy, e))?;
    }
    let call_params = GenerationParams {
        max_tokens: p.call_max_tokens,
        temperature: args.temperature,
        seed: args.first_seed,
        ..Default::default()
    };
    let program = Arc::new(PromptProgram::new(
        job.name.clone(),
        llm.clone(),
        call_params,
        Arc::new(MontySandbox::default()),
    ));
    let generation = GenerationParams {
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        seed: args.first_seed,
        ..Default::default()
    };
    let objective = crate::train::DatasetProgram::objective(program.as_ref());
    let memory = args.memory;
    let make_optimizer =
        Arc::new(move |params: Vec<Node>, llm: Arc<dyn Llm>| -> Box<dyn Optimizer> {
            Box::new(OptoPrime::with_options(
                params,
                llm,
                OptoPrimeOptions {
                    objective: objective.clone(),
                    memory_size: memory,
                    generation: generation.clone(),
                    ..Default::default()
                },
            ))
        });
    let config = serde_json::json!({
        "task": "prompt",
        "dataset": job.name,
        "data": job.source,
        "data_copied": p.copy_data,
        "splits": { "train": job.splits.train.len(), "validation": job.splits.validation.len(), "test": job.splits.test.len() },
        "seed": args.first_seed,
        "steps": args.steps,
        "minibatch": p.minibatch,
        "candidates": candidates,
        "program_proposals": !p.no_program_proposals,
        "eval_batch": p.eval_batch,
        "call_max_tokens": p.call_max_tokens,
        "optimizer": "optoprime",
        "optimizer_max_tokens": args.max_tokens,
        "memory": args.memory,
        "temperature": args.temperature,
        "model": llm.describe(),
        "model_sha256": model_sha256,
        "threads": args.threads,
        "device": args.device,
        "opto_version": env!("CARGO_PKG_VERSION"),
    });
    let trainer = DatasetTrainer {
        program,
        llm,
        splits: job.splits.clone(),
        grader: Default::default(),
        options: DatasetOptions {
            steps: args.steps,
            minibatch: p.minibatch,
            seed: args.first_seed,
            eval_batch: p.eval_batch,
            record_contents: !private,
            candidates,
            program_proposals: !p.no_program_proposals,
        },
        out_dir: out_dir.clone(),
        make_optimizer,
        config,
        progress: true,
    };
    if args.resume.is_some() {
        trainer.resume()
    } else {
        trainer.run()
    }
}

/// Whether `dir` holds a dataset run (for `--resume` checks before a model loads).
fn is_dataset_run(dir: &Path) -> bool {
    dir.join(crate::train::dataset_trainer::DATASET_EVENTS_FILE).exists()
}
