//! Continuous batching: one scheduler thread owns the model's decode batch; callers on any
//! thread submit their requests through a channel and block on their own reply channel. Between
//! two decode steps the scheduler admits whatever has arrived (prefill), so a request made while
//! others are decoding joins their batch instead of waiting for it to end, as llama.cpp's server
//! slots and vLLM do. `Llm::generate(&[Request])` is one submission of several requests.

use super::batch::{llm_err, Batch, StepStats, Ticket};
use super::engine::Engine;
use crate::error::Result;
use crate::llm::{Reply, Request};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// One `generate` call on its way to the scheduler.
struct Submission {
    requests: Vec<Request>,
    submitted: Instant,
    reply: Sender<Vec<Result<Reply>>>,
}

/// A submission being answered.
struct Pending {
    results: Vec<Option<Result<Reply>>>,
    left: usize,
    reply: Sender<Vec<Result<Reply>>>,
}

impl Pending {
    /// Records one answer; sends them all once the last one is in.
    fn answer(&mut self, index: usize, result: Result<Reply>) -> bool {
        if let Some(slot) = self.results.get_mut(index) {
            if slot.is_none() {
                self.left -= 1;
            }
            *slot = Some(result);
        }
        if self.left == 0 {
            let all = self
                .results
                .iter_mut()
                .map(|r| r.take().unwrap_or_else(|| Err(llm_err("request was not answered"))))
                .collect();
            // The caller may have gone away (its thread ended): nothing to do then.
            let _ = self.reply.send(all);
            return true;
        }
        false
    }
}

/// What the scheduler has done, for tests and measurements.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BatchingStats {
    /// Decode steps run (one forward pass each).
    pub decode_steps: usize,
    /// Decode steps summed over the sequences in each (a sequence's passes, all sequences).
    pub sequence_steps: usize,
    /// The most sequences one decode step held.
    pub max_batch: usize,
    /// Requests admitted while other sequences were already decoding.
    pub joined_running: usize,
    /// Guessed tokens fed to decode steps (speculative decoding), and how many of them the
    /// model's own choice confirmed: each confirmed guess is a token without a pass of its own.
    pub guessed_tokens: usize,
    pub accepted_guesses: usize,
    /// Tokens sampled by decode steps, every reply (those that end in an error too).
    pub generated_tokens: usize,
    /// Seconds spent in prefill (admitting requests) and in decode steps.
    pub prefill_s: f64,
    pub decode_s: f64,
}

#[derive(Default)]
struct Counters {
    decode_steps: AtomicUsize,
    sequence_steps: AtomicUsize,
    max_batch: AtomicUsize,
    joined_running: AtomicUsize,
    guessed_tokens: AtomicUsize,
    accepted_guesses: AtomicUsize,
    generated_tokens: AtomicUsize,
    prefill_us: AtomicU64,
    decode_us: AtomicU64,
}

/// The handle callers use; dropping it stops the thread after the work in flight.
pub(crate) struct Scheduler {
    tx: Option<Sender<Submission>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Scheduler {
    pub fn start(engine: Arc<Engine>, pool: Arc<rayon::ThreadPool>) -> Result<Scheduler> {
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let theirs = counters.clone();
        let thread = std::thread::Builder::new()
            .name("opto-llm-scheduler".into())
            .spawn(move || serve(&engine, &pool, rx, &theirs))
            .map_err(|e| llm_err(format!("cannot start the scheduler thread: {e}")))?;
        Ok(Scheduler { tx: Some(tx), thread: Some(thread), counters })
    }

    /// Answers `requests` in order, decoding them together with whatever else is running.
    pub fn submit(&self, requests: &[Request]) -> Vec<Result<Reply>> {
        if requests.is_empty() {
            return Vec::new();
        }
        let stopped = || {
            (0..requests.len())
                .map(|_| Err(llm_err("the engine's scheduler has stopped")))
                .collect()
        };
        let Some(tx) = &self.tx else { return stopped() };
        let (reply, answers) = mpsc::channel();
        if tx
            .send(Submission { requests: requests.to_vec(), submitted: Instant::now(), reply })
            .is_err()
        {
            return stopped();
        }
        answers.recv().unwrap_or_else(|_| stopped())
    }

    pub fn stats(&self) -> BatchingStats {
        BatchingStats {
            decode_steps: self.counters.decode_steps.load(Ordering::Relaxed),
            sequence_steps: self.counters.sequence_steps.load(Ordering::Relaxed),
            max_batch: self.counters.max_batch.load(Ordering::Relaxed),
            joined_running: self.counters.joined_running.load(Ordering::Relaxed),
            guessed_tokens: self.counters.guessed_tokens.load(Ordering::Relaxed),
            accepted_guesses: self.counters.accepted_guesses.load(Ordering::Relaxed),
            generated_tokens: self.counters.generated_tokens.load(Ordering::Relaxed),
            prefill_s: self.counters.prefill_us.load(Ordering::Relaxed) as f64 * 1e-6,
            decode_s: self.counters.decode_us.load(Ordering::Relaxed) as f64 * 1e-6,
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // Closing the channel ends the loop once the batch is empty.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn add_us(counter: &AtomicU64, since: Instant) {
    counter.fetch_add(since.elapsed().as_micros() as u64, Ordering::Relaxed);
}

/// The scheduler loop: wait while idle, admit arrivals between decode steps, send each
/// submission's replies when its last request is done.
fn serve(engine: &Engine, pool: &rayon::ThreadPool, rx: Receiver<Submission>, counters: &Counters) {
    let mut batch = Batch::default();
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut next_job = 0u64;
    loop {
        let mut arrived = Vec::new();
        if batch.is_empty() {
            match rx.recv() {
                Ok(s) => arrived.push(s),
                Err(_) => return,
            }
        }
        arrived.extend(rx.try_iter());
        let mut admit: Vec<(Ticket, Request, Instant)> = Vec::new();
        for s in arrived {
            let job = next_job;
            next_job += 1;
            let n = s.requests.len();
            pending.insert(
                job,
                Pending { results: (0..n).map(|_| None).collect(), left: n, reply: s.reply },
            );
            admit.extend(
                s.requests
                    .into_iter()
                    .enumerate()
                    .map(|(index, r)| (Ticket { job, index }, r, s.submitted)),
            );
        }
        // candle can panic on inputs nobody foresaw: that fails the sequences in flight, not the
        // process, and the scheduler goes on with the next submissions.
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| {
                let mut done = Vec::new();
                let prefill_start = Instant::now();
                for (ticket, request, submitted) in admit {
                    if !batch.is_empty() {
                        counters.joined_running.fetch_add(1, Ordering::Relaxed);
                    }
                    done.extend(batch.admit(engine, ticket, request, submitted));
                }
                if !batch.is_empty() {
                    counters.decode_steps.fetch_add(1, Ordering::Relaxed);
                    counters.sequence_steps.fetch_add(batch.len(), Ordering::Relaxed);
                    counters.max_batch.fetch_max(batch.len(), Ordering::Relaxed);
                }
                add_us(&counters.prefill_us, prefill_start);
                let mut stats = StepStats::default();
                let decode_start = Instant::now();
                done.extend(batch.step(engine, &mut stats));
                add_us(&counters.decode_us, decode_start);
                counters.guessed_tokens.fetch_add(stats.guessed, Ordering::Relaxed);
                counters.accepted_guesses.fetch_add(stats.accepted, Ordering::Relaxed);
                counters.generated_tokens.fetch_add(stats.generated, Ordering::Relaxed);
                done
            })
        }));
        let done = match step {
            Ok(done) => done,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                batch.drain_tickets();
                for p in pending.values_mut() {
                    let open: Vec<usize> =
                        (0..p.results.len()).filter(|&i| p.results[i].is_none()).collect();
                    for i in open {
                        p.answer(
                            i,
                            Err(llm_err(format!("the engine failed unexpectedly: {what}"))),
                        );
                    }
                }
                pending.clear();
                continue;
            }
        };
        for (ticket, result) in done {
            if pending.get_mut(&ticket.job).is_some_and(|p| p.answer(ticket.index, result)) {
                pending.remove(&ticket.job);
            }
        }
    }
}
