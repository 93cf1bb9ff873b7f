//! The input rows of a matmul, quantized to signed bytes once per call so that every weight
//! tile multiplies integers.

use crate::llm::local::kernels::fastmath::{lanes_reduce, nearest_int};
use rayon::prelude::*;

/// `m` rows of `k` inputs: per block of `block` inputs (256 for the K-quants, 32 for Q8_0) a
/// scale `d` with `x ≈ d * q`, `q` in -127..=127, and the sum of `q` over every 16 inputs
/// (what the weights' offsets multiply).
pub struct QuantInputs {
    pub rows: usize,
    pub k: usize,
    pub block: usize,
    pub d: Vec<f32>,
    pub qs: Vec<i8>,
    pub sums16: Vec<i32>,
    /// Per 32 inputs, the sum of their values as a float (what Q4_K's minimums multiply).
    pub sums32: Vec<f32>,
}

impl QuantInputs {
    pub fn new(x: &[f32], rows: usize, k: usize, block: usize) -> Self {
        debug_assert!(x.len() == rows * k && k.is_multiple_of(block) && block.is_multiple_of(16));
        let blocks = k / block;
        let mut d = vec![0f32; rows * blocks];
        let mut qs = vec![0i8; rows * k];
        let mut sums16 = vec![0i32; rows * k / 16];
        let work = x
            .par_chunks_exact(k)
            .zip(d.par_chunks_exact_mut(blocks))
            .zip(qs.par_chunks_exact_mut(k).zip(sums16.par_chunks_exact_mut(k / 16)));
        work.for_each(|((x, d), (q, s))| quantize_row(x, block, d, q, s));
        let sums32 = sums16.chunks_exact(2).map(|p| (p[0] + p[1]) as f32).collect();
        QuantInputs { rows, k, block, d, qs, sums16, sums32 }
    }

    pub fn row_qs(&self, r: usize) -> &[i8] {
        &self.qs[r * self.k..(r + 1) * self.k]
    }

    pub fn row_d(&self, r: usize) -> &[f32] {
        let blocks = self.k / self.block;
        &self.d[r * blocks..(r + 1) * blocks]
    }

    pub fn row_sums16(&self, r: usize) -> &[i32] {
        &self.sums16[r * self.k / 16..(r + 1) * self.k / 16]
    }

    pub fn row_sums32(&self, r: usize) -> &[f32] {
        &self.sums32[r * self.k / 32..(r + 1) * self.k / 32]
    }
}

/// One row: per block its scale and values, then the sums of every 16 values.
fn quantize_row(x: &[f32], block: usize, d: &mut [f32], q: &mut [i8], sums16: &mut [i32]) {
    for ((xb, db), qb) in x.chunks_exact(block).zip(d.iter_mut()).zip(q.chunks_exact_mut(block)) {
        let amax = lanes_reduce(xb, 0.0, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        *db = scale;
        for (q, v) in qb.iter_mut().zip(xb) {
            *q = nearest_int((v * inv).clamp(-127.0, 127.0)) as i8;
        }
    }
    for (s, q16) in sums16.iter_mut().zip(q.chunks_exact(16)) {
        *s = q16.iter().map(|&q| q as i32).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantized_rows_reconstruct_their_inputs_and_sum_their_values() {
        let k = 512;
        let x: Vec<f32> = (0..2 * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
        let q = QuantInputs::new(&x, 2, k, 256);
        for r in 0..2 {
            for (i, v) in x[r * k..(r + 1) * k].iter().enumerate() {
                let back = q.row_d(r)[i / 256] * q.row_qs(r)[i] as f32;
                assert!((back - v).abs() <= q.row_d(r)[i / 256] * 0.5 + 1e-6, "{back} vs {v}");
            }
            for (s, sum) in q.row_sums16(r).iter().enumerate() {
                assert_eq!(
                    *sum,
                    q.row_qs(r)[s * 16..(s + 1) * 16].iter().map(|&v| v as i32).sum::<i32>()
                );
            }
        }
    }
}
