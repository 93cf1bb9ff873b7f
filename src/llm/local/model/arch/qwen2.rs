//! Qwen2 / Qwen2.5 (incl. Qwen2.5-Coder): llama-like blocks with q/k/v biases and NeoX rotary
//! embeddings. Model cards: <https://huggingface.co/Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF>

use super::{common, ModelConfig, RopeStyle};
use crate::error::Result;
use crate::llm::local::gguf::GgufFile;

pub fn config(file: &GgufFile) -> Result<ModelConfig> {
    let mut cfg = common(file, "qwen2", RopeStyle::Neox, true)?;
    // Qwen2 ships with a large base; older converters omitted it.
    if file.get("qwen2.rope.freq_base").is_none() {
        cfg.rope_theta = 1_000_000.0;
    }
    Ok(cfg)
}
