//! OptoPrime's memory: the tries shown to the model under "Earlier values ...". A try that is
//! made again replaces its old entry (the model sees each value once, with its latest feedback),
//! so a model that circles back between two values sees that it already tried both.
//!
//! Two orders. `Recent` keeps the latest tries, oldest first: the paper's memory, and what runs
//! with one candidate and no score use. `Ranked` is for searches, which score every candidate:
//! when full it drops the worst-scored try instead of the oldest, and shows the tries from worst
//! to best, so the best values so far stay in view (and nearest the question) however many
//! candidates each step adds.

use super::prompt::MemoryEntry;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// How the memory chooses and orders what it shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryOrder {
    /// The latest tries, oldest first.
    #[default]
    Recent,
    /// The best-scored tries, worst first (entries without a score count as the worst).
    Ranked,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Memory {
    entries: VecDeque<MemoryEntry>,
}

impl Memory {
    /// Adds a try, replacing an earlier entry with the same values (its score is kept when the
    /// new entry has none), then trims to `capacity` by `order`.
    pub fn remember(&mut self, mut entry: MemoryEntry, capacity: usize, order: MemoryOrder) {
        if capacity == 0 {
            return;
        }
        if let Some(i) = self.entries.iter().position(|e| e.variables == entry.variables) {
            let old = self.entries.remove(i).expect("index from position");
            entry.score = entry.score.or(old.score);
            entry.output = entry.output.or(old.output);
        }
        self.entries.push_back(entry);
        while self.entries.len() > capacity {
            match order {
                MemoryOrder::Recent => {
                    self.entries.pop_front();
                }
                MemoryOrder::Ranked => {
                    let worst = (0..self.entries.len())
                        .min_by(|&a, &b| {
                            rank_key(&self.entries[a]).total_cmp(&rank_key(&self.entries[b]))
                        })
                        .unwrap_or(0);
                    self.entries.remove(worst);
                }
            }
        }
    }

    /// The entries in the order the prompt shows them.
    pub fn shown(&self, order: MemoryOrder) -> Vec<MemoryEntry> {
        let mut out: Vec<MemoryEntry> = self.entries.iter().cloned().collect();
        if order == MemoryOrder::Ranked {
            // stable: equal scores keep their age order
            out.sort_by(|a, b| rank_key(a).total_cmp(&rank_key(b)));
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = &MemoryEntry> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn rank_key(e: &MemoryEntry) -> f64 {
    match e.score {
        Some(s) if !s.is_nan() => s,
        _ => f64::NEG_INFINITY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(x: f64, score: Option<f64>) -> MemoryEntry {
        MemoryEntry {
            variables: [("x".to_string(), serde_json::json!(x))].into_iter().collect(),
            output: None,
            feedback: format!("fb {x}"),
            score,
        }
    }

    fn xs(entries: &[MemoryEntry]) -> Vec<f64> {
        entries.iter().map(|e| e.variables["x"].as_f64().unwrap()).collect()
    }

    #[test]
    fn a_repeated_try_replaces_its_old_entry() {
        let mut m = Memory::default();
        for x in [1.0, 2.0, 1.0] {
            m.remember(entry(x, None), 5, MemoryOrder::Recent);
        }
        assert_eq!(xs(&m.shown(MemoryOrder::Recent)), vec![2.0, 1.0]);
    }

    #[test]
    fn recent_keeps_the_latest_and_ranked_keeps_the_best() {
        let mut recent = Memory::default();
        let mut ranked = Memory::default();
        for (x, s) in [(0.0, -9.0), (1.0, -1.0), (2.0, -5.0), (3.0, -7.0), (4.0, -3.0)] {
            recent.remember(entry(x, Some(s)), 3, MemoryOrder::Recent);
            ranked.remember(entry(x, Some(s)), 3, MemoryOrder::Ranked);
        }
        assert_eq!(xs(&recent.shown(MemoryOrder::Recent)), vec![2.0, 3.0, 4.0]);
        // best last
        assert_eq!(xs(&ranked.shown(MemoryOrder::Ranked)), vec![2.0, 4.0, 1.0]);
    }

    #[test]
    fn a_rescored_try_keeps_its_score_and_capacity_zero_remembers_nothing() {
        let mut m = Memory::default();
        m.remember(entry(1.0, Some(-2.0)), 4, MemoryOrder::Ranked);
        m.remember(entry(1.0, None), 4, MemoryOrder::Ranked);
        assert_eq!(m.iter().next().unwrap().score, Some(-2.0));
        let mut none = Memory::default();
        none.remember(entry(1.0, None), 0, MemoryOrder::Recent);
        assert!(none.is_empty());
    }
}
