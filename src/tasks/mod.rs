//! Built-in tasks, one file each.

pub mod battleship;
pub mod controller;
pub mod numeric;

use crate::error::{Error, Result};
use crate::train::Task;

/// The task called `name` (`numeric`, `battleship`, `controller-reach-gains`, ...), for problem `problem`.
pub fn by_name(name: &str, problem: usize) -> Result<Box<dyn Task>> {
    match name {
        "numeric" => Ok(Box::new(numeric::NumericTask::new(problem))),
        "battleship" => Ok(Box::new(battleship::BattleshipTask::new(problem))),
        controller if controller == "controller" || controller.starts_with("controller-") => Ok(Box::new(controller::ControllerTask::from_name(controller, problem)?)),
        other => Err(Error::Task { task: other.to_string(), reason: format!("unknown task; available: numeric, battleship, controller ({})", controller::VARIANTS.join(", ")) }),
    }
}
