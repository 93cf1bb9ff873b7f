//! AVX2 kernels over the same tiles, for CPUs without AVX-512 (most laptops): each 16-row tile is
//! done as two halves of eight rows (bytes 0..32 and 32..64 of every 64-byte group). Without
//! VNNI a 4-byte dot product is `vpmaddubsw` (pairs into 16 bits) then `vpmaddwd` (into 32 bits);
//! the comments give the bounds that keep the 16-bit sums from saturating.
//!
//! Safety: as in `avx512.rs` — the CPU features are checked by [`available`], the slices by
//! the caller.

use super::inputs::QuantInputs;
use super::tiles::{TileQ4K, TileQ6K, TileQ8_0, QK8_0, QK_K};
use std::arch::x86_64::*;

pub fn available() -> bool {
    std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c")
}

#[inline(always)]
unsafe fn bcast4(p: *const i8) -> __m256i {
    _mm256_set1_epi32(std::ptr::read_unaligned(p as *const i32))
}

/// Eight f16 values from `p` (the rows of one half).
#[inline(always)]
unsafe fn load_f16x8(p: *const half::f16) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
}

#[inline(always)]
unsafe fn load_u8x8_as_f32(p: *const u8) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p as *const __m128i)))
}

#[inline(always)]
unsafe fn load_i8x8_as_f32(p: *const i8) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4k<const N: usize>(
    tiles: &[TileQ4K],
    x: &QuantInputs,
    rows: [usize; N],
    out: [*mut f32; N],
) {
    let nib = _mm256_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let qs: [*const i8; N] = std::array::from_fn(|i| x.row_qs(rows[i]).as_ptr());
    let d8: [&[f32]; N] = std::array::from_fn(|i| x.row_d(rows[i]));
    let sums: [&[f32]; N] = std::array::from_fn(|i| x.row_sums32(rows[i]));
    for h in 0..2 {
        let mut total = [_mm256_setzero_ps(); N];
        for (sb, t) in tiles.iter().enumerate() {
            let dv = load_f16x8(t.d.as_ptr().add(8 * h));
            let dminv = load_f16x8(t.dmin.as_ptr().add(8 * h));
            let mut block = [_mm256_setzero_ps(); N];
            for s in 0..8 {
                // Eight products of a nibble (<= 15) and an input (|q| <= 127) per 16-bit lane
                // pair: at most 8 * 2 * 15 * 127 = 30,480, inside i16.
                let mut acc = [_mm256_setzero_si256(); N];
                for gg in 0..4 {
                    let g = 4 * s + gg;
                    let w =
                        _mm256_loadu_si256(t.qs.as_ptr().add(g * 64 + 32 * h) as *const __m256i);
                    let lo = _mm256_and_si256(w, nib);
                    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(w), nib);
                    for r in 0..N {
                        let a = qs[r].add(sb * QK_K + 8 * g);
                        acc[r] = _mm256_add_epi16(acc[r], _mm256_maddubs_epi16(lo, bcast4(a)));
                        acc[r] =
                            _mm256_add_epi16(acc[r], _mm256_maddubs_epi16(hi, bcast4(a.add(4))));
                    }
                }
                let scv = _mm256_mul_ps(load_u8x8_as_f32(t.sc[s].as_ptr().add(8 * h)), dv);
                let mnv = _mm256_mul_ps(load_u8x8_as_f32(t.mn[s].as_ptr().add(8 * h)), dminv);
                for r in 0..N {
                    let dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(acc[r], ones));
                    block[r] = _mm256_fmadd_ps(dot, scv, block[r]);
                    block[r] = _mm256_fnmadd_ps(
                        mnv,
                        _mm256_set1_ps(*sums[r].get_unchecked(sb * 8 + s)),
                        block[r],
                    );
                }
            }
            for r in 0..N {
                total[r] = _mm256_fmadd_ps(block[r], _mm256_set1_ps(d8[r][sb]), total[r]);
            }
        }
        for r in 0..N {
            _mm256_storeu_ps(out[r].add(8 * h), total[r]);
        }
    }
}

/// Half `h` (rows `8h..8h + 8`) of the four groups of sub-block `s` of a Q6_K tile as whole
/// six-bit values (see `avx512::q6k_groups`).
#[inline(always)]
unsafe fn q6k_groups(t: &TileQ6K, s: usize, h: usize) -> [__m256i; 4] {
    let (nib, high) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x30));
    let q = t.qs[s].as_ptr().add(32 * h);
    let a = _mm256_loadu_si256(q as *const __m256i);
    let b = _mm256_loadu_si256(q.add(64) as *const __m256i);
    let hb = _mm256_loadu_si256(q.add(128) as *const __m256i);
    let join = |low: __m256i, hb: __m256i| {
        _mm256_or_si256(_mm256_and_si256(low, nib), _mm256_and_si256(hb, high))
    };
    [
        join(a, _mm256_slli_epi16::<4>(hb)),
        join(_mm256_srli_epi16::<4>(a), _mm256_slli_epi16::<2>(hb)),
        join(b, hb),
        join(_mm256_srli_epi16::<4>(b), _mm256_srli_epi16::<2>(hb)),
    ]
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q6k<const N: usize>(
    tiles: &[TileQ6K],
    x: &QuantInputs,
    rows: [usize; N],
    out: [*mut f32; N],
) {
    let ones = _mm256_set1_epi16(1);
    let qs: [*const i8; N] = std::array::from_fn(|i| x.row_qs(rows[i]).as_ptr());
    let d8: [&[f32]; N] = std::array::from_fn(|i| x.row_d(rows[i]));
    let sums: [&[i32]; N] = std::array::from_fn(|i| x.row_sums16(rows[i]));
    for h in 0..2 {
        let mut total = [_mm256_setzero_ps(); N];
        for (sb, t) in tiles.iter().enumerate() {
            let dv = load_f16x8(t.d.as_ptr().add(8 * h));
            let mut block = [_mm256_setzero_ps(); N];
            for s in 0..16 {
                let w = q6k_groups(t, s, h);
                // Start from -32 * sum(inputs): the weights are stored offset by 32.
                let mut acc: [__m256i; N] =
                    std::array::from_fn(|r| _mm256_set1_epi32(-32 * sums[r][sb * 16 + s]));
                for pair in 0..2 {
                    let (wa, wb) = (w[2 * pair], w[2 * pair + 1]);
                    for r in 0..N {
                        let a = qs[r].add(sb * QK_K + 16 * s + 8 * pair);
                        // Two products of a value (<= 63) and an input per lane pair, twice:
                        // at most 2 * 2 * 63 * 127 = 32,004, inside i16.
                        let p = _mm256_add_epi16(
                            _mm256_maddubs_epi16(wa, bcast4(a)),
                            _mm256_maddubs_epi16(wb, bcast4(a.add(4))),
                        );
                        acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(p, ones));
                    }
                }
                let scv = _mm256_mul_ps(load_i8x8_as_f32(t.sc[s].as_ptr().add(8 * h)), dv);
                for r in 0..N {
                    block[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r]), scv, block[r]);
                }
            }
            for r in 0..N {
                total[r] = _mm256_fmadd_ps(block[r], _mm256_set1_ps(d8[r][sb]), total[r]);
            }
        }
        for r in 0..N {
            _mm256_storeu_ps(out[r].add(8 * h), total[r]);
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q8_0<const N: usize>(
    tiles: &[TileQ8_0],
    x: &QuantInputs,
    rows: [usize; N],
    out: [*mut f32; N],
) {
    let ones = _mm256_set1_epi16(1);
    let flip = _mm256_set1_epi8(-128);
    let qs: [*const i8; N] = std::array::from_fn(|i| x.row_qs(rows[i]).as_ptr());
    let d8: [&[f32]; N] = std::array::from_fn(|i| x.row_d(rows[i]));
    for h in 0..2 {
        let mut total = [_mm256_setzero_ps(); N];
        for (b, t) in tiles.iter().enumerate() {
            let dv = load_f16x8(t.d.as_ptr().add(8 * h));
            let mut acc = [_mm256_setzero_si256(); N];
            for g in 0..QK8_0 / 4 {
                // Stored as w + 128; back to signed w, then |w| times the input carrying w's sign
                // (|w| <= 128, |q| <= 127: a pair sums to at most 32,512, inside i16).
                let w = _mm256_xor_si256(
                    _mm256_loadu_si256(t.qs.as_ptr().add(g * 64 + 32 * h) as *const __m256i),
                    flip,
                );
                let wabs = _mm256_sign_epi8(w, w);
                for r in 0..N {
                    let a = _mm256_sign_epi8(bcast4(qs[r].add(b * QK8_0 + 4 * g)), w);
                    acc[r] = _mm256_add_epi32(
                        acc[r],
                        _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, a), ones),
                    );
                }
            }
            for r in 0..N {
                total[r] = _mm256_fmadd_ps(
                    _mm256_cvtepi32_ps(acc[r]),
                    _mm256_mul_ps(dv, _mm256_set1_ps(d8[r][b])),
                    total[r],
                );
            }
        }
        for r in 0..N {
            _mm256_storeu_ps(out[r].add(8 * h), total[r]);
        }
    }
}
