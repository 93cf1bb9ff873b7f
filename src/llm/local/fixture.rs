//! Tiny random-weight GGUF models for tests: the real loading, tokenizing, templating, sampling,
//! constraining and batching paths in milliseconds, without a download.
//!
//! The vocabulary is byte-level BPE (256 byte tokens, a few merges, the ChatML special tokens).
//! Weights are Q8_0 from a seeded PRNG (candle's CPU `randn` ignores seeds). A chosen set of
//! "closing" tokens (`"` `}` `]` `,` and the end-of-turn token) gets a bias in the output head so
//! that sampled JSON closes its strings and containers after a few tokens, as a trained model's
//! would; without it a random model writes strings hundreds of tokens long.

use super::tokenizer::byte_level_alphabet;
use crate::error::{Error, Result};
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::path::Path;

/// Architecture of a tiny model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TinyArch {
    /// q/k/v biases, NeoX rope, its own output head.
    Qwen2,
    /// No biases, interleaved rope, output head tied to the embedding, `pre = smollm`.
    Llama,
}

/// What to write. `TinySpec::default()` is the model most tests use.
#[derive(Clone, Debug)]
pub struct TinySpec {
    pub arch: TinyArch,
    pub seed: u64,
    /// Logit bias of the closing tokens, roughly in logits (the others spread with a standard
    /// deviation of about 2.4); the end-of-turn token gets 60 % of it; 0: none. Only the qwen2
    /// fixture has an untied head to carry it.
    pub closer_bias: f32,
    pub hidden: usize,
    pub layers: usize,
}

impl Default for TinySpec {
    fn default() -> Self {
        TinySpec { arch: TinyArch::Qwen2, seed: 1, closer_bias: 6.5, hidden: 64, layers: 2 }
    }
}

/// Text pieces merged into single tokens (so the tokenizer's merges are exercised).
const MERGES: &[(&str, &str)] = &[("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("\"", ":")];
const SPECIALS: &[&str] = &["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
const CLOSERS: &[&str] = &["\"", "}", "]", ","];

const CHATML_TEMPLATE: &str = "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// Writes the default tiny Qwen2 model with this seed.
pub fn write_tiny_qwen2(path: &Path, seed: u64) -> Result<()> {
    write_tiny(path, &TinySpec { seed, ..TinySpec::default() })
}

/// Writes the tiny Llama (SmolLM2-style) model with this seed.
pub fn write_tiny_llama(path: &Path, seed: u64) -> Result<()> {
    write_tiny(path, &TinySpec { arch: TinyArch::Llama, seed, ..TinySpec::default() })
}

/// xorshift64*: reproducible on every platform.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Roughly normal: sum of four uniforms, centred and scaled to unit variance.
    fn normal(&mut self) -> f32 {
        let s: f64 = (0..4).map(|_| (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64).sum();
        ((s - 2.0) * (3.0f64).sqrt()) as f32
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * scale).collect()
    }
}

fn vocab() -> (Vec<String>, Vec<i32>) {
    let alphabet = byte_level_alphabet();
    let mut tokens: Vec<String> = alphabet.iter().map(|c| c.to_string()).collect();
    let mut types = vec![1i32; 256];
    for (a, b) in MERGES {
        tokens.push(format!("{a}{b}"));
        types.push(1);
    }
    for s in SPECIALS {
        tokens.push(s.to_string());
        types.push(3);
    }
    (tokens, types)
}

fn err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::ModelFile { path: path.to_path_buf(), reason: format!("writing the tiny model: {e}") }
}

/// Writes a tiny model as described by `spec`.
pub fn write_tiny(path: &Path, spec: &TinySpec) -> Result<()> {
    let (tokens, types) = vocab();
    let vocab_size = tokens.len();
    let h = spec.hidden;
    if h == 0 || !h.is_multiple_of(32) || spec.layers == 0 {
        return Err(Error::invalid(
            "tiny model",
            "hidden must be a positive multiple of 32 and layers > 0",
        ));
    }
    let heads = 4;
    let kv_heads = 2;
    let hd = h / heads;
    let ffn = 2 * h;
    let arch = match spec.arch {
        TinyArch::Qwen2 => "qwen2",
        TinyArch::Llama => "llama",
    };
    let mut rng = Rng::new(spec.seed);
    let dev = Device::Cpu;
    let q8 = |data: Vec<f32>, dims: &[usize]| -> candle_core::Result<QTensor> {
        QTensor::quantize(&Tensor::from_vec(data, dims, &dev)?, GgmlDType::Q8_0)
    };
    let f32t = |data: Vec<f32>| -> candle_core::Result<QTensor> {
        let n = data.len();
        QTensor::quantize(&Tensor::from_vec(data, n, &dev)?, GgmlDType::F32)
    };
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let build = |rng: &mut Rng, tensors: &mut Vec<(String, QTensor)>| -> candle_core::Result<()> {
        // Embedding rows share a constant first component so the final hidden state has a
        // stable direction that the output head's bias column reads.
        let mut emb = rng.vec(vocab_size * h, 0.1);
        for r in 0..vocab_size {
            emb[r * h] = 0.5;
        }
        tensors.push(("token_embd.weight".into(), q8(emb, &[vocab_size, h])?));
        let w = 0.5 / (h as f32).sqrt();
        for i in 0..spec.layers {
            let n = |s: &str| format!("blk.{i}.{s}");
            tensors.push((n("attn_norm.weight"), f32t(vec![1.0; h])?));
            tensors.push((n("ffn_norm.weight"), f32t(vec![1.0; h])?));
            tensors.push((n("attn_q.weight"), q8(rng.vec(h * h, w), &[h, h])?));
            tensors.push((
                n("attn_k.weight"),
                q8(rng.vec(kv_heads * hd * h, w), &[kv_heads * hd, h])?,
            ));
            tensors.push((
                n("attn_v.weight"),
                q8(rng.vec(kv_heads * hd * h, w), &[kv_heads * hd, h])?,
            ));
            tensors.push((n("attn_output.weight"), q8(rng.vec(h * h, w), &[h, h])?));
            tensors.push((n("ffn_gate.weight"), q8(rng.vec(ffn * h, w), &[ffn, h])?));
            tensors.push((n("ffn_up.weight"), q8(rng.vec(ffn * h, w), &[ffn, h])?));
            tensors.push((n("ffn_down.weight"), q8(rng.vec(h * ffn, w / 2.0), &[h, ffn])?));
            if spec.arch == TinyArch::Qwen2 {
                tensors.push((n("attn_q.bias"), f32t(rng.vec(h, 0.1))?));
                tensors.push((n("attn_k.bias"), f32t(rng.vec(kv_heads * hd, 0.1))?));
                tensors.push((n("attn_v.bias"), f32t(rng.vec(kv_heads * hd, 0.1))?));
            }
        }
        tensors.push(("output_norm.weight".into(), f32t(vec![1.0; h])?));
        if spec.arch == TinyArch::Qwen2 {
            // Head: rows ~ N(0, 0.3) give logits with a spread of about 2; the first column
            // (reading the constant component, ~4 after the norm) carries the closer bias.
            let mut out = rng.vec(vocab_size * h, 0.3);
            for r in 0..vocab_size {
                out[r * h] = 0.0;
            }
            let (toks, _) = vocab();
            for (i, t) in toks.iter().enumerate() {
                // Printable ASCII stands for itself in the byte-level alphabet.
                // A biased row reads only the constant component, so its logit is the same
                // at every step instead of drifting with the token's own random direction.
                // The constant component is about 2 after the final norm.
                let bias = if CLOSERS.contains(&t.as_str()) {
                    spec.closer_bias * 0.5
                } else if t == "<|im_end|>" {
                    spec.closer_bias * 0.3
                } else {
                    continue;
                };
                if bias != 0.0 {
                    out[i * h..(i + 1) * h].fill(0.0);
                    out[i * h] = bias;
                }
            }
            tensors.push(("output.weight".into(), q8(out, &[vocab_size, h])?));
        }
        Ok(())
    };
    build(&mut rng, &mut tensors).map_err(|e| err(path, e))?;

    let s = |v: &str| Value::String(v.to_string());
    let u = |v: usize| Value::U32(v as u32);
    let id = |name: &str| tokens.iter().position(|t| t == name).unwrap_or(0);
    let merges: Vec<Value> = MERGES.iter().map(|(a, b)| s(&format!("{a} {b}"))).collect();
    let (bos, eos) = match spec.arch {
        TinyArch::Qwen2 => (id("<|endoftext|>"), id("<|im_end|>")),
        TinyArch::Llama => (id("<|im_start|>"), id("<|im_end|>")),
    };
    let pre = if spec.arch == TinyArch::Qwen2 { "qwen2" } else { "smollm" };
    let meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), s(arch)),
        ("general.name".into(), s(&format!("tiny-{arch}-seed{}", spec.seed))),
        (format!("{arch}.context_length"), u(2048)),
        (format!("{arch}.embedding_length"), u(h)),
        (format!("{arch}.block_count"), u(spec.layers)),
        (format!("{arch}.feed_forward_length"), u(ffn)),
        (format!("{arch}.attention.head_count"), u(heads)),
        (format!("{arch}.attention.head_count_kv"), u(kv_heads)),
        (format!("{arch}.attention.layer_norm_rms_epsilon"), Value::F32(1e-6)),
        (format!("{arch}.rope.freq_base"), Value::F32(10_000.0)),
        ("tokenizer.ggml.model".into(), s("gpt2")),
        ("tokenizer.ggml.pre".into(), s(pre)),
        ("tokenizer.ggml.tokens".into(), Value::Array(tokens.iter().map(|t| s(t)).collect())),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.iter().map(|&t| Value::I32(t)).collect()),
        ),
        ("tokenizer.ggml.merges".into(), Value::Array(merges)),
        ("tokenizer.ggml.bos_token_id".into(), u(bos)),
        ("tokenizer.ggml.eos_token_id".into(), u(eos)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
        ("tokenizer.chat_template".into(), s(CHATML_TEMPLATE)),
    ];
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    gguf_file::write(&mut file, &meta_refs, &tensor_refs).map_err(|e| err(path, e))?;
    Ok(())
}
