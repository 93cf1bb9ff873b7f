//! Prefix KV cache: the kv state of past prompts, so a new prompt that starts the same way (the
//! system prompt, the static head of an optimizer prompt, the same prompt for another seed)
//! only prefills its new tail. Bounded by entries and bytes, least recently used goes first.

use crate::llm::local::model::kv::KvSnapshot;
use std::sync::Arc;

struct Entry {
    tokens: Vec<u32>,
    kv: Arc<KvSnapshot>,
    last_used: u64,
}

pub struct PrefixCache {
    entries: Vec<Entry>,
    max_entries: usize,
    max_bytes: usize,
    clock: u64,
}

/// A usable cached prefix: the kv of its first `len` tokens.
pub struct Hit {
    pub kv: Arc<KvSnapshot>,
    pub len: usize,
}

impl PrefixCache {
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        PrefixCache { entries: Vec::new(), max_entries, max_bytes, clock: 0 }
    }

    pub fn is_enabled(&self) -> bool {
        self.max_entries > 0 && self.max_bytes > 0
    }

    /// Bytes the entries keep alive: each snapshot once, however many entries share it as a
    /// parent (an evicted entry still held as a parent counts too).
    pub fn bytes(&self) -> usize {
        let mut seen = std::collections::HashSet::new();
        self.entries
            .iter()
            .flat_map(|e| e.kv.chain())
            .filter(|s| seen.insert(*s as *const KvSnapshot))
            .map(|s| s.bytes())
            .sum()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The longest cached prefix of `prompt`, leaving at least its last token to compute (its
    /// logits start the reply).
    pub fn lookup(&mut self, prompt: &[u32]) -> Option<Hit> {
        let limit = prompt.len().saturating_sub(1);
        let mut best: Option<(usize, usize)> = None;
        for (i, e) in self.entries.iter().enumerate() {
            let common = e.tokens.iter().zip(prompt).take_while(|(a, b)| a == b).count().min(limit);
            if common > 0 && best.is_none_or(|(_, n)| common > n) {
                best = Some((i, common));
            }
        }
        let (i, len) = best?;
        self.clock += 1;
        self.entries[i].last_used = self.clock;
        Some(Hit { kv: self.entries[i].kv.clone(), len })
    }

    /// Whether an entry already holds all of `tokens` (then inserting them adds nothing).
    pub fn covers(&self, tokens: &[u32]) -> bool {
        self.entries
            .iter()
            .any(|e| e.tokens.len() >= tokens.len() && e.tokens[..tokens.len()] == tokens[..])
    }

    /// Keeps the kv of `tokens` (all of them: `kv.len() == tokens.len()`).
    pub fn insert(&mut self, tokens: Vec<u32>, kv: KvSnapshot) {
        if !self.is_enabled()
            || tokens.is_empty()
            || kv.len() != tokens.len()
            || kv.chain().map(|s| s.bytes()).sum::<usize>() > self.max_bytes
        {
            return;
        }
        self.clock += 1;
        // An entry that extends (or equals) an existing one replaces it; one that is already
        // covered by a longer entry only refreshes that entry.
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.tokens.len() >= tokens.len() && e.tokens[..tokens.len()] == tokens[..])
        {
            e.last_used = self.clock;
            return;
        }
        self.entries.retain(|e| {
            !(e.tokens.len() < tokens.len() && tokens[..e.tokens.len()] == e.tokens[..])
        });
        self.entries.push(Entry { tokens, kv: Arc::new(kv), last_used: self.clock });
        while self.entries.len() > self.max_entries || self.bytes() > self.max_bytes {
            let Some((oldest, _)) =
                self.entries.iter().enumerate().min_by_key(|(_, e)| e.last_used)
            else {
                break;
            };
            self.entries.remove(oldest);
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::local::kv::KvCache;
    use candle_core::{Device, Tensor};

    fn snapshot(n: usize) -> KvSnapshot {
        let mut c = KvCache::new(1, 1, 2, &Device::Cpu);
        c.reserve(n).unwrap();
        let t = Tensor::zeros((1, n, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        c.append(0, &t, &t).unwrap();
        c.advance(n);
        c.snapshot(n).unwrap()
    }

    fn put(cache: &mut PrefixCache, tokens: &[u32]) {
        cache.insert(tokens.to_vec(), snapshot(tokens.len()));
    }

    #[test]
    fn finds_the_longest_common_prefix_but_leaves_the_last_token() {
        let mut c = PrefixCache::new(8, 1 << 20);
        put(&mut c, &[1, 2, 3, 4, 5]);
        put(&mut c, &[1, 2, 9]);
        assert_eq!(c.lookup(&[1, 2, 3, 4, 7, 8]).unwrap().len, 4);
        assert_eq!(c.lookup(&[1, 2, 9, 9]).unwrap().len, 3);
        assert_eq!(
            c.lookup(&[1, 2, 3, 4, 5]).unwrap().len,
            4,
            "the last prompt token is always computed"
        );
        assert!(c.lookup(&[7, 1, 2]).is_none());
        assert!(c.lookup(&[1]).is_none());
    }

    #[test]
    fn longer_entries_replace_their_prefixes_and_lru_goes_first() {
        let mut c = PrefixCache::new(2, 1 << 20);
        put(&mut c, &[1, 2]);
        put(&mut c, &[1, 2, 3]);
        assert_eq!(c.len(), 1, "[1,2,3] covers [1,2]");
        assert!(c.covers(&[1, 2]) && c.covers(&[1, 2, 3]) && !c.covers(&[1, 2, 3, 4]));
        put(&mut c, &[1, 2]);
        assert_eq!(c.len(), 1, "[1,2] is already covered");
        put(&mut c, &[5, 6, 7]);
        c.lookup(&[1, 2, 3, 0]); // [1,2,3] is now the most recently used
        put(&mut c, &[8, 9, 10]);
        assert_eq!(c.len(), 2);
        assert!(c.lookup(&[5, 6, 7, 0]).is_none(), "the least recently used entry was evicted");
        assert!(c.lookup(&[1, 2, 3, 0]).is_some());
    }

    #[test]
    fn a_snapshot_shared_as_a_parent_counts_once() {
        let mut c = PrefixCache::new(8, 1 << 20);
        let mut a = KvCache::new(1, 1, 2, &Device::Cpu);
        a.reserve(8).unwrap();
        let t = Tensor::zeros((1, 8, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        a.append(0, &t, &t).unwrap();
        a.advance(8);
        let first = [1, 2, 3, 4, 5, 6, 7, 8];
        c.insert(first.to_vec(), a.snapshot(8).unwrap());
        let hit = c.lookup(&[1, 2, 3, 4, 5, 6, 9, 9]).unwrap();
        assert_eq!(hit.len, 6);
        let mut b = KvCache::from_snapshot(&hit.kv, 6, 2, 1, 1, 2, &Device::Cpu).unwrap();
        b.reserve(2).unwrap();
        b.append(0, &t.narrow(1, 0, 2).unwrap(), &t.narrow(1, 0, 2).unwrap()).unwrap();
        b.advance(2);
        let second = b.snapshot_after(&hit.kv, 6, 8).unwrap();
        let (whole, tail) = (hit.kv.bytes(), second.bytes());
        assert_eq!(tail * 4, whole, "the second entry holds 2 of its 8 positions");
        c.insert(vec![1, 2, 3, 4, 5, 6, 9, 9], second);
        assert_eq!(c.len(), 2);
        assert_eq!(c.bytes(), whole + tail);
        // Without the parent's own entry, its kv is still alive for the child, and counted.
        c.entries.retain(|e| e.tokens != first);
        assert_eq!(c.len(), 1);
        assert_eq!(c.bytes(), whole + tail);
    }

    #[test]
    fn byte_bound_and_disabled_cache() {
        let one = snapshot(4).bytes();
        let mut c = PrefixCache::new(100, 2 * one);
        for i in 0..5u32 {
            put(&mut c, &[i, 1, 2, 3]);
            assert!(c.bytes() <= 2 * one);
        }
        assert_eq!(c.len(), 2);
        let mut off = PrefixCache::new(0, 1 << 20);
        put(&mut off, &[1, 2, 3]);
        assert!(off.is_empty());
    }
}
