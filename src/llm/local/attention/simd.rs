//! The inner loops of decode attention that want the CPU's own vector instructions: widening
//! f16 rows to f32, and the dot products of a key row with a group of query heads. Each
//! implementation is `inline(always)`, so it compiles with the features of the function that
//! calls it (`chunk.rs`'s wrappers, each compiled for its CPU features).

use half::f16;

/// The loops, for one set of CPU features.
pub trait Simd {
    /// f16 to f32 (`dst.len() == src.len()`).
    fn widen(src: &[f16], dst: &mut [f32]);
    /// `out[g] = q_g · key` for the query heads of a group, stored one after another in `q`.
    fn group_dots(q: &[f32], key: &[f32], out: &mut [f32]);
}

pub struct Portable;

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
pub struct Avx512;

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
pub struct Avx2;

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
