//! The scheduler: prefill each request (reusing cached prefixes), then decode every live
//! sequence together, one forward pass per token for the whole batch; a finished sequence leaves
//! the batch, the others go on.

use super::constrain::Constraint;
use super::kv::KvCache;
use super::model::Step;
use super::sample::Sampler;
use super::Engine;
use crate::error::{Error, Result};
use crate::llm::{FinishReason, Reply, Request, Timings, Usage};
use rayon::prelude::*;
use std::time::Instant;

/// Reply positions reserved in the kv cache up front.
const INITIAL_REPLY_ROOM: usize = 512;

/// Prompt tokens per prefill forward pass: bounds the pass's activations (the attention scores alone
/// are rows x context); 256 gave the same prefill speed as 512 and 70 MB less peak memory.
const PREFILL_CHUNK: usize = 256;

fn llm_err(reason: impl Into<String>) -> Error {
    Error::Llm { backend: "local".into(), reason: reason.into() }
}

/// One request being answered.
struct Seq {
    req: usize,
    cache: KvCache,
    /// Next-token logits (after the last token fed).
    logits: Vec<f32>,
    sampler: Sampler,
    constraint: Option<Constraint>,
    generated: Vec<u32>,
    text: Vec<u8>,
    usage: Usage,
    prefill_s: f64,
    decode_start: Instant,
}

enum Outcome {
    /// Feed this token and go on.
    Continue(u32),
    Done(Result<Reply>),
}

/// Answers `requests` in order.
pub fn run(engine: &Engine, requests: &[Request]) -> Vec<Result<Reply>> {
    let batch_start = Instant::now();
    let mut results: Vec<Option<Result<Reply>>> = (0..requests.len()).map(|_| None).collect();
    let mut live: Vec<Seq> = Vec::new();
    for (i, req) in requests.iter().enumerate() {
        match prefill(engine, i, req) {
            Ok(seq) => live.push(seq),
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    let finish = |seq: &Seq, finish: FinishReason| -> Result<Reply> {
        let decode_s = seq.decode_start.elapsed().as_secs_f64();
        Ok(Reply {
            text: String::from_utf8_lossy(&seq.text).into_owned(),
            finish,
            usage: Usage { generated_tokens: seq.generated.len(), ..seq.usage.clone() },
            timings: Timings { prefill_s: seq.prefill_s, decode_s, total_s: batch_start.elapsed().as_secs_f64() },
        })
    };
    while !live.is_empty() {
        // Each sequence samples (and masks to its schema) on its own thread: a vocabulary-wide
        // pass per sequence, which one after another would grow the step with the batch.
        let outcomes: Vec<Outcome> = live.par_iter_mut().map(|seq| advance(engine, seq, &requests[seq.req], &finish)).collect();
        let mut feed: Vec<(Seq, u32)> = Vec::with_capacity(live.len());
        for (seq, outcome) in live.drain(..).zip(outcomes) {
            match outcome {
                Outcome::Continue(tok) => feed.push((seq, tok)),
                Outcome::Done(r) => results[seq.req] = Some(r),
            }
        }
        if feed.is_empty() {
            break;
        }
        let tokens: Vec<[u32; 1]> = feed.iter().map(|(_, t)| [*t]).collect();
        let logits = {
            let mut steps: Vec<Step<'_>> =
                feed.iter_mut().zip(&tokens).map(|((s, _), t)| Step { tokens: t.as_slice(), cache: &mut s.cache }).collect();
            engine.model.forward(&mut steps).and_then(|l| l.to_vec2::<f32>().map_err(|e| Error::tensor("logits", e)))
        };
        match logits {
            Ok(rows) => {
                for ((mut seq, _), row) in feed.into_iter().zip(rows) {
                    seq.logits = row;
                    live.push(seq);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for (seq, _) in feed {
                    results[seq.req] = Some(Err(llm_err(format!("decode step failed: {msg}"))));
                }
            }
        }
    }
    results.into_iter().map(|r| r.unwrap_or_else(|| Err(llm_err("request was not answered")))).collect()
}

/// Tokenizes the prompt, restores the longest cached prefix and computes the rest.
fn prefill(engine: &Engine, idx: usize, req: &Request) -> Result<Seq> {
    let start = Instant::now();
    let prompt = engine.template.render(&req.messages);
    let tokens = engine.tokenizer.encode(&prompt)?;
    if tokens.is_empty() {
        return Err(llm_err("the prompt is empty"));
    }
    let constraint = match &req.schema {
        Some(s) => Some(engine.grammar.constraint(s)?),
        None => None,
    };
    // Room for the prompt and the start of the reply; the cache doubles if the reply runs on.
    let room = tokens.len().saturating_add(req.params.max_tokens.min(INITIAL_REPLY_ROOM)).min(engine.model.max_positions());
    let hit = engine.prefix_lookup(&tokens);
    let mut cache = match &hit {
        Some(h) => {
            let c = &engine.model.cfg;
            KvCache::from_snapshot(&h.kv, h.len, room - h.len.min(room), c.layers, c.kv_heads, c.head_dim, engine.model.device())?
        }
        None => engine.model.new_cache(),
    };
    cache.reserve(room.saturating_sub(cache.len()))?;
    let cached = cache.len();
    // Chunks bound the attention scores' memory (rows x context) on long prompts.
    let mut logits = None;
    for chunk in tokens[cached..].chunks(PREFILL_CHUNK) {
        logits = Some(engine.model.forward(&mut [Step { tokens: chunk, cache: &mut cache }])?);
    }
    let logits = logits.ok_or_else(|| llm_err("nothing to prefill"))?;
    let logits = logits.squeeze(0).and_then(|l| l.to_vec1::<f32>()).map_err(|e| Error::tensor("logits", e))?;
    engine.prefix_insert(&tokens, &cache, hit.as_ref())?;
    Ok(Seq {
        req: idx,
        cache,
        logits,
        sampler: Sampler::new(&req.params),
        constraint,
        generated: Vec::new(),
        text: Vec::new(),
        usage: Usage { prompt_tokens: tokens.len(), cached_prompt_tokens: cached, generated_tokens: 0 },
        prefill_s: start.elapsed().as_secs_f64(),
        decode_start: Instant::now(),
    })
}

/// Samples one token for `seq` and decides whether it goes on.
fn advance(engine: &Engine, seq: &mut Seq, req: &Request, finish: &(dyn Fn(&Seq, FinishReason) -> Result<Reply> + Sync)) -> Outcome {
    let max = req.params.max_tokens;
    if seq.generated.len() >= max {
        return Outcome::Done(cut(seq, max, finish));
    }
    let mut logits = std::mem::take(&mut seq.logits);
    if let Some(c) = seq.constraint.as_mut() {
        if let Err(e) = c.mask(&mut logits) {
            return Outcome::Done(Err(e));
        }
    } else if seq.generated.len() < req.params.min_tokens {
        for &stop in &engine.tokenizer.stop_tokens {
            if let Some(l) = logits.get_mut(stop as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
    }
    let Some(tok) = seq.sampler.sample(&logits) else {
        return Outcome::Done(Err(llm_err("no token is allowed at this point (all logits masked or not finite)")));
    };
    let tokenizer = &engine.tokenizer;
    if tokenizer.is_stop(tok) {
        return Outcome::Done(finish(seq, FinishReason::Stop));
    }
    if let Some(c) = seq.constraint.as_mut() {
        if let Err(e) = c.commit(tok, tokenizer.text_bytes(tok)) {
            return Outcome::Done(Err(e));
        }
    }
    seq.generated.push(tok);
    seq.text.extend_from_slice(tokenizer.text_bytes(tok));
    if seq.constraint.as_ref().is_some_and(|c| c.is_done()) {
        return Outcome::Done(finish(seq, FinishReason::Stop));
    }
    if seq.constraint.is_none() {
        if let Some(pos) = find_stop(&seq.text, &req.params.stop) {
            seq.text.truncate(pos);
            return Outcome::Done(finish(seq, FinishReason::Stop));
        }
    }
    if seq.generated.len() >= max {
        return Outcome::Done(cut(seq, max, finish));
    }
    // The model's context is full: this sequence ends here, the others go on.
    if seq.cache.len() + 1 > engine.model.max_positions() {
        return Outcome::Done(cut(seq, seq.generated.len(), finish));
    }
    Outcome::Continue(tok)
}

/// `max_tokens` reached: free text ends with `Length`; a constrained reply is incomplete JSON,
/// which is an error the caller must see.
fn cut(seq: &Seq, max: usize, finish: &dyn Fn(&Seq, FinishReason) -> Result<Reply>) -> Result<Reply> {
    if seq.constraint.is_some() {
        let text = String::from_utf8_lossy(&seq.text);
        let tail: String = text.chars().rev().take(120).collect::<Vec<_>>().into_iter().rev().collect();
        Err(llm_err(format!("the reply was cut at {max} tokens (max_tokens) before its JSON was complete; it ended with: {tail}")))
    } else {
        finish(seq, FinishReason::Length)
    }
}

/// The earliest position where any stop string starts.
fn find_stop(text: &[u8], stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.windows(s.len()).position(|w| w == s.as_bytes()))
        .min()
}
