//! Built-in tasks, one file each.

pub mod battleship;
pub mod bbh;
pub mod numeric;
pub mod prompt;

use crate::error::{Error, Result};
use crate::train::Task;

/// The task called `name` (`numeric`), for problem `problem`.
pub fn by_name(name: &str, problem: usize) -> Result<Box<dyn Task>> {
    match name {
        "numeric" => Ok(Box::new(numeric::NumericTask::new(problem))),
        "battleship" => Ok(Box::new(battleship::BattleshipTask::new(problem))),
        other => Err(Error::Task { task: other.to_string(), reason: "unknown task; available: numeric, battleship, prompt (`opto run prompt`, a dataset task)".into() }),
    }
}
