//! The running decode batch: a request is admitted by prefilling its prompt (reusing cached
//! prefixes), then every live sequence advances together, one forward pass per token for the
//! whole batch; a finished sequence leaves, the others go on, and new ones may join between
//! steps (the scheduler in `scheduler.rs` decides when). A sequence's arithmetic does not depend
//! on its company, so it gets the same tokens whenever it joins and whoever else is decoding.
//!
//! Speculative decoding: a sequence may feed, after its sampled token, tokens guessed from its
//! own text (`guess.rs`) and tokens its reply grammar forces; the pass returns logits after
//! each, and the sequence samples them in order, keeping each guess its own choice confirms.
//! Every token is still chosen by sampling the logits that follow exactly the tokens before it,
//! with the same sampler draws, so the output is the same with guesses as without (greedy or
//! sampled); only the number of passes changes. The cache forgets the positions of rejected
//! guesses.

use super::constrain::Constraint;
use super::engine::Engine;
use super::guess::{self, GuessLength};
use super::sample::Sampler;
use crate::error::{Error, Result};
use crate::llm::local::model::kv::KvCache;
use crate::llm::local::model::{Step, MAX_DECODE_RUN};
use crate::llm::{FinishReason, Reply, Request, Timings, Usage};
use rayon::prelude::*;
use std::time::Instant;

/// Reply positions reserved in the kv cache up front.
const INITIAL_REPLY_ROOM: usize = 512;

/// Prompt tokens per prefill forward pass: bounds the pass's activations (the attention scores alone
/// are rows x context); 256 gave the same prefill speed as 512 and 70 MB less peak memory.
const PREFILL_CHUNK: usize = 256;

/// The most guessed tokens one sequence feeds in a pass.
const MAX_GUESSES: usize = 8;

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
    /// Logits after each token of the last pass, in order: row 0 follows the sampled token,
    /// row i + 1 the guess `guesses[i]`.
    rows: Vec<Vec<f32>>,
    /// The guessed tokens fed after the sampled one in the last pass.
    guesses: Vec<u32>,
    /// The prompt's tokens and the reply's so far (where guesses are looked up); the reply's
    /// are those from `prompt_len` on.
    context: Vec<u32>,
    prompt_len: usize,
    guess_length: GuessLength,
    sampler: Sampler,
    constraint: Option<Constraint>,
    text: Vec<u8>,
    usage: Usage,
    prefill_s: f64,
    decode_start: Instant,
    /// When its submission reached the engine (the reply's `total_s` counts from here).
    submitted: Instant,
}

enum Outcome {
    /// Feed these tokens (the sampled one, then any guesses) and go on.
    Continue(Vec<u32>),
    Done(Result<Reply>),
}

/// Guessed tokens fed in one pass, all sequences together: a guess costs a row of every matmul
/// and of attention, so a large batch (already many rows) guesses less per sequence.
const GUESS_ROWS_PER_PASS: usize = 8;

/// What speculation did, for the scheduler's counters.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StepStats {
    pub guessed: usize,
    pub accepted: usize,
    /// Tokens sampled (replies that end in an error included).
    pub generated: usize,
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

    /// Samples every live sequence's pending rows and runs one forward pass for those that go
    /// on. Returns the sequences that finished.
    pub fn step(&mut self, engine: &Engine, stats: &mut StepStats) -> Vec<(Ticket, Result<Reply>)> {
        let mut finished = Vec::new();
        if self.live.is_empty() {
            return finished;
        }
        let live = self.live.len();
        let guess_room = if engine.speculates() { GUESS_ROWS_PER_PASS / live } else { 0 };
        // Each sequence samples (and masks to its schema) on its own thread: a vocabulary-wide
        // pass per sequence, which one after another would grow the step with the batch.
        let outcomes: Vec<(Outcome, StepStats)> =
            self.live.par_iter_mut().map(|seq| advance(engine, seq, guess_room)).collect();
        let mut feed: Vec<(Seq, Vec<u32>)> = Vec::with_capacity(self.live.len());
        for (seq, (outcome, s)) in self.live.drain(..).zip(outcomes) {
            stats.guessed += s.guessed;
            stats.accepted += s.accepted;
            stats.generated += s.generated;
            match outcome {
                Outcome::Continue(tokens) => feed.push((seq, tokens)),
                Outcome::Done(r) => finished.push((seq.ticket, r)),
            }
        }
        if feed.is_empty() {
            return finished;
        }
        let logits = {
            let mut steps: Vec<Step<'_>> = feed
                .iter_mut()
                .map(|(s, tokens)| Step { tokens: tokens.as_slice(), cache: &mut s.cache })
                .collect();
            engine
                .model
                .forward_every(&mut steps)
                .and_then(|l| l.to_vec2::<f32>().map_err(|e| Error::tensor("logits", e)))
        };
        match logits {
            Ok(rows) => {
                let mut rows = rows.into_iter();
                for (mut seq, mut tokens) in feed {
                    seq.rows = rows.by_ref().take(tokens.len()).collect();
                    tokens.remove(0);
                    seq.guesses = tokens;
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
        rows: vec![logits],
        guesses: Vec::new(),
        prompt_len: tokens.len(),
        context: tokens.clone(),
        guess_length: GuessLength::new(MAX_GUESSES),
        constraint,
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

impl Seq {
    /// Tokens of the reply so far.
    fn generated(&self) -> usize {
        self.context.len() - self.prompt_len
    }
}

fn finish(seq: &Seq, reason: FinishReason) -> Result<Reply> {
    let decode_s = seq.decode_start.elapsed().as_secs_f64();
    Ok(Reply {
        text: String::from_utf8_lossy(&seq.text).into_owned(),
        finish: reason,
        usage: Usage { generated_tokens: seq.generated(), ..seq.usage.clone() },
        timings: Timings {
            prefill_s: seq.prefill_s,
            decode_s,
            total_s: seq.submitted.elapsed().as_secs_f64(),
        },
    })
}

/// Samples `seq`'s pending rows in order (row i + 1 only while row i's token confirmed the
/// guess fed after it), forgets the positions of rejected guesses, and decides whether the
/// sequence goes on; if it does, with the tokens to feed next: the last token sampled and up
/// to `guess_room` guesses after it.
fn advance(engine: &Engine, seq: &mut Seq, guess_room: usize) -> (Outcome, StepStats) {
    let rows = std::mem::take(&mut seq.rows);
    let guesses = std::mem::take(&mut seq.guesses);
    let fed_from = seq.cache.len() - rows.len();
    let mut stats = StepStats { guessed: guesses.len(), accepted: 0, generated: 0 };
    let mut next = None;
    for (i, logits) in rows.into_iter().enumerate() {
        let before = seq.generated();
        let sampled = sample_one(engine, seq, logits);
        stats.generated += seq.generated() - before;
        let tok = match sampled {
            Ok(tok) => tok,
            Err(done) => return (Outcome::Done(done), stats),
        };
        if guesses.get(i) == Some(&tok) {
            stats.accepted += 1;
            continue;
        }
        // Rows past this one followed guesses the model did not make.
        seq.cache.truncate(fed_from + i + 1);
        next = Some(tok);
        break;
    }
    seq.guess_length.record(stats.guessed, stats.accepted);
    let Some(tok) = next else {
        return (Outcome::Done(Err(llm_err("a decode pass returned no logits"))), stats);
    };
    // The model's context is full: this sequence ends here, the others go on.
    if seq.cache.len() + 1 > engine.model.max_positions() {
        return (Outcome::Done(cut(seq, seq.generated())), stats);
    }
    let room = guess_room
        .min(seq.guess_length.now)
        .min(MAX_DECODE_RUN - 1)
        .min(engine.model.max_positions() - seq.cache.len() - 1)
        .min(seq.request.params.max_tokens.saturating_sub(seq.generated() + 1));
    let mut tokens = vec![tok];
    tokens.extend(propose(seq, room));
    (Outcome::Continue(tokens), stats)
}

/// Up to `room` guesses to feed after the last token: what the grammar forces, then what
/// followed the same tokens earlier in the text, cut where the grammar would refuse it.
fn propose(seq: &mut Seq, room: usize) -> Vec<u32> {
    if room == 0 {
        return Vec::new();
    }
    let mut guesses = match seq.constraint.as_mut() {
        Some(c) => c.forced_tokens(),
        None => Vec::new(),
    };
    guesses.truncate(room);
    if guesses.len() < room {
        // Looked up as if the forced tokens were already written (they will be).
        let len = seq.context.len();
        seq.context.extend_from_slice(&guesses);
        let more = guess::lookup(&seq.context, room - guesses.len());
        seq.context.truncate(len);
        guesses.extend(more);
    }
    if let Some(c) = seq.constraint.as_mut() {
        guesses.truncate(c.valid_prefix(&guesses));
    }
    guesses
}

/// Samples one token for `seq` from `logits` and records it; `Err` holds the sequence's reply
/// when it ends here.
fn sample_one(
    engine: &Engine,
    seq: &mut Seq,
    mut logits: Vec<f32>,
) -> std::result::Result<u32, Result<Reply>> {
    let max = seq.request.params.max_tokens;
    if seq.generated() >= max {
        return Err(cut(seq, max));
    }
    if let Some(c) = seq.constraint.as_mut() {
        c.mask(&mut logits).map_err(Err)?;
    } else if seq.generated() < seq.request.params.min_tokens {
        for &stop in &engine.tokenizer.stop_tokens {
            if let Some(l) = logits.get_mut(stop as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
    }
    let Some(tok) = seq.sampler.sample(&logits) else {
        return Err(Err(llm_err(
            "no token is allowed at this point (all logits masked or not finite)",
        )));
    };
    let tokenizer = &engine.tokenizer;
    if tokenizer.is_stop(tok) {
        return Err(finish(seq, FinishReason::Stop));
    }
    if let Some(c) = seq.constraint.as_mut() {
        c.commit(tok, tokenizer.text_bytes(tok)).map_err(Err)?;
    }
    seq.context.push(tok);
    seq.text.extend_from_slice(tokenizer.text_bytes(tok));
    if seq.constraint.as_ref().is_some_and(|c| c.is_done()) {
        return Err(finish(seq, FinishReason::Stop));
    }
    if seq.constraint.is_none() {
        if let Some(pos) = find_stop(&seq.text, &seq.request.params.stop) {
            seq.text.truncate(pos);
            return Err(finish(seq, FinishReason::Stop));
        }
    }
    if seq.generated() >= max {
        return Err(cut(seq, max));
    }
    Ok(tok)
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
