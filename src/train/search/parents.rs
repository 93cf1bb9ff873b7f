//! Which scored sets a step asks the model to improve: the best (`best-of`), the best few
//! (`beam`), or the one with the highest priority (`priority`: its score's rank plus a UCB1
//! bonus for sets expanded rarely, as OpenTrace's PrioritySearch explores).

use super::history::History;
use super::strategy::Strategy;

/// Indices into `history` of the parents of this step (empty for the baselines and greedy).
pub fn choose(history: &History, strategy: &Strategy, exploration: f64) -> Vec<usize> {
    let ranked = history.ranked();
    match *strategy {
        Strategy::BestOf { .. } => ranked.into_iter().take(1).collect(),
        Strategy::Beam { width, .. } => ranked.into_iter().take(width).collect(),
        Strategy::Priority { .. } => priority(history, &ranked, exploration).into_iter().collect(),
        Strategy::Greedy | Strategy::Random { .. } | Strategy::Section { .. } => Vec::new(),
    }
}

/// UCB1 over score ranks: a set's value is 1 for the best, 0 for the worst; its bonus is
/// `c·sqrt(ln(N + 1) / (n + 1))` with N the expansions so far and n its own. Failed sets (−inf,
/// NaN) are never expanded while a working one exists.
fn priority(history: &History, ranked: &[usize], c: f64) -> Option<usize> {
    let usable: Vec<usize> =
        ranked.iter().copied().filter(|&i| history.get(i).score.is_finite()).collect();
    let pool = if usable.is_empty() { ranked.to_vec() } else { usable };
    let n = pool.len();
    let total: f64 = pool.iter().map(|&i| history.get(i).expansions as f64).sum();
    pool.iter()
        .enumerate()
        .map(|(rank, &i)| {
            let value = if n == 1 { 1.0 } else { 1.0 - rank as f64 / (n - 1) as f64 };
            let bonus = c * ((total + 1.0).ln() / (history.get(i).expansions as f64 + 1.0)).sqrt();
            (i, value + bonus)
        })
        .fold(None::<(usize, f64)>, |best, (i, p)| match best {
            Some((_, bp)) if bp >= p => best,
            _ => Some((i, p)),
        })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Value;
    use crate::train::search::history::Tried;

    fn h(scores: &[f64]) -> History {
        let mut h = History::default();
        for (i, &s) in scores.iter().enumerate() {
            h.add(Tried {
                values: [("x".to_string(), Value::Int(i as i64))].into_iter().collect(),
                score: s,
                feedback: String::new(),
                output: None,
                success: false,
                step: 0,
                expansions: 0,
            });
        }
        h
    }

    #[test]
    fn best_of_takes_the_best_and_beam_the_best_few() {
        let h = h(&[-5.0, -1.0, -3.0, f64::NEG_INFINITY]);
        assert_eq!(choose(&h, &Strategy::BestOf { k: 4 }, 0.5), vec![1]);
        assert_eq!(choose(&h, &Strategy::Beam { width: 2, k: 4 }, 0.5), vec![1, 2]);
        assert!(choose(&h, &Strategy::Random { k: 4 }, 0.5).is_empty());
    }

    #[test]
    fn priority_starts_at_the_best_and_explores_a_runner_up_once_the_best_was_expanded_often() {
        let mut hist = h(&[-5.0, -1.0, -2.0]);
        assert_eq!(choose(&hist, &Strategy::Priority { k: 4 }, 0.5), vec![1]);
        hist.get_mut(1).expansions = 3;
        assert_eq!(choose(&hist, &Strategy::Priority { k: 4 }, 1.0), vec![2]);
        // without exploration it never leaves the best
        assert_eq!(choose(&hist, &Strategy::Priority { k: 4 }, 0.0), vec![1]);
    }
}
