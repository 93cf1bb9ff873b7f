//! The model and its weights: everything read from the GGUF file and the transformer that runs
//! it. `gguf.rs` reads the file, `arch/` turns its metadata into a [`ModelConfig`],
//! `transformer.rs` is the transformer (its matrices in `weights.rs`, its CPU decode step on plain
//! buffers in `decode.rs`, a sequence's kv cache in `kv.rs`), `tokenizer.rs` and `template.rs`
//! turn messages into tokens, `requant.rs` converts slow weight formats. Kept apart from the
//! kernels they call (`../kernels/`) and from the serving side that drives them (`../serve/`).
//!
//! [`ModelConfig`]: arch::ModelConfig

pub mod arch;
mod decode;
pub mod gguf;
pub mod kv;
pub mod requant;
pub mod template;
pub mod tokenizer;
mod transformer;
pub mod weights;

pub use transformer::{Model, Step, MAX_DECODE_RUN};
