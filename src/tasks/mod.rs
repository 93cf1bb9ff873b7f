//! Built-in tasks, one file each.

pub mod battleship;
pub mod numeric;

use crate::error::{Error, Result};
use crate::train::Task;

/// Every built-in task's name, as `opto run --help` lists them.
pub const NAMES: [&str; 2] = ["numeric", "battleship"];

/// The task called `name` (`numeric`), for problem `problem`.
pub fn by_name(name: &str, problem: usize) -> Result<Box<dyn Task>> {
    match name {
        "numeric" => Ok(Box::new(numeric::NumericTask::new(problem))),
        "battleship" => Ok(Box::new(battleship::BattleshipTask::new(problem))),
        other => Err(Error::Task { task: other.to_string(), reason: "unknown task; available: numeric, battleship".into() }),
    }
}
