//! Every parameter set a run has scored: what search deduplicates against, what the numeric
//! proposals interpolate, and what `priority` and `beam` choose parents from. Saved in the
//! checkpoint, so a resumed search knows what it already tried.

use crate::graph::Value;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// One scored parameter set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tried {
    pub values: IndexMap<String, Value>,
    #[serde(with = "crate::util::score_serde")]
    pub score: f64,
    pub feedback: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    pub success: bool,
    /// The step it was scored at.
    pub step: usize,
    /// How often the model was asked to improve it.
    #[serde(default)]
    pub expansions: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct History {
    tried: Vec<Tried>,
}

/// Two parameter sets are the same try when their values print the same (an int and a float
/// of equal value are different tries, as they are different Python values).
pub fn key(values: &IndexMap<String, Value>) -> String {
    serde_json::to_string(values).unwrap_or_default()
}

impl History {
    pub fn find(&self, values: &IndexMap<String, Value>) -> Option<usize> {
        let k = key(values);
        self.tried.iter().position(|t| key(&t.values) == k)
    }

    pub fn contains(&self, values: &IndexMap<String, Value>) -> bool {
        self.find(values).is_some()
    }

    /// Adds a scored set unless it is already there; returns its index.
    pub fn add(&mut self, tried: Tried) -> usize {
        match self.find(&tried.values) {
            Some(i) => i,
            None => {
                self.tried.push(tried);
                self.tried.len() - 1
            }
        }
    }

    /// The best-scored set (the earliest among equals); NaN scores never win.
    pub fn best(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, t) in self.tried.iter().enumerate() {
            if t.score.is_nan() {
                continue;
            }
            if best.is_none_or(|b| t.score > self.tried[b].score) {
                best = Some(i);
            }
        }
        best
    }

    /// Indices from best to worst (NaN last).
    pub fn ranked(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.tried.len()).collect();
        // NaN sorts after everything, −inf included
        let key = |i: usize| (self.tried[i].score.is_nan(), -self.tried[i].score);
        idx.sort_by(|&a, &b| {
            let (na, sa) = key(a);
            let (nb, sb) = key(b);
            na.cmp(&nb)
                .then(if na { std::cmp::Ordering::Equal } else { sa.total_cmp(&sb) })
                .then(a.cmp(&b))
        });
        idx
    }

    pub fn get(&self, i: usize) -> &Tried {
        &self.tried[i]
    }

    pub fn get_mut(&mut self, i: usize) -> &mut Tried {
        &mut self.tried[i]
    }

    pub fn len(&self) -> usize {
        self.tried.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tried.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Tried> {
        self.tried.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tried(x: f64, score: f64) -> Tried {
        Tried {
            values: [("x".to_string(), Value::Float(x))].into_iter().collect(),
            score,
            feedback: String::new(),
            output: None,
            success: false,
            step: 0,
            expansions: 0,
        }
    }

    #[test]
    fn a_set_is_kept_once_and_the_best_is_found() {
        let mut h = History::default();
        assert_eq!(h.add(tried(1.0, -3.0)), 0);
        assert_eq!(h.add(tried(2.0, -1.0)), 1);
        assert_eq!(h.add(tried(1.0, -0.5)), 0, "a repeat is not added again");
        h.add(tried(3.0, f64::NAN));
        h.add(tried(4.0, f64::NEG_INFINITY));
        assert_eq!(h.len(), 4);
        assert_eq!(h.best(), Some(1));
        assert_eq!(h.ranked(), vec![1, 0, 3, 2]);
        // an int 1 and a float 1.0 are different tries
        let int_one: IndexMap<String, Value> =
            [("x".to_string(), Value::Int(1))].into_iter().collect();
        assert!(!h.contains(&int_one));
    }
}
