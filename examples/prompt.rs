//! Private prompt tuning: tunes the prompt (and a sandboxed answer-extraction function) of a
//! program that calls the local model, on the question/answer pairs of YOUR JSONL file. The
//! file never leaves the machine, and the run folder records only its path and sha256.
//!
//! ```text
//! cargo run --release --example prompt -- FILE.jsonl [STEPS] [THREADS]
//! cargo run --release --example prompt -- examples/data/support-tickets.jsonl 4 2
//! ```
//!
//! Each line of the file is `{"input": "...", "answer": "..."}` (optionally `"split"`: train,
//! validation or test). Answers are graded exactly (case, spacing and a final period aside).

use opto::code::MontySandbox;
use opto::graph::Node;
use opto::llm::local::hub::{resolve_model, DEFAULT_MODEL};
use opto::llm::local::{LocalLlm, LocalOptions};
use opto::llm::{GenerationParams, Llm};
use opto::optim::{Optimizer, OptoPrime, OptoPrimeOptions};
use opto::tasks::prompt::{PromptProgram, OBJECTIVE};
use opto::train::dataset::{load_jsonl, split};
use opto::train::{DatasetOptions, DatasetTrainer, SplitSizes};
use std::path::PathBuf;
use std::sync::Arc;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> opto::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().ok_or_else(|| {
        opto::Error::invalid("FILE", "usage: prompt FILE.jsonl [STEPS] [THREADS]")
    })?);
    let number = |what: &str, text: Option<String>, default: usize| -> opto::Result<usize> {
        text.map(|t| {
            t.parse().map_err(|_| opto::Error::invalid(what, format!("`{t}` is not a number")))
        })
        .unwrap_or(Ok(default))
    };
    let steps = number("STEPS", args.next(), 4)?;
    let threads = number("THREADS", args.next(), 0)?;

    // 1. The data, checked whole before the model loads.
    let (items, source) = load_jsonl(&path)?;
    let n = items.len();
    let sizes = if n >= 25 {
        SplitSizes { train: 15, validation: 5, test: None }
    } else {
        SplitSizes { train: (n * 3 / 5).max(1), validation: (n / 5).max(1), test: None }
    };
    let splits = split(items, sizes, 0, &path)?;
    println!(
        "data: {} ({} items, sha256 {}…)",
        source.path.display(),
        source.items,
        &source.sha256[..12]
    );
    println!(
        "splits: {} train, {} validation, {} test",
        splits.train.len(),
        splits.validation.len(),
        splits.test.len()
    );

    // 2. One model, loaded once: it answers the program's questions and runs the optimizer.
    let model = resolve_model(DEFAULT_MODEL)?;
    println!(
        "model: {} ({} threads)",
        model.display(),
        if threads == 0 { "all".to_string() } else { threads.to_string() }
    );
    let llm: Arc<dyn Llm> =
        Arc::new(LocalLlm::load(&model, LocalOptions { threads, ..Default::default() })?);

    // 3. The program: prompt template + question → traced model call → Python extractor → answer.
    let program = Arc::new(PromptProgram::new(
        "my-data",
        llm.clone(),
        GenerationParams { max_tokens: 96, ..Default::default() },
        Arc::new(MontySandbox::default()),
    ));
    let make_optimizer = Arc::new(|params: Vec<Node>, llm: Arc<dyn Llm>| -> Box<dyn Optimizer> {
        Box::new(OptoPrime::with_options(
            params,
            llm,
            OptoPrimeOptions { objective: OBJECTIVE.into(), memory_size: 3, ..Default::default() },
        ))
    });
    let out_dir = opto::train::default_out_dir("prompt-example");
    let trainer = DatasetTrainer {
        program,
        llm: llm.clone(),
        splits,
        grader: Default::default(),
        options: DatasetOptions {
            steps,
            minibatch: 5,
            seed: 0,
            eval_batch: 8,
            record_contents: false,
            // Four candidate updates per step (one batch), each run on the minibatch; the best
            // is kept. Use 1 for a plain optimizer step.
            candidates: 4,
            ..Default::default()
        },
        out_dir: out_dir.clone(),
        make_optimizer,
        config: serde_json::json!({ "example": "prompt", "data": source, "steps": steps, "model": llm.describe() }),
        progress: true,
    };

    // 4. Train: minibatches of 5, a best-of-4 search step each, best on validation kept.
    let summary = trainer.run()?;
    println!();
    println!("test accuracy: {} before → {} after", summary.test_before, summary.test_after);
    println!(
        "kept the parameters after step {} (validation {})",
        summary.best_after_step, summary.best_validation
    );
    println!(
        "seconds per step: {:?}",
        summary.step_seconds.iter().map(|s| (s * 10.0).round() / 10.0).collect::<Vec<_>>()
    );
    for (name, value) in &summary.best_params {
        println!("--- {name} ---\n{}", value.py_str());
    }
    println!(
        "run folder: {} (the data file's path and sha256, not its contents)",
        out_dir.display()
    );
    Ok(())
}
