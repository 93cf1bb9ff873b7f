//! Weight tiles: GGUF's quantized rows regrouped sixteen output rows at a time, so that one SIMD
//! register holds the same four inputs of sixteen rows and a dot-product instruction advances
//! sixteen outputs at once. The values are the GGUF file's, rearranged, and the file's layout
//! is not kept beside them: a tile takes the space of its sixteen rows in the file (Q4_K: +3 %,
//! its 6-bit scales unpacked to bytes; Q6_K and Q8_0: the same).
//!
//! Q4_K groups inputs by eight (`g`): per group sixteen rows of four bytes, byte `j` of row `r`
//! holding inputs `8g + j` (low nibble) and `8g + 4 + j` (high nibble). Q8_0 groups them by
//! four: per group sixteen rows of four bytes, one input each. Q6_K splits each six-bit value in
//! two (see [`TileQ6K`]) so that it is read at its own size: decoding is bound by reading the
//! weights, and Q6_K holds the output head, the largest matrix.

use half::f16;

/// Output rows per tile.
pub const ROWS: usize = 16;
/// Inputs per K-quant super-block.
pub const QK_K: usize = 256;
/// Inputs per Q8_0 block.
pub const QK8_0: usize = 32;

/// Sixteen rows of one Q4_K super-block: `w = d * sc[s] * q - dmin * mn[s]`, `q` in 0..16,
/// sub-block `s` = 32 inputs.
#[repr(C)]
#[derive(Clone)]
pub struct TileQ4K {
    pub d: [f16; ROWS],
    pub dmin: [f16; ROWS],
    /// `[sub-block][row]`
    pub sc: [[u8; ROWS]; 8],
    pub mn: [[u8; ROWS]; 8],
    pub qs: [u8; QK_K * ROWS / 2],
}

/// Sixteen rows of one Q6_K super-block: `w = d * sc[s] * (q - 32)`, `q` in 0..64, sub-block `s` =
/// 16 inputs, in four groups `gg` of 4 inputs (`16s + 4gg + j`, `j` in 0..4).
///
/// Each sub-block is three 64-byte vectors laid out `[row][4]`, one after the other so that the
/// tile is read as one stream, and a few shifts and masks rebuild one group's sixteen rows of
/// four whole bytes for the dot-product instruction:
/// - vector `pair` (0, 1): the low four bits of groups `2 * pair` (low nibble) and
///   `2 * pair + 1` (high nibble);
/// - vector 2: the high two bits of group `gg` at bits `2gg..2gg + 2`.
#[repr(C)]
#[derive(Clone)]
pub struct TileQ6K {
    pub d: [f16; ROWS],
    /// `[sub-block][row]`
    pub sc: [[i8; ROWS]; 16],
    /// `[sub-block][vector][row][4]`
    pub qs: [[u8; Q6K_SUB_BLOCK_BYTES]; 16],
}

/// Bytes of one Q6_K sub-block of sixteen rows: three 64-byte vectors.
pub const Q6K_SUB_BLOCK_BYTES: usize = 3 * 64;

/// Sixteen rows of one Q8_0 block: `w = d * (q - 128)`, stored as `q = w + 128` so that it is
/// unsigned (what the dot-product instruction wants), one byte per input.
#[repr(C)]
#[derive(Clone)]
pub struct TileQ8_0 {
    pub d: [f16; ROWS],
    /// `[group of 4 inputs][row][4]`
    pub qs: [u8; QK8_0 * ROWS],
}

pub const Q4K_BLOCK_BYTES: usize = 144;
pub const Q6K_BLOCK_BYTES: usize = 210;
pub const Q8_0_BLOCK_BYTES: usize = 34;

fn f16_at(b: &[u8], at: usize) -> f16 {
    f16::from_le_bytes([b[at], b[at + 1]])
}

/// ggml's packing of eight 6-bit scales and eight 6-bit mins into twelve bytes.
fn q4k_scale_min(scales: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        (
            (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4),
            (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
        )
    }
}

/// The 256 quantized values (0..16) of one GGUF Q4_K block, in input order.
fn q4k_values(block: &[u8]) -> [u8; QK_K] {
    let qs = &block[16..144];
    let mut v = [0u8; QK_K];
    for j in 0..4 {
        for l in 0..32 {
            v[64 * j + l] = qs[32 * j + l] & 0x0F;
            v[64 * j + 32 + l] = qs[32 * j + l] >> 4;
        }
    }
    v
}

/// The 256 quantized values (0..64) of one GGUF Q6_K block, in input order.
fn q6k_values(block: &[u8]) -> [u8; QK_K] {
    let (ql, qh) = (&block[0..128], &block[128..192]);
    let mut v = [0u8; QK_K];
    for half in 0..2 {
        let (ql, qh) = (&ql[64 * half..], &qh[32 * half..]);
        let out = &mut v[128 * half..];
        for l in 0..32 {
            out[l] = (ql[l] & 0x0F) | ((qh[l] & 3) << 4);
            out[l + 32] = (ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4);
            out[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            out[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
    }
    v
}

/// Byte offset of (group `g`, row `r`, byte `j`) in a nibble array.
#[inline(always)]
fn lane(g: usize, r: usize, j: usize) -> usize {
    (g * ROWS + r) * 4 + j
}

/// Packs the blocks of super-block `sb` of sixteen rows (`rows[r]` = row r's bytes in the file).
pub fn pack_q4k(rows: &[&[u8]; ROWS], sb: usize) -> TileQ4K {
    let mut t = TileQ4K {
        d: [f16::ZERO; ROWS],
        dmin: [f16::ZERO; ROWS],
        sc: [[0; ROWS]; 8],
        mn: [[0; ROWS]; 8],
        qs: [0; QK_K * ROWS / 2],
    };
    for (r, row) in rows.iter().enumerate() {
        let b = &row[sb * Q4K_BLOCK_BYTES..(sb + 1) * Q4K_BLOCK_BYTES];
        t.d[r] = f16_at(b, 0);
        t.dmin[r] = f16_at(b, 2);
        for s in 0..8 {
            let (sc, mn) = q4k_scale_min(&b[4..16], s);
            t.sc[s][r] = sc;
            t.mn[s][r] = mn;
        }
        let v = q4k_values(b);
        for g in 0..QK_K / 8 {
            for j in 0..4 {
                t.qs[lane(g, r, j)] = v[8 * g + j] | (v[8 * g + 4 + j] << 4);
            }
        }
    }
    t
}

/// Where input `i` (0..256) of row `r` sits in a [`TileQ6K`]: its sub-block, its low bits' byte
/// there, whether they are that byte's high nibble, and the shift of its two high bits in their
/// byte (`128 + r * 4 + j`).
#[inline(always)]
fn q6k_place(r: usize, i: usize) -> (usize, usize, bool, usize, usize) {
    let (s, gg, j) = (i / 16, i % 16 / 4, i % 4);
    let lane = r * 4 + j;
    (s, gg / 2 * 64 + lane, gg % 2 == 1, 128 + lane, 2 * gg)
}

pub fn pack_q6k(rows: &[&[u8]; ROWS], sb: usize) -> TileQ6K {
    let mut t =
        TileQ6K { d: [f16::ZERO; ROWS], sc: [[0; ROWS]; 16], qs: [[0; Q6K_SUB_BLOCK_BYTES]; 16] };
    for (r, row) in rows.iter().enumerate() {
        let b = &row[sb * Q6K_BLOCK_BYTES..(sb + 1) * Q6K_BLOCK_BYTES];
        t.d[r] = f16_at(b, 208);
        for s in 0..16 {
            t.sc[s][r] = b[192 + s] as i8;
        }
        for (i, q) in q6k_values(b).into_iter().enumerate() {
            let (s, l, high_nibble, h, shift) = q6k_place(r, i);
            t.qs[s][l] |= if high_nibble { (q & 0x0F) << 4 } else { q & 0x0F };
            t.qs[s][h] |= (q >> 4) << shift;
        }
    }
    t
}

pub fn pack_q8_0(rows: &[&[u8]; ROWS], block: usize) -> TileQ8_0 {
    let mut t = TileQ8_0 { d: [f16::ZERO; ROWS], qs: [0; QK8_0 * ROWS] };
    for (r, row) in rows.iter().enumerate() {
        let b = &row[block * Q8_0_BLOCK_BYTES..(block + 1) * Q8_0_BLOCK_BYTES];
        t.d[r] = f16_at(b, 0);
        for i in 0..QK8_0 {
            let q = b[2 + i] as i8;
            t.qs[((i / 4) * ROWS + r) * 4 + i % 4] = (q as i16 + 128) as u8;
        }
    }
    t
}

impl TileQ4K {
    /// The quantized value of input `i` (0..256) of row `r`.
    pub fn q(&self, r: usize, i: usize) -> u8 {
        let (g, j) = (i / 8, i % 8);
        let byte = self.qs[lane(g, r, j % 4)];
        if j < 4 {
            byte & 0x0F
        } else {
            byte >> 4
        }
    }

    /// Row `r`'s 256 weights.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let (d, dmin) = (self.d[r].to_f32(), self.dmin[r].to_f32());
        for (i, o) in out[..QK_K].iter_mut().enumerate() {
            let s = i / 32;
            *o = d * self.sc[s][r] as f32 * self.q(r, i) as f32 - dmin * self.mn[s][r] as f32;
        }
    }
}

impl TileQ6K {
    pub fn q(&self, r: usize, i: usize) -> u8 {
        let (s, l, high_nibble, h, shift) = q6k_place(r, i);
        let q = &self.qs[s];
        let low = if high_nibble { q[l] >> 4 } else { q[l] & 0x0F };
        low | (((q[h] >> shift) & 3) << 4)
    }

    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let d = self.d[r].to_f32();
        for (i, o) in out[..QK_K].iter_mut().enumerate() {
            *o = d * self.sc[i / 16][r] as f32 * (self.q(r, i) as f32 - 32.0);
        }
    }
}

impl TileQ8_0 {
    pub fn q(&self, r: usize, i: usize) -> i32 {
        self.qs[((i / 4) * ROWS + r) * 4 + i % 4] as i32 - 128
    }

    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let d = self.d[r].to_f32();
        for (i, o) in out[..QK8_0].iter_mut().enumerate() {
            *o = d * self.q(r, i) as f32;
        }
    }
}
