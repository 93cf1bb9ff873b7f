//! The inner loops of decode attention that want the CPU's own vector instructions: widening
//! f16 rows to f32, and the scores of key rows against a chunk's query heads. Each
//! implementation is `inline(always)`, so it compiles with the features of the function that
//! calls it (`chunk.rs`'s wrappers, each compiled for its CPU features).

use half::f16;

/// Query heads per group of lanes in [`Simd::scores`]: a chunk's query heads are padded with
/// zero heads to a multiple of this.
pub const LANES: usize = 8;

/// [`Simd::scores`] takes key rows in a multiple of this (the caller pads with zero rows).
pub const ROW_MULTIPLE: usize = 8;

/// The loops, for one set of CPU features.
pub trait Simd {
    /// f16 to f32 (`dst.len() == src.len()`).
    fn widen(src: &[f16], dst: &mut [f32]);
    /// The scores of key rows (`keys`: `[rows, hd]`, `rows` a multiple of [`ROW_MULTIPLE`])
    /// with query heads given transposed (`qt`: `[hd, hp]`, `hp` a multiple of [`LANES`]),
    /// written head by head: `out[h * stride + r] = Σ_d keys[r][d] · qt[d][h]`.
    ///
    /// The query heads lie in vector lanes and each key element is broadcast: a score is one
    /// sum over `d` in order, in its own lane, with no reduction across lanes. So a head's
    /// scores do not depend on which heads share its lanes, nor on how rows are grouped.
    fn scores(hd: usize, qt: &[f32], keys: &[f32], out: &mut [f32], stride: usize);
}

pub struct Portable;

impl Simd for Portable {
    #[inline(always)]
    fn widen(src: &[f16], dst: &mut [f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = s.to_f32();
        }
    }

    /// Plain multiplies and adds over arrays of eight lanes, which every target vectorizes.
    #[inline(always)]
    fn scores(hd: usize, qt: &[f32], keys: &[f32], out: &mut [f32], stride: usize) {
        let hp = qt.len() / hd;
        for lane in (0..hp).step_by(LANES) {
            for (block, keys) in keys.chunks_exact(ROW_MULTIPLE * hd).enumerate() {
                let mut acc = [[0f32; LANES]; ROW_MULTIPLE];
                for d in 0..hd {
                    let q: &[f32; LANES] =
                        qt[d * hp + lane..][..LANES].try_into().expect("a lane group");
                    for (a, key) in acc.iter_mut().zip(keys.chunks_exact(hd)) {
                        for (x, y) in a.iter_mut().zip(q) {
                            *x += key[d] * y;
                        }
                    }
                }
                for (r, a) in acc.iter().enumerate() {
                    for (l, x) in a.iter().enumerate() {
                        out[(lane + l) * stride + block * ROW_MULTIPLE + r] = *x;
                    }
                }
            }
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
        unsafe {
            _mm256_storeu_ps(
                d8.as_mut_ptr(),
                _mm256_cvtph_ps(_mm_loadu_si128(s8.as_ptr() as *const __m128i)),
            )
        };
    }
    Portable::widen(&src[whole..], &mut dst[whole..]);
}

/// Eight key rows against `V` groups of eight lanes, from `keys` (`[8, hd]`) and `qt` (`hd`
/// rows of stride `hp`, from the first group) into `out` (one row of stride `stride` per
/// lane), with 256-bit fused multiply-adds: `8 × V` accumulators, each key element broadcast
/// once for all groups, then each group's 8 × 8 block transposed to lie head by head.
///
/// # Safety
/// The caller runs with avx2 and fma, and the pointers cover what is read and written.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn block_256<const V: usize>(
    hd: usize,
    hp: usize,
    qt: *const f32,
    keys: *const f32,
    out: *mut f32,
    stride: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); V]; ROW_MULTIPLE];
    for d in 0..hd {
        let mut q = [_mm256_setzero_ps(); V];
        for (v, x) in q.iter_mut().enumerate() {
            *x = _mm256_loadu_ps(qt.add(d * hp + v * LANES));
        }
        for (r, a) in acc.iter_mut().enumerate() {
            let k = _mm256_set1_ps(*keys.add(r * hd + d));
            for (x, y) in a.iter_mut().zip(&q) {
                *x = _mm256_fmadd_ps(k, *y, *x);
            }
        }
    }
    for v in 0..V {
        let mut rows = [_mm256_setzero_ps(); ROW_MULTIPLE];
        for (x, a) in rows.iter_mut().zip(&acc) {
            *x = a[v];
        }
        for (l, x) in transpose_8x8(rows).iter().enumerate() {
            _mm256_storeu_ps(out.add((v * LANES + l) * stride), *x);
        }
    }
}

/// Rows of eight lanes to lanes of eight rows. (Written out without closures: a closure does
/// not inherit its caller's target features, so intrinsics inside one become calls.)
///
/// # Safety
/// The caller runs with avx.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn transpose_8x8(r: [std::arch::x86_64::__m256; 8]) -> [std::arch::x86_64::__m256; 8] {
    use std::arch::x86_64::*;
    // Pairs of rows interleaved: t0 holds columns 0, 1 (and 4, 5) of rows 0 and 1.
    let (t0, t1) = (_mm256_unpacklo_ps(r[0], r[1]), _mm256_unpackhi_ps(r[0], r[1]));
    let (t2, t3) = (_mm256_unpacklo_ps(r[2], r[3]), _mm256_unpackhi_ps(r[2], r[3]));
    let (t4, t5) = (_mm256_unpacklo_ps(r[4], r[5]), _mm256_unpackhi_ps(r[4], r[5]));
    let (t6, t7) = (_mm256_unpacklo_ps(r[6], r[7]), _mm256_unpackhi_ps(r[6], r[7]));
    // Then quads: u0 holds column 0 (and 4) of rows 0..4, u4 the same of rows 4..8.
    let (u0, u1) = (_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0xEE>(t0, t2));
    let (u2, u3) = (_mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0xEE>(t1, t3));
    let (u4, u5) = (_mm256_shuffle_ps::<0x44>(t4, t6), _mm256_shuffle_ps::<0xEE>(t4, t6));
    let (u6, u7) = (_mm256_shuffle_ps::<0x44>(t5, t7), _mm256_shuffle_ps::<0xEE>(t5, t7));
    // Then the 128-bit halves: low halves give columns 0..4, high halves columns 4..8.
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

/// [`Simd::scores`] in blocks of eight rows and up to `VMAX` lane groups, so that a block's
/// accumulators fill the registers. Only used inside functions compiled with `avx2` and `fma`,
/// after they were detected.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn scores_256<const VMAX: usize>(
    hd: usize,
    qt: &[f32],
    keys: &[f32],
    out: &mut [f32],
    stride: usize,
) {
    let (hp, rows) = (qt.len() / hd, keys.len() / hd);
    let groups = hp / LANES;
    assert!(
        rows % ROW_MULTIPLE == 0
            && hp % LANES == 0
            && qt.len() == hd * hp
            && rows <= stride
            && out.len() >= (hp - 1) * stride + rows
    );
    for g in (0..groups).step_by(VMAX) {
        for row in (0..rows).step_by(ROW_MULTIPLE) {
            // SAFETY: the assert bounds the block: rows `row..row + 8` of `keys` and of every
            // head's row of `out`, lanes `g * 8..(g + V) * 8` of `qt`; the caller runs with avx2
            // and fma.
            unsafe {
                let (q, k, o) = (
                    qt.as_ptr().add(g * LANES),
                    keys.as_ptr().add(row * hd),
                    out.as_mut_ptr().add(g * LANES * stride + row),
                );
                match (groups - g).min(VMAX) {
                    1 => block_256::<1>(hd, hp, q, k, o, stride),
                    2 => block_256::<2>(hd, hp, q, k, o, stride),
                    _ => block_256::<3>(hd, hp, q, k, o, stride),
                }
            }
        }
    }
}

/// AVX-512 (and F16C): 256-bit multiply-adds, which run at the same rate as 512-bit ones on
/// AMD's Zen 4 and fit any lane count of eight, with the 32 registers of AVX-512VL: up to three
/// lane groups (24 heads: four sequences' six heads per kv head) at once.
#[cfg(target_arch = "x86_64")]
pub struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx512 {
    #[inline(always)]
    fn widen(src: &[f16], dst: &mut [f32]) {
        widen_f16c(src, dst)
    }

    #[inline(always)]
    fn scores(hd: usize, qt: &[f32], keys: &[f32], out: &mut [f32], stride: usize) {
        scores_256::<3>(hd, qt, keys, out, stride)
    }
}

/// AVX2 (and FMA, F16C): one lane group at a time, for sixteen registers.
#[cfg(target_arch = "x86_64")]
pub struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx2 {
    #[inline(always)]
    fn widen(src: &[f16], dst: &mut [f32]) {
        widen_f16c(src, dst)
    }

    #[inline(always)]
    fn scores(hd: usize, qt: &[f32], keys: &[f32], out: &mut [f32], stride: usize) {
        scores_256::<1>(hd, qt, keys, out, stride)
    }
}
