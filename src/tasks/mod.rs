//! Built-in tasks, one file each, and [`ProblemSet`]: several problems of a task run side by
//! side in one batch.

pub mod battleship;
pub mod controller;
pub mod numeric;
pub mod problem_set;

pub use problem_set::ProblemSet;

use crate::error::{Error, Result};
use crate::train::Task;

/// The built-in task names, for `--help` and error messages.
pub const TASK_NAMES: &[&str] = &["numeric", "numeric-easy", "battleship", "controller", "controller-reach-gains", "controller-reach-code", "controller-cartpole-gains", "controller-cartpole-code"];

/// The task called `name`, for problem `problem`.
pub fn by_name(name: &str, problem: usize) -> Result<Box<dyn Task>> {
    match name {
        "numeric" => Ok(Box::new(numeric::NumericTask::new(problem))),
        "numeric-easy" => Ok(Box::new(numeric::NumericTask::easy(problem))),
        "battleship" => Ok(Box::new(battleship::BattleshipTask::new(problem))),
        controller if controller == "controller" || controller.starts_with("controller-") => Ok(Box::new(controller::ControllerTask::from_name(controller, problem)?)),
        other => Err(Error::Task { task: other.to_string(), reason: format!("unknown task; available: {}", TASK_NAMES.join(", ")) }),
    }
}
