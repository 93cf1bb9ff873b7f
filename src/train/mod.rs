//! The training loops: the `Trainer` (tasks, seeds in lockstep, one LLM batch per step) and the
//! dataset loop (`DatasetTrainer`: train / validation / test, a minibatch's feedbacks per step),
//! with checkpoints, logs and the run report.

pub mod backend_watch;
pub mod chart;
pub mod checkpoint;
pub mod config;
pub mod dataset;
pub mod dataset_search;
pub mod dataset_trainer;
pub mod format;
pub mod held_out;
pub mod lock;
pub mod log;
pub mod progress;
pub mod report;
pub mod resume;
pub mod search;
pub mod seeds;
pub mod table;
pub mod task;
pub mod trainer;

pub use checkpoint::Checkpoint;
pub use config::RunConfig;
pub use dataset::{DataSource, Grader, Item, Split, SplitSizes, Splits};
pub use dataset_trainer::{
    Accuracy, DatasetOptions, DatasetProgram, DatasetSummary, DatasetTrainer, ItemRun,
};
pub use task::{CandidateEvaluation, Evaluation, HeldOut, Task};
pub use trainer::{default_out_dir, RunSummary, Trainer};
