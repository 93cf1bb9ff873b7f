//! Several problems of a task as one run: run `i` of the trainer is seed `i % seeds` of problem
//! `i / seeds`, so thirty problems step together and their LLM requests share one batch (and
//! their system prompt in the prefix cache), instead of thirty runs one after another.

use crate::error::{Error, Result};
use crate::graph::{Graph, Node, Value};
use crate::train::{CandidateEvaluation, Evaluation, Task};
use indexmap::IndexMap;

pub struct ProblemSet {
    name: String,
    problems: Vec<(usize, Box<dyn Task>)>,
    seeds_per_problem: u64,
    first_seed: u64,
}

impl ProblemSet {
    /// `problems` are (problem index, task) pairs; every problem runs `seeds_per_problem` seeds
    /// numbered from `first_seed`, as a single-problem run would number them.
    pub fn new(
        name: impl Into<String>,
        problems: Vec<(usize, Box<dyn Task>)>,
        seeds_per_problem: usize,
        first_seed: u64,
    ) -> Result<Self> {
        if problems.is_empty() {
            return Err(Error::invalid("--problems", "names no problem"));
        }
        if seeds_per_problem == 0 {
            return Err(Error::invalid("--seeds", "must be at least 1"));
        }
        Ok(ProblemSet {
            name: name.into(),
            problems,
            seeds_per_problem: seeds_per_problem as u64,
            first_seed,
        })
    }

    /// How many runs the trainer must step (problems × seeds).
    pub fn runs(&self) -> usize {
        self.problems.len() * self.seeds_per_problem as usize
    }

    /// The problem index and the problem's own seed of trainer run `seed`.
    pub fn locate(&self, seed: u64) -> (usize, u64) {
        let (which, own_seed) = self.slot(seed);
        (self.problems[which].0, own_seed)
    }

    fn task(&self, seed: u64) -> (&dyn Task, u64) {
        let (which, own_seed) = self.slot(seed);
        (self.problems[which].1.as_ref(), own_seed)
    }

    /// Index into `problems` and the problem's own seed of trainer run `seed`.
    fn slot(&self, seed: u64) -> (usize, u64) {
        let run = seed.saturating_sub(self.first_seed);
        let which = ((run / self.seeds_per_problem) as usize).min(self.problems.len() - 1);
        (which, self.first_seed + run % self.seeds_per_problem)
    }
}

impl Task for ProblemSet {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn objective(&self) -> String {
        self.problems[0].1.objective()
    }
    fn parameters(&self, graph: &Graph, seed: u64) -> Vec<Node> {
        let (task, seed) = self.task(seed);
        task.parameters(graph, seed)
    }
    fn forward(&self, graph: &Graph, params: &[Node], seed: u64, step: usize) -> Result<Node> {
        let (task, seed) = self.task(seed);
        task.forward(graph, params, seed, step)
    }
    fn evaluate(&self, output: &Node, seed: u64, step: usize) -> Evaluation {
        let (task, seed) = self.task(seed);
        task.evaluate(output, seed, step)
    }
    fn candidate_evaluation(&self) -> CandidateEvaluation {
        if self
            .problems
            .iter()
            .all(|(_, t)| t.candidate_evaluation() == CandidateEvaluation::Offline)
        {
            CandidateEvaluation::Offline
        } else {
            CandidateEvaluation::ActsOnWorld
        }
    }
    fn bounds(&self, name: &str) -> Option<(f64, f64)> {
        self.problems[0].1.bounds(name)
    }
    fn snapshot(&self, params: &[Node]) -> IndexMap<String, Value> {
        self.problems[0].1.snapshot(params)
    }
}

/// Parses `--problems`: `3`, `0-29` (inclusive), or a comma list of either (`0-4,9`).
pub fn parse_problems(text: &str) -> Result<Vec<usize>> {
    let bad = |why: &str| {
        Error::invalid("--problems", format!("`{text}`: {why} (write e.g. 0-29 or 0,3,5)"))
    };
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(bad("an empty item"));
        }
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: usize = a.parse().map_err(|_| bad("not a problem number"))?;
        let b: usize = b.parse().map_err(|_| bad("not a problem number"))?;
        if b < a {
            return Err(bad("a range must go upwards"));
        }
        if b - a >= MAX_PROBLEMS || out.len() + (b - a + 1) > MAX_PROBLEMS {
            return Err(bad(&format!("more than {MAX_PROBLEMS} problems")));
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// More problems than this in one batch is a typo, not a plan.
pub const MAX_PROBLEMS: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::numeric::NumericTask;

    #[test]
    fn runs_map_to_problems_and_their_own_seeds() {
        let set = ProblemSet::new(
            "numeric",
            (4..7).map(|p| (p, Box::new(NumericTask::new(p)) as Box<dyn Task>)).collect(),
            2,
            10,
        )
        .unwrap();
        assert_eq!(set.runs(), 6);
        let located: Vec<(usize, u64)> = (10..16).map(|s| set.locate(s)).collect();
        assert_eq!(located, vec![(4, 10), (4, 11), (5, 10), (5, 11), (6, 10), (6, 11)]);
        // run 3 is problem 5 seed 11: the same start as a single-problem run of it
        let g = Graph::new();
        let x = set.parameters(&g, 13)[0].value().as_f64().unwrap();
        assert_eq!(x, NumericTask::new(5).start(11));
    }

    #[test]
    fn problem_lists_parse_or_say_why_not() {
        assert_eq!(parse_problems("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_problems("7").unwrap(), vec![7]);
        assert_eq!(parse_problems("0-1, 5").unwrap(), vec![0, 1, 5]);
        for bad in ["", "a", "3-1", "0-99999999999", "1,,2", "-3"] {
            let e = parse_problems(bad).unwrap_err().to_string();
            assert!(e.contains("--problems"), "{bad}: {e}");
        }
    }
}
