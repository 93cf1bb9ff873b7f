//! AVX-512 VNNI kernels: one `vpdpbusd` multiplies four unsigned weight bytes of sixteen rows by
//! four signed input bytes and adds into sixteen 32-bit sums. Up to `MT` input rows share each
//! weight load, which is what makes a batch of sequences cost little more than one: decoding is
//! bound by reading the weights, and they are read once for the whole batch.
//!
//! Safety: every function here requires the CPU features it is compiled for (checked by
//! [`available`]) and tile and input slices of matching lengths (checked by the caller).

use super::inputs::QuantInputs;
use super::tiles::{TileQ4K, TileQ6K, TileQ8_0, QK8_0, QK_K};
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

#[inline(always)]
unsafe fn load_f16x16(p: *const half::f16) -> __m512 {
    _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
}

/// Rows `rows` of `x` against one row tile of Q4_K (its blocks in input order); output row `i`
/// goes to `out[i]` (sixteen floats).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn q4k<const N: usize>(tiles: &[TileQ4K], x: &QuantInputs, rows: [usize; N], out: [*mut f32; N]) {
    let nib = _mm512_set1_epi8(0x0F);
    let qs: [*const i8; N] = std::array::from_fn(|i| x.row_qs(rows[i]).as_ptr());
    let d8: [&[f32]; N] = std::array::from_fn(|i| x.row_d(rows[i]));
    let sums: [&[f32]; N] = std::array::from_fn(|i| x.row_sums32(rows[i]));
    let mut total = [_mm512_setzero_ps(); N];
    for (sb, t) in tiles.iter().enumerate() {
        let dv = load_f16x16(t.d.as_ptr());
        let dminv = load_f16x16(t.dmin.as_ptr());
        let mut fsum = [_mm512_setzero_ps(); N];
        let mut msum = [_mm512_setzero_ps(); N];
        for s in 0..8 {
            // Two chains per row (low and high nibbles) to halve the dependency on vpdpbusd.
            let mut acc_lo = [_mm512_setzero_si512(); N];
            let mut acc_hi = [_mm512_setzero_si512(); N];
            for gg in 0..4 {
                let g = 4 * s + gg;
                let w = _mm512_loadu_si512(t.qs.as_ptr().add(g * 64) as *const _);
                let lo = _mm512_and_si512(w, nib);
                let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(w), nib);
                for r in 0..N {
                    let a = qs[r].add(sb * QK_K + 8 * g);
                    acc_lo[r] = _mm512_dpbusd_epi32(acc_lo[r], lo, bcast4(a));
                    acc_hi[r] = _mm512_dpbusd_epi32(acc_hi[r], hi, bcast4(a.add(4)));
                }
            }
            let scv = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(t.sc[s].as_ptr() as *const __m128i))), dv);
            let mnv = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(t.mn[s].as_ptr() as *const __m128i))), dminv);
            for r in 0..N {
                let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(acc_lo[r], acc_hi[r]));
                fsum[r] = _mm512_fmadd_ps(dot, scv, fsum[r]);
                msum[r] = _mm512_fmadd_ps(mnv, _mm512_set1_ps(*sums[r].get_unchecked(sb * 8 + s)), msum[r]);
            }
        }
        for r in 0..N {
            total[r] = _mm512_fmadd_ps(_mm512_sub_ps(fsum[r], msum[r]), _mm512_set1_ps(d8[r][sb]), total[r]);
        }
    }
    for r in 0..N {
        _mm512_storeu_ps(out[r], total[r]);
    }
}

/// Rows `rows` of `x` against one row tile of Q6_K.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn q6k<const N: usize>(tiles: &[TileQ6K], x: &QuantInputs, rows: [usize; N], out: [*mut f32; N]) {
    let nib = _mm512_set1_epi8(0x0F);
    let top = _mm512_set1_epi8(0x30);
    // Per 16-bit word: the shifts that bring each lane's two high bits to bits 4-5 (see the
    // `qh` layout in tiles.rs): low-nibble lanes 0..32 by 4 left, 32..64 by 2 left; high-nibble
    // lanes 0..32 stay, 32..64 go 2 right.
    let shift_lo = _mm512_inserti64x4::<1>(_mm512_set1_epi16(4), _mm256_set1_epi16(2));
    let shift_hi = _mm512_inserti64x4::<1>(_mm512_setzero_si512(), _mm256_set1_epi16(2));
    let qs: [*const i8; N] = std::array::from_fn(|i| x.row_qs(rows[i]).as_ptr());
    let d8: [&[f32]; N] = std::array::from_fn(|i| x.row_d(rows[i]));
    let sums: [&[i32]; N] = std::array::from_fn(|i| x.row_sums16(rows[i]));
    let mut total = [_mm512_setzero_ps(); N];
    for (sb, t) in tiles.iter().enumerate() {
        let dv = load_f16x16(t.d.as_ptr());
        let mut fsum = [_mm512_setzero_ps(); N];
        for s in 0..16 {
            // Start from -32 * sum(inputs): the weights are stored offset by 32.
            let mut acc_lo: [__m512i; N] = std::array::from_fn(|r| _mm512_set1_epi32(-32 * sums[r][sb * 16 + s]));
            let mut acc_hi = [_mm512_setzero_si512(); N];
            for gg in 0..2 {
                let g = 2 * s + gg;
                let w = _mm512_loadu_si512(t.ql.as_ptr().add(g * 64) as *const _);
                let h = _mm512_broadcast_i64x4(_mm256_loadu_si256(t.qh.as_ptr().add(g * 32) as *const __m256i));
                let lo = _mm512_or_si512(_mm512_and_si512(w, nib), _mm512_and_si512(_mm512_sllv_epi16(h, shift_lo), top));
                let hi = _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16::<4>(w), nib),
                    _mm512_and_si512(_mm512_srlv_epi16(h, shift_hi), top),
                );
                for r in 0..N {
                    let a = qs[r].add(sb * QK_K + 8 * g);
                    acc_lo[r] = _mm512_dpbusd_epi32(acc_lo[r], lo, bcast4(a));
                    acc_hi[r] = _mm512_dpbusd_epi32(acc_hi[r], hi, bcast4(a.add(4)));
                }
            }
            let scv = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(t.sc[s].as_ptr() as *const __m128i))), dv);
            for r in 0..N {
                let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(acc_lo[r], acc_hi[r]));
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
pub unsafe fn q8_0<const N: usize>(tiles: &[TileQ8_0], x: &QuantInputs, rows: [usize; N], out: [*mut f32; N]) {
    let qs: [*const i8; N] = std::array::from_fn(|i| x.row_qs(rows[i]).as_ptr());
    let d8: [&[f32]; N] = std::array::from_fn(|i| x.row_d(rows[i]));
    let sums: [&[i32]; N] = std::array::from_fn(|i| x.row_sums16(rows[i]));
    let mut total = [_mm512_setzero_ps(); N];
    for (b, t) in tiles.iter().enumerate() {
        let dv = load_f16x16(t.d.as_ptr());
        // The weights are stored offset by 128.
        let mut acc: [__m512i; N] = std::array::from_fn(|r| _mm512_set1_epi32(-128 * (sums[r][2 * b] + sums[r][2 * b + 1])));
        for g in 0..QK8_0 / 4 {
            let w = _mm512_loadu_si512(t.qs.as_ptr().add(g * 64) as *const _);
            for r in 0..N {
                acc[r] = _mm512_dpbusd_epi32(acc[r], w, bcast4(qs[r].add(b * QK8_0 + 4 * g)));
            }
        }
        for r in 0..N {
            total[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r]), _mm512_mul_ps(dv, _mm512_set1_ps(d8[r][b])), total[r]);
        }
    }
    for r in 0..N {
        _mm512_storeu_ps(out[r], total[r]);
    }
}
