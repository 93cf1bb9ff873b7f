//! One chunk of positions of one kv head, for every query head that reads them: the scores, a
//! softmax local to the chunk, and the chunk's share of each head's output. `mod.rs` merges the
//! chunks of a head in position order.
//!
//! Every head's arithmetic here is its own (each score is one lane's sum over the head
//! dimension, each softmax a sum over rows in order), so a head gets the same bits whichever
//! other heads share its chunk.

use super::simd::{Portable, Simd, LANES, ROW_MULTIPLE};
use crate::llm::local::kernels::fastmath::{exp_nonpositive, lanes_reduce};
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
        if f16c
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512vl")
        {
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
        if f16c
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512vl")
        {
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
    #[target_feature(enable = "avx512f,avx512vl,fma,f16c")]
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

/// Key rows widened at once for [`Simd::scores`] (4 KB at 128 dimensions): with the
/// transposed queries (12 KB for 24 heads) they stay in the L1 cache.
const SCORE_BLOCK: usize = ROW_MULTIPLE;

/// Each head's scaled scores against every row of the chunk, as `e^(score - max)`, head by
/// head (`p[h * stride + j]`), with each head's `max` and sum.
#[inline(always)]
fn local_softmax<S: Simd>(
    hd: usize,
    q: &[f32],
    segments: &[Segment<'_>],
) -> (Vec<f32>, usize, Partial) {
    let heads = q.len() / hd;
    let hp = heads.next_multiple_of(LANES);
    let rows: usize = segments.iter().map(|s| s.keys.len() / hd).sum();
    // The queries transposed and padded with zero heads, with the score's scale folded in.
    let scale = 1.0 / (hd as f32).sqrt();
    let mut qt = vec![0f32; hd * hp];
    for (h, qh) in q.chunks_exact(hd).enumerate() {
        for (d, x) in qh.iter().enumerate() {
            qt[d * hp + h] = x * scale;
        }
    }
    // Room after each head's scores for the zero rows that fill a segment's last block.
    let stride = rows + SCORE_BLOCK;
    let mut p = vec![0f32; hp * stride];
    let mut keys = vec![0f32; SCORE_BLOCK * hd];
    let mut row = 0;
    for block in segments.iter().flat_map(|s| s.keys.chunks(SCORE_BLOCK * hd)) {
        let n = block.len() / hd;
        S::widen(block, &mut keys[..n * hd]);
        keys[n * hd..].fill(0.0);
        S::scores(hd, &qt, &keys, &mut p[row..], stride);
        row += n;
    }
    let (mut max, mut sum) = (Vec::with_capacity(heads), Vec::with_capacity(heads));
    for scores in p.chunks_exact_mut(stride).take(heads) {
        let scores = &mut scores[..rows];
        let m = lanes_reduce(scores, f32::NEG_INFINITY, f32::max);
        for x in scores.iter_mut() {
            *x = exp_nonpositive(*x - m);
        }
        max.push(m);
        sum.push(lanes_reduce(scores, 0.0, |a, b| a + b));
    }
    (p, stride, Partial { max, sum, out: vec![0f32; heads * hd] })
}

#[inline(always)]
fn chunk_sized<S: Simd, const HD: usize>(q: &[f32], segments: &[Segment<'_>]) -> Partial {
    let (p, stride, mut partial) = local_softmax::<S>(HD, q, segments);
    let mut block = vec![0f32; VALUE_BLOCK * HD];
    // `first`: the chunk row of the segment's first row.
    let mut first = 0;
    for s in segments {
        let len = s.values.len() / HD;
        for start in (0..len).step_by(VALUE_BLOCK) {
            let end = (start + VALUE_BLOCK).min(len);
            S::widen(&s.values[start * HD..end * HD], &mut block[..(end - start) * HD]);
            let rows = first + start..first + end;
            let block = &block[..(end - start) * HD];
            // Two heads at a time: each value row is loaded once for both.
            let mut pairs = partial.out.chunks_exact_mut(2 * HD);
            for (pair, out) in (&mut pairs).enumerate() {
                add_values::<HD, 2>(&p, stride, 2 * pair, rows.clone(), block, out);
            }
            let heads = partial.max.len();
            if heads % 2 == 1 {
                add_values::<HD, 1>(&p, stride, heads - 1, rows, block, pairs.into_remainder());
            }
        }
        first += len;
    }
    partial
}

/// Adds `p[h][j] · value[j]` over the rows `rows` of a block of value rows (`block`:
/// `[rows.len(), HD]`) to the outputs of the `N` heads from `h0` (`out`: `[N, HD]`), whose
/// running sums stay in registers meanwhile.
#[inline(always)]
fn add_values<const HD: usize, const N: usize>(
    p: &[f32],
    stride: usize,
    h0: usize,
    rows: std::ops::Range<usize>,
    block: &[f32],
    out: &mut [f32],
) {
    let mut acc = [[0f32; HD]; N];
    for (a, o) in acc.iter_mut().zip(out.chunks_exact(HD)) {
        a.copy_from_slice(o);
    }
    let weights: [&[f32]; N] =
        std::array::from_fn(|n| &p[(h0 + n) * stride + rows.start..(h0 + n) * stride + rows.end]);
    for (j, value) in block.chunks_exact(HD).enumerate() {
        let value: &[f32; HD] = value.try_into().expect("a value row");
        for (a, w) in acc.iter_mut().zip(&weights) {
            let w = w[j];
            for d in 0..HD {
                a[d] = w.mul_add(value[d], a[d]);
            }
        }
    }
    for (a, o) in acc.iter().zip(out.chunks_exact_mut(HD)) {
        o.copy_from_slice(a);
    }
}

#[inline(always)]
fn chunk_any<S: Simd>(hd: usize, q: &[f32], segments: &[Segment<'_>]) -> Partial {
    let (p, stride, mut partial) = local_softmax::<S>(hd, q, segments);
    let mut value = vec![0f32; hd];
    for (j, value16) in segments.iter().flat_map(|s| s.values.chunks_exact(hd)).enumerate() {
        S::widen(value16, &mut value);
        for (h, out) in partial.out.chunks_exact_mut(hd).enumerate() {
            let w = p[h * stride + j];
            for (o, v) in out.iter_mut().zip(&value) {
                *o = w.mul_add(*v, *o);
            }
        }
    }
    partial
}
