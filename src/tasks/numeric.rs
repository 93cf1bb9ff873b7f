//! `numeric`: the paper's §5.1 problems. A random computational graph of arithmetic operators
//! over one input `x` computes `h(x)`; the goal is `h(x) = y*`. The only feedback is the
//! paper's: "The output should be larger." or "... smaller."
//!
//! Problems are generated from a problem index, so `--problem 3` is the same problem on every
//! machine. Two levels:
//! - [`Level::Paper`] (the default, `numeric`): seven operators (add, subtract, multiply, divide,
//!   square, negate, absolute value), constants in −3…3, division by constants and by earlier
//!   results; `x*` is a real number (two decimals) in [−4, 4], so guessing small integers does
//!   not solve it. Solved when `|h(x) − y*| <= 1e-3`.
//! - [`Level::Easy`] (`numeric-easy`, the first wave's generator): add/subtract/multiply with small
//!   integer constants, an integer `x*` in [−10, 10]; solved when `|h(x) − y*| <= 0.1`.
//!
//! Both keep `x` in [−10, 10] ([`NumericTask::bounds`]), which is what random search and
//! golden-section baselines search over.

use crate::error::Result;
use crate::graph::{Graph, Node};
use crate::train::{Evaluation, Task};
use rand::{Rng, SeedableRng};

/// The success tolerance on |h(x) − y*| of the easy level.
pub const TOLERANCE: f64 = 0.1;
/// The success tolerance on |h(x) − y*| of the paper level.
pub const PAPER_TOLERANCE: f64 = 1e-3;
/// Where `x` lives (both levels).
pub const X_RANGE: (f64, f64) = (-10.0, 10.0);

/// Which generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Easy,
    Paper,
}

/// One step of the generated program.
#[derive(Clone, Debug, PartialEq)]
enum Op {
    /// `v[i] op c`
    Const { input: usize, op: Arith, c: i64 },
    /// `v[i] op v[j]`
    Pair { a: usize, b: usize, op: Arith },
    /// `f(v[i])`
    Unary { input: usize, op: Unary },
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Unary {
    Square,
    Neg,
    Abs,
}

#[derive(Clone, Debug)]
pub struct NumericTask {
    pub problem: usize,
    pub level: Level,
    ops: Vec<Op>,
    /// The solution the target was made from (a real number at the paper level).
    pub x_star: f64,
    pub target: f64,
}

impl NumericTask {
    /// Problem `index` of the paper-level generator (deterministic).
    pub fn new(problem: usize) -> Self {
        Self::with_level(problem, Level::Paper)
    }

    /// Problem `index` of the easy generator (the first wave's, deterministic).
    pub fn easy(problem: usize) -> Self {
        Self::with_level(problem, Level::Easy)
    }

    pub fn with_level(problem: usize, level: Level) -> Self {
        let salt = match level {
            Level::Easy => 0x5EED_0000,
            Level::Paper => 0x9A9E_0000,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(salt + problem as u64);
        // Redraw until h depends on x near the solution, is tame around it, and the default start
        // is neither a solution nor a point where the program fails.
        loop {
            let task = match level {
                Level::Easy => Self::draw_easy(problem, &mut rng),
                Level::Paper => Self::draw_paper(problem, &mut rng),
            };
            if task.acceptable() {
                return task;
            }
        }
    }

    /// The success tolerance on |h(x) − y*|.
    pub fn tolerance(&self) -> f64 {
        match self.level {
            Level::Easy => TOLERANCE,
            Level::Paper => PAPER_TOLERANCE,
        }
    }

    fn acceptable(&self) -> bool {
        let err = |x: f64| (self.h(x) - self.target).abs();
        let step = match self.level {
            Level::Easy => 1.0,
            Level::Paper => 0.5,
        };
        let start = self.h(self.start(0));
        let tame = match self.level {
            Level::Easy => true,
            // finite and readable on a grid over the range but for at most two points (a pole
            // of a division), and near the solution everywhere: the output a model sees is a
            // number and the problem is not decided by a singularity
            Level::Paper => {
                let wild = (0..=80)
                    .filter(|i| {
                        !self.h(X_RANGE.0 + *i as f64 * 0.25).is_finite()
                            || self.h(X_RANGE.0 + *i as f64 * 0.25).abs() >= 1e6
                    })
                    .count();
                let near = (-10..=10).all(|i| self.h(self.x_star + i as f64 * 0.05).abs() < 1e6);
                wild <= 2 && near
            }
        };
        self.target.is_finite()
            && tame
            && start.is_finite()
            && err(self.x_star + step) > self.tolerance()
            && err(self.x_star - step) > self.tolerance()
            && (start - self.target).abs() > 1.0
    }

    fn draw_easy(problem: usize, rng: &mut rand::rngs::StdRng) -> Self {
        let n_ops = rng.gen_range(2..=5);
        let mut ops = Vec::with_capacity(n_ops);
        let mut multiplied_pair = false;
        for i in 0..n_ops {
            let available = i + 1; // v[0] = x, v[k] = result of op k-1
            let latest = available - 1;
            // Mostly chain on the latest result; sometimes combine two earlier results. At most
            // one product of two results keeps h a low-degree polynomial a small model can reason about.
            if available >= 2 && rng.gen_bool(0.3) {
                let other = rng.gen_range(0..latest);
                let op = if !multiplied_pair && rng.gen_bool(0.3) {
                    multiplied_pair = true;
                    Arith::Mul
                } else if rng.gen_bool(0.5) {
                    Arith::Add
                } else {
                    Arith::Sub
                };
                ops.push(Op::Pair { a: latest, b: other, op });
            } else {
                let op = [Arith::Add, Arith::Sub, Arith::Mul][rng.gen_range(0..3)];
                let c = if op == Arith::Mul {
                    [2, 3, -2, 4, -3][rng.gen_range(0..5)]
                } else {
                    rng.gen_range(1..=9)
                };
                ops.push(Op::Const { input: latest, op, c });
            }
        }
        let x_star = loop {
            let x = rng.gen_range(-10..=10);
            if x != 0 {
                break x as f64;
            }
        };
        let mut task = NumericTask { problem, level: Level::Easy, ops, x_star, target: 0.0 };
        task.target = task.h(x_star);
        task
    }

    fn draw_paper(problem: usize, rng: &mut rand::rngs::StdRng) -> Self {
        let n_ops = rng.gen_range(3..=6);
        let mut ops = Vec::with_capacity(n_ops);
        let mut nonlinear = 0;
        for i in 0..n_ops {
            let latest = i; // v[0] = x, v[k] = result of op k-1
            let roll: f64 = rng.gen();
            // At most two nonlinear steps (products of results, squares, divisions by results),
            // as in the paper's small graphs: h stays something one can reason about.
            if latest >= 1 && roll < 0.3 {
                let mut other = rng.gen_range(0..latest);
                let op = match rng.gen_range(0..4) {
                    0 if nonlinear < 2 => {
                        nonlinear += 1;
                        Arith::Mul
                    }
                    // divide by an earlier result, never by x itself (x = 0 is the start)
                    1 if nonlinear < 2 && latest >= 2 => {
                        nonlinear += 1;
                        other = rng.gen_range(1..latest);
                        Arith::Div
                    }
                    2 => Arith::Sub,
                    _ => Arith::Add,
                };
                ops.push(Op::Pair { a: latest, b: other, op });
            } else if roll < 0.45 {
                let op = match rng.gen_range(0..3) {
                    0 if nonlinear < 2 => {
                        nonlinear += 1;
                        Unary::Square
                    }
                    1 => Unary::Abs,
                    _ => Unary::Neg,
                };
                ops.push(Op::Unary { input: latest, op });
            } else {
                let op = [Arith::Add, Arith::Sub, Arith::Mul, Arith::Div][rng.gen_range(0..4)];
                let c = loop {
                    let c = rng.gen_range(-3..=3);
                    if c != 0 && !(matches!(op, Arith::Mul | Arith::Div) && c == 1) {
                        break c;
                    }
                };
                ops.push(Op::Const { input: latest, op, c });
            }
        }
        let x_star = rng.gen_range(-400..=400) as f64 / 100.0;
        let mut task = NumericTask { problem, level: Level::Paper, ops, x_star, target: 0.0 };
        task.target = task.h(x_star);
        task
    }

    /// h(x) computed directly (the reference value for tests and the target).
    pub fn h(&self, x: f64) -> f64 {
        let mut v = vec![x];
        for op in &self.ops {
            let r = match *op {
                Op::Const { input, op, c } => arith(op, v[input], c as f64),
                Op::Pair { a, b, op } => arith(op, v[a], v[b]),
                Op::Unary { input, op } => unary(op, v[input]),
            };
            v.push(r);
        }
        *v.last().unwrap_or(&x)
    }

    /// The start value for run `seed`: 0 for seed 0, else a seeded integer in [-10, 10] that
    /// is not a solution.
    pub fn start(&self, seed: u64) -> f64 {
        if seed == 0 {
            return 0.0;
        }
        let mut rng =
            rand::rngs::StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9) ^ self.problem as u64);
        for _ in 0..1000 {
            let x = rng.gen_range(-10..=10) as f64;
            let y = self.h(x);
            if y.is_finite() && (y - self.target).abs() > self.tolerance() {
                return x;
            }
        }
        0.0
    }
}

fn arith(op: Arith, a: f64, b: f64) -> f64 {
    match op {
        Arith::Add => a + b,
        Arith::Sub => a - b,
        Arith::Mul => a * b,
        // Python's float division; the traced op raises ZeroDivisionError, so does this (as NaN)
        Arith::Div if b == 0.0 => f64::NAN,
        Arith::Div => a / b,
    }
}

fn unary(op: Unary, a: f64) -> f64 {
    match op {
        Unary::Square => a * a,
        Unary::Neg => -a,
        Unary::Abs => a.abs(),
    }
}

impl Task for NumericTask {
    fn name(&self) -> String {
        match self.level {
            Level::Paper => format!("numeric-{}", self.problem),
            Level::Easy => format!("numeric-easy-{}", self.problem),
        }
    }

    fn objective(&self) -> String {
        "Change x so that the program's output becomes equal to the target value. The feedback only says whether the output should be larger or smaller; use the #Code to work out how x moves the output.".to_string()
    }

    fn parameters(&self, graph: &Graph, seed: u64) -> Vec<Node> {
        vec![graph.param_named("x", self.start(seed)).constraint_text("a float number")]
    }

    fn bounds(&self, name: &str) -> Option<(f64, f64)> {
        (name == "x").then_some(X_RANGE)
    }

    fn forward(&self, graph: &Graph, params: &[Node], _seed: u64, _step: usize) -> Result<Node> {
        let x = params.first().cloned().ok_or_else(|| crate::Error::Task {
            task: self.name(),
            reason: "expects one parameter x".into(),
        })?;
        let mut v = vec![x];
        for op in &self.ops {
            let r = match *op {
                Op::Const { input, op, c } => traced_arith(op, &v[input], &graph.value(c))?,
                Op::Pair { a, b, op } => traced_arith(op, &v[a], &v[b])?,
                Op::Unary { input, op } => traced_unary(op, &v[input])?,
            };
            v.push(r);
        }
        Ok(v.pop().unwrap_or_else(|| graph.value(0.0)))
    }

    fn evaluate(&self, output: &Node, _seed: u64, _step: usize) -> Evaluation {
        let Some(y) = output.value().as_f64().filter(|y| y.is_finite()) else {
            return Evaluation {
                score: f64::NEG_INFINITY,
                feedback: format!("The output is not a finite number: {}", output.value()),
                success: false,
            };
        };
        let error = (y - self.target).abs();
        let success = error <= self.tolerance();
        let feedback = if success {
            "Success: the output equals the target.".to_string()
        } else if y < self.target {
            "The output should be larger.".to_string()
        } else {
            "The output should be smaller.".to_string()
        };
        Evaluation { score: -error, feedback, success }
    }
}

fn traced_arith(op: Arith, a: &Node, b: &Node) -> Result<Node> {
    Ok(match op {
        Arith::Add => a + b,
        Arith::Sub => a - b,
        Arith::Mul => a * b,
        // a division by zero is an exception node: the failure is the feedback
        Arith::Div => a.try_div(b)?,
    })
}

fn traced_unary(op: Unary, a: &Node) -> Result<Node> {
    match op {
        Unary::Square => a.try_pow(2i64),
        Unary::Neg => a.neg().check(),
        Unary::Abs => a.abs().check(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both_levels(i: usize) -> [NumericTask; 2] {
        [NumericTask::easy(i), NumericTask::new(i)]
    }

    #[test]
    fn problems_are_deterministic_and_solvable() {
        for i in 0..40 {
            for (a, b) in both_levels(i).into_iter().zip(both_levels(i)) {
                assert_eq!(a.ops, b.ops);
                assert_eq!(a.h(a.x_star), a.target);
                assert!((a.h(a.start(0)) - a.target).abs() > 1.0, "problem {i} starts solved");
                assert_ne!(a.start(3), a.x_star);
            }
        }
        assert_ne!(NumericTask::new(0).ops, NumericTask::new(1).ops);
        assert_ne!(NumericTask::new(0).ops, NumericTask::easy(0).ops);
    }

    #[test]
    fn the_paper_level_is_not_solved_by_guessing_integers() {
        let tasks: Vec<NumericTask> = (0..30).map(NumericTask::new).collect();
        let integer_solutions = tasks.iter().filter(|t| t.x_star.fract() == 0.0).count();
        assert!(
            integer_solutions <= 3,
            "{integer_solutions} of 30 paper problems have an integer x*"
        );
        // an integer in the range solves a problem only by accident
        let by_integers = tasks
            .iter()
            .filter(|t| (-10..=10).any(|k| (t.h(k as f64) - t.target).abs() <= t.tolerance()))
            .count();
        assert!(by_integers <= 5, "{by_integers} of 30 paper problems are solved by some integer");
        // the operators beyond + - * appear
        let uses = |pred: fn(&Op) -> bool| tasks.iter().any(|t| t.ops.iter().any(pred));
        assert!(uses(|o| matches!(o, Op::Const { op: Arith::Div, .. })));
        assert!(uses(|o| matches!(o, Op::Pair { op: Arith::Div, .. })));
        assert!(uses(|o| matches!(o, Op::Unary { op: Unary::Square, .. })));
        assert!(uses(|o| matches!(o, Op::Unary { op: Unary::Abs, .. })));
        assert!(uses(|o| matches!(o, Op::Unary { op: Unary::Neg, .. })));
        assert!(tasks.iter().all(|t| t.ops.iter().all(|o| match o {
            Op::Const { c, .. } => (-3..=3).contains(c),
            _ => true,
        })));
    }

    #[test]
    fn traced_forward_matches_direct_computation_and_gives_direction() {
        for i in 0..20 {
            for task in both_levels(i) {
                let g = Graph::new();
                let params = task.parameters(&g, 0);
                let out = task.forward(&g, &params, 0, 0).unwrap();
                let y = out.value().as_f64().unwrap();
                assert!((y - task.h(task.start(0))).abs() < 1e-9);
                let e = task.evaluate(&out, 0, 0);
                assert!(!e.success);
                let expected = if y < task.target { "larger" } else { "smaller" };
                assert!(e.feedback.contains(expected));
                let g2 = Graph::new();
                let p2 = vec![g2.param_named("x", task.x_star)];
                let out = task.forward(&g2, &p2, 0, 0).unwrap();
                assert!(
                    task.evaluate(&out, 0, 0).success,
                    "{} at x* = {}",
                    task.name(),
                    task.x_star
                );
            }
        }
    }

    #[test]
    fn a_division_by_zero_is_an_exception_node_not_a_panic() {
        // h(x) = (x - 2) / (x - 2): undefined at 2
        let ops = vec![
            Op::Const { input: 0, op: Arith::Sub, c: 2 },
            Op::Pair { a: 1, b: 1, op: Arith::Div },
        ];
        let task = NumericTask { problem: 0, level: Level::Paper, ops, x_star: 1.0, target: 1.0 };
        assert!(task.h(2.0).is_nan());
        let g = Graph::new();
        let p = vec![g.param_named("x", 2.0)];
        match task.forward(&g, &p, 0, 0) {
            Err(crate::Error::Execution { node: Some(node), .. }) => {
                assert!(node.error_text().unwrap().contains("ZeroDivisionError"))
            }
            other => panic!("expected an exception node, got {other:?}"),
        }
        let g = Graph::new();
        let p = vec![g.param_named("x", 3.0)];
        assert_eq!(task.forward(&g, &p, 0, 0).unwrap().value().as_f64(), Some(1.0));
    }
}
