//! Decode-step attention on the CPU, straight over a sequence's kv buffers.
//!
//! One new query row per sequence attends over its whole cache. Going through candle's tensor
//! ops here cost about 20 small ops per layer and sequence (views, copies of the strided cache,
//! a matmul set up for bigger shapes): at 1,200 cached positions that was a quarter of a
//! single-sequence decode step and most of a batched one. This loop reads each key and value row
//! once for all the query heads that share it.
//!
//! The cache holds f16 (half the memory and half the reading of f32); each key row, and each
//! block of value rows, is widened to f32 in the L1 cache just before use.

use half::f16;

/// One sequence's cache for one layer: its positions in order, as runs in separate buffers (a
/// prompt head shared with other sequences, then the sequence's own positions).
pub struct KvView<'a> {
    pub runs: Vec<KvRun<'a>>,
}

/// Consecutive positions in one buffer `[kv_heads, capacity, head_dim]` row-major f16, of which
/// rows `0..len` are filled.
pub struct KvRun<'a> {
    pub keys: &'a [f16],
    pub values: &'a [f16],
    pub capacity: usize,
    pub len: usize,
}

impl KvView<'_> {
    /// Positions in all runs.
    pub fn len(&self) -> usize {
        self.runs.iter().map(|r| r.len).sum()
    }

    /// The keys or values of kv head `kv_head`, run by run: `[len, head_dim]` each.
    fn rows<'s>(&'s self, kv_head: usize, hd: usize, values: bool) -> impl Iterator<Item = &'s [f16]> + 's {
        self.runs.iter().map(move |r| {
            let base = kv_head * r.capacity * hd;
            &(if values { r.values } else { r.keys })[base..base + r.len * hd]
        })
    }
}

/// The shapes every sequence shares.
#[derive(Clone, Copy)]
pub struct Heads {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// Attention of the query heads of kv head `kv` (`group = heads / kv_heads` of them, each
/// `head_dim` long, in `q`) over every position of `kv`; writes their outputs to `out`.
pub fn attend_one_kv_head(h: Heads, kv_head: usize, kv: &KvView<'_>, q: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        let f16c = std::is_x86_feature_detected!("f16c");
        if f16c && std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the features this function is compiled for were just detected.
            return unsafe { attend_avx512(h, kv_head, kv, q, out) };
        }
        if f16c && std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { attend_avx2(h, kv_head, kv, q, out) };
        }
    }
    attend::<Portable>(h, kv_head, kv, q, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma,f16c")]
unsafe fn attend_avx512(h: Heads, kv_head: usize, kv: &KvView<'_>, q: &[f32], out: &mut [f32]) {
    attend::<Avx512>(h, kv_head, kv, q, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attend_avx2(h: Heads, kv_head: usize, kv: &KvView<'_>, q: &[f32], out: &mut [f32]) {
    attend::<Avx2>(h, kv_head, kv, q, out)
}

/// The two inner loops that want the CPU's own instructions, inlined into each `attend` so that
/// they run with the caller's features.
trait Simd {
    /// f16 to f32 (`dst.len() == src.len()`).
    fn widen(src: &[f16], dst: &mut [f32]);
    /// `out[g] = q_g · key` for the query heads of a group, stored one after another in `q`.
    fn group_dots(q: &[f32], key: &[f32], out: &mut [f32]);
}

struct Portable;

impl Simd for Portable {
    #[inline(always)]
    fn widen(src: &[f16], dst: &mut [f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = s.to_f32();
        }
    }

    #[inline(always)]
    fn group_dots(q: &[f32], key: &[f32], out: &mut [f32]) {
        for (o, qg) in out.iter_mut().zip(q.chunks_exact(key.len())) {
            *o = qg.iter().zip(key).map(|(a, b)| a * b).sum();
        }
    }
}

/// Eight values per `vcvtph2ps`. Only used inside functions compiled with `f16c`, after it was
/// detected.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn widen_f16c(src: &[f16], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let whole = src.len().min(dst.len()) / 8 * 8;
    for (s8, d8) in src[..whole].chunks_exact(8).zip(dst[..whole].chunks_exact_mut(8)) {
        // SAFETY: eight values are read and written inside the chunks; the caller runs with f16c.
        unsafe { _mm256_storeu_ps(d8.as_mut_ptr(), _mm256_cvtph_ps(_mm_loadu_si128(s8.as_ptr() as *const __m128i))) };
    }
    Portable::widen(&src[whole..], &mut dst[whole..]);
}

/// `Simd::group_dots` in batches of up to eight query heads: `$heads::<N>(q, key, out)` gets
/// each batch's head count `N` as a constant, so that the accumulators of every head stay in
/// registers.
macro_rules! dots_in_head_batches {
    ($heads:ident, $q:expr, $key:expr, $out:expr) => {{
        let (q, key, out): (&[f32], &[f32], &mut [f32]) = ($q, $key, $out);
        let hd = key.len();
        for (start, o) in (0..out.len()).step_by(8).zip(out.chunks_mut(8)) {
            let q = &q[start * hd..(start + o.len()) * hd];
            match o.len() {
                1 => $heads::<1>(q, key, o),
                2 => $heads::<2>(q, key, o),
                3 => $heads::<3>(q, key, o),
                4 => $heads::<4>(q, key, o),
                5 => $heads::<5>(q, key, o),
                6 => $heads::<6>(q, key, o),
                7 => $heads::<7>(q, key, o),
                _ => $heads::<8>(q, key, o),
            }
        }
    }};
}

/// Query head `g`'s products with `key` past element `whole` (what the vector loop left over).
#[inline(always)]
fn tail_dot(q: &[f32], key: &[f32], g: usize, whole: usize) -> f32 {
    let hd = key.len();
    q[g * hd + whole..(g + 1) * hd].iter().zip(&key[whole..]).map(|(x, y)| x * y).sum()
}

/// AVX-512 (and F16C). Each key vector is loaded once for up to eight query heads, and each
/// head's sum is reduced once per row: summing lane by lane in order, as plain Rust must, cost
/// more than the multiplications.
#[cfg(target_arch = "x86_64")]
struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx512 {
    #[inline(always)]
    fn widen(src: &[f16], dst: &mut [f32]) {
        widen_f16c(src, dst)
    }

    #[inline(always)]
    fn group_dots(q: &[f32], key: &[f32], out: &mut [f32]) {
        #[inline(always)]
        fn heads<const N: usize>(q: &[f32], key: &[f32], out: &mut [f32]) {
            use std::arch::x86_64::*;
            let hd = key.len();
            let whole = hd / 16 * 16;
            // SAFETY: the caller runs with avx512f; every load is inside `q` (N rows of hd) and `key`.
            unsafe {
                let mut acc = [_mm512_setzero_ps(); N];
                for c in (0..whole).step_by(16) {
                    let k = _mm512_loadu_ps(key.as_ptr().add(c));
                    for (g, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_fmadd_ps(_mm512_loadu_ps(q.as_ptr().add(g * hd + c)), k, *a);
                    }
                }
                for (g, a) in acc.iter().enumerate() {
                    out[g] = _mm512_reduce_add_ps(*a) + tail_dot(q, key, g, whole);
                }
            }
        }
        dots_in_head_batches!(heads, q, key, out)
    }
}

/// AVX2 (and FMA, F16C): as [`Avx512`], eight lanes wide.
#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx2 {
    #[inline(always)]
    fn widen(src: &[f16], dst: &mut [f32]) {
        widen_f16c(src, dst)
    }

    #[inline(always)]
    fn group_dots(q: &[f32], key: &[f32], out: &mut [f32]) {
        #[inline(always)]
        fn heads<const N: usize>(q: &[f32], key: &[f32], out: &mut [f32]) {
            use std::arch::x86_64::*;
            let hd = key.len();
            let whole = hd / 8 * 8;
            // SAFETY: the caller runs with avx2 and fma; every load is inside `q` and `key`.
            unsafe {
                let mut acc = [_mm256_setzero_ps(); N];
                for c in (0..whole).step_by(8) {
                    let k = _mm256_loadu_ps(key.as_ptr().add(c));
                    for (g, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(g * hd + c)), k, *a);
                    }
                }
                for (g, a) in acc.iter().enumerate() {
                    let x = _mm_add_ps(_mm256_castps256_ps128(*a), _mm256_extractf128_ps::<1>(*a));
                    let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
                    let x = _mm_add_ss(x, _mm_movehdup_ps(x));
                    out[g] = _mm_cvtss_f32(x) + tail_dot(q, key, g, whole);
                }
            }
        }
        dots_in_head_batches!(heads, q, key, out)
    }
}

/// The body, for the CPU features of `S`; `inline(always)` so that each wrapper above compiles
/// it with its own features. Common head sizes get their own copy, with the head's running
/// output held in registers.
#[inline(always)]
fn attend<S: Simd>(h: Heads, kv_head: usize, kv: &KvView<'_>, q: &[f32], out: &mut [f32]) {
    match h.head_dim {
        64 => attend_sized::<S, 64>(h, kv_head, kv, q, out),
        128 => attend_sized::<S, 128>(h, kv_head, kv, q, out),
        _ => attend_any::<S>(h, kv_head, kv, q, out),
    }
}

/// Positions per block of the value pass: 32 rows of values, widened to f32 (16 KB at 128
/// dimensions), stay in the L1 cache while every query head of the group reads them.
const VALUE_BLOCK: usize = 32;

/// Scaled scores of every query head of the group against positions `0..t`, after softmax:
/// `scores[g * t + j]` is query head g against position j. Inlined, so a constant `hd` from
/// `attend_sized` specializes it.
#[inline(always)]
fn softmax_scores<S: Simd>(hd: usize, group: usize, kv: &KvView<'_>, kv_head: usize, q: &[f32], t: usize) -> Vec<f32> {
    let scale = 1.0 / (hd as f32).sqrt();
    let mut scores = vec![0f32; group * t];
    let mut key = vec![0f32; hd];
    let mut dots = vec![0f32; group];
    for (j, key16) in kv.rows(kv_head, hd, false).flat_map(|keys| keys.chunks_exact(hd)).enumerate() {
        S::widen(key16, &mut key);
        S::group_dots(&q[..group * hd], &key, &mut dots);
        for (g, d) in dots.iter().enumerate() {
            scores[g * t + j] = d * scale;
        }
    }
    for row in scores.chunks_exact_mut(t) {
        softmax_in_place(row);
    }
    scores
}

#[inline(always)]
fn attend_sized<S: Simd, const HD: usize>(h: Heads, kv_head: usize, kv: &KvView<'_>, q: &[f32], out: &mut [f32]) {
    let t = kv.len();
    let group = h.heads / h.kv_heads;
    let scores = softmax_scores::<S>(HD, group, kv, kv_head, q, t);
    out[..group * HD].fill(0.0);
    let mut block = vec![0f32; VALUE_BLOCK * HD];
    // `first`: the position of the run's first row.
    let mut first = 0;
    for values in kv.rows(kv_head, HD, true) {
        let len = values.len() / HD;
        for start in (0..len).step_by(VALUE_BLOCK) {
            let end = (start + VALUE_BLOCK).min(len);
            S::widen(&values[start * HD..end * HD], &mut block[..(end - start) * HD]);
            for g in 0..group {
                let mut acc = [0f32; HD];
                acc.copy_from_slice(&out[g * HD..(g + 1) * HD]);
                for j in start..end {
                    let p = scores[g * t + first + j];
                    let value: &[f32; HD] = block[(j - start) * HD..(j - start + 1) * HD].try_into().expect("a value row");
                    for d in 0..HD {
                        acc[d] = p.mul_add(value[d], acc[d]);
                    }
                }
                out[g * HD..(g + 1) * HD].copy_from_slice(&acc);
            }
        }
        first += len;
    }
}

#[inline(always)]
fn attend_any<S: Simd>(h: Heads, kv_head: usize, kv: &KvView<'_>, q: &[f32], out: &mut [f32]) {
    let (hd, t) = (h.head_dim, kv.len());
    let group = h.heads / h.kv_heads;
    let scores = softmax_scores::<S>(hd, group, kv, kv_head, q, t);
    out[..group * hd].fill(0.0);
    let mut value = vec![0f32; hd];
    for (j, value16) in kv.rows(kv_head, hd, true).flat_map(|values| values.chunks_exact(hd)).enumerate() {
        S::widen(value16, &mut value);
        for g in 0..group {
            let p = scores[g * t + j];
            for (o, v) in out[g * hd..(g + 1) * hd].iter_mut().zip(&value) {
                *o = p.mul_add(*v, *o);
            }
        }
    }
}

#[inline(always)]
fn softmax_in_place(row: &mut [f32]) {
    let max = lanes_reduce(row, f32::NEG_INFINITY, f32::max);
    for x in row.iter_mut() {
        *x = exp_nonpositive(*x - max);
    }
    let inv = 1.0 / lanes_reduce(row, 0.0, |a, b| a + b);
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// Folds `xs` with `op` in sixteen independent lanes, then the lanes together: a vector op per
/// sixteen values where one running value would wait on each.
#[inline(always)]
fn lanes_reduce(xs: &[f32], init: f32, op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [init; 16];
    let chunks = xs.chunks_exact(16);
    let tail = chunks.remainder().iter().fold(init, |a, &b| op(a, b));
    for c in chunks {
        for l in 0..16 {
            lanes[l] = op(lanes[l], c[l]);
        }
    }
    lanes.into_iter().fold(tail, op)
}

/// `e^x` for `x <= 0` (relative error under 4e-6), written without a library call so that the
/// loop around it vectorizes: `e^x = 2^n * 2^f` with `n` an integer and `f` in [-0.5, 0.5], `2^f`
/// from its Taylor polynomial.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    let x = x.max(-87.0); // below this e^x is under f32's normal range; 0 is close enough
    let t = x * std::f32::consts::LOG2_E;
    let n = t.round();
    let f = (t - n) * std::f32::consts::LN_2; // e^f = 2^(t - n), |f| <= ln2/2
    let p = 1.0 + f * (1.0 + f * (0.5 + f * (1.0 / 6.0 + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f * (1.0 / 720.0))))));
    // 2^n through the exponent bits (n >= -126 here).
    f32::from_bits((((n as i32) + 127) as u32) << 23) * p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain textbook attention, one query head at a time, over one buffer.
    fn reference(h: Heads, kv_head: usize, kv: &KvRun<'_>, q: &[f32]) -> Vec<f32> {
        let hd = h.head_dim;
        let group = h.heads / h.kv_heads;
        let mut out = Vec::new();
        for g in 0..group {
            let qg = &q[g * hd..(g + 1) * hd];
            let row = |buf: &[f16], j: usize| -> Vec<f32> { buf[(kv_head * kv.capacity + j) * hd..][..hd].iter().map(|v| v.to_f32()).collect() };
            let s: Vec<f64> = (0..kv.len)
                .map(|j| row(kv.keys, j).iter().zip(qg).map(|(a, b)| (*a as f64) * (*b as f64)).sum::<f64>() / (hd as f64).sqrt())
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for d in 0..hd {
                out.push((0..kv.len).map(|j| e[j] / z * row(kv.values, j)[d] as f64).sum::<f64>() as f32);
            }
        }
        out
    }

    #[test]
    fn the_exponential_is_accurate_over_the_softmax_range() {
        for i in 0..=100_000 {
            let x = -(i as f32) * 1e-3 * 0.8;
            let (got, want) = (exp_nonpositive(x), (x as f64).exp());
            assert!(((got as f64) - want).abs() <= 4e-6 * want, "e^{x}: {got} vs {want}");
        }
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1000.0) < 1e-37);
    }

    #[test]
    fn matches_textbook_attention_for_every_kv_head_and_head_size() {
        for head_dim in [20, 64, 128] {
            check_against_textbook(Heads { heads: 6, kv_heads: 2, head_dim }, 77, 69);
        }
        // Groups wider than the eight heads done at once.
        check_against_textbook(Heads { heads: 20, kv_heads: 2, head_dim: 64 }, 40, 33);
    }

    fn check_against_textbook(h: Heads, cap: usize, len: usize) {
        let mut seed = 7u64;
        let mut rnd = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let keys: Vec<f16> = (0..h.kv_heads * cap * h.head_dim).map(|_| f16::from_f32(rnd() * 4.0)).collect();
        let values: Vec<f16> = (0..h.kv_heads * cap * h.head_dim).map(|_| f16::from_f32(rnd())).collect();
        let q: Vec<f32> = (0..h.heads * h.head_dim).map(|_| rnd() * 4.0).collect();
        let whole = KvRun { keys: &keys, values: &values, capacity: cap, len };
        // The same positions as two runs in buffers of their own (a shared prompt head, then the
        // sequence's own rows, with spare capacity).
        let split = len / 2 + 3;
        let (cap_b, hd) = (len - split + 5, h.head_dim);
        let copy = |buf: &[f16], from: usize, n: usize, capacity: usize| -> Vec<f16> {
            let mut out = vec![f16::from_f32(f32::NAN); h.kv_heads * capacity * hd];
            for kvh in 0..h.kv_heads {
                out[kvh * capacity * hd..][..n * hd].copy_from_slice(&buf[(kvh * cap + from) * hd..][..n * hd]);
            }
            out
        };
        let (ka, va) = (copy(&keys, 0, split, split), copy(&values, 0, split, split));
        let (kb, vb) = (copy(&keys, split, len - split, cap_b), copy(&values, split, len - split, cap_b));
        let views = [
            KvView { runs: vec![KvRun { keys: &keys, values: &values, capacity: cap, len }] },
            KvView {
                runs: vec![
                    KvRun { keys: &ka, values: &va, capacity: split, len: split },
                    KvRun { keys: &kb, values: &vb, capacity: cap_b, len: len - split },
                ],
            },
        ];
        for kv in &views {
            check_view(h, kv, &whole, &q);
        }
    }

    fn check_view(h: Heads, kv: &KvView<'_>, whole: &KvRun<'_>, q: &[f32]) {
        let group = h.heads / h.kv_heads;
        for kvh in 0..h.kv_heads {
            let qs = &q[kvh * group * h.head_dim..(kvh + 1) * group * h.head_dim];
            let mut fast = vec![f32::NAN; group * h.head_dim];
            attend_one_kv_head(h, kvh, kv, qs, &mut fast);
            let mut plain = vec![f32::NAN; group * h.head_dim];
            attend_any::<Portable>(h, kvh, kv, qs, &mut plain);
            let want = reference(h, kvh, whole, qs);
            for ((a, b), w) in fast.iter().zip(&plain).zip(&want) {
                assert!((a - w).abs() < 1e-5 && (b - w).abs() < 1e-5, "head size {}: {a} {b} vs {w}", h.head_dim);
            }
            // The AVX2 body too, where the CPU has it (the dispatch above prefers AVX-512).
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("f16c") {
                let mut avx2 = vec![f32::NAN; group * h.head_dim];
                // SAFETY: the features were just detected.
                unsafe { attend_avx2(h, kvh, kv, qs, &mut avx2) };
                for (a, w) in avx2.iter().zip(&want) {
                    assert!((a - w).abs() < 1e-5, "AVX2, head size {}: {a} vs {w}", h.head_dim);
                }
            }
        }
    }
}

