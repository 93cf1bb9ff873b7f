//! The training loop: tasks, seeds in lockstep (one LLM batch per step), checkpoints, logs,
//! and the run report.

pub mod checkpoint;
pub mod config;
pub mod held_out;
pub mod log;
pub mod report;
pub mod search;
pub mod seeds;
pub mod task;
pub mod trainer;

pub use checkpoint::Checkpoint;
pub use config::RunConfig;
pub use task::{CandidateEvaluation, Evaluation, HeldOut, Task};
pub use trainer::{default_out_dir, RunSummary, Trainer};
