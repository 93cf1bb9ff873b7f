//! The training loop: tasks, seeds in lockstep (one LLM batch per step), checkpoints, logs,
//! and the run report.

pub mod task;

pub use task::{Evaluation, Task};
