//! The line guard: with one numeric variable and feedback that says which way the output should
//! go ("should be larger", "too high", ...), every try tells which values are no longer worth
//! an evaluation. A small model does not see that on its own: it repeats tried values, shrinks its
//! steps towards zero, moves the way the feedback ruled out, or lands anywhere inside a bracket
//! it was shown. When its value is ruled out by the tries, the guard puts in the step a careful
//! engineer would take instead:
//! - once two neighbouring tries got opposite directions (a bracket: the output crosses the
//!   target between them), the simplest number in the middle half of that bracket, nearest its
//!   middle (an integer before a tenth, a tenth before a hundredth, ...): each try at least
//!   quarters the bracket, and answers that people write down (small integers, short decimals)
//!   are found in a few steps;
//! - before a bracket, a step in the direction the tried outputs say moves the output the right
//!   way, twice as long as the last one (the model's own value is kept when it goes that way at
//!   least as far: a model steps by the same amount again and again, and the distance to the
//!   target is unknown, so steps grow geometrically until the feedback turns).
//!
//! It is the one-candidate setting's counterpart of a search's numeric proposals: those use
//! scores, this uses only the direction words and the outputs the prompt shows anyway. Nothing
//! here knows a task: the direction comes from generic words, and a feedback without them, more
//! than one output, or a variable that is not a number leaves the model's value alone.

use serde::{Deserialize, Serialize};

/// Which way the feedback asks the output to move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    fn sign(self) -> f64 {
        match self {
            Direction::Up => 1.0,
            Direction::Down => -1.0,
        }
    }
}

/// Reads the direction out of a feedback text; `None` when it names neither way, or both.
pub fn direction_of(feedback: &str) -> Option<Direction> {
    let text = feedback.to_lowercase();
    const UP_PHRASES: &[&str] = &[
        "too small",
        "too low",
        "not large enough",
        "not big enough",
        "not high enough",
        "below the target",
    ];
    const DOWN_PHRASES: &[&str] = &[
        "too large",
        "too big",
        "too high",
        "not small enough",
        "not low enough",
        "above the target",
    ];
    let up = UP_PHRASES.iter().any(|p| text.contains(p));
    let down = DOWN_PHRASES.iter().any(|p| text.contains(p));
    match (up, down) {
        (true, false) => return Some(Direction::Up),
        (false, true) => return Some(Direction::Down),
        (true, true) => return None,
        (false, false) => {}
    }
    let words: Vec<&str> =
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let has = |set: &[&str]| words.iter().any(|w| set.contains(w));
    let up = has(&["larger", "bigger", "greater", "higher", "increase", "raise"]);
    let down = has(&["smaller", "lower", "less", "decrease", "reduce"]);
    match (up, down) {
        (true, false) => Some(Direction::Up),
        (false, true) => Some(Direction::Down),
        _ => None,
    }
}

/// One evaluated value of the variable.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineTry {
    pub x: f64,
    /// The output, when it was a finite number.
    pub output: Option<f64>,
    pub direction: Option<Direction>,
}

/// What the guard put in place of the model's value, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Replacement {
    pub value: f64,
    pub reason: String,
}

/// The value to use instead of `proposed` (the model's value; `None` when it gave none), or
/// `None` to keep the model's. `tries` are every evaluated value so far, the current one last.
/// With `integer`, only whole numbers are proposed.
pub fn guard(tries: &[LineTry], proposed: Option<f64>, integer: bool) -> Option<Replacement> {
    let current = tries.last()?;
    current.direction?;
    let tried = |x: f64| tries.iter().any(|t| t.x == x);
    // the latest try of each value, with a direction, sorted by value
    let mut points: Vec<LineTry> = Vec::new();
    for t in tries.iter().rev() {
        if t.direction.is_some() && !points.iter().any(|p| p.x == t.x) {
            points.push(*t);
        }
    }
    points.sort_by(|a, b| a.x.total_cmp(&b.x));

    if let Some((lo, hi)) = narrowest_bracket(&points) {
        let pick = simplest_between(lo.x, hi.x, integer)?;
        let keep = proposed.is_some_and(|p| {
            !tried(p) && in_middle_half(p, lo.x, hi.x) && decimals(p) <= decimals(pick)
        });
        if keep || proposed == Some(pick) {
            return None;
        }
        return Some(Replacement {
            value: pick,
            reason: format!("the feedback changes direction between {} and {}: the simplest value in the middle of that bracket", show(lo.x), show(hi.x)),
        });
    }

    // No bracket: every try asks for the same direction.
    let want = current.direction?;
    let with_output: Vec<(f64, f64)> =
        points.iter().filter_map(|p| p.output.map(|y| (p.x, y))).collect();
    let &(xb, yb) =
        with_output.iter().max_by(|a, b| (a.1 * want.sign()).total_cmp(&(b.1 * want.sign())))?;
    let Some(&(xn, yn)) = with_output
        .iter()
        .filter(|p| p.0 != xb)
        .min_by(|a, b| (a.0 - xb).abs().total_cmp(&(b.0 - xb).abs()))
    else {
        // one try so far: the model picks the first direction; only a repeat is replaced
        return match proposed {
            Some(p) if !tried(p) => None,
            _ => Some(Replacement {
                value: tidy(round_if(xb + xb.abs().max(1.0), integer)),
                reason: "the value was already tried: a step away from it".into(),
            }),
        };
    };
    let both_sides = with_output.iter().any(|p| p.0 < xb) && with_output.iter().any(|p| p.0 > xb);
    if yb == yn || both_sides {
        // the outputs do not say which way to go (flat, or the best lies between other tries)
        return None;
    }
    // the way to move x so that the output moves the way the feedback asks
    let slope = (yb - yn) / (xb - xn);
    let way = slope.signum() * want.sign();
    let last_step = (xb - xn).abs();
    // the target's distance is unknown, so steps grow geometrically until the feedback turns
    let keep = proposed
        .is_some_and(|p| !tried(p) && (p - xb) * way > 0.0 && (p - xb).abs() >= 2.0 * last_step);
    if keep {
        return None;
    }
    let value = tidy(round_if(xb + way * 2.0 * last_step, integer));
    if tried(value) {
        return None;
    }
    Some(Replacement {
        value,
        reason: format!(
            "every try so far asks for a {} output, and the output {} as the value grows: a step twice the last one, the way that moves the output as asked",
            match want {
                Direction::Up => "larger",
                Direction::Down => "smaller",
            },
            if slope > 0.0 { "grows" } else { "falls" },
        ),
    })
}

/// The neighbouring tries with opposite directions that lie closest together.
fn narrowest_bracket(points: &[LineTry]) -> Option<(LineTry, LineTry)> {
    points
        .windows(2)
        .filter(|w| w[0].direction != w[1].direction)
        .min_by(|a, b| (a[1].x - a[0].x).total_cmp(&(b[1].x - b[0].x)))
        .map(|w| (w[0], w[1]))
}

fn in_middle_half(p: f64, lo: f64, hi: f64) -> bool {
    let q = (hi - lo) / 4.0;
    p >= lo + q && p <= hi - q
}

/// The number with the fewest decimals in the middle half of (lo, hi), nearest the middle;
/// for an integer variable, the whole number nearest the middle strictly inside (lo, hi).
pub fn simplest_between(lo: f64, hi: f64, integer: bool) -> Option<f64> {
    let mid = (lo + hi) / 2.0;
    if integer {
        let candidates = [mid.floor(), mid.ceil()];
        return candidates
            .into_iter()
            .filter(|c| *c > lo && *c < hi)
            .min_by(|a, b| (a - mid).abs().total_cmp(&(b - mid).abs()));
    }
    let q = (hi - lo) / 4.0;
    let (a, b) = (lo + q, hi - q);
    for d in 0..=12 {
        let scale = 10f64.powi(d);
        let (k_lo, k_hi) = ((a * scale).ceil(), (b * scale).floor());
        if k_lo <= k_hi {
            let k = (mid * scale).round().clamp(k_lo, k_hi);
            let v = k / scale;
            // the shortest decimal text of the value, so that 0.30000000000000004 reads 0.3
            return format!("{:.*}", d as usize, v).parse().ok();
        }
    }
    Some(mid)
}

/// Decimals in the shortest text of `x` (0 for whole numbers).
fn decimals(x: f64) -> usize {
    let s = format!("{x}");
    s.split_once('.').map_or(0, |(_, frac)| frac.len())
}

/// `x` to 12 significant digits, so that sums of decimals read as they would be written
/// (0.3, not 0.30000000000000004).
fn tidy(x: f64) -> f64 {
    format!("{x:.11e}").parse().unwrap_or(x)
}

fn round_if(x: f64, integer: bool) -> f64 {
    if integer {
        x.round()
    } else {
        x
    }
}

fn show(x: f64) -> String {
    crate::graph::Value::Float(x).py_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{Down, Up};

    fn t(x: f64, y: f64, d: Direction) -> LineTry {
        LineTry { x, output: Some(y), direction: Some(d) }
    }

    #[test]
    fn direction_words_are_read_and_conflicts_are_not() {
        assert_eq!(direction_of("The output should be larger."), Some(Up));
        assert_eq!(direction_of("Too high: bring it down"), Some(Down));
        assert_eq!(direction_of("the value is too small"), Some(Up));
        assert_eq!(direction_of("should be smaller"), Some(Down));
        assert_eq!(direction_of("Success: the output equals the target."), None);
        assert_eq!(direction_of("larger here, smaller there"), None);
    }

    #[test]
    fn the_simplest_number_in_the_middle_half_is_picked() {
        let v = simplest_between(1.0, 4.0, false).unwrap();
        assert!(v == 2.0 || v == 3.0, "{v}");
        assert_eq!(simplest_between(2.0, 3.0, false), Some(2.5));
        assert_eq!(simplest_between(2.5, 3.0, false), Some(2.8));
        assert_eq!(simplest_between(-0.3, 0.9, false), Some(0.0));
        assert_eq!(simplest_between(2.0, 3.0, true), None);
        assert_eq!(simplest_between(2.0, 5.0, true).map(|v| v == 3.0 || v == 4.0), Some(true));
    }

    #[test]
    fn inside_a_bracket_an_off_centre_or_tried_value_is_replaced() {
        let tries = [t(0.0, 1.0, Up), t(8.0, 20.0, Down)];
        // the model hugs one end
        let r = guard(&tries, Some(7.9), false).unwrap();
        assert_eq!(r.value, 4.0);
        // a repeat
        assert_eq!(guard(&tries, Some(8.0), false).unwrap().value, 4.0);
        // an equally simple value in the middle half is the model's choice
        assert!(guard(&tries, Some(3.0), false).is_none());
        // a value outside the bracket
        assert_eq!(guard(&tries, Some(-5.0), false).unwrap().value, 4.0);
    }

    #[test]
    fn bisection_finds_a_whole_number_answer_in_a_few_steps() {
        // h(x) = 3x - 2, target at x* = 5 (h = 13); the model keeps proposing nonsense
        let h = |x: f64| 3.0 * x - 2.0;
        let mut tries = vec![];
        let mut x = 0.0;
        let mut solved_at = None;
        for step in 0..10 {
            let y = h(x);
            if (y - 13.0).abs() < 1e-9 {
                solved_at = Some(step);
                break;
            }
            tries.push(LineTry {
                x,
                output: Some(y),
                direction: Some(if y < 13.0 { Up } else { Down }),
            });
            x = guard(&tries, Some(0.5), false).map_or(0.5, |r| r.value);
        }
        assert!(solved_at.is_some_and(|s| s <= 7), "{tries:?}");
    }

    #[test]
    fn before_a_bracket_the_step_goes_the_way_the_outputs_say() {
        // output falls as x grows; feedback wants it larger: go left
        let tries = [t(0.0, 5.0, Up), t(1.0, 3.0, Up)];
        let r = guard(&tries, Some(2.0), false).unwrap();
        assert_eq!(r.value, -2.0);
        // the model going left at least twice as far is kept
        assert!(guard(&tries, Some(-2.5), false).is_none());
        // a shrinking or same-size step is replaced
        assert_eq!(guard(&tries, Some(-0.1), false).unwrap().value, -2.0);
        assert_eq!(guard(&tries, Some(-1.0), false).unwrap().value, -2.0);
    }

    #[test]
    fn replacement_values_read_as_written() {
        let tries = [t(0.0, 0.0, Down), t(0.1, -1.0, Down)];
        assert_eq!(guard(&tries, None, false).unwrap().value, 0.3);
    }

    #[test]
    fn no_direction_or_one_try_leaves_the_model_alone() {
        let none = [LineTry { x: 0.0, output: Some(1.0), direction: None }];
        assert!(guard(&none, Some(3.0), false).is_none());
        assert!(guard(&[t(0.0, 1.0, Up)], Some(3.0), false).is_none());
        assert_eq!(guard(&[t(0.0, 1.0, Up)], Some(0.0), false).unwrap().value, 1.0);
    }
}
