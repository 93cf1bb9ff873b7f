//! Built-in tasks, one file each, and [`ProblemSet`]: several problems of a task run side by
//! side in one batch.

pub mod battleship;
pub mod bbh;
pub mod controller;
pub mod numeric;
pub mod problem_set;
pub mod prompt;

pub use problem_set::ProblemSet;

use crate::error::{Error, Result};
use crate::train::Task;

/// The built-in task names, for `--help` and error messages.
pub const TASK_NAMES: &[&str] = &[
    "numeric",
    "numeric-easy",
    "battleship",
    "controller",
    "controller-reach-gains",
    "controller-reach-code",
    "controller-cartpole-gains",
    "controller-cartpole-code",
];

/// The task called `name`, for problem `problem`.
pub fn by_name(name: &str, problem: usize) -> Result<Box<dyn Task>> {
    match name {
        "numeric" => Ok(Box::new(numeric::NumericTask::new(problem))),
        "numeric-easy" => Ok(Box::new(numeric::NumericTask::easy(problem))),
        "battleship" => Ok(Box::new(battleship::BattleshipTask::new(problem)?)),
        controller if controller == "controller" || controller.starts_with("controller-") => {
            Ok(Box::new(controller::ControllerTask::from_name(controller, problem)?))
        }
        other => Err(Error::Task {
            task: other.to_string(),
            reason: format!(
                "unknown task; available: {}, and prompt (`opto run prompt`, a dataset task)",
                TASK_NAMES.join(", ")
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_listed_task_name_resolves_and_others_are_refused_with_the_list() {
        for name in super::TASK_NAMES {
            assert!(super::by_name(name, 0).is_ok(), "{name}");
        }
        let e = super::by_name("nosuch", 0).err().unwrap().to_string();
        assert!(e.contains("controller-cartpole-code") && e.contains("numeric-easy"), "{e}");
    }
}
