//! The model's tokenizer, built from the GGUF metadata (no tokenizer.json needed), with the byte
//! string of every token (for constrained decoding and exact incremental detokenization) and the
//! tokens that end a turn.

use super::gguf::GgufFile;
use crate::error::{Error, Result};
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use std::collections::HashMap;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::Tokenizer;
use toktrie::TokTrie;

/// GGUF token types (llama.cpp's `llama_token_type`).
const TYPE_USER_DEFINED: usize = 4;

/// Names that end a turn in the chat formats we know.
const END_OF_TURN_NAMES: &[&str] =
    &["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "</s>"];

pub struct GgufTokenizer {
    inner: Tokenizer,
    /// Token strings as stored in the GGUF (byte-level unicode form).
    pub tokens: Vec<String>,
    /// The bytes each token stands for; special tokens are `0xFF` + their name (toktrie's rule).
    pub token_bytes: Vec<Vec<u8>>,
    pub special: Vec<bool>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// Every token that ends generation.
    pub stop_tokens: Vec<u32>,
    ids: HashMap<String, u32>,
}

impl GgufTokenizer {
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let mut inner =
            Tokenizer::from_gguf(&file.content).map_err(|e| file.err(format!("tokenizer: {e}")))?;
        let pre = file.opt_string("tokenizer.ggml.pre").unwrap_or_default();
        if pre == "smollm" {
            // candle falls back to GPT-2 ByteLevel with a prefix space; SmolLM2's tokenizer.json
            // splits digits individually and adds no prefix space.
            let seq = Sequence::new(vec![
                Digits::new(true).into(),
                ByteLevel::new(false, true, true).into(),
            ]);
            inner.with_pre_tokenizer(Some(seq));
        }
        let tokens: Vec<String> = match file.get("tokenizer.ggml.tokens") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.to_string()
                        .cloned()
                        .map_err(|_| file.err("tokenizer.ggml.tokens holds a non-string"))
                })
                .collect::<Result<_>>()?,
            _ => return Err(file.err("tokenizer.ggml.tokens is missing")),
        };
        let types: Vec<usize> = match file.get("tokenizer.ggml.token_type") {
            Some(Value::Array(a)) => {
                a.iter().map(|v| super::gguf::value_usize(v).unwrap_or(1)).collect()
            }
            _ => vec![1; tokens.len()],
        };
        let id = |key: &str| -> Result<Option<u32>> {
            Ok(file.opt_usize(key)?.filter(|&i| i < tokens.len()).map(|i| i as u32))
        };
        let bos = id("tokenizer.ggml.bos_token_id")?;
        let eos = id("tokenizer.ggml.eos_token_id")?;
        let eot = id("tokenizer.ggml.eot_token_id")?;
        let char_map = byte_level_chars();
        let mut special = vec![false; tokens.len()];
        let mut token_bytes = Vec::with_capacity(tokens.len());
        for (i, tok) in tokens.iter().enumerate() {
            let ty = types.get(i).copied().unwrap_or(1);
            let is_special =
                matches!(ty, 2 | 3 | 5) || Some(i as u32) == bos || Some(i as u32) == eos;
            special[i] = is_special;
            let bytes = if is_special {
                let mut b = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                b.extend_from_slice(tok.as_bytes());
                b
            } else if ty == TYPE_USER_DEFINED {
                tok.as_bytes().to_vec()
            } else {
                // Byte-level BPE: each char stands for one byte; anything else is taken literally.
                tok.chars()
                    .map(|c| char_map.get(&c).copied())
                    .collect::<Option<Vec<u8>>>()
                    .unwrap_or_else(|| tok.as_bytes().to_vec())
            };
            token_bytes.push(bytes);
        }
        let ids: HashMap<String, u32> =
            tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let mut stop_tokens: Vec<u32> = eos.into_iter().chain(eot).collect();
        for name in END_OF_TURN_NAMES {
            if let Some(&i) = ids.get(*name) {
                if special[i as usize] && !stop_tokens.contains(&i) {
                    stop_tokens.push(i);
                }
            }
        }
        if stop_tokens.is_empty() {
            return Err(file.err("the tokenizer has no end-of-sequence token"));
        }
        Ok(GgufTokenizer { inner, tokens, token_bytes, special, bos, eos, stop_tokens, ids })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn token_id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    pub fn token_name(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Tokens of `text`; special token names in it become their tokens (chat markup).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.inner.encode(text, false).map(|e| e.get_ids().to_vec()).map_err(|e| Error::Llm {
            backend: "local".into(),
            reason: format!("tokenizing failed: {e}"),
        })
    }

    /// The text bytes of a token (empty for special tokens, which carry no text).
    pub fn text_bytes(&self, id: u32) -> &[u8] {
        match self.token_bytes.get(id as usize) {
            Some(b) if !self.special[id as usize] => b,
            _ => &[],
        }
    }

    /// The text of `ids` without special tokens.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&i| self.text_bytes(i).iter().copied()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn is_stop(&self, id: u32) -> bool {
        self.stop_tokens.contains(&id)
    }
}

/// GPT-2's byte-level alphabet: printable Latin-1 bytes stand for themselves, the rest are
/// shifted to U+0100 and up.
pub fn byte_level_chars() -> HashMap<char, u8> {
    let mut map = HashMap::new();
    let mut next = 0x100u32;
    for b in 0..=255u8 {
        let c = b as char;
        if matches!(c, '!'..='~' | '\u{A1}'..='\u{AC}' | '\u{AE}'..='\u{FF}') {
            map.insert(c, b);
        } else {
            map.insert(char::from_u32(next).unwrap_or(' '), b);
            next += 1;
        }
    }
    map
}

/// The inverse of [`byte_level_chars`]: the char that stands for each byte.
pub fn byte_level_alphabet() -> [char; 256] {
    let mut out = [' '; 256];
    for (c, b) in byte_level_chars() {
        out[b as usize] = c;
    }
    out
}
