//! `opto bench replay`: decode speed on real optimizer prompts, with and without speculative
//! decoding, taking turns on one loaded model. The prompts are the ones a run sent (its
//! `events.jsonl` records each step's messages), asked again as OptoPrime asks them (greedy,
//! held to the suggestion schema of the run's parameters), one at a time and in batches. The
//! replies must be the same bytes either way; the report counts any that are not. It also
//! writes the rendered prompts and reply lengths, so that `scripts/compare-speculation.sh` can
//! decode the same prompts for as many tokens with llama.cpp.

use crate::error::{Error, Result};
use crate::llm::local::bench::{median, peak_rss_bytes};
use crate::llm::local::LocalLlm;
use crate::llm::{GenerationParams, Llm, Message, Request};
use crate::optim::reply_schema::{suggestion_schema, ParamType, SuggestionSchemaOptions};
use crate::optim::OptoPrimeOptions;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The optimizer prompts of a run folder's (or an `events.jsonl` file's) steps, as requests.
pub fn prompts_from_events(path: &Path, max_tokens: usize) -> Result<Vec<Request>> {
    let file = if path.is_dir() { path.join(crate::train::log::EVENTS_FILE) } else { path.into() };
    let defaults = OptoPrimeOptions::default();
    let schema_options = SuggestionSchemaOptions {
        with_answer: defaults.with_answer,
        reasoning_max_chars: defaults.reasoning_max_chars,
    };
    let mut out = Vec::new();
    for event in crate::train::log::read_events(&file)? {
        let Some(messages) = event.optimizer.as_ref().and_then(|o| o.get("messages")) else {
            continue;
        };
        let Ok(messages) = serde_json::from_value::<Vec<Message>>(messages.clone()) else {
            continue;
        };
        if messages.is_empty() {
            continue;
        }
        let schema = suggestion_schema(
            event.params.iter().map(|(n, v)| (n.as_str(), ParamType::of(v))),
            &schema_options,
        );
        let params = GenerationParams { max_tokens, ..GenerationParams::default() };
        out.push(Request::new(messages).with_params(params).with_schema(schema));
    }
    if out.is_empty() {
        return Err(Error::invalid(
            "--events",
            format!("{}: no step recorded an optimizer prompt", file.display()),
        ));
    }
    Ok(out)
}

/// One configuration's figures over every round.
#[derive(Default)]
struct Figures {
    tok_s: Vec<f64>,
    tokens: usize,
    /// Forward passes summed over the sequences in each.
    passes: usize,
    guessed: usize,
    accepted: usize,
}

/// Runs every prompt at batch size `b` (consecutive groups of `b`), returning its decode tok/s
/// (tokens sampled over the engine's time in decode steps), the replies' texts and lengths,
/// and the engine's counters.
fn run_once(
    llm: &LocalLlm,
    prompts: &[Request],
    b: usize,
) -> Result<(f64, Vec<String>, Vec<usize>, Figures)> {
    // Every configuration starts from an empty prefix cache, so all see the same prompt kv
    // (a prefill split differently can differ in the last bits).
    llm.clear_prefix_cache();
    let before = llm.batching_stats();
    let (mut texts, mut lengths) = (Vec::new(), Vec::new());
    for group in prompts.chunks(b) {
        for (r, req) in llm.generate(group).into_iter().zip(group) {
            match r {
                Ok(r) => {
                    lengths.push(r.usage.generated_tokens);
                    texts.push(r.text);
                }
                // In practice a reply cut at its cap, which generated that many tokens; its
                // text is the error, which must be the same either way too.
                Err(e) => {
                    lengths.push(req.params.max_tokens);
                    texts.push(format!("error: {e}"));
                }
            }
        }
    }
    let after = llm.batching_stats();
    // Counted by the engine: a reply cut at its cap (an error) generated its tokens too.
    let tokens = after.generated_tokens - before.generated_tokens;
    let decode_s = (after.decode_s - before.decode_s).max(1e-9);
    let figures = Figures {
        tok_s: Vec::new(),
        tokens,
        passes: after.sequence_steps - before.sequence_steps,
        guessed: after.guessed_tokens - before.guessed_tokens,
        accepted: after.accepted_guesses - before.accepted_guesses,
    };
    Ok((tokens as f64 / decode_s, texts, lengths, figures))
}

/// The benchmark: every batch size in `batches`, speculation off then on, `rounds` times,
/// taking turns. Returns the report and writes `prompts_out` (JSONL of `{"prompt", "gen"}`).
pub fn replay(
    llm: &LocalLlm,
    prompts: &[Request],
    batches: &[usize],
    rounds: usize,
    prompts_out: Option<&PathBuf>,
) -> Result<String> {
    if batches.is_empty() || batches.contains(&0) || rounds == 0 {
        return Err(Error::invalid("bench replay", "batch sizes and rounds must be positive"));
    }
    if !llm.set_speculation(true) {
        return Err(Error::invalid(
            "bench replay",
            "this model does not decode on opto's CPU kernels, so it cannot speculate",
        ));
    }
    // Warm the prefix cache and the kernels once, so no configuration pays for the first use.
    let _ = llm.generate(&prompts[..1]);
    let mut figures: Vec<[Figures; 2]> = Vec::new();
    let mut reference: Vec<Option<Vec<String>>> = vec![None; batches.len()];
    let mut mismatches = 0;
    let mut lengths: Vec<usize> = Vec::new();
    for round in 0..rounds {
        for (bi, &b) in batches.iter().enumerate() {
            for (si, on) in [false, true].into_iter().enumerate() {
                llm.set_speculation(on);
                let (tok_s, texts, gen, f) = run_once(llm, prompts, b)?;
                if round == 0 && bi == 0 && !on {
                    lengths = gen;
                }
                match &reference[bi] {
                    None => reference[bi] = Some(texts),
                    Some(r) => mismatches += r.iter().zip(&texts).filter(|(a, b)| a != b).count(),
                }
                if figures.len() <= bi {
                    figures.push(Default::default());
                }
                let slot = &mut figures[bi][si];
                slot.tok_s.push(tok_s);
                slot.tokens += f.tokens;
                slot.passes += f.passes;
                slot.guessed += f.guessed;
                slot.accepted += f.accepted;
            }
        }
    }
    llm.set_speculation(true);
    if let Some(path) = prompts_out {
        let mut text = String::new();
        for (req, gen) in prompts.iter().zip(&lengths) {
            let line = serde_json::json!({"prompt": llm.render_prompt(&req.messages), "gen": gen});
            let _ = writeln!(text, "{line}");
        }
        std::fs::write(path, text).map_err(|e| Error::io(path, e))?;
    }
    let mut out = format!(
        "{} prompts, {} reply tokens each way per round, {} rounds taking turns; model {}, {} threads\n",
        prompts.len(),
        figures.first().map_or(0, |f| f[0].tokens / rounds),
        rounds,
        llm.describe(),
        llm.threads()
    );
    for (b, [off, on]) in batches.iter().zip(&figures) {
        let ratios: Vec<f64> = on.tok_s.iter().zip(&off.tok_s).map(|(a, b)| a / b).collect();
        let _ = writeln!(
            out,
            "batch {b}: decode {:.1} tok/s without speculation, {:.1} with ({:.2}x; rounds {}); tokens per pass per sequence {:.2} vs {:.2}; {} of {} guesses kept ({:.0} %)",
            median(&off.tok_s),
            median(&on.tok_s),
            median(&ratios),
            ratios.iter().map(|r| format!("{r:.2}x")).collect::<Vec<_>>().join(" "),
            per_pass(off),
            per_pass(on),
            on.accepted,
            on.guessed,
            100.0 * on.accepted as f64 / on.guessed.max(1) as f64,
        );
    }
    let _ = writeln!(
        out,
        "replies that differ with speculation: {mismatches}; peak RSS {:.0} MiB",
        peak_rss_bytes().unwrap_or(0) as f64 / (1 << 20) as f64
    );
    Ok(out)
}

/// Tokens a sequence got per forward pass it took part in.
fn per_pass(f: &Figures) -> f64 {
    f.tokens as f64 / f.passes.max(1) as f64
}
