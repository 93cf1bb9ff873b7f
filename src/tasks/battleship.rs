//! `battleship`: the paper's Battleship (Fig. 1, App. C.1). Two trainable Python functions,
//! `reason(map)` and `act(map, plan)`, play a game on a seeded 8×8 board; the program is
//! optimized from its hit rate. Each forward pass plays `SHOTS` shots with the current code:
//! per shot `plan = reason(map)`, `shot = act(map, plan)`, `map = fire(map, shot)` — all traced,
//! so the optimizer sees the whole game. An invalid shot (off the board, not `[row, col]`, or a
//! square already fired at) is an error whose text becomes the feedback.
//!
//! The code runs in the worker sandbox (`opto-sandbox`, a child process with a hard memory cap):
//! in-process, monty bounds memory only by the time limit, and hostile bodies reached hundreds
//! of MB of the host's memory against a 64 MiB limit.

use crate::code::{default_sandbox, Limits, Sandbox, TracedCode};
use crate::error::Result;
use crate::graph::{FnSpec, Graph, Node, Value};
use crate::train::{Evaluation, Task};
use rand::{Rng, SeedableRng};
use std::sync::Arc;

pub const SIZE: usize = 8;
pub const SHIPS: [usize; 4] = [4, 3, 3, 2];
pub const SHOTS: usize = 10;

const REASON: &str = "def reason(map):\n    \"\"\"Looks at the map (a list of 8 strings of 8 characters: '.' not fired at, 'X' hit, 'O' miss) and returns a plan for the next shot.\"\"\"\n    return None\n";
const ACT: &str = "def act(map, plan):\n    \"\"\"Returns the next shot as [row, col] (0 to 7) on a square of the map that is still '.'.\"\"\"\n    return [0, 0]\n";

/// The starting `act` of run `seed`: it fires at one fixed square every time, so it fails at its
/// second shot as the paper's does. Seed 0 fires at [0, 0]; other seeds at a square of their
/// own, so seeds start from different programs and greedy decoding does not give every seed
/// the same reply (their boards differ too, but the starting program fails before that shows).
pub fn act_source(seed: u64) -> String {
    if seed == 0 {
        return ACT.to_string();
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0xAC7_0000);
    let (r, c) = (rng.gen_range(0..SIZE), rng.gen_range(0..SIZE));
    ACT.replace("return [0, 0]", &format!("return [{r}, {c}]"))
}

/// The hidden board: which squares hold a ship.
#[derive(Clone, Debug, PartialEq)]
pub struct Board {
    ships: Vec<Vec<bool>>,
}

impl Board {
    /// A board with `SHIPS` placed at random (no overlaps), from `seed`.
    pub fn random(seed: u64) -> Board {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0xBA77_1E5B);
        let mut ships = vec![vec![false; SIZE]; SIZE];
        for &len in &SHIPS {
            loop {
                let horizontal = rng.gen_bool(0.5);
                let (r, c) = if horizontal {
                    (rng.gen_range(0..SIZE), rng.gen_range(0..=SIZE - len))
                } else {
                    (rng.gen_range(0..=SIZE - len), rng.gen_range(0..SIZE))
                };
                let cells: Vec<(usize, usize)> =
                    (0..len).map(|i| if horizontal { (r, c + i) } else { (r + i, c) }).collect();
                if cells.iter().all(|&(r, c)| !ships[r][c]) {
                    for (r, c) in cells {
                        ships[r][c] = true;
                    }
                    break;
                }
            }
        }
        Board { ships }
    }

    pub fn ship_squares(&self) -> usize {
        self.ships.iter().flatten().filter(|&&s| s).count()
    }

    /// Fires at `shot` on `map`; returns the new map or the reason the shot is invalid.
    pub fn fire(&self, map: &Value, shot: &Value) -> std::result::Result<Value, String> {
        let rows: Vec<String> = match map {
            Value::List(rows) => {
                rows.iter().filter_map(|r| r.as_str().map(str::to_string)).collect()
            }
            _ => return Err("(TypeError) the map must be a list of strings".into()),
        };
        let coords: Vec<i64> = match shot {
            Value::List(items) if items.len() == 2 => {
                items.iter().filter_map(Value::as_i64).collect()
            }
            other => {
                return Err(format!(
                    "(ValueError) act() must return [row, col] with two ints, got {}",
                    other.py_repr()
                ))
            }
        };
        let [r, c] = coords[..] else {
            return Err(format!(
                "(ValueError) act() must return [row, col] with two ints, got {}",
                shot.py_repr()
            ));
        };
        if !(0..SIZE as i64).contains(&r) || !(0..SIZE as i64).contains(&c) {
            return Err(format!(
                "(ValueError) shot [{r}, {c}] is off the board (rows and columns are 0 to 7)"
            ));
        }
        let (r, c) = (r as usize, c as usize);
        let mut row: Vec<char> = rows[r].chars().collect();
        if row[c] != '.' {
            return Err(format!(
                "(ValueError) square [{r}, {c}] was already fired at (it shows '{}')",
                row[c]
            ));
        }
        row[c] = if self.ships[r][c] { 'X' } else { 'O' };
        let mut rows = rows;
        rows[r] = row.into_iter().collect();
        Ok(Value::List(rows.into_iter().map(Value::Str).collect()))
    }
}

fn hits(map: &Value) -> usize {
    match map {
        Value::List(rows) => {
            rows.iter().filter_map(Value::as_str).map(|r| r.matches('X').count()).sum()
        }
        _ => 0,
    }
}

pub struct BattleshipTask {
    pub problem: usize,
    sandbox: Arc<dyn Sandbox>,
}

impl BattleshipTask {
    /// With the memory-capped worker sandbox; an error when its binary cannot be found.
    pub fn new(problem: usize) -> Result<Self> {
        Ok(Self::with_sandbox(problem, Arc::new(default_sandbox(Limits::default())?)))
    }

    /// With a sandbox of the caller's choosing (tests of the game use the in-process one).
    pub fn with_sandbox(problem: usize, sandbox: Arc<dyn Sandbox>) -> Self {
        BattleshipTask { problem, sandbox }
    }

    fn board(&self, seed: u64) -> Board {
        Board::random(seed.wrapping_mul(1_000_003) + self.problem as u64)
    }
}

impl Task for BattleshipTask {
    fn name(&self) -> String {
        format!("battleship-{}", self.problem)
    }

    fn objective(&self) -> String {
        format!(
            "Improve the code of reason and act so the program hits as many ship squares as possible in {SHOTS} shots on an 8x8 board with ships of lengths 2, 3, 3 and 4. Never fire at a square twice. After a hit ('X'), try the neighbouring squares."
        )
    }

    fn parameters(&self, graph: &Graph, seed: u64) -> Vec<Node> {
        // The initial sources parse (a test holds it), so these cannot fail.
        let reason = TracedCode::new(graph, REASON).map(|c| c.param().clone());
        let act = TracedCode::new(graph, &act_source(seed)).map(|c| c.param().clone());
        [reason, act].into_iter().filter_map(|p| p.ok()).collect()
    }

    fn forward(&self, graph: &Graph, params: &[Node], seed: u64, _step: usize) -> Result<Node> {
        let [reason_param, act_param] = params else {
            return Err(crate::Error::Task {
                task: self.name(),
                reason: "expects the parameters reason and act".into(),
            });
        };
        let reason = TracedCode::bind(reason_param, REASON)?;
        let act = TracedCode::bind(act_param, ACT)?;
        let board = self.board(seed);
        let fire = FnSpec::new("fire", "Fires at the square [row, col] of the hidden board and returns the map with 'X' (hit) or 'O' (miss) there.", &["map", "shot"]);
        let mut map =
            graph.value_named("map", Value::List(vec![Value::Str(".".repeat(SIZE)); SIZE]));
        for _ in 0..SHOTS {
            let plan = reason.call(self.sandbox.as_ref(), &[&map])?;
            let shot = act.call(self.sandbox.as_ref(), &[&map, &plan])?;
            map = fire.call_in(graph, &[&map, &shot], |v| board.fire(&v[0], &v[1]))?;
        }
        let count = FnSpec::new("count_hits", "Counts the 'X' squares of the map.", &["map"]);
        count.call_in(graph, &[&map], |v| Ok(Value::Int(hits(&v[0]) as i64)))
    }

    fn evaluate(&self, output: &Node, _seed: u64, _step: usize) -> Evaluation {
        let hits = output.value().as_i64().unwrap_or(0) as usize;
        let rate = hits as f64 / SHOTS as f64;
        let feedback = format!("Hit {hits} of {SHOTS} shots (hit rate {rate:.1}). Higher is better; the board has {} ship squares.", SHIPS.iter().sum::<usize>());
        Evaluation { score: rate, feedback, success: hits == SHOTS }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_are_seeded_and_hold_every_ship() {
        assert_eq!(Board::random(3), Board::random(3));
        assert_ne!(Board::random(3), Board::random(4));
        assert_eq!(Board::random(7).ship_squares(), SHIPS.iter().sum::<usize>());
    }

    #[test]
    fn the_initial_code_fails_on_its_second_shot_with_a_clear_error() {
        let task = BattleshipTask::with_sandbox(0, Arc::new(crate::code::MontySandbox::default()));
        let g = Graph::new();
        let params = task.parameters(&g, 0);
        assert_eq!(params.iter().map(Node::name).collect::<Vec<_>>(), vec!["__code0", "__code1"]);
        let err = task.forward(&g, &params, 0, 0).unwrap_err();
        assert!(err.to_string().contains("already fired"), "{err}");
    }

    #[test]
    fn seeds_start_from_different_programs_that_fail_on_different_squares() {
        let task = BattleshipTask::new(0).unwrap();
        let errors: Vec<String> = (0..4)
            .map(|seed| {
                let g = Graph::new();
                let params = task.parameters(&g, seed);
                assert_eq!(params.len(), 2, "seed {seed}: both functions parse");
                task.forward(&g, &params, seed, 0).unwrap_err().to_string()
            })
            .collect();
        for (i, e) in errors.iter().enumerate() {
            assert!(e.contains("already fired"), "{e}");
            assert!(
                errors[i + 1..].iter().all(|other| other != e),
                "seeds must not fail identically: {errors:?}"
            );
        }
    }

    #[test]
    fn a_scanning_strategy_plays_the_whole_game() {
        let task = BattleshipTask::with_sandbox(0, Arc::new(crate::code::MontySandbox::default()));
        let g = Graph::new();
        let params = task.parameters(&g, 0);
        params[1].set_value(Value::Code(
            "def act(map, plan):\n    \"\"\"Scan.\"\"\"\n    for r in range(8):\n        for c in range(8):\n            if map[r][c] == '.':\n                return [r, c]\n    return [0, 0]\n".into(),
        ));
        let out = task.forward(&g, &params, 0, 0).unwrap();
        let board = task.board(0);
        let expected = (0..SHOTS).filter(|&i| board.ships[i / SIZE][i % SIZE]).count();
        assert_eq!(out.value(), Value::Int(expected as i64));
        let e = task.evaluate(&out, 0, 0);
        assert_eq!(e.score, expected as f64 / SHOTS as f64);
    }
}
