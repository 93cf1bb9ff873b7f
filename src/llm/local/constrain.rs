//! Constrained decoding with llguidance: the request's JSON schema becomes a grammar, and at
//! each step only tokens that keep the reply a valid prefix of a schema-valid JSON document may
//! be sampled. Built once per model ([`Grammar`]), one [`Constraint`] per request.

use super::tokenizer::GgufTokenizer;
use crate::error::{Error, Result};
use crate::llm::ReplySchema;
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use std::sync::Arc;
use toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};

fn llm_err(reason: impl Into<String>) -> Error {
    Error::Llm { backend: "local".into(), reason: reason.into() }
}

/// The vocabulary as llguidance sees it.
struct Env {
    trie: TokTrie,
    tokenizer: Arc<GgufTokenizer>,
}

impl TokenizerEnv for Env {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        match std::str::from_utf8(s) {
            Ok(text) => self.tokenizer.encode(text).unwrap_or_else(|_| self.trie.greedy_tokenize(s)),
            Err(_) => self.trie.greedy_tokenize(s),
        }
    }
}

/// The per-model part: the token trie and the grammar compiler.
pub struct Grammar {
    factory: ParserFactory,
    vocab_size: usize,
}

impl Grammar {
    /// `vocab_size`: the model's logit count (may exceed the tokenizer's token count).
    pub fn new(tokenizer: Arc<GgufTokenizer>, vocab_size: usize) -> Result<Self> {
        let mut words = tokenizer.token_bytes.clone();
        words.resize(vocab_size.max(words.len()), Vec::new());
        let eos = tokenizer.stop_tokens[0];
        let info = TokRxInfo { tok_end_of_turn: Some(eos), tok_bos: tokenizer.bos, ..TokRxInfo::new(words.len() as u32, eos) };
        let trie = TokTrie::from(&info, &words).with_eos_tokens(&tokenizer.stop_tokens);
        let env: TokEnv = Arc::new(Env { trie, tokenizer });
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| llm_err(format!("grammar setup: {e}")))?;
        factory.quiet();
        Ok(Grammar { factory, vocab_size: words.len() })
    }

    /// A constraint for one reply. JSON is kept compact (no free whitespace), so a small model
    /// cannot spend its tokens on indentation.
    pub fn constraint(&self, schema: &ReplySchema) -> Result<Constraint> {
        let mut json = schema.json.clone();
        if let Some(obj) = json.as_object_mut() {
            obj.entry("x-guidance").or_insert_with(|| serde_json::json!({"whitespace_flexible": false}));
        }
        let grammar = TopLevelGrammar::from_json_schema(json);
        let parser = self.factory.create_parser(grammar).map_err(|e| llm_err(format!("reply schema: {e}")))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(llm_err(format!("reply schema: {e}")));
        }
        Ok(Constraint { matcher, vocab_size: self.vocab_size })
    }
}

/// The grammar state of one reply.
pub struct Constraint {
    matcher: Matcher,
    vocab_size: usize,
}

impl Constraint {
    /// Sets the logits of every token the grammar forbids now to -inf.
    pub fn mask(&mut self, logits: &mut [f32]) -> Result<()> {
        let allowed = self.matcher.compute_mask().map_err(|e| llm_err(format!("grammar: {e}")))?;
        for (i, l) in logits.iter_mut().enumerate() {
            if i >= self.vocab_size || !allowed.is_allowed(i as TokenId) {
                *l = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }

    pub fn commit(&mut self, token: u32) -> Result<()> {
        self.matcher.consume_token(token).map_err(|e| llm_err(format!("grammar rejected token {token}: {e}")))
    }

    /// The grammar is complete and allows nothing more.
    pub fn is_done(&self) -> bool {
        self.matcher.is_stopped()
    }

    /// The text so far is a complete document (end-of-turn would be accepted).
    pub fn is_accepting(&mut self) -> bool {
        self.matcher.is_accepting().unwrap_or(false)
    }
}
