//! opto: Trace-style generative optimization in Rust, with the optimizer's LLM running in-process.

pub mod cli;
pub mod error;
pub mod graph;
pub mod llm;
pub mod optim;
pub mod propagate;
pub mod tasks;
pub mod train;
pub mod util;

pub use error::{Error, Result};
