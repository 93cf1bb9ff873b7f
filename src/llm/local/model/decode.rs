//! The CPU decode step on plain buffers: every sequence feeds one token, and the layer stack
//! runs on `Vec<f32>` rows between our own matmul passes and attention, with no tensor ops.
//!
//! Through candle, each layer cost about fifteen small tensor ops per step (norms, rotary
//! embedding, biases, residuals, SiLU): an allocation each, run on one thread while the other
//! pool threads waited. Here those are short loops over the rows. The arithmetic is candle's
//! (same formulas, same f32 order), so a decoded token's logits match the prefill path's; the
//! test suite checks that.

use super::arch::{ModelConfig, RopeStyle};
use super::kv::KvCache;
use crate::error::Result;
use crate::llm::local::kernels::attention::{attend_batch, Heads, KvView};
use crate::llm::local::kernels::fastmath::exp_nonpositive;
use crate::llm::local::kernels::qmatmul::PackedWeight;
use std::sync::Arc;

/// One layer's weights, as the decode step reads them.
pub struct DecodeLayer {
    pub attn_norm: Vec<f32>,
    pub q: Arc<PackedWeight>,
    pub k: Arc<PackedWeight>,
    pub v: Arc<PackedWeight>,
    /// q, k and v biases, when the architecture has them.
    pub qkv_bias: Option<[Vec<f32>; 3]>,
    pub o: Arc<PackedWeight>,
    pub ffn_norm: Vec<f32>,
    pub gate: Arc<PackedWeight>,
    pub up: Arc<PackedWeight>,
    pub down: Arc<PackedWeight>,
}

/// The layer stack of a model whose every layer matrix runs on our kernels.
pub struct CpuDecoder {
    pub layers: Vec<DecodeLayer>,
    /// `1 / theta^(2i / head_dim)`, as the rotary tables use it.
    pub inv_freq: Vec<f32>,
}

impl CpuDecoder {
    /// Runs rows `x` (`[sum of counts, hidden]`) through every layer: `counts[i]` new tokens
    /// for `caches[i]` (one for a plain decode step, more when guessed tokens are verified),
    /// rows in order. Each token's key and value are written past its cache's current end and
    /// each row attends to its cache up to its own position; the caller advances the caches
    /// afterwards. A row's arithmetic is the same whatever the other rows are, so a verified
    /// guess gets the logits a step-by-step decode would.
    pub fn run(
        &self,
        cfg: &ModelConfig,
        x: &mut [f32],
        caches: &mut [&mut KvCache],
        counts: &[usize],
    ) -> Result<()> {
        // (cache, tokens ahead of its end) of every row.
        let owners: Vec<(usize, usize)> =
            counts.iter().enumerate().flat_map(|(c, &n)| (0..n).map(move |j| (c, j))).collect();
        let rows = owners.len();
        let (h, hd) = (cfg.hidden, cfg.head_dim);
        let (q_w, kv_w) = (cfg.heads * hd, cfg.kv_heads * hd);
        let rope: Vec<(Vec<f32>, Vec<f32>)> =
            owners.iter().map(|&(c, j)| self.rotation(caches[c].len() + j)).collect();
        let mut normed = vec![0f32; rows * h];
        for (li, l) in self.layers.iter().enumerate() {
            rms_norm_rows(x, &l.attn_norm, cfg.rms_eps, &mut normed);
            let [mut q, mut k, mut v]: [Vec<f32>; 3] =
                PackedWeight::matmul_many(&[&l.q, &l.k, &l.v], &normed, rows)
                    .try_into()
                    .unwrap_or_else(|_| unreachable!("three outputs"));
            if let Some([bq, bk, bv]) = &l.qkv_bias {
                add_rows(&mut q, bq);
                add_rows(&mut k, bk);
                add_rows(&mut v, bv);
            }
            for (r, (cos, sin)) in rope.iter().enumerate() {
                rotate(cfg.rope_style, hd, &mut q[r * q_w..(r + 1) * q_w], cos, sin);
                rotate(cfg.rope_style, hd, &mut k[r * kv_w..(r + 1) * kv_w], cos, sin);
            }
            for (r, &(c, j)) in owners.iter().enumerate() {
                let (kr, vr) = (&k[r * kv_w..(r + 1) * kv_w], &v[r * kv_w..(r + 1) * kv_w]);
                caches[c].write_position(li, j, kr, vr)?;
            }
            let readers: Vec<(&KvCache, usize)> =
                owners.iter().map(|&(c, j)| (&*caches[c], caches[c].len() + j + 1)).collect();
            let attn = attend_rows(cfg, li, &q, &readers)?;
            let o = PackedWeight::matmul_many(&[&l.o], &attn, rows).swap_remove(0);
            add_into(x, &o);
            rms_norm_rows(x, &l.ffn_norm, cfg.rms_eps, &mut normed);
            let [mut g, u]: [Vec<f32>; 2] =
                PackedWeight::matmul_many(&[&l.gate, &l.up], &normed, rows)
                    .try_into()
                    .unwrap_or_else(|_| unreachable!("two outputs"));
            for (g, u) in g.iter_mut().zip(&u) {
                *g = silu(*g) * u;
            }
            let d = PackedWeight::matmul_many(&[&l.down], &g, rows).swap_remove(0);
            add_into(x, &d);
        }
        Ok(())
    }

    /// cos and sin of every rotary frequency at `position` (the rotary tables' row).
    fn rotation(&self, position: usize) -> (Vec<f32>, Vec<f32>) {
        self.inv_freq
            .iter()
            .map(|f| (position as f32 * f).cos())
            .zip(self.inv_freq.iter().map(|f| (position as f32 * f).sin()))
            .unzip()
    }
}

/// Decode attention of every row's query heads over the first `len` positions of its cache
/// (which already hold the row's own key and value): `[rows, heads * head_dim]`.
pub fn attend_rows(
    cfg: &ModelConfig,
    layer: usize,
    q: &[f32],
    rows: &[(&KvCache, usize)],
) -> Result<Vec<f32>> {
    let heads = Heads { heads: cfg.heads, kv_heads: cfg.kv_heads, head_dim: cfg.head_dim };
    let guards =
        rows.iter().map(|(c, len)| c.layer_f16(layer, *len)).collect::<Result<Vec<_>>>()?;
    let views = guards.iter().map(|g| g.view()).collect::<Result<Vec<KvView<'_>>>>()?;
    Ok(attend_batch(heads, &views, q))
}

/// `x / (1 + e^-x)` (candle's silu) through the libm-free exponential, which vectorizes where
/// `f32::exp` was a library call per value (1–2 % of a decode step): with `e = e^-|x|`, the
/// sigmoid is `1 / (1 + e)` for `x >= 0` and `e / (1 + e)` below.
#[inline(always)]
fn silu(x: f32) -> f32 {
    let e = exp_nonpositive(-x.abs());
    let inv = 1.0 / (1.0 + e);
    x * if x >= 0.0 { inv } else { e * inv }
}

/// candle's `rms_norm`, row by row: `x / sqrt(mean(x^2) + eps) * w`.
fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    for (xr, yr) in x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())) {
        let sum2: f32 = xr.iter().map(|v| v * v).sum();
        let m = (sum2 / w.len() as f32 + eps).sqrt();
        for ((y, v), a) in yr.iter_mut().zip(xr).zip(w) {
            *y = *v / m * *a;
        }
    }
}

/// Adds `bias` to every row of `x`.
fn add_rows(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        add_into(row, bias);
    }
}

fn add_into(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += *b;
    }
}

/// Rotary embedding of every head in `x` (one row) at the position of `cos`/`sin`, in candle's
/// two layouts: `rope` (halves) and `rope_i` (adjacent pairs).
fn rotate(style: RopeStyle, hd: usize, x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = hd / 2;
    for head in x.chunks_exact_mut(hd) {
        for i in 0..half {
            let (a, b) = match style {
                RopeStyle::Neox => (i, i + half),
                RopeStyle::Interleaved => (2 * i, 2 * i + 1),
            };
            let (x1, x2) = (head[a], head[b]);
            head[a] = x1 * cos[i] - x2 * sin[i];
            head[b] = x1 * sin[i] + x2 * cos[i];
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn silu_matches_its_definition_on_both_signs() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.01;
            let want = x as f64 / (1.0 + (-(x as f64)).exp());
            assert!(
                (super::silu(x) as f64 - want).abs() <= 1e-5 * want.abs().max(1e-3),
                "silu({x})"
            );
        }
        assert!(super::silu(-200.0).abs() < 1e-30);
        assert_eq!(super::silu(200.0), 200.0);
    }
}
