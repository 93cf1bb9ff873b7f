//! Architectures: each file maps one `general.architecture` to the shared [`ModelConfig`].
//!
//! Adding an architecture (qwen3, gemma3, phi3, ...) means one file here that reads its metadata
//! keys, plus whatever the shared transformer in `transformer.rs` lacks (a new norm, gating, ...).

mod llama;
mod qwen2;

use super::gguf::GgufFile;
use crate::error::Result;

/// How rotary position embeddings pair the head dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Halves rotate together (GPT-NeoX, Qwen2).
    Neox,
    /// Adjacent pairs rotate together (llama.cpp's llama layout, whose q/k weights are permuted).
    Interleaved,
}

/// Everything the transformer needs to know about a model, from the GGUF metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub architecture: String,
    pub vocab_size: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn_hidden: usize,
    pub rms_eps: f32,
    pub rope_theta: f32,
    pub rope_style: RopeStyle,
    pub context_length: usize,
    /// q, k and v projections carry biases (Qwen2).
    pub qkv_bias: bool,
}

/// The architectures this engine runs.
pub const SUPPORTED: &[&str] = &["qwen2", "llama"];

pub fn config_from_gguf(file: &GgufFile) -> Result<ModelConfig> {
    let arch = file.string("general.architecture")?;
    let cfg = match arch.as_str() {
        "qwen2" => qwen2::config(file)?,
        "llama" => llama::config(file)?,
        other => {
            return Err(file.err(format!(
                "architecture `{other}` is not supported (supported: {})",
                SUPPORTED.join(", ")
            )))
        }
    };
    validate(file, &cfg)?;
    Ok(cfg)
}

/// Reads the hyper-parameters that every llama-like architecture stores under `<arch>.`.
pub(crate) fn common(
    file: &GgufFile,
    arch: &str,
    rope_style: RopeStyle,
    qkv_bias: bool,
) -> Result<ModelConfig> {
    let key = |k: &str| format!("{arch}.{k}");
    let hidden = file.usize(&key("embedding_length"))?;
    let heads = file.usize(&key("attention.head_count"))?;
    let kv_heads = file.opt_usize(&key("attention.head_count_kv"))?.unwrap_or(heads);
    let head_dim = match file.opt_usize(&key("attention.key_length"))? {
        Some(d) => d,
        None if heads > 0 => hidden / heads,
        None => 0,
    };
    // The vocabulary size is the embedding's row count; metadata may omit it.
    let vocab_size = match file.content.tensor_infos.get("token_embd.weight") {
        Some(info) => info.shape.dims().first().copied().unwrap_or(0),
        None => return Err(file.err("tensor `token_embd.weight` is missing")),
    };
    Ok(ModelConfig {
        architecture: arch.to_string(),
        vocab_size,
        hidden,
        layers: file.usize(&key("block_count"))?,
        heads,
        kv_heads,
        head_dim,
        ffn_hidden: file.usize(&key("feed_forward_length"))?,
        rms_eps: file.opt_f32(&key("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-6),
        rope_theta: file.opt_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0),
        rope_style,
        context_length: file.opt_usize(&key("context_length"))?.unwrap_or(4096),
        qkv_bias,
    })
}

/// Checks the numbers before any tensor is built from them.
fn validate(file: &GgufFile, c: &ModelConfig) -> Result<()> {
    let positive = [
        ("embedding_length", c.hidden),
        ("block_count", c.layers),
        ("attention.head_count", c.heads),
        ("attention.head_count_kv", c.kv_heads),
        ("head dimension", c.head_dim),
        ("feed_forward_length", c.ffn_hidden),
        ("vocabulary size", c.vocab_size),
        ("context_length", c.context_length),
    ];
    for (name, v) in positive {
        if v == 0 {
            return Err(file.err(format!("{name} is 0")));
        }
    }
    if !c.heads.is_multiple_of(c.kv_heads) {
        return Err(file.err(format!(
            "{} attention heads are not a multiple of {} kv heads",
            c.heads, c.kv_heads
        )));
    }
    if !c.head_dim.is_multiple_of(2) {
        return Err(file
            .err(format!("head dimension {} is odd (rotary embeddings need pairs)", c.head_dim)));
    }
    if !(c.rms_eps.is_finite() && c.rms_eps > 0.0 && c.rope_theta.is_finite() && c.rope_theta > 0.0)
    {
        return Err(file.err("rms epsilon or rope base is not a positive number"));
    }
    if c.layers > 1024 || c.hidden > 1 << 16 || c.heads > 1024 || c.vocab_size > 1 << 22 {
        return Err(file.err("hyper-parameters are implausibly large"));
    }
    Ok(())
}
