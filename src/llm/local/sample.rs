//! Choosing the next token from logits: greedy, or temperature with top-k and top-p, from a
//! per-request seeded generator so that a request replays exactly.

use crate::llm::GenerationParams;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub struct Sampler {
    temperature: f32,
    top_k: usize,
    top_p: f32,
    rng: StdRng,
}

impl Sampler {
    pub fn new(p: &GenerationParams) -> Self {
        Sampler { temperature: p.temperature, top_k: p.top_k, top_p: p.top_p, rng: StdRng::seed_from_u64(p.seed) }
    }

    /// Picks a token among those with a finite logit; `None` when there is none.
    pub fn sample(&mut self, logits: &[f32]) -> Option<u32> {
        // NaN and non-positive temperatures mean greedy.
        if self.temperature.is_nan() || self.temperature <= 0.0 {
            return argmax(logits);
        }
        let mut cands: Vec<(u32, f32)> =
            logits.iter().enumerate().filter(|(_, l)| l.is_finite()).map(|(i, &l)| (i as u32, l / self.temperature)).collect();
        if cands.is_empty() {
            return None;
        }
        // Stable order (logit desc, id asc) keeps the draw reproducible.
        cands.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if self.top_k > 0 && cands.len() > self.top_k {
            cands.truncate(self.top_k);
        }
        let max = cands[0].1;
        let mut probs: Vec<f64> = cands.iter().map(|(_, l)| ((l - max) as f64).exp()).collect();
        let sum: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= sum);
        if self.top_p > 0.0 && self.top_p < 1.0 {
            let mut acc = 0.0;
            let mut keep = probs.len();
            for (i, p) in probs.iter().enumerate() {
                acc += p;
                if acc >= self.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep);
            let s: f64 = probs.iter().sum();
            probs.iter_mut().for_each(|p| *p /= s);
        }
        let r: f64 = self.rng.gen();
        let mut acc = 0.0;
        for (i, p) in probs.iter().enumerate() {
            acc += p;
            if r < acc {
                return Some(cands[i].0);
            }
        }
        Some(cands[probs.len() - 1].0)
    }
}

/// The index of the largest finite logit (the lowest index on ties).
pub fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        if l.is_finite() && best.is_none_or(|(_, b)| l > b) {
            best = Some((i, l));
        }
    }
    best.map(|(i, _)| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, top_k: usize, top_p: f32, seed: u64) -> GenerationParams {
        GenerationParams { temperature, top_k, top_p, seed, ..GenerationParams::default() }
    }

    #[test]
    fn greedy_takes_the_largest_finite_logit() {
        let mut s = Sampler::new(&params(0.0, 0, 1.0, 0));
        assert_eq!(s.sample(&[0.1, f32::INFINITY, 2.0, f32::NEG_INFINITY, 1.9]), Some(2));
        assert_eq!(s.sample(&[f32::NEG_INFINITY; 3]), None);
    }

    #[test]
    fn same_seed_same_draws_other_seed_other_draws() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 7919) % 13) as f32 * 0.1).collect();
        let draw = |seed| {
            let mut s = Sampler::new(&params(1.0, 0, 1.0, seed));
            (0..40).map(|_| s.sample(&logits).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn top_k_and_top_p_restrict_the_candidates() {
        let logits = [5.0, 4.9, 1.0, 0.5, 0.0];
        let mut k = Sampler::new(&params(1.0, 2, 1.0, 3));
        let mut p = Sampler::new(&params(1.0, 0, 0.5, 3));
        for _ in 0..200 {
            assert!(k.sample(&logits).unwrap() < 2);
            assert_eq!(p.sample(&logits), Some(0));
        }
    }

    #[test]
    fn masked_tokens_are_never_sampled() {
        let mut logits = vec![0.0f32; 10];
        for (i, l) in logits.iter_mut().enumerate() {
            if i % 3 != 0 {
                *l = f32::NEG_INFINITY;
            }
        }
        let mut s = Sampler::new(&params(2.0, 0, 1.0, 11));
        for _ in 0..200 {
            assert_eq!(s.sample(&logits).unwrap() % 3, 0);
        }
    }
}
