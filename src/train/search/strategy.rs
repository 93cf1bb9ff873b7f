//! The search strategies and their settings, as the CLI names them (`--search`).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// How a step picks its candidates and what it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Strategy {
    /// The optimizer's own step: one candidate, applied without scoring (the paper's setting,
    /// and what a task that acts on the world gets).
    Greedy,
    /// K candidates from the best parameters so far; the best-scoring of them and the current
    /// values is kept.
    BestOf { k: usize },
    /// The best `width` parameter sets so far are each expanded (K candidates shared among them).
    Beam { width: usize, k: usize },
    /// Every scored set waits in a priority queue; each step expands the one with the highest
    /// priority: its score rank plus an exploration bonus for sets expanded rarely (UCB1).
    Priority { k: usize },
    /// Baseline, no model: K values drawn uniformly within the task's bounds.
    Random { k: usize },
    /// Baseline, no model: K points evenly spaced in the bracket around the best value so far
    /// (the whole range at first), the K-point form of golden-section search.
    Section { k: usize },
}

impl Strategy {
    /// Parses `greedy`, `best-of[:K]`, `beam:B[:K]`, `priority[:K]`, `random[:K]`,
    /// `section[:K]`; K defaults to `candidates`.
    pub fn parse(text: &str, candidates: usize) -> Result<Strategy> {
        let bad = |why: String| Error::invalid("--search", format!("`{text}`: {why}"));
        let mut parts = text.split(':');
        let name = parts.next().unwrap_or_default().trim();
        let nums: Vec<usize> = parts
            .map(|p| {
                p.trim().parse::<usize>().map_err(|_| bad(format!("`{p}` is not a whole number")))
            })
            .collect::<Result<_>>()?;
        let k_at = |i: usize| nums.get(i).copied().unwrap_or(candidates);
        let strategy = match (name, nums.len()) {
            ("greedy", 0) => Strategy::Greedy,
            ("best-of", 0 | 1) => Strategy::BestOf { k: k_at(0) },
            ("beam", 1 | 2) => Strategy::Beam { width: nums[0], k: k_at(1) },
            ("beam", 0) => return Err(bad("name the beam's width, e.g. beam:2".into())),
            ("priority", 0 | 1) => Strategy::Priority { k: k_at(0) },
            ("random", 0 | 1) => Strategy::Random { k: k_at(0) },
            ("section", 0 | 1) => Strategy::Section { k: k_at(0) },
            ("greedy" | "best-of" | "beam" | "priority" | "random" | "section", _) => return Err(bad("too many numbers".into())),
            _ => return Err(bad("unknown search; use greedy, best-of[:K], beam:B[:K], priority[:K], random[:K] or section[:K]".into())),
        };
        strategy.validate().map_err(bad)?;
        Ok(strategy)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let k = self.candidates();
        if k == 0 {
            return Err("needs at least 1 candidate per step".into());
        }
        if k > MAX_CANDIDATES {
            return Err(format!(
                "{k} candidates per step is more than the {MAX_CANDIDATES} allowed"
            ));
        }
        if let Strategy::Beam { width, k } = *self {
            if width == 0 {
                return Err("a beam needs a width of at least 1".into());
            }
            if width > k {
                return Err(format!(
                    "a beam of width {width} needs at least {width} candidates per step, not {k}"
                ));
            }
        }
        Ok(())
    }

    /// Candidates evaluated per run per step (1 for greedy).
    pub fn candidates(&self) -> usize {
        match *self {
            Strategy::Greedy => 1,
            Strategy::BestOf { k }
            | Strategy::Beam { k, .. }
            | Strategy::Priority { k }
            | Strategy::Random { k }
            | Strategy::Section { k } => k,
        }
    }

    /// Whether the strategy asks the model (the baselines do not, and need no model loaded).
    pub fn uses_model(&self) -> bool {
        !matches!(self, Strategy::Random { .. } | Strategy::Section { .. })
    }

    /// Whether candidates are scored before one is kept (all but greedy).
    pub fn scores_candidates(&self) -> bool {
        !matches!(self, Strategy::Greedy)
    }

    /// The name as the CLI writes it.
    pub fn label(&self) -> String {
        match *self {
            Strategy::Greedy => "greedy".into(),
            Strategy::BestOf { k } => format!("best-of:{k}"),
            Strategy::Beam { width, k } => format!("beam:{width}:{k}"),
            Strategy::Priority { k } => format!("priority:{k}"),
            Strategy::Random { k } => format!("random:{k}"),
            Strategy::Section { k } => format!("section:{k}"),
        }
    }
}

/// More candidates per run per step than this is a typo.
pub const MAX_CANDIDATES: usize = 64;

/// What a search does besides its strategy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchSettings {
    pub strategy: Strategy,
    /// Let numeric proposals (bracketing, interpolation, expansion) take up to half of the
    /// candidates where a parameter is a number.
    pub numeric_proposals: bool,
    /// The first model candidate of a step samples at this temperature (0: greedy); the others
    /// spread over `spread`.
    pub base_temperature: f32,
    pub spread: (f32, f32),
    /// UCB exploration weight of `priority` (on score ranks in [0, 1]).
    pub exploration: f64,
}

impl SearchSettings {
    pub fn new(strategy: Strategy) -> Self {
        SearchSettings {
            strategy,
            numeric_proposals: true,
            base_temperature: 0.0,
            spread: (0.6, 1.2),
            exploration: 1.0,
        }
    }

    /// The sampling temperature of model candidate `i` of `n` (the first at the base temperature).
    pub fn temperature(&self, i: usize, n: usize) -> f32 {
        if i == 0 {
            return self.base_temperature;
        }
        let (lo, hi) = self.spread;
        if n <= 2 {
            return hi;
        }
        lo + (hi - lo) * (i - 1) as f32 / (n - 2) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_their_candidate_counts() {
        assert_eq!(Strategy::parse("greedy", 6).unwrap(), Strategy::Greedy);
        assert_eq!(Strategy::parse("best-of", 6).unwrap(), Strategy::BestOf { k: 6 });
        assert_eq!(Strategy::parse("best-of:8", 6).unwrap(), Strategy::BestOf { k: 8 });
        assert_eq!(Strategy::parse("beam:2", 6).unwrap(), Strategy::Beam { width: 2, k: 6 });
        assert_eq!(Strategy::parse("beam:3:9", 6).unwrap(), Strategy::Beam { width: 3, k: 9 });
        assert_eq!(Strategy::parse("priority", 4).unwrap(), Strategy::Priority { k: 4 });
        assert_eq!(Strategy::parse("section:5", 4).unwrap().label(), "section:5");
        assert!(!Strategy::parse("random", 4).unwrap().uses_model());
    }

    #[test]
    fn bad_searches_say_why() {
        for (text, k, why) in [
            ("best-of:0", 6, "at least 1 candidate"),
            ("best-of", 0, "at least 1 candidate"),
            ("beam:8", 6, "width 8 needs at least 8"),
            ("beam:0", 6, "width of at least 1"),
            ("beam", 6, "name the beam's width"),
            ("best-of:x", 6, "not a whole number"),
            ("anneal", 6, "unknown search"),
            ("best-of:100000", 6, "more than"),
        ] {
            let e = Strategy::parse(text, k).unwrap_err().to_string();
            assert!(e.contains("--search") && e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn the_first_candidate_is_greedy_and_the_rest_spread() {
        let s = SearchSettings::new(Strategy::BestOf { k: 4 });
        let t: Vec<f32> = (0..4).map(|i| s.temperature(i, 4)).collect();
        assert_eq!(t[0], 0.0);
        assert!((t[1] - 0.6).abs() < 1e-6 && (t[3] - 1.2).abs() < 1e-6);
    }
}
