//! Llama-family models (Llama 2/3, SmolLM2, TinyLlama, Mistral-style dense): no projection
//! biases, interleaved rotary pairs (llama.cpp permutes q/k at conversion).
//! Model card of the test-size model: <https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct>

use super::{common, ModelConfig, RopeStyle};
use crate::error::Result;
use crate::llm::local::gguf::GgufFile;

pub fn config(file: &GgufFile) -> Result<ModelConfig> {
    if file.opt_usize("llama.expert_count")?.unwrap_or(0) > 1 {
        return Err(file.err("mixture-of-experts llama models are not supported"));
    }
    common(file, "llama", RopeStyle::Interleaved, false)
}
