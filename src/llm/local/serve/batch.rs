//! The running decode batch: a request is admitted by prefilling its prompt (reusing cached
//! prefixes), then every live sequence advances together, one forward pass per token for the
//! whole batch; a finished sequence leaves, the others go on, and new ones may join between
//! steps (the scheduler in `scheduler.rs` decides when). A sequence's arithmetic does not depend
//! on its company, so it gets the same tokens whenever it joins and whoever else is decoding.

use super::constrain::Constraint;
use super::engine::Engine;
use super::sample::Sampler;
use crate::error::{Error, Result};
use crate::llm::local::model::kv::KvCache;
use crate::llm::local::model::Step;
use crate::llm::{FinishReason, Reply, Request, Timings, Usage};
use rayon::prelude::*;
use std::time::Instant;

/// Reply positions reserved in the kv cache up front.
const INITIAL_REPLY_ROOM: usize = 512;

/// Prompt tokens per prefill forward pass: bounds the pass's activations (the attention scores alone
/// are rows x context); 256 gave the same prefill speed as 512 and 70 MB less peak memory.
const PREFILL_CHUNK: usize = 256;

pub(crate) fn llm_err(reason: impl Into<String>) -> Error {
    Error::Llm { backend: "local".into(), reason: reason.into() }
}

/// Which request of which submission a sequence answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Ticket {
    pub job: u64,
    pub index: usize,
}

/// One request being answered.
struct Seq {
    ticket: Ticket,
    request: Request,
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
    /// When its submission reached the engine (the reply's `total_s` counts from here).
    submitted: Instant,
}

enum Outcome {
    /// Feed this token and go on.
    Continue(u32),
    Done(Result<Reply>),
}

/// The sequences decoding together.
#[derive(Default)]
pub(crate) struct Batch {
    live: Vec<Seq>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Prefills `request` and adds it to the batch; a request that cannot start (an empty prompt,
    /// an unusable schema, a prompt over the context) is answered at once with its error.
    pub fn admit(
        &mut self,
        engine: &Engine,
        ticket: Ticket,
        request: Request,
        submitted: Instant,
    ) -> Option<(Ticket, Result<Reply>)> {
        match prefill(engine, ticket, request, submitted) {
            Ok(seq) => {
                self.live.push(seq);
                None
            }
            Err(e) => Some((ticket, Err(e))),
        }
    }

    /// Samples one token for every live sequence and runs one forward pass for those that go on.
    /// Returns the sequences that finished.
    pub fn step(&mut self, engine: &Engine) -> Vec<(Ticket, Result<Reply>)> {
        let mut finished = Vec::new();
        if self.live.is_empty() {
            return finished;
        }
        // Each sequence samples (and masks to its schema) on its own thread: a vocabulary-wide
        // pass per sequence, which one after another would grow the step with the batch.
        let outcomes: Vec<Outcome> =
            self.live.par_iter_mut().map(|seq| advance(engine, seq)).collect();
        let mut feed: Vec<(Seq, u32)> = Vec::with_capacity(self.live.len());
        for (seq, outcome) in self.live.drain(..).zip(outcomes) {
            match outcome {
                Outcome::Continue(tok) => feed.push((seq, tok)),
                Outcome::Done(r) => finished.push((seq.ticket, r)),
            }
        }
        if feed.is_empty() {
            return finished;
        }
        let tokens: Vec<[u32; 1]> = feed.iter().map(|(_, t)| [*t]).collect();
        let logits = {
            let mut steps: Vec<Step<'_>> = feed
                .iter_mut()
                .zip(&tokens)
                .map(|((s, _), t)| Step { tokens: t.as_slice(), cache: &mut s.cache })
                .collect();
            engine
                .model
                .forward(&mut steps)
                .and_then(|l| l.to_vec2::<f32>().map_err(|e| Error::tensor("logits", e)))
        };
        match logits {
            Ok(rows) => {
                for ((mut seq, _), row) in feed.into_iter().zip(rows) {
                    seq.logits = row;
                    self.live.push(seq);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for (seq, _) in feed {
                    finished.push((seq.ticket, Err(llm_err(format!("decode step failed: {msg}")))));
                }
            }
        }
        finished
    }

    /// Every live sequence, dropped (the scheduler fails their submissions after a panic).
    pub fn drain_tickets(&mut self) -> Vec<Ticket> {
        self.live.drain(..).map(|s| s.ticket).collect()
    }
}

/// Tokenizes the prompt, restores the longest cached prefix and computes the rest.
fn prefill(engine: &Engine, ticket: Ticket, request: Request, submitted: Instant) -> Result<Seq> {
    let start = Instant::now();
    let prompt = engine.template.render(&request.messages);
    let tokens = engine.tokenizer.encode(&prompt)?;
    if tokens.is_empty() {
        return Err(llm_err("the prompt is empty"));
    }
    let constraint = match &request.schema {
        Some(s) => Some(engine.grammar.constraint(s)?),
        None => None,
    };
    // Room for the prompt and the start of the reply; the cache doubles if the reply runs on.
    let room = tokens
        .len()
        .saturating_add(request.params.max_tokens.min(INITIAL_REPLY_ROOM))
        .min(engine.model.max_positions());
    let hit = engine.prefix_lookup(&tokens);
    let mut cache = match &hit {
        Some(h) => {
            let c = &engine.model.cfg;
            KvCache::from_snapshot(
                &h.kv,
                h.len,
                room - h.len.min(room),
                c.layers,
                c.kv_heads,
                c.head_dim,
                engine.model.device(),
            )?
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
    let logits = logits
        .squeeze(0)
        .and_then(|l| l.to_vec1::<f32>())
        .map_err(|e| Error::tensor("logits", e))?;
    engine.prefix_insert(&tokens, &cache, hit.as_ref())?;
    Ok(Seq {
        ticket,
        sampler: Sampler::new(&request.params),
        request,
        cache,
        logits,
        constraint,
        generated: Vec::new(),
        text: Vec::new(),
        usage: Usage {
            prompt_tokens: tokens.len(),
            cached_prompt_tokens: cached,
            generated_tokens: 0,
        },
        prefill_s: start.elapsed().as_secs_f64(),
        decode_start: Instant::now(),
        submitted,
    })
}

fn finish(seq: &Seq, reason: FinishReason) -> Result<Reply> {
    let decode_s = seq.decode_start.elapsed().as_secs_f64();
    Ok(Reply {
        text: String::from_utf8_lossy(&seq.text).into_owned(),
        finish: reason,
        usage: Usage { generated_tokens: seq.generated.len(), ..seq.usage.clone() },
        timings: Timings {
            prefill_s: seq.prefill_s,
            decode_s,
            total_s: seq.submitted.elapsed().as_secs_f64(),
        },
    })
}

/// Samples one token for `seq` and decides whether it goes on.
fn advance(engine: &Engine, seq: &mut Seq) -> Outcome {
    let max = seq.request.params.max_tokens;
    if seq.generated.len() >= max {
        return Outcome::Done(cut(seq, max));
    }
    let mut logits = std::mem::take(&mut seq.logits);
    if let Some(c) = seq.constraint.as_mut() {
        if let Err(e) = c.mask(&mut logits) {
            return Outcome::Done(Err(e));
        }
    } else if seq.generated.len() < seq.request.params.min_tokens {
        for &stop in &engine.tokenizer.stop_tokens {
            if let Some(l) = logits.get_mut(stop as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
    }
    let Some(tok) = seq.sampler.sample(&logits) else {
        return Outcome::Done(Err(llm_err(
            "no token is allowed at this point (all logits masked or not finite)",
        )));
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
        if let Some(pos) = find_stop(&seq.text, &seq.request.params.stop) {
            seq.text.truncate(pos);
            return Outcome::Done(finish(seq, FinishReason::Stop));
        }
    }
    if seq.generated.len() >= max {
        return Outcome::Done(cut(seq, max));
    }
    // The model's context is full: this sequence ends here, the others go on.
    if seq.cache.len() + 1 > engine.model.max_positions() {
        return Outcome::Done(cut(seq, seq.generated.len()));
    }
    Outcome::Continue(tok)
}

/// `max_tokens` reached: free text ends with `Length`; a constrained reply is incomplete JSON,
/// which is an error the caller must see.
fn cut(seq: &Seq, max: usize) -> Result<Reply> {
    if seq.constraint.is_some() {
        let text = String::from_utf8_lossy(&seq.text);
        let tail: String =
            text.chars().rev().take(120).collect::<Vec<_>>().into_iter().rev().collect();
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
