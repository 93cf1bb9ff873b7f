//! AVX-512 VNNI kernels: one `vpdpbusd` multiplies four unsigned weight bytes of sixteen rows by
//! four signed input bytes and adds into sixteen 32-bit sums. Up to `MT` input rows share each
//! weight load, which is what makes a batch of sequences cost little more than one: decoding is
//! bound by reading the weights, and they are read once for the whole batch.
//!
//! Safety: every function here requires the CPU features it is compiled for (checked by
//! [`available`]) and tile and input slices of matching lengths (checked by the caller).

use super::inputs::QuantInputs;
use super::tiles::{TileQ4K, TileQ6K, TileQ8_0, Q6K_SUB_BLOCK_BYTES, QK8_0, QK_K};
use std::arch::x86_64::*;

pub fn available() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vnni")
}

#[inline(always)]
unsafe fn bcast4(p: *const i8) -> __m512i {
    _mm512_set1_epi32(std::ptr::read_unaligned(p as *const i32))
}

/// Tiles ahead to prefetch: decoding reads each tile once, and the hardware prefetcher alone left
/// the kernels waiting on memory between tiles. Six tiles (14 KB of Q4_K) into the L2 cache beat
/// two into the L1 by 7-10 % at four input rows and matched it at one (a sweep of distances 2-12
/// and hints T0/T1/NTA taking turns over `benches/qmatmul_stream.rs`'s 455 MiB).
const PREFETCH_TILES: usize = 6;

/// Prefetches the cache line at `offset` bytes into the tile `PREFETCH_TILES` after `t` (past the
/// end of the slice is harmless: a prefetch never faults).
#[inline(always)]
unsafe fn prefetch_ahead<T>(t: &T, offset: usize) {
    let p = (t as *const T as *const i8)
        .wrapping_add(PREFETCH_TILES * std::mem::size_of::<T>() + offset);
    _mm_prefetch::<_MM_HINT_T1>(p);
}

#[inline(always)]
unsafe fn load_f16x16(p: *const half::f16) -> __m512 {
    _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
}

/// Rows `rows` of `x` against one row tile of Q4_K (its blocks in input order); output row `i`
/// goes to `out[i]` (sixteen floats).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn q4k<const N: usize>(
    tiles: &[TileQ4K],
    x: &QuantInputs,
    rows: [usize; N],
    out: [*mut f32; N],
) {
    let nib = _mm512_set1_epi8(0x0F);
    let qs: [*const i8; N] = std::array::from_fn(|i| x.row_qs(rows[i]).as_ptr());
    let d8: [&[f32]; N] = std::array::from_fn(|i| x.row_d(rows[i]));
    let sums: [&[f32]; N] = std::array::from_fn(|i| x.row_sums32(rows[i]));
    let mut total = [_mm512_setzero_ps(); N];
    for (sb, t) in tiles.iter().enumerate() {
        let dv = load_f16x16(t.d.as_ptr());
        let dminv = load_f16x16(t.dmin.as_ptr());
        for line in 0..5 {
            // The tile is 2,368 bytes: the loop over groups fetches the first 2,048.
            prefetch_ahead(t, 2048 + line * 64);
        }
        let mut fsum = [_mm512_setzero_ps(); N];
        let mut msum = [_mm512_setzero_ps(); N];
        for s in 0..8 {
            // Two chains per row (low and high nibbles) to halve the dependency on vpdpbusd.
            let mut acc_lo = [_mm512_setzero_si512(); N];
            let mut acc_hi = [_mm512_setzero_si512(); N];
            for gg in 0..4 {
                let g = 4 * s + gg;
                prefetch_ahead(t, g * 64);
                let w = _mm512_loadu_si512(t.qs.as_ptr().add(g * 64) as *const _);
                let lo = _mm512_and_si512(w, nib);
                let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(w), nib);
                for r in 0..N {
                    let a = qs[r].add(sb * QK_K + 8 * g);
                    acc_lo[r] = _mm512_dpbusd_epi32(acc_lo[r], lo, bcast4(a));
                    acc_hi[r] = _mm512_dpbusd_epi32(acc_hi[r], hi, bcast4(a.add(4)));
                }
            }
            let scv = _mm512_mul_ps(
                _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                    t.sc[s].as_ptr() as *const __m128i
                ))),
                dv,
            );
            let mnv = _mm512_mul_ps(
                _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                    t.mn[s].as_ptr() as *const __m128i
                ))),
                dminv,
            );
            for r in 0..N {
                let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(acc_lo[r], acc_hi[r]));
                fsum[r] = _mm512_fmadd_ps(dot, scv, fsum[r]);
                msum[r] = _mm512_fmadd_ps(
                    mnv,
                    _mm512_set1_ps(*sums[r].get_unchecked(sb * 8 + s)),
                    msum[r],
                );
            }
        }
        for r in 0..N {
            total[r] = _mm512_fmadd_ps(
                _mm512_sub_ps(fsum[r], msum[r]),
                _mm512_set1_ps(d8[r][sb]),
                total[r],
            );
        }
    }
    for r in 0..N {
        _mm512_storeu_ps(out[r], total[r]);
    }
}

/// The four groups of sub-block `s` of a Q6_K tile as whole six-bit values, one 64-byte vector
/// (sixteen rows of four inputs) per group: low nibbles and high bits put back together.
#[inline(always)]
unsafe fn q6k_groups(t: &TileQ6K, s: usize) -> [__m512i; 4] {
    let (nib, high) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x30));
    let q = t.qs[s].as_ptr();
    let a = _mm512_loadu_si512(q as *const _);
    let b = _mm512_loadu_si512(q.add(64) as *const _);
    let h = _mm512_loadu_si512(q.add(128) as *const _);
    // The 16-bit shifts carry bits across bytes; the masks drop them again.
    let join = |low: __m512i, h: __m512i| {
        _mm512_or_si512(_mm512_and_si512(low, nib), _mm512_and_si512(h, high))
    };
    [
        join(a, _mm512_slli_epi16::<4>(h)),
        join(_mm512_srli_epi16::<4>(a), _mm512_slli_epi16::<2>(h)),
        join(b, h),
        join(_mm512_srli_epi16::<4>(b), _mm512_srli_epi16::<2>(h)),
    ]
}

/// Rows `rows` of `x` against one row tile of Q6_K.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn q6k<const N: usize>(
    tiles: &[TileQ6K],
    x: &QuantInputs,
    rows: [usize; N],
    out: [*mut f32; N],
) {
    let qs: [*const i8; N] = std::array::from_fn(|i| x.row_qs(rows[i]).as_ptr());
    let d8: [&[f32]; N] = std::array::from_fn(|i| x.row_d(rows[i]));
    let sums: [&[i32]; N] = std::array::from_fn(|i| x.row_sums16(rows[i]));
    let qs_at = std::mem::offset_of!(TileQ6K, qs);
    let mut total = [_mm512_setzero_ps(); N];
    for (sb, t) in tiles.iter().enumerate() {
        let dv = load_f16x16(t.d.as_ptr());
        for line in 0..5 {
            // The scales: the first 288 bytes of the tile.
            prefetch_ahead(t, line * 64);
        }
        let mut fsum = [_mm512_setzero_ps(); N];
        for s in 0..16 {
            for line in 0..3 {
                prefetch_ahead(t, qs_at + s * Q6K_SUB_BLOCK_BYTES + line * 64);
            }
            let w = q6k_groups(t, s);
            // Start from -32 * sum(inputs): the weights are stored offset by 32. Two chains per
            // row to halve the dependency on vpdpbusd.
            let mut acc_a: [__m512i; N] =
                std::array::from_fn(|r| _mm512_set1_epi32(-32 * sums[r][sb * 16 + s]));
            let mut acc_b = [_mm512_setzero_si512(); N];
            for r in 0..N {
                let a = qs[r].add(sb * QK_K + 16 * s);
                acc_a[r] = _mm512_dpbusd_epi32(acc_a[r], w[0], bcast4(a));
                acc_b[r] = _mm512_dpbusd_epi32(acc_b[r], w[1], bcast4(a.add(4)));
                acc_a[r] = _mm512_dpbusd_epi32(acc_a[r], w[2], bcast4(a.add(8)));
                acc_b[r] = _mm512_dpbusd_epi32(acc_b[r], w[3], bcast4(a.add(12)));
            }
            let scv = _mm512_mul_ps(
                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                    t.sc[s].as_ptr() as *const __m128i
                ))),
                dv,
            );
            for r in 0..N {
                let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(acc_a[r], acc_b[r]));
                fsum[r] = _mm512_fmadd_ps(dot, scv, fsum[r]);
            }
        }
        for r in 0..N {
            total[r] = _mm512_fmadd_ps(fsum[r], _mm512_set1_ps(d8[r][sb]), total[r]);
        }
    }
    for r in 0..N {
        _mm512_storeu_ps(out[r], total[r]);
    }
}

/// Rows `rows` of `x` against one row tile of Q8_0.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn q8_0<const N: usize>(
    tiles: &[TileQ8_0],
    x: &QuantInputs,
    rows: [usize; N],
    out: [*mut f32; N],
) {
    let qs: [*const i8; N] = std::array::from_fn(|i| x.row_qs(rows[i]).as_ptr());
    let d8: [&[f32]; N] = std::array::from_fn(|i| x.row_d(rows[i]));
    let sums: [&[i32]; N] = std::array::from_fn(|i| x.row_sums16(rows[i]));
    let mut total = [_mm512_setzero_ps(); N];
    for (b, t) in tiles.iter().enumerate() {
        let dv = load_f16x16(t.d.as_ptr());
        // The weights are stored offset by 128.
        let mut acc: [__m512i; N] = std::array::from_fn(|r| {
            _mm512_set1_epi32(-128 * (sums[r][2 * b] + sums[r][2 * b + 1]))
        });
        prefetch_ahead(t, 0);
        for g in 0..QK8_0 / 4 {
            prefetch_ahead(t, 64 + g * 64);
            let w = _mm512_loadu_si512(t.qs.as_ptr().add(g * 64) as *const _);
            for r in 0..N {
                acc[r] = _mm512_dpbusd_epi32(acc[r], w, bcast4(qs[r].add(b * QK8_0 + 4 * g)));
            }
        }
        for r in 0..N {
            total[r] = _mm512_fmadd_ps(
                _mm512_cvtepi32_ps(acc[r]),
                _mm512_mul_ps(dv, _mm512_set1_ps(d8[r][b])),
                total[r],
            );
        }
    }
    for r in 0..N {
        _mm512_storeu_ps(out[r], total[r]);
    }
}
