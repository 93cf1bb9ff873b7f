//! The engine: a loaded model with everything one generation call needs beside it (tokenizer,
//! chat template, the grammar builder for constrained decoding, the prefix kv cache). Built once
//! per [`LocalLlm`](crate::llm::local::LocalLlm), shared by its scheduler thread and the batch.

use super::cache::{self, PrefixCache};
use super::constrain::Grammar;
use crate::error::Result;
use crate::llm::local::model::arch;
use crate::llm::local::model::gguf::GgufFile;
use crate::llm::local::model::kv::KvCache;
use crate::llm::local::model::template::ChatTemplate;
use crate::llm::local::model::tokenizer::GgufTokenizer;
use crate::llm::local::model::{Model, Step};
use crate::llm::local::LocalOptions;
use candle_core::Device;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Everything one generation call needs.
pub(crate) struct Engine {
    pub(crate) model: Model,
    pub(crate) tokenizer: Arc<GgufTokenizer>,
    pub(crate) template: ChatTemplate,
    pub(crate) grammar: Grammar,
    prefix: Mutex<PrefixCache>,
    /// Speculative decoding is on (asked for, and the model decodes on our CPU kernels, where a
    /// verifying pass gives exactly the logits of one-token steps). Switchable while running,
    /// so a benchmark can take turns with and without on one loaded model.
    speculate: AtomicBool,
}

impl Engine {
    /// Reads the model at `path` onto `device`, with the prefix cache and speculation `opts`
    /// asks for. Runs on the calling thread (the caller installs its compute pool around it).
    pub(crate) fn load(path: &Path, device: &Device, opts: &LocalOptions) -> Result<Engine> {
        let mut file = GgufFile::open(path)?;
        let cfg = arch::config_from_gguf(&file)?;
        let tokenizer = Arc::new(GgufTokenizer::from_gguf(&file)?);
        if tokenizer.vocab_size() > cfg.vocab_size {
            return Err(file.err(format!(
                "the tokenizer has {} tokens but the embedding only {} rows",
                tokenizer.vocab_size(),
                cfg.vocab_size
            )));
        }
        let name_of =
            |id: Option<u32>| id.and_then(|i| tokenizer.token_name(i)).unwrap_or("").to_string();
        let template = ChatTemplate::new(
            file.opt_string("tokenizer.chat_template"),
            name_of(tokenizer.bos),
            name_of(tokenizer.eos),
        );
        let grammar = Grammar::new(tokenizer.clone(), cfg.vocab_size)?;
        let model = Model::load(&mut file, cfg, device)?;
        let speculate = opts.speculate && model.decodes_on_plain_buffers();
        Ok(Engine {
            model,
            tokenizer,
            template,
            grammar,
            prefix: Mutex::new(PrefixCache::new(
                opts.prefix_cache_entries,
                opts.prefix_cache_bytes,
            )),
            speculate: AtomicBool::new(speculate),
        })
    }

    /// A short forward pass, so the first request does not pay for lazy weight repacking.
    pub(crate) fn warmup(&self, pool: &rayon::ThreadPool) -> Result<()> {
        pool.install(|| {
            let model = &self.model;
            let mut cache = model.new_cache();
            let tok = self.tokenizer.stop_tokens[0];
            model.forward(&mut [Step { tokens: &[tok, tok], cache: &mut cache }])?;
            model.forward(&mut [Step { tokens: &[tok], cache: &mut cache }])?;
            Ok(())
        })
    }

    /// Whether decode steps feed guessed tokens now.
    pub(crate) fn speculates(&self) -> bool {
        self.speculate.load(Ordering::Relaxed)
    }

    /// Turns speculative decoding on or off; returns whether it is on (it stays off for a model
    /// that does not decode on our CPU kernels).
    pub(crate) fn set_speculation(&self, on: bool) -> bool {
        let on = on && self.model.decodes_on_plain_buffers();
        self.speculate.store(on, Ordering::Relaxed);
        on
    }

    pub(crate) fn prefix_lookup(&self, tokens: &[u32]) -> Option<cache::Hit> {
        self.prefix.lock().ok()?.lookup(tokens)
    }

    /// Keeps the kv of `tokens`; `hit` is the cached prefix that `kv` was restored from, whose
    /// positions the new entry shares instead of copying them.
    pub(crate) fn prefix_insert(
        &self,
        tokens: &[u32],
        kv: &KvCache,
        hit: Option<&cache::Hit>,
    ) -> Result<()> {
        let Ok(mut prefix) = self.prefix.lock() else { return Ok(()) };
        // Copying the kv costs time and memory: skip it when an entry already has it all.
        if prefix.is_enabled() && !prefix.covers(tokens) {
            let snapshot = match hit {
                Some(h) => kv.snapshot_after(&h.kv, h.len, tokens.len())?,
                None => kv.snapshot(tokens.len())?,
            };
            prefix.insert(tokens.to_vec(), snapshot);
        }
        Ok(())
    }

    /// Forgets every cached prefix.
    pub(crate) fn clear_prefix_cache(&self) {
        if let Ok(mut p) = self.prefix.lock() {
            p.clear();
        }
    }

    /// Entries and bytes held by the prefix cache.
    pub(crate) fn prefix_cache_usage(&self) -> (usize, usize) {
        self.prefix.lock().map(|p| (p.len(), p.bytes())).unwrap_or((0, 0))
    }
}
