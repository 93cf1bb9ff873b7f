//! Choosing the next token from logits: greedy, or temperature with top-k and top-p, from a
//! per-request seeded generator so that a request replays exactly.

use crate::llm::local::kernels::fastmath::{exp_nonpositive, lanes_reduce};
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
        Sampler {
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
            rng: StdRng::seed_from_u64(p.seed),
        }
    }

    /// Picks a token among those with a finite logit; `None` when there is none.
    ///
    /// Linear in the vocabulary: only the candidates that top-k or top-p can keep are ranked
    /// (sorting all 152K logits of a Qwen vocabulary cost 5.7 ms a token, an eighth of a
    /// decode step; `cargo bench --bench sample`), and plain temperature sampling ranks none.
    pub fn sample(&mut self, logits: &[f32]) -> Option<u32> {
        // NaN and non-positive temperatures mean greedy.
        if self.temperature.is_nan() || self.temperature <= 0.0 {
            return argmax(logits);
        }
        let max = finite_max(logits)?;
        let inv_t = 1.0 / self.temperature;
        // Unnormalized probabilities; masked (non-finite) tokens weigh nothing.
        // (The exponential is taken of every logit and then dropped where masked: a branch-free
        // loop that vectorizes.)
        let weights: Vec<f32> = logits
            .iter()
            .map(|&l| {
                let w = exp_nonpositive((l - max) * inv_t);
                if l.is_finite() {
                    w
                } else {
                    0.0
                }
            })
            .collect();
        let nucleus = self.top_p > 0.0 && self.top_p < 1.0;
        if self.top_k == 0 && !nucleus {
            let total: f64 = weights.iter().map(|&w| w as f64).sum();
            let r = self.rng.gen::<f64>() * total;
            return draw(r, (0..weights.len() as u32).map(|i| (i, weights[i as usize])));
        }
        let mut keys: Vec<u64> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, &l)| rank_key(l, i as u32))
            .collect();
        let mass = |ranked: &[u32]| ranked.iter().map(|&i| weights[i as usize] as f64).sum::<f64>();
        let mut ranked = if self.top_k > 0 { top(&mut keys, self.top_k) } else { Vec::new() };
        // What top-p keeps a share of: the top-k candidates, or the whole vocabulary.
        let base =
            if self.top_k > 0 { mass(&ranked) } else { weights.iter().map(|&w| w as f64).sum() };
        if self.top_k == 0 {
            // Rank more candidates until they hold the nucleus (usually a few dozen); past a
            // quarter of the vocabulary, one sort of all is cheaper than more selections.
            let mut m = 64;
            loop {
                if m >= keys.len() / 4 {
                    m = keys.len();
                }
                ranked = top(&mut keys, m);
                if m >= keys.len() || mass(&ranked) >= self.top_p as f64 * base {
                    break;
                }
                m *= 4;
            }
        }
        if nucleus {
            let mut acc = 0.0;
            let keep = ranked.iter().position(|&i| {
                acc += weights[i as usize] as f64;
                acc >= self.top_p as f64 * base
            });
            ranked.truncate(keep.map_or(ranked.len(), |k| k + 1));
        }
        let r = self.rng.gen::<f64>() * mass(&ranked);
        draw(r, ranked.iter().map(|&i| (i, weights[i as usize])))
    }
}

/// The first candidate at which the running weight passes `r` (the last one with weight, should
/// rounding leave `r` just past the total).
fn draw(r: f64, candidates: impl Iterator<Item = (u32, f32)>) -> Option<u32> {
    let mut acc = 0.0;
    let mut last = None;
    for (i, w) in candidates.filter(|&(_, w)| w > 0.0) {
        acc += w as f64;
        if r < acc {
            return Some(i);
        }
        last = Some(i);
    }
    last
}

/// A token's rank as one integer: the higher logit first, then the lower id (so that ranking
/// compares plain integers, several times faster than comparing logits through their ids).
fn rank_key(logit: f32, id: u32) -> u64 {
    // The float's bits reordered so that unsigned order is numeric order, then inverted.
    let bits = logit.to_bits();
    let ascending = if bits >> 31 == 1 { !bits } else { bits | 0x8000_0000 };
    ((!ascending as u64) << 32) | id as u64
}

/// The token ids of the `m` best `keys`, best first. Reorders `keys`.
fn top(keys: &mut [u64], m: usize) -> Vec<u32> {
    let m = m.min(keys.len());
    if m > 0 && m < keys.len() {
        keys.select_nth_unstable(m - 1);
    }
    let mut best = keys[..m].to_vec();
    best.sort_unstable();
    best.into_iter().map(|k| k as u32).collect()
}

/// The largest finite logit.
fn finite_max(logits: &[f32]) -> Option<f32> {
    let max =
        lanes_reduce(logits, f32::NEG_INFINITY, |m, l| if l.is_finite() { m.max(l) } else { m });
    max.is_finite().then_some(max)
}

/// The index of the largest finite logit (the lowest index on ties).
pub fn argmax(logits: &[f32]) -> Option<u32> {
    let max = finite_max(logits)?;
    logits.iter().position(|&l| l == max).map(|i| i as u32)
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
    fn rank_keys_order_by_logit_then_id() {
        let mut keys: Vec<u64> =
            [(-1.5f32, 4u32), (2.0, 9), (0.0, 1), (-0.0, 0), (2.0, 3), (f32::MIN, 2), (1e-30, 7)]
                .iter()
                .map(|&(l, i)| rank_key(l, i))
                .collect();
        keys.sort_unstable();
        // -0.0 ranks below 0.0 (total order), as `total_cmp` had it.
        assert_eq!(keys.iter().map(|&k| k as u32).collect::<Vec<_>>(), [3, 9, 7, 1, 0, 4, 2]);
    }

    #[test]
    fn draws_follow_the_tempered_softmax() {
        // Probabilities 1:2:4:1 at temperature 1, and 1:4:16:1 at temperature 0.5.
        let logits = [0.0, 2f32.ln(), 4f32.ln(), 0.0];
        for (t, want) in [(1.0, [1.0, 2.0, 4.0, 1.0]), (0.5, [1.0, 4.0, 16.0, 1.0])] {
            let mut s = Sampler::new(&params(t, 0, 1.0, 5));
            let n = 40_000;
            let mut counts = [0usize; 4];
            for _ in 0..n {
                counts[s.sample(&logits).unwrap() as usize] += 1;
            }
            let total: f64 = want.iter().sum();
            for (c, w) in counts.iter().zip(want) {
                let (got, p) = (*c as f64 / n as f64, w / total);
                assert!((got - p).abs() < 0.01, "temperature {t}: {counts:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn a_nucleus_wider_than_the_first_ranking_is_still_whole() {
        // 1,000 equal logits: top-p 0.5 keeps the 500 lowest ids (ties rank by id), more than
        // the 64 candidates ranked first.
        let logits = vec![1.0f32; 1000];
        let mut s = Sampler::new(&params(1.0, 0, 0.5, 9));
        let draws: Vec<u32> = (0..4000).map(|_| s.sample(&logits).unwrap()).collect();
        assert!(draws.iter().all(|&t| t < 500), "outside the nucleus: {:?}", draws.iter().max());
        assert!(
            draws.iter().any(|&t| t >= 400),
            "the nucleus was cut short: {:?}",
            draws.iter().max()
        );
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
