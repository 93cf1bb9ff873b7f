//! One chunk of positions of one kv head, for every query head that reads them: the scores, a
//! softmax local to the chunk, and the chunk's share of each head's output. `mod.rs` merges the
//! chunks of a head in position order.
//!
//! Every head's arithmetic here is its own (the dot products of a batch of heads keep one
//! accumulator per head), so a head gets the same bits whichever other heads share its chunk.

use super::simd::{Portable, Simd};
use crate::llm::local::fastmath::{exp_nonpositive, lanes_reduce};
use half::f16;

/// Rows of one kv head that lie one after another in one buffer: `[rows, head_dim]` each of
/// keys and values.
#[derive(Clone, Copy)]
pub struct Segment<'a> {
    pub keys: &'a [f16],
    pub values: &'a [f16],
}

/// What a chunk gives each of its `H` query heads: the largest scaled score `max[h]`, the sum
/// of `e^(score - max)` over the chunk, and `out[h * head_dim..]`, the sum of `e^(score - max)`
/// times each value row.
pub struct Partial {
    pub max: Vec<f32>,
    pub sum: Vec<f32>,
    pub out: Vec<f32>,
}

/// The chunk kernel for one set of CPU features: `(head_dim, q, segments)`, with `q` the query
/// heads `[H, head_dim]`.
pub type ChunkFn = fn(usize, &[f32], &[Segment<'_>]) -> Partial;

/// The fastest chunk kernel this CPU runs.
pub fn best() -> ChunkFn {
    #[cfg(target_arch = "x86_64")]
    {
        let f16c = std::is_x86_feature_detected!("f16c");
        if f16c && std::is_x86_feature_detected!("avx512f") {
            return avx512;
        }
        if f16c && std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return avx2;
        }
    }
    portable
}

/// Every kernel this CPU runs, the portable one first (for tests).
#[cfg(test)]
pub fn all_available() -> Vec<ChunkFn> {
    let mut all: Vec<ChunkFn> = vec![portable];
    #[cfg(target_arch = "x86_64")]
    {
        let f16c = std::is_x86_feature_detected!("f16c");
        if f16c && std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            all.push(avx2);
        }
        if f16c && std::is_x86_feature_detected!("avx512f") {
            all.push(avx512);
        }
    }
    all
}

fn portable(hd: usize, q: &[f32], segments: &[Segment<'_>]) -> Partial {
    chunk::<Portable>(hd, q, segments)
}

#[cfg(target_arch = "x86_64")]
fn avx512(hd: usize, q: &[f32], segments: &[Segment<'_>]) -> Partial {
    #[target_feature(enable = "avx512f,fma,f16c")]
    unsafe fn compiled(hd: usize, q: &[f32], segments: &[Segment<'_>]) -> Partial {
        chunk::<super::simd::Avx512>(hd, q, segments)
    }
    // SAFETY: `best` and `all_available` hand this out only after detecting the features.
    unsafe { compiled(hd, q, segments) }
}

#[cfg(target_arch = "x86_64")]
fn avx2(hd: usize, q: &[f32], segments: &[Segment<'_>]) -> Partial {
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn compiled(hd: usize, q: &[f32], segments: &[Segment<'_>]) -> Partial {
        chunk::<super::simd::Avx2>(hd, q, segments)
    }
    // SAFETY: as above.
    unsafe { compiled(hd, q, segments) }
}

/// The body, `inline(always)` so that each wrapper above compiles it with its own features.
/// Common head sizes get their own copy, with a head's running output held in registers.
#[inline(always)]
fn chunk<S: Simd>(hd: usize, q: &[f32], segments: &[Segment<'_>]) -> Partial {
    match hd {
        64 => chunk_sized::<S, 64>(q, segments),
        128 => chunk_sized::<S, 128>(q, segments),
        _ => chunk_any::<S>(hd, q, segments),
    }
}

/// Positions per block of the value pass: 32 rows of values, widened to f32 (16 KB at 128
/// dimensions), stay in the L1 cache while every query head reads them.
const VALUE_BLOCK: usize = 32;

/// Each head's scaled scores against every row of the chunk, as `e^(score - max)`, head by
/// head (`p[h * rows + j]`), with each head's `max` and sum.
#[inline(always)]
fn local_softmax<S: Simd>(hd: usize, q: &[f32], segments: &[Segment<'_>]) -> (Vec<f32>, Partial) {
    let heads = q.len() / hd;
    let rows: usize = segments.iter().map(|s| s.keys.len() / hd).sum();
    let scale = 1.0 / (hd as f32).sqrt();
    let mut p = vec![0f32; heads * rows];
    let mut key = vec![0f32; hd];
    let mut dots = vec![0f32; heads];
    for (j, key16) in segments.iter().flat_map(|s| s.keys.chunks_exact(hd)).enumerate() {
        S::widen(key16, &mut key);
        S::group_dots(q, &key, &mut dots);
        for (h, d) in dots.iter().enumerate() {
            p[h * rows + j] = d * scale;
        }
    }
    let (mut max, mut sum) = (Vec::with_capacity(heads), Vec::with_capacity(heads));
    for row in p.chunks_exact_mut(rows) {
        let m = lanes_reduce(row, f32::NEG_INFINITY, f32::max);
        for x in row.iter_mut() {
            *x = exp_nonpositive(*x - m);
        }
        max.push(m);
        sum.push(lanes_reduce(row, 0.0, |a, b| a + b));
    }
    (p, Partial { max, sum, out: vec![0f32; heads * hd] })
}

#[inline(always)]
fn chunk_sized<S: Simd, const HD: usize>(q: &[f32], segments: &[Segment<'_>]) -> Partial {
    let (p, mut partial) = local_softmax::<S>(HD, q, segments);
    let rows = p.len() / partial.max.len();
    let mut block = vec![0f32; VALUE_BLOCK * HD];
    // `first`: the chunk row of the segment's first row.
    let mut first = 0;
    for s in segments {
        let len = s.values.len() / HD;
        for start in (0..len).step_by(VALUE_BLOCK) {
            let end = (start + VALUE_BLOCK).min(len);
            S::widen(&s.values[start * HD..end * HD], &mut block[..(end - start) * HD]);
            for (h, out) in partial.out.chunks_exact_mut(HD).enumerate() {
                let mut acc = [0f32; HD];
                acc.copy_from_slice(out);
                for j in start..end {
                    let w = p[h * rows + first + j];
                    let value: &[f32; HD] = block[(j - start) * HD..(j - start + 1) * HD].try_into().expect("a value row");
                    for d in 0..HD {
                        acc[d] = w.mul_add(value[d], acc[d]);
                    }
                }
                out.copy_from_slice(&acc);
            }
        }
        first += len;
    }
    partial
}

#[inline(always)]
fn chunk_any<S: Simd>(hd: usize, q: &[f32], segments: &[Segment<'_>]) -> Partial {
    let (p, mut partial) = local_softmax::<S>(hd, q, segments);
    let rows = p.len() / partial.max.len();
    let mut value = vec![0f32; hd];
    for (j, value16) in segments.iter().flat_map(|s| s.values.chunks_exact(hd)).enumerate() {
        S::widen(value16, &mut value);
        for (h, out) in partial.out.chunks_exact_mut(hd).enumerate() {
            let w = p[h * rows + j];
            for (o, v) in out.iter_mut().zip(&value) {
                *o = w.mul_add(*v, *o);
            }
        }
    }
    partial
}
