//! Portable kernels: the same integer arithmetic as the SIMD ones, one output at a time. They
//! define what the SIMD kernels must compute and run where those cannot.

use super::inputs::QuantInputs;
use super::tiles::{TileQ4K, TileQ6K, TileQ8_0, QK8_0, QK_K, ROWS};

/// The sixteen outputs of one row tile (its blocks in input order) for input row `row`.
pub fn q4k(tiles: &[TileQ4K], x: &QuantInputs, row: usize, out: &mut [f32; ROWS]) {
    let (qs, d8, sums) = (x.row_qs(row), x.row_d(row), x.row_sums16(row));
    *out = [0.0; ROWS];
    for (sb, t) in tiles.iter().enumerate() {
        for (r, o) in out.iter_mut().enumerate() {
            let (mut f, mut m) = (0f32, 0f32);
            for s in 0..8 {
                let dot: i32 = (0..32)
                    .map(|i| t.q(r, 32 * s + i) as i32 * qs[sb * QK_K + 32 * s + i] as i32)
                    .sum();
                f += dot as f32 * t.sc[s][r] as f32;
                m += (sums[sb * 16 + 2 * s] + sums[sb * 16 + 2 * s + 1]) as f32 * t.mn[s][r] as f32;
            }
            *o += d8[sb] * (t.d[r].to_f32() * f - t.dmin[r].to_f32() * m);
        }
    }
}

pub fn q6k(tiles: &[TileQ6K], x: &QuantInputs, row: usize, out: &mut [f32; ROWS]) {
    let (qs, d8, sums) = (x.row_qs(row), x.row_d(row), x.row_sums16(row));
    *out = [0.0; ROWS];
    for (sb, t) in tiles.iter().enumerate() {
        for (r, o) in out.iter_mut().enumerate() {
            let mut f = 0f32;
            for s in 0..16 {
                let dot: i32 = (0..16)
                    .map(|i| t.q(r, 16 * s + i) as i32 * qs[sb * QK_K + 16 * s + i] as i32)
                    .sum();
                f += (dot - 32 * sums[sb * 16 + s]) as f32 * t.sc[s][r] as f32;
            }
            *o += d8[sb] * t.d[r].to_f32() * f;
        }
    }
}

pub fn q8_0(tiles: &[TileQ8_0], x: &QuantInputs, row: usize, out: &mut [f32; ROWS]) {
    let (qs, d8) = (x.row_qs(row), x.row_d(row));
    *out = [0.0; ROWS];
    for (b, t) in tiles.iter().enumerate() {
        for (r, o) in out.iter_mut().enumerate() {
            let dot: i32 = (0..QK8_0).map(|i| t.q(r, i) * qs[b * QK8_0 + i] as i32).sum();
            *o += d8[b] * t.d[r].to_f32() * dot as f32;
        }
    }
}
