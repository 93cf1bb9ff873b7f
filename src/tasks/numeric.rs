//! `numeric`: the paper's §5.1 problems. A random computational graph of arithmetic operators
//! over one input `x` computes `h(x)`; the goal is `h(x) = y*`. The only feedback is the
//! paper's: "The output should be larger." or "... smaller." A problem is solved when
//! `|h(x) − y*| <= 0.1`.
//!
//! Problems are generated from a problem index, so `--problem 3` is the same problem on every
//! machine. The target is `y* = h(x*)` for an integer `x*` in [-10, 10] (a solution exists), and
//! `h` is built from add/subtract/multiply with small integer constants and sums of earlier
//! results, like the paper's generator.

use crate::error::Result;
use crate::graph::{Graph, Node};
use crate::train::{Evaluation, Task};
use rand::{Rng, SeedableRng};

/// The success tolerance on |h(x) − y*|.
pub const TOLERANCE: f64 = 0.1;

/// One step of the generated program.
#[derive(Clone, Debug, PartialEq)]
enum Op {
    /// `v[i] op c`
    Const { input: usize, op: Arith, c: i64 },
    /// `v[i] op v[j]`
    Pair { a: usize, b: usize, op: Arith },
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Arith {
    Add,
    Sub,
    Mul,
}

#[derive(Clone, Debug)]
pub struct NumericTask {
    pub problem: usize,
    ops: Vec<Op>,
    pub x_star: i64,
    pub target: f64,
}

impl NumericTask {
    /// Problem `index` of the generator (deterministic).
    pub fn new(problem: usize) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5EED_0000 + problem as u64);
        // Redraw until h depends on x near the solution and the default start is not a solution.
        loop {
            let task = Self::draw(problem, &mut rng);
            let moves = |dx: f64| (task.h(task.x_star as f64 + dx) - task.target).abs() > TOLERANCE;
            if moves(1.0) && moves(-1.0) && (task.h(task.start(0)) - task.target).abs() > 1.0 {
                return task;
            }
        }
    }

    fn draw(problem: usize, rng: &mut rand::rngs::StdRng) -> Self {
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
                let c = if op == Arith::Mul { [2, 3, -2, 4, -3][rng.gen_range(0..5)] } else { rng.gen_range(1..=9) };
                ops.push(Op::Const { input: latest, op, c });
            }
        }
        let x_star = loop {
            let x = rng.gen_range(-10..=10);
            if x != 0 {
                break x;
            }
        };
        let mut task = NumericTask { problem, ops, x_star, target: 0.0 };
        task.target = task.h(x_star as f64);
        task
    }

    /// h(x) computed directly (the reference value for tests and the target).
    pub fn h(&self, x: f64) -> f64 {
        let mut v = vec![x];
        for op in &self.ops {
            let r = match *op {
                Op::Const { input, op, c } => arith(op, v[input], c as f64),
                Op::Pair { a, b, op } => arith(op, v[a], v[b]),
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
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9) ^ self.problem as u64);
        for _ in 0..1000 {
            let x = rng.gen_range(-10..=10) as f64;
            if (self.h(x) - self.target).abs() > TOLERANCE {
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
    }
}

impl Task for NumericTask {
    fn name(&self) -> String {
        format!("numeric-{}", self.problem)
    }

    fn objective(&self) -> String {
        "Change x so that the program's output becomes equal to the target value. The feedback only says whether the output should be larger or smaller; use the #Code to work out how x moves the output.".to_string()
    }

    fn parameters(&self, graph: &Graph, seed: u64) -> Vec<Node> {
        vec![graph.param_named("x", self.start(seed)).constraint_text("a float number")]
    }

    fn forward(&self, graph: &Graph, params: &[Node], _seed: u64, _step: usize) -> Result<Node> {
        let x = params.first().cloned().ok_or_else(|| crate::Error::Task { task: self.name(), reason: "expects one parameter x".into() })?;
        let mut v = vec![x];
        for op in &self.ops {
            let r = match *op {
                Op::Const { input, op, c } => traced_arith(op, &v[input], &graph.value(c)),
                Op::Pair { a, b, op } => traced_arith(op, &v[a], &v[b]),
            };
            v.push(r);
        }
        Ok(v.pop().unwrap_or_else(|| graph.value(0.0)))
    }

    fn evaluate(&self, output: &Node, _seed: u64, _step: usize) -> Evaluation {
        let Some(y) = output.value().as_f64() else {
            return Evaluation { score: f64::NEG_INFINITY, feedback: format!("The output is not a number: {}", output.value()), success: false };
        };
        let error = (y - self.target).abs();
        let success = error <= TOLERANCE;
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

fn traced_arith(op: Arith, a: &Node, b: &Node) -> Node {
    match op {
        Arith::Add => a + b,
        Arith::Sub => a - b,
        Arith::Mul => a * b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_deterministic_and_solvable() {
        for i in 0..20 {
            let a = NumericTask::new(i);
            let b = NumericTask::new(i);
            assert_eq!(a.ops, b.ops);
            assert_eq!(a.h(a.x_star as f64), a.target);
            assert_ne!(a.start(0), a.x_star as f64);
            assert_ne!(a.start(3), a.x_star as f64);
        }
        assert_ne!(NumericTask::new(0).ops, NumericTask::new(1).ops);
    }

    #[test]
    fn traced_forward_matches_direct_computation_and_gives_direction() {
        for i in 0..10 {
            let task = NumericTask::new(i);
            let g = Graph::new();
            let params = task.parameters(&g, 0);
            let out = task.forward(&g, &params, 0, 0).unwrap();
            let y = out.value().as_f64().unwrap();
            assert!((y - task.h(task.start(0))).abs() < 1e-9);
            let e = task.evaluate(&out, 0, 0);
            assert!(!e.success);
            let expected = if y < task.target { "larger" } else { "smaller" };
            assert!(e.feedback.contains(expected));
            params[0].set_value(task.x_star as f64);
            let g2 = Graph::new();
            let p2 = vec![g2.param_named("x", task.x_star as f64)];
            let out = task.forward(&g2, &p2, 0, 0).unwrap();
            assert!(task.evaluate(&out, 0, 0).success);
        }
    }
}
