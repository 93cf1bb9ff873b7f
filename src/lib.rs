//! opto: Trace-style generative optimization in Rust, with the optimizer's LLM running in-process.

pub mod code;
pub mod error;
pub mod graph;
pub mod llm;
pub mod propagate;

pub use error::{Error, Result};
