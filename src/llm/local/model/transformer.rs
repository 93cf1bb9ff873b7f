//! The one transformer of the engine: a llama-style decoder (RMSNorm, rotary attention with
//! grouped kv heads, SwiGLU) on quantized weights, for every architecture in `arch/`.
//!
//! Unlike candle-transformers' quantized models it keeps the token embedding quantized (only the
//! looked-up rows are dequantized), ties the output head to it when `output.weight` is absent,
//! gives each sequence its own kv cache and rotary positions, and runs several sequences of
//! different lengths through one forward pass (projections batched over all rows, attention per
//! sequence).

use super::arch::{ModelConfig, RopeStyle};
use super::decode::{self, CpuDecoder, DecodeLayer};
use super::gguf::GgufFile;
use super::kv::KvCache;
use super::weights::{forward_many, Embedding, Proj, WeightLoader};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};

/// Rotary tables are precomputed up to this many positions at most.
const MAX_ROPE_POSITIONS: usize = 32_768;

/// New tokens per sequence up to which a [`Model::forward_every`] pass (a decode step, or one
/// verifying guessed tokens) runs on the plain-buffer decoder; [`Model::forward`] keeps it for
/// one-token steps, so a prompt's prefill always takes the tensor path.
pub const MAX_DECODE_RUN: usize = 16;

fn t(op: &'static str) -> impl FnOnce(candle_core::Error) -> Error {
    move |e| Error::tensor(op, e)
}

struct Linear {
    w: Proj,
    b: Option<Tensor>,
}

impl Linear {
    fn add_bias(&self, y: Tensor) -> Result<Tensor> {
        match &self.b {
            Some(b) => y.broadcast_add(b).map_err(t("bias")),
            None => Ok(y),
        }
    }
}

struct Block {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Proj,
    ffn_norm: Tensor,
    gate: Proj,
    up: Proj,
    down: Proj,
}

/// The weights of a loaded model.
pub struct Model {
    pub cfg: ModelConfig,
    device: Device,
    embed: Embedding,
    blocks: Vec<Block>,
    norm: Tensor,
    output: Proj,
    cos: Tensor,
    sin: Tensor,
    max_positions: usize,
    /// The decode step on plain buffers, when every layer matrix runs on our CPU kernels.
    decoder: Option<CpuDecoder>,
}

/// One sequence's part of a forward pass: new tokens appended to its cache.
pub struct Step<'a> {
    pub tokens: &'a [u32],
    pub cache: &'a mut KvCache,
}

impl Model {
    /// Builds the model from an open GGUF file whose metadata gave `cfg`.
    pub fn load(file: &mut GgufFile, cfg: ModelConfig, device: &Device) -> Result<Self> {
        Self::load_with(file, cfg, device, WeightLoader::new(device))
    }

    /// As [`Model::load`], the matrices loaded by `loader` (our kernels or candle's).
    pub fn load_with(
        file: &mut GgufFile,
        cfg: ModelConfig,
        device: &Device,
        loader: WeightLoader,
    ) -> Result<Self> {
        let (h, hd) = (cfg.hidden, cfg.head_dim);
        let q_out = cfg.heads * hd;
        let kv_out = cfg.kv_heads * hd;
        let embed = loader.embedding(file, "token_embd.weight", cfg.vocab_size, h)?;
        let output = if file.has_tensor("output.weight") {
            loader.proj(file, "output.weight", cfg.vocab_size, h)?
        } else {
            // Tied head: share the embedding's quantized storage.
            embed.as_head()?
        };
        let vector = |file: &mut GgufFile, name: &str, n: usize| -> Result<Tensor> {
            file.tensor(name, &[n], device)?
                .dequantize(device)
                .map_err(|e| file.err(format!("tensor `{name}`: {e}")))
        };
        let norm = vector(file, "output_norm.weight", h)?;
        let mut blocks = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            let name = |s: &str| format!("blk.{i}.{s}");
            let mm = |file: &mut GgufFile, s: &str, [n, k]: [usize; 2]| {
                loader.proj(file, &name(s), n, k)
            };
            let q = mm(file, "attn_q.weight", [q_out, h])?;
            let k = mm(file, "attn_k.weight", [kv_out, h])?;
            let v = mm(file, "attn_v.weight", [kv_out, h])?;
            let o = mm(file, "attn_output.weight", [h, q_out])?;
            let gate = mm(file, "ffn_gate.weight", [cfg.ffn_hidden, h])?;
            let up = mm(file, "ffn_up.weight", [cfg.ffn_hidden, h])?;
            let down = mm(file, "ffn_down.weight", [h, cfg.ffn_hidden])?;
            let (bq, bk, bv) = if cfg.qkv_bias {
                (
                    Some(vector(file, &name("attn_q.bias"), q_out)?),
                    Some(vector(file, &name("attn_k.bias"), kv_out)?),
                    Some(vector(file, &name("attn_v.bias"), kv_out)?),
                )
            } else {
                (None, None, None)
            };
            blocks.push(Block {
                attn_norm: vector(file, &name("attn_norm.weight"), h)?,
                q: Linear { w: q, b: bq },
                k: Linear { w: k, b: bk },
                v: Linear { w: v, b: bv },
                o,
                ffn_norm: vector(file, &name("ffn_norm.weight"), h)?,
                gate,
                up,
                down,
            });
        }
        let max_positions = cfg.context_length.min(MAX_ROPE_POSITIONS);
        let (cos, sin) =
            rope_tables(cfg.rope_theta, hd, max_positions, device).map_err(t("rope tables"))?;
        let decoder = if device.is_cpu() { cpu_decoder(&cfg, &blocks)? } else { None };
        Ok(Model {
            cfg,
            device: device.clone(),
            embed,
            blocks,
            norm,
            output,
            cos,
            sin,
            max_positions,
            decoder,
        })
    }

    /// Whether decode steps run on plain buffers (`decode.rs`) rather than tensor ops.
    pub fn decodes_on_plain_buffers(&self) -> bool {
        self.decoder.is_some()
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// An empty cache shaped for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.cfg.layers, self.cfg.kv_heads, self.cfg.head_dim, &self.device)
    }

    /// Runs every step's new tokens through the model, appending them to the step's cache, and
    /// returns the next-token logits after each step's last token: `[steps, vocab]`.
    pub fn forward(&self, steps: &mut [Step<'_>]) -> Result<Tensor> {
        self.forward_rows(steps, false)
    }

    /// [`Model::forward`] returning the logits after every new token, steps in order:
    /// `[sum of tokens, vocab]` (what verifying guessed tokens needs). Steps of up to
    /// [`MAX_DECODE_RUN`] tokens run on the plain-buffer decoder, whose every row is what a
    /// one-token step would compute.
    pub fn forward_every(&self, steps: &mut [Step<'_>]) -> Result<Tensor> {
        self.forward_rows(steps, true)
    }

    fn forward_rows(&self, steps: &mut [Step<'_>], every: bool) -> Result<Tensor> {
        let cfg = &self.cfg;
        if steps.is_empty() || steps.iter().any(|s| s.tokens.is_empty()) {
            return Err(Error::invalid("forward", "every sequence needs at least one new token"));
        }
        let mut ids = Vec::new();
        let mut positions = Vec::new();
        for s in steps.iter_mut() {
            let start = s.cache.len();
            if start + s.tokens.len() > self.max_positions {
                return Err(Error::invalid(
                    "prompt",
                    format!(
                        "{} tokens exceed the model's {} positions",
                        start + s.tokens.len(),
                        self.max_positions
                    ),
                ));
            }
            if let Some(&bad) = s.tokens.iter().find(|&&id| id as usize >= cfg.vocab_size) {
                return Err(Error::invalid(
                    "token",
                    format!("id {bad} is outside the vocabulary of {}", cfg.vocab_size),
                ));
            }
            ids.extend_from_slice(s.tokens);
            positions.extend((start..start + s.tokens.len()).map(|p| p as u32));
            s.cache.reserve(s.tokens.len())?;
        }
        let rows = ids.len();
        let dev = &self.device;
        // Decode steps, and steps that verify a few guessed tokens, run on plain buffers; a
        // prompt's prefill goes through the tensor path below, however short (a prompt gets the
        // same kv whether the prefix cache held all of it but a few tokens or none).
        let decode = if every {
            steps.iter().all(|s| s.tokens.len() <= MAX_DECODE_RUN)
        } else {
            rows == steps.len()
        };
        if let Some(decoder) = self.decoder.as_ref().filter(|_| decode) {
            let mut x = self
                .embed
                .lookup(&ids, dev)?
                .flatten_all()
                .and_then(|x| x.to_vec1::<f32>())
                .map_err(t("embedding"))?;
            let counts: Vec<usize> = steps.iter().map(|s| s.tokens.len()).collect();
            let mut caches: Vec<&mut KvCache> = steps.iter_mut().map(|s| &mut *s.cache).collect();
            decoder.run(cfg, &mut x, &mut caches, &counts)?;
            for (c, n) in caches.into_iter().zip(&counts) {
                c.advance(*n);
            }
            // Every row is wanted: `forward_every` asked for all, and `forward` comes here only
            // when each step has one row.
            let x = Tensor::from_vec(x, (rows, cfg.hidden), dev).map_err(t("decode rows"))?;
            let x =
                candle_nn::ops::rms_norm(&x, &self.norm, cfg.rms_eps).map_err(t("final norm"))?;
            return self.output.forward(&x);
        }
        let pos_t = Tensor::new(positions.as_slice(), dev).map_err(t("positions"))?;
        let half = cfg.head_dim / 2;
        let cos = self
            .cos
            .index_select(&pos_t, 0)
            .and_then(|c| c.reshape((rows, 1, half)))
            .map_err(t("rope"))?;
        let sin = self
            .sin
            .index_select(&pos_t, 0)
            .and_then(|c| c.reshape((rows, 1, half)))
            .map_err(t("rope"))?;

        let mut x = self.embed.lookup(&ids, dev)?;
        for (li, b) in self.blocks.iter().enumerate() {
            let h =
                candle_nn::ops::rms_norm(&x, &b.attn_norm, cfg.rms_eps).map_err(t("attn norm"))?;
            let [q, k, v] = forward_many([&b.q.w, &b.k.w, &b.v.w], &h)?;
            let (q, k, v) = (b.q.add_bias(q)?, b.k.add_bias(k)?, b.v.add_bias(v)?);
            let q = self.rope(&q, cfg.heads, &cos, &sin)?; // [rows, heads, hd]
            let k = self.rope(&k, cfg.kv_heads, &cos, &sin)?;
            let v = v.reshape((rows, cfg.kv_heads, cfg.head_dim)).map_err(t("v reshape"))?;
            let attn = if self.device.is_cpu() && steps.iter().all(|s| s.tokens.len() == 1) {
                self.attend_decode_cpu(li, &q, &k, &v, steps)?
            } else {
                let mut outs = Vec::with_capacity(steps.len());
                let mut off = 0;
                for s in steps.iter_mut() {
                    let n = s.tokens.len();
                    outs.push(self.attend(li, &q, &k, &v, off, n, s.cache)?);
                    off += n;
                }
                Tensor::cat(&outs, 0).map_err(t("attn cat"))?
            };
            let attn = b.o.forward(&attn)?;
            x = (x + attn).map_err(t("residual"))?;
            let h =
                candle_nn::ops::rms_norm(&x, &b.ffn_norm, cfg.rms_eps).map_err(t("ffn norm"))?;
            let [g, u] = forward_many([&b.gate, &b.up], &h)?;
            let g = candle_nn::ops::silu(&g).map_err(t("ffn gate"))?;
            let f = b.down.forward(&(g * u).map_err(t("ffn"))?)?;
            x = (x + f).map_err(t("residual"))?;
        }
        for s in steps.iter_mut() {
            s.cache.advance(s.tokens.len());
        }
        // Only the last row of each sequence needs logits, unless the caller asked for all.
        let x = if every {
            x
        } else {
            let mut last = Vec::with_capacity(steps.len());
            let mut off = 0;
            for s in steps.iter() {
                off += s.tokens.len();
                last.push((off - 1) as u32);
            }
            let last = Tensor::new(last.as_slice(), dev).map_err(t("last rows"))?;
            x.index_select(&last, 0).map_err(t("last rows"))?
        };
        let x = candle_nn::ops::rms_norm(&x, &self.norm, cfg.rms_eps).map_err(t("final norm"))?;
        self.output.forward(&x)
    }

    /// Reshapes `[rows, heads*hd]` to `[rows, heads, hd]` with rotary embeddings applied at each
    /// row's own position.
    fn rope(&self, x: &Tensor, heads: usize, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let rows = x.dim(0).map_err(t("rope"))?;
        let hd = self.cfg.head_dim;
        // rope wants [b, h, t, d]; one row per "batch" lets every row have its own position.
        let x4 = x.reshape((rows, heads, 1, hd)).map_err(t("rope"))?;
        let y = match self.cfg.rope_style {
            RopeStyle::Neox => candle_nn::rotary_emb::rope(&x4, cos, sin),
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(&x4, cos, sin),
        }
        .map_err(t("rope"))?;
        y.reshape((rows, heads, hd)).map_err(t("rope"))
    }

    /// Decode-step attention on the CPU (every step feeds one token) for the tensor path:
    /// appends each step's key and value, then attends over the cache buffers.
    fn attend_decode_cpu(
        &self,
        layer: usize,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        steps: &mut [Step<'_>],
    ) -> Result<Tensor> {
        for (i, s) in steps.iter_mut().enumerate() {
            let kn = k.narrow(0, i, 1).and_then(|x| x.transpose(0, 1)).map_err(t("attn k"))?; // [kvh, 1, hd]
            let vn = v.narrow(0, i, 1).and_then(|x| x.transpose(0, 1)).map_err(t("attn v"))?;
            s.cache.write(layer, &kn, &vn)?;
        }
        let q: Vec<f32> = q.flatten_all().and_then(|x| x.to_vec1()).map_err(t("attn q"))?; // [rows, heads, hd]
        let rows: Vec<(&KvCache, usize)> =
            steps.iter().map(|s| (&*s.cache, s.cache.len() + 1)).collect();
        let out = decode::attend_rows(&self.cfg, layer, &q, &rows)?;
        Tensor::from_vec(out, (steps.len(), self.cfg.heads * self.cfg.head_dim), &self.device)
            .map_err(t("attn out"))
    }

    /// Causal attention of one sequence's `n` new rows (starting at row `off`) over its cache.
    #[allow(clippy::too_many_arguments)]
    fn attend(
        &self,
        layer: usize,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        off: usize,
        n: usize,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (hd, kvh) = (cfg.head_dim, cfg.kv_heads);
        let group = cfg.heads / kvh;
        let start = cache.len();
        let kn = k.narrow(0, off, n).and_then(|x| x.transpose(0, 1)).map_err(t("attn k"))?; // [kvh, n, hd]
        let vn = v.narrow(0, off, n).and_then(|x| x.transpose(0, 1)).map_err(t("attn v"))?;
        let (keys, values) = cache.append(layer, &kn, &vn)?; // [kvh, T, hd]
        let keys = keys.to_dtype(DType::F32).map_err(t("attn k"))?;
        let values = values.to_dtype(DType::F32).map_err(t("attn v"))?;
        let total = start + n;
        let scale = 1.0 / (hd as f64).sqrt();
        // Query heads h = kv*group + g share kv head `kv`: fold the group into the rows.
        let qn = q
            .narrow(0, off, n)
            .and_then(|x| x.transpose(0, 1)) // [heads, n, hd]
            .and_then(|x| x.contiguous())
            .and_then(|x| x.reshape((kvh, group * n, hd)))
            .map_err(t("attn q"))?;
        let scores = qn
            .matmul(&keys.t().map_err(t("attn kt"))?)
            .and_then(|s| s * scale)
            .map_err(t("attn scores"))?; // [kvh, group*n, T]
        let scores = if n > 1 {
            let mask = causal_mask(n, start, &self.device).map_err(t("attn mask"))?; // [n, T]
            scores
                .reshape((kvh, group, n, total))
                .and_then(|s| s.broadcast_add(&mask))
                .and_then(|s| s.reshape((kvh, group * n, total)))
                .map_err(t("attn mask"))?
        } else {
            scores
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores).map_err(t("attn softmax"))?;
        let out = probs.matmul(&values).map_err(t("attn values"))?; // [kvh, group*n, hd]
        out.reshape((cfg.heads, n, hd))
            .and_then(|o| o.transpose(0, 1)) // [n, heads, hd]
            .and_then(|o| o.reshape((n, cfg.heads * hd)))
            .map_err(t("attn out"))
    }
}

/// `[n, start+n]`: 0 where row i (absolute position start+i) may see key j, -inf after it.
fn causal_mask(n: usize, start: usize, device: &Device) -> candle_core::Result<Tensor> {
    let total = start + n;
    let mask: Vec<f32> = (0..n)
        .flat_map(|i| (0..total).map(move |j| if j <= start + i { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Tensor::from_vec(mask, (n, total), device)
}

/// The rotary frequencies `1 / theta^(2i / head_dim)`, `i` in `0..head_dim / 2`.
fn inv_freq(theta: f32, head_dim: usize) -> Vec<f32> {
    (0..head_dim / 2).map(|i| 1.0 / theta.powf(2.0 * i as f32 / head_dim as f32)).collect()
}

fn rope_tables(
    theta: f32,
    head_dim: usize,
    positions: usize,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let inv = Tensor::from_vec(inv_freq(theta, head_dim), (1, head_dim / 2), device)?;
    let pos = Tensor::arange(0u32, positions as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((positions, 1))?;
    let freqs = pos.broadcast_mul(&inv)?;
    Ok((freqs.cos()?.contiguous()?, freqs.sin()?.contiguous()?))
}

/// The plain-buffer decoder, when every layer's matrices are packed for our kernels.
fn cpu_decoder(cfg: &ModelConfig, blocks: &[Block]) -> Result<Option<CpuDecoder>> {
    let packed = |p: &Proj| match p {
        Proj::Packed(w) => Some(w.clone()),
        Proj::Candle(_) => None,
    };
    let floats =
        |x: &Tensor| x.flatten_all().and_then(|x| x.to_vec1::<f32>()).map_err(t("decoder weights"));
    let mut layers = Vec::with_capacity(blocks.len());
    for b in blocks {
        let (Some(q), Some(k), Some(v), Some(o), Some(gate), Some(up), Some(down)) = (
            packed(&b.q.w),
            packed(&b.k.w),
            packed(&b.v.w),
            packed(&b.o),
            packed(&b.gate),
            packed(&b.up),
            packed(&b.down),
        ) else {
            return Ok(None);
        };
        let qkv_bias = match (&b.q.b, &b.k.b, &b.v.b) {
            (Some(bq), Some(bk), Some(bv)) => Some([floats(bq)?, floats(bk)?, floats(bv)?]),
            _ => None,
        };
        layers.push(DecodeLayer {
            attn_norm: floats(&b.attn_norm)?,
            q,
            k,
            v,
            qkv_bias,
            o,
            ffn_norm: floats(&b.ffn_norm)?,
            gate,
            up,
            down,
        });
    }
    Ok(Some(CpuDecoder { layers, inv_freq: inv_freq(cfg.rope_theta, cfg.head_dim) }))
}
