//! The serving side of the engine: what turns requests into replies on a loaded model.
//! `engine.rs` holds the loaded model with its tokenizer, template, grammar and prefix cache,
//! `scheduler.rs` is the thread that owns the decode batch (requests from any thread join the
//! running batch: continuous batching), `batch.rs` the running batch itself, `sample.rs` and
//! `constrain.rs` choose tokens, `cache.rs` keeps prompt prefixes.

mod batch;
pub mod cache;
pub mod constrain;
pub(super) mod engine;
mod guess;
pub mod sample;
pub(super) mod scheduler;
