//! `opto bench graph` and `opto bench llm`.

use crate::error::Result;
use crate::graph::{Graph, Node};
use crate::llm::scripted::ScriptedLlm;
use crate::optim::{OptoPrime, OptoPrimeOptions};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// The graph engine on the reference's anchor workload (`shared/anchors/trace_graph_bench.py`).
    Graph {
        #[arg(long, default_value_t = 5000)]
        ops: usize,
        #[arg(long, default_value_t = 10)]
        params: usize,
    },
    /// Prefill and decode speed of a local model.
    Llm {
        /// Model id, .gguf path, or ollama:/lmstudio:/hf: name (see `opto run --help`).
        #[arg(long, default_value = crate::llm::local::hub::DEFAULT_MODEL)]
        model: String,
        #[arg(long, default_value_t = 1200)]
        prompt_tokens: usize,
        #[arg(long, default_value_t = 200)]
        gen: usize,
        /// Batch sizes, comma separated.
        #[arg(long, default_value = "1,2,4,8", value_delimiter = ',')]
        batch: Vec<usize>,
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// cpu, cuda:N or metal (the GPUs need a build with that feature).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Times every batch size is measured, the sizes taking turns; the report gives the
        /// median of each and its ratio to batch 1 round by round.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
    },
    /// Decode speed on the optimizer prompts a run sent, with and without speculative
    /// decoding, taking turns on one loaded model (and whether the replies stay the same).
    Replay {
        /// A run folder or its events.jsonl; repeat for several runs.
        #[arg(long = "events", required = true)]
        events: Vec<PathBuf>,
        /// Model id or .gguf path (the run's model, for its prompts' sake).
        #[arg(long, default_value = crate::llm::local::hub::DEFAULT_MODEL)]
        model: String,
        /// At most this many prompts (spread over the runs' steps).
        #[arg(long, default_value_t = 12)]
        prompts: usize,
        /// Token cap per reply (OptoPrime's default).
        #[arg(long, default_value_t = 400)]
        max_tokens: usize,
        /// Batch sizes, comma separated.
        #[arg(long, default_value = "1,4", value_delimiter = ',')]
        batch: Vec<usize>,
        #[arg(long, default_value_t = 0)]
        threads: usize,
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Write the rendered prompts and reply lengths here (JSONL), for llama.cpp to decode.
        #[arg(long)]
        prompts_out: Option<PathBuf>,
    },
}

/// One line of the graph benchmark, in the anchor script's format.
#[derive(Clone, Debug)]
pub struct GraphBenchLine {
    pub ops: usize,
    pub params: usize,
    pub backward_s: f64,
    pub summarize_prompt_s: f64,
    pub prompt_chars: usize,
}

impl std::fmt::Display for GraphBenchLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ops={} params={} backward_s={:.4} summarize_prompt_s={:.4} prompt_chars={}",
            self.ops, self.params, self.backward_s, self.summarize_prompt_s, self.prompt_chars
        )
    }
}

/// The anchor workload: `y = 0.0; y = y + p[i % K]` N times, feedback "make it bigger", then
/// backward, then summarize + render the OptoPrime prompt (no LLM call), timed as the anchor does
/// (the optimizer's construction counts towards backward there).
pub fn graph_workload(ops: usize, params: usize) -> GraphBenchLine {
    let g = Graph::new();
    let p: Vec<Node> = (0..params.max(1)).map(|i| g.param(i as f64)).collect();
    let mut y = g.value(0.0);
    for i in 0..ops {
        y = &y + &p[i % p.len()];
    }
    let t0 = std::time::Instant::now();
    let options = OptoPrimeOptions { max_prompt_tokens: None, ..Default::default() };
    let opt = OptoPrime::with_options(
        p.clone(),
        Arc::new(ScriptedLlm::new(Vec::<String>::new())),
        options,
    );
    for q in &p {
        q.zero_feedback();
    }
    // Infallible on a graph we just built; a failure would show as an empty prompt below.
    let _ = y.backward("make it bigger");
    let t1 = std::time::Instant::now();
    let messages = opt.preview_messages().unwrap_or_default();
    let t2 = std::time::Instant::now();
    GraphBenchLine {
        ops,
        params,
        backward_s: (t1 - t0).as_secs_f64(),
        summarize_prompt_s: (t2 - t1).as_secs_f64(),
        prompt_chars: messages.iter().map(|m| m.content.chars().count()).sum(),
    }
}

pub fn bench(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Graph { ops, params } => {
            super::bounds::in_range("--ops", ops, 0, super::bounds::MAX_GRAPH_OPS)?;
            super::bounds::in_range("--params", params, 1, super::bounds::MAX_GRAPH_OPS)?;
            println!("{}", graph_workload(ops, params));
        }
        BenchCommand::Llm { model, prompt_tokens, gen, batch, threads, device, rounds } => {
            super::bounds::check_bench_llm_counts(prompt_tokens, gen, &batch, threads, rounds)?;
            let device = device.parse()?;
            let path: PathBuf = crate::llm::local::hub::resolve_model(&model)?;
            let opts = crate::llm::local::LocalOptions { threads, device, ..Default::default() };
            let report = crate::llm::local::bench::bench_llm(
                &path,
                opts,
                prompt_tokens,
                gen,
                &batch,
                rounds,
            )?;
            println!("{report}");
        }
        BenchCommand::Replay {
            events,
            model,
            prompts,
            max_tokens,
            batch,
            threads,
            rounds,
            prompts_out,
        } => {
            super::bounds::in_range("--prompts", prompts, 1, 10_000)?;
            super::bounds::in_range("--max-tokens", max_tokens, 1, 32_768)?;
            super::bounds::in_range("--rounds", rounds, 1, 100)?;
            if batch.is_empty() || batch.contains(&0) {
                return Err(crate::error::Error::invalid(
                    "--batch",
                    "batch sizes must be positive",
                ));
            }
            let mut all = Vec::new();
            for e in &events {
                all.push(super::bench_replay::prompts_from_events(e, max_tokens)?);
            }
            // Take turns between the runs, so a cap keeps prompts of every run.
            let mut chosen = Vec::new();
            let longest = all.iter().map(Vec::len).max().unwrap_or(0);
            for i in 0..longest {
                for run in &all {
                    if let Some(r) = run.get(i) {
                        chosen.push(r.clone());
                    }
                }
            }
            chosen.truncate(prompts);
            let path: PathBuf = crate::llm::local::hub::resolve_model(&model)?;
            let opts = crate::llm::local::LocalOptions { threads, ..Default::default() };
            let llm = crate::llm::local::LocalLlm::load(&path, opts)?;
            let report =
                super::bench_replay::replay(&llm, &chosen, &batch, rounds, prompts_out.as_ref())?;
            print!("{report}");
        }
    }
    Ok(())
}
