//! Constrained decoding with llguidance: the request's JSON schema becomes a grammar, and at
//! each step only tokens that keep the reply a valid prefix of a schema-valid JSON document may
//! be sampled. Built once per model ([`Grammar`]), one [`Constraint`] per request.

use crate::error::{Error, Result};
use crate::llm::local::model::tokenizer::GgufTokenizer;
use crate::llm::ReplySchema;
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use std::sync::Arc;
use toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};

fn llm_err(reason: impl Into<String>) -> Error {
    // llguidance appends backtraces to some messages; the first line says what went wrong.
    let reason: String = reason.into();
    let first = reason.lines().next().unwrap_or_default().to_string();
    Error::Llm { backend: "local".into(), reason: first }
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
            Ok(text) => {
                self.tokenizer.encode(text).unwrap_or_else(|_| self.trie.greedy_tokenize(s))
            }
            Err(_) => self.trie.greedy_tokenize(s),
        }
    }
}

/// The per-model part: the token trie and the grammar compiler.
pub struct Grammar {
    factory: ParserFactory,
    vocab_size: usize,
    /// Tokens whose text starts with a digit (they extend a number).
    digit_tokens: Arc<Vec<u32>>,
}

impl Grammar {
    /// `vocab_size`: the model's logit count (may exceed the tokenizer's token count).
    pub fn new(tokenizer: Arc<GgufTokenizer>, vocab_size: usize) -> Result<Self> {
        let digit_tokens = Arc::new(
            (0..tokenizer.vocab_size() as u32)
                .filter(|&i| tokenizer.text_bytes(i).first().is_some_and(u8::is_ascii_digit))
                .collect(),
        );
        let mut words = tokenizer.token_bytes.clone();
        words.resize(vocab_size.max(words.len()), Vec::new());
        let eos = tokenizer.stop_tokens[0];
        let info = TokRxInfo {
            tok_end_of_turn: Some(eos),
            tok_bos: tokenizer.bos,
            ..TokRxInfo::new(words.len() as u32, eos)
        };
        let trie = TokTrie::from(&info, &words).with_eos_tokens(&tokenizer.stop_tokens);
        let env: TokEnv = Arc::new(Env { trie, tokenizer });
        let mut factory =
            ParserFactory::new_simple(&env).map_err(|e| llm_err(format!("grammar setup: {e}")))?;
        factory.quiet();
        Ok(Grammar { factory, vocab_size: words.len(), digit_tokens })
    }

    /// A constraint for one reply. JSON is kept compact (no free whitespace), so a small model
    /// cannot spend its tokens on indentation.
    pub fn constraint(&self, schema: &ReplySchema) -> Result<Constraint> {
        let mut json = schema.json.clone();
        bound_integers(&mut json);
        if let Some(obj) = json.as_object_mut() {
            obj.entry("x-guidance")
                .or_insert_with(|| serde_json::json!({"whitespace_flexible": false}));
        }
        let grammar = TopLevelGrammar::from_json_schema(json);
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| llm_err(format!("reply schema: {e}")))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(llm_err(format!("reply schema: {e}")));
        }
        Ok(Constraint {
            matcher,
            vocab_size: self.vocab_size,
            numbers: NumberGuard::default(),
            digit_tokens: self.digit_tokens.clone(),
        })
    }
}

/// The grammar state of one reply.
pub struct Constraint {
    matcher: Matcher,
    vocab_size: usize,
    numbers: NumberGuard,
    digit_tokens: Arc<Vec<u32>>,
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
        if self.numbers.digits_exhausted() {
            for &t in self.digit_tokens.iter() {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        Ok(())
    }

    /// Feeds the sampled token (and its text) to the grammar state.
    pub fn commit(&mut self, token: u32, text: &[u8]) -> Result<()> {
        self.matcher
            .consume_token(token)
            .map_err(|e| llm_err(format!("grammar rejected token {token}: {e}")))?;
        text.iter().for_each(|&b| self.numbers.push(b));
        Ok(())
    }

    /// Tokens the grammar allows as the only continuation here (a JSON key after `{"`, the
    /// closing quote and colon): certain guesses for speculative decoding. Nothing is committed.
    pub fn forced_tokens(&mut self) -> Vec<u32> {
        self.matcher.compute_ff_tokens()
    }

    /// How many of `tokens`, fed in order from here, the grammar accepts. Nothing is committed.
    pub fn valid_prefix(&mut self, tokens: &[u32]) -> usize {
        if tokens.is_empty() {
            return 0;
        }
        self.matcher.validate_tokens(tokens).unwrap_or(0)
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

const INT_BOUND: i64 = 999_999_999_999_999_999;

/// Integers without bounds get (nearly) the i64 range: every reply then parses into a machine integer,
/// and a model stuck repeating a digit is stopped after 19 of them.
fn bound_integers(schema: &mut serde_json::Value) {
    match schema {
        serde_json::Value::Object(map) => {
            if map.get("type").and_then(|t| t.as_str()) == Some("integer") {
                // 18 digits: inside i64, and clear of llguidance's overflow at the i64 limits.
                map.entry("minimum").or_insert(serde_json::json!(-INT_BOUND));
                map.entry("maximum").or_insert(serde_json::json!(INT_BOUND));
            }
            map.values_mut().for_each(bound_integers);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

/// Tracks the JSON number being written (outside strings) so that its parts stay finite: JSON
/// grammar allows `9e9695` or endless digits, which no f64 parser accepts. Limits: 18 digits
/// before and after the point, 2 exponent digits. Digits are only banned once the part already
/// has one, so the grammar always has a way on (`.`, `e`, a closer).
#[derive(Default, Debug)]
struct NumberGuard {
    in_string: bool,
    escaped: bool,
    in_number: bool,
    int_digits: usize,
    frac_digits: Option<usize>,
    exp_digits: Option<usize>,
}

impl NumberGuard {
    const MAX_PART_DIGITS: usize = 18;
    const MAX_EXP_DIGITS: usize = 2;

    fn push(&mut self, b: u8) {
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
            }
            return;
        }
        match b {
            b'"' => {
                self.end_number();
                self.in_string = true;
            }
            b'0'..=b'9' if self.in_number => {
                let part = match (&mut self.exp_digits, &mut self.frac_digits) {
                    (Some(e), _) => e,
                    (None, Some(f)) => f,
                    (None, None) => &mut self.int_digits,
                };
                *part += 1;
            }
            b'0'..=b'9' | b'-' if !self.in_number => {
                self.in_number = true;
                self.int_digits = usize::from(b != b'-');
            }
            b'.' if self.in_number => self.frac_digits = Some(0),
            b'e' | b'E' if self.in_number => self.exp_digits = Some(0),
            b'+' | b'-' if self.in_number && self.exp_digits == Some(0) => {}
            _ => self.end_number(),
        }
    }

    fn end_number(&mut self) {
        self.in_number = false;
        self.int_digits = 0;
        self.frac_digits = None;
        self.exp_digits = None;
    }

    fn digits_exhausted(&self) -> bool {
        if !self.in_number || self.in_string {
            return false;
        }
        match (self.exp_digits, self.frac_digits) {
            (Some(e), _) => e >= Self::MAX_EXP_DIGITS,
            (None, Some(f)) => f >= Self::MAX_PART_DIGITS,
            (None, None) => self.int_digits >= Self::MAX_PART_DIGITS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(text: &str) -> NumberGuard {
        let mut g = NumberGuard::default();
        text.bytes().for_each(|b| g.push(b));
        g
    }

    #[test]
    fn number_guard_limits_each_part_of_a_number() {
        assert!(!guard("{\"x\":12").digits_exhausted());
        assert!(guard("{\"x\":123456789012345678").digits_exhausted());
        assert!(!guard("{\"x\":123456789012345678.").digits_exhausted());
        assert!(guard("{\"x\":-1.5e+12").digits_exhausted());
        assert!(!guard("{\"x\":1e-1").digits_exhausted());
        // Digits inside strings, escapes included, are text.
        assert!(!guard("{\"x\":\"1234567890123456789012\"").digits_exhausted());
        assert!(!guard("{\"x\":\"a\\\"1234567890123456789012").digits_exhausted());
        assert!(!guard("[1,2,3,123456789012345678,").digits_exhausted());
    }

    #[test]
    fn integers_get_bounds_everywhere() {
        let mut s = serde_json::json!({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"array","items":{"type":"integer","minimum":0}}}});
        bound_integers(&mut s);
        assert_eq!(s["properties"]["a"]["maximum"], serde_json::json!(INT_BOUND));
        assert_eq!(s["properties"]["b"]["items"]["minimum"], serde_json::json!(0));
        assert_eq!(s["properties"]["b"]["items"]["maximum"], serde_json::json!(INT_BOUND));
    }
}
