//! Guessed continuations for speculative decoding, taken from the text the sequence already
//! holds (prompt lookup): an OptoPrime reply repeats much of its prompt (variable names, the
//! code being rewritten, JSON keys), so when the last few tokens occurred earlier, the tokens
//! that followed them there are a likely continuation. A guess costs one row of the next
//! forward pass; the model's own choice at each row decides how much of it is kept, so guesses
//! change the speed, never the output.

/// Longest and shortest run of last tokens looked up. A single token matches almost anywhere
/// and its guesses are mostly wrong; two tokens already single out a place in the prompt.
const MAX_NGRAM: usize = 4;
const MIN_NGRAM: usize = 2;

/// Up to `max` tokens that followed the most recent earlier occurrence of `context`'s last
/// tokens (the longest run that occurred, `MAX_NGRAM` down to `MIN_NGRAM`); empty when none did.
pub(crate) fn lookup(context: &[u32], max: usize) -> Vec<u32> {
    if max == 0 {
        return Vec::new();
    }
    let len = context.len();
    for n in (MIN_NGRAM..=MAX_NGRAM).rev() {
        if len <= n {
            continue;
        }
        let tail = &context[len - n..];
        // The most recent occurrence that has at least one token after it, not the tail itself.
        if let Some(start) = (0..len - n).rev().find(|&p| &context[p..p + n] == tail) {
            let from = start + n;
            return context[from..(from + max).min(len)].to_vec();
        }
    }
    Vec::new()
}

/// How many guessed tokens a sequence gets next pass: doubles while its guesses are all kept,
/// falls back to what was kept (at least one) when they are not, so a sequence whose replies
/// leave the prompt stops paying for rows it throws away.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GuessLength {
    pub now: usize,
    pub max: usize,
}

impl GuessLength {
    pub fn new(max: usize) -> Self {
        GuessLength { now: max.min(4), max }
    }

    /// Records a pass that guessed `guessed` tokens of which the first `kept` were right.
    pub fn record(&mut self, guessed: usize, kept: usize) {
        if guessed == 0 {
            return;
        }
        self.now =
            if kept == guessed { (self.now * 2).min(self.max) } else { (kept + 1).min(self.max) };
        self.now = self.now.max(1).min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_recent_longest_match_gives_what_followed_it() {
        // "a b c d" occurs at 0 and "x b c d" later; the tail "b c d" matches both, the later wins.
        let ctx = [1, 2, 3, 4, 5, 6, 9, 2, 3, 4, 7, 8, 2, 3, 4];
        assert_eq!(lookup(&ctx, 3), vec![7, 8, 2]);
        assert_eq!(lookup(&ctx, 1), vec![7]);
    }

    #[test]
    fn guesses_stop_at_the_end_of_the_context_and_need_two_matching_tokens() {
        assert_eq!(lookup(&[5, 6, 7, 5, 6], 4), vec![7, 5, 6]);
        // Only the last token recurs: no guess.
        assert_eq!(lookup(&[1, 2, 3, 9, 4, 3], 4), Vec::<u32>::new());
        assert_eq!(lookup(&[1, 2], 4), Vec::<u32>::new());
        assert_eq!(lookup(&[1, 2, 1, 2], 0), Vec::<u32>::new());
    }

    #[test]
    fn the_length_grows_while_guesses_hold_and_shrinks_to_what_was_kept() {
        let mut g = GuessLength::new(8);
        assert_eq!(g.now, 4);
        g.record(4, 4);
        assert_eq!(g.now, 8);
        g.record(8, 8);
        assert_eq!(g.now, 8);
        g.record(8, 2);
        assert_eq!(g.now, 3);
        g.record(3, 0);
        assert_eq!(g.now, 1);
        g.record(0, 0);
        assert_eq!(g.now, 1);
    }
}
