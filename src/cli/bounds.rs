//! Bounds on every count a user types. An unbounded count is a crash waiting for a typo:
//! `--seeds 18446744073709551615` used to overflow a capacity after the model had loaded, and
//! `--seeds 10000000` aborted on allocation. Each bound is far above any sensible use on one
//! machine, so it only ever stops a mistake, with a message naming the flag and the range.

use crate::error::{Error, Result};

/// Seeds step together as one LLM batch: beyond this a run is a typo, not an experiment.
pub const MAX_SEEDS: usize = 1024;
pub const MAX_STEPS: usize = 1_000_000;
/// Past (variables, feedback) pairs shown in one prompt.
pub const MAX_MEMORY: usize = 1000;
/// Above every context window of the models opto runs.
pub const MAX_TOKENS: usize = 131_072;
pub const MAX_THREADS: usize = 4096;
pub const MAX_PROBLEM: usize = 1_000_000;
pub const MAX_BATCH: usize = 256;
pub const MAX_ROUNDS: usize = 1000;
pub const MAX_GRAPH_OPS: usize = 100_000_000;

/// `value` must lie in `lo..=hi`.
pub fn in_range(flag: &str, value: usize, lo: usize, hi: usize) -> Result<()> {
    if value < lo || value > hi {
        return Err(Error::invalid(flag, format!("{value} is out of range: must be {lo} to {hi}")));
    }
    Ok(())
}

/// The counts of `opto run`.
pub fn check_run_counts(
    seeds: usize,
    first_seed: u64,
    steps: usize,
    memory: usize,
    max_tokens: usize,
    threads: Option<usize>,
    problem: usize,
) -> Result<()> {
    in_range("--seeds", seeds, 1, MAX_SEEDS)?;
    if first_seed.checked_add(seeds as u64).is_none() {
        return Err(Error::invalid(
            "--first-seed",
            format!("{first_seed} + {seeds} seeds overflows a 64-bit seed number"),
        ));
    }
    in_range("--steps", steps, 1, MAX_STEPS)?;
    in_range("--memory", memory, 0, MAX_MEMORY)?;
    in_range("--max-tokens", max_tokens, 1, MAX_TOKENS)?;
    if let Some(t) = threads {
        in_range("--threads", t, 1, MAX_THREADS)?;
    }
    in_range("--problem", problem, 0, MAX_PROBLEM)
}

/// The counts of `opto bench llm` (`threads` 0 means one per core).
pub fn check_bench_llm_counts(
    prompt_tokens: usize,
    gen: usize,
    batch: &[usize],
    threads: usize,
    rounds: usize,
) -> Result<()> {
    in_range("--prompt-tokens", prompt_tokens, 1, MAX_TOKENS)?;
    in_range("--gen", gen, 1, MAX_TOKENS)?;
    if batch.is_empty() {
        return Err(Error::invalid("--batch", "give at least one batch size"));
    }
    for &b in batch {
        in_range("--batch", b, 1, MAX_BATCH)?;
    }
    in_range("--threads", threads, 0, MAX_THREADS)?;
    in_range("--rounds", rounds, 1, MAX_ROUNDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_count_is_bounded_with_the_flag_named() {
        let ok = |s, f, st, m, t, th, p| {
            check_run_counts(s, f, st, m, t, th, p).map_err(|e| e.to_string())
        };
        assert!(ok(4, 0, 10, 5, 400, Some(2), 3).is_ok());
        assert!(ok(usize::MAX, 0, 10, 5, 400, None, 0).unwrap_err().contains("--seeds"));
        assert!(ok(10_000_000, 0, 10, 5, 400, None, 0).unwrap_err().contains("--seeds"));
        assert!(ok(0, 0, 10, 5, 400, None, 0).unwrap_err().contains("--seeds"));
        assert!(ok(2, u64::MAX, 10, 5, 400, None, 0).unwrap_err().contains("--first-seed"));
        assert!(ok(1, 0, 0, 5, 400, None, 0).unwrap_err().contains("--steps"));
        assert!(ok(1, 0, usize::MAX, 5, 400, None, 0).unwrap_err().contains("--steps"));
        assert!(ok(1, 0, 1, usize::MAX, 400, None, 0).unwrap_err().contains("--memory"));
        assert!(ok(1, 0, 1, 5, 0, None, 0).unwrap_err().contains("--max-tokens"));
        assert!(ok(1, 0, 1, 5, usize::MAX, None, 0).unwrap_err().contains("--max-tokens"));
        assert!(ok(1, 0, 1, 5, 400, Some(0), 0).unwrap_err().contains("--threads"));
        assert!(ok(1, 0, 1, 5, 400, Some(usize::MAX), 0).unwrap_err().contains("--threads"));
        assert!(ok(1, 0, 1, 5, 400, None, usize::MAX).unwrap_err().contains("--problem"));
        let b = |p, g, batch: &[usize], t, r| {
            check_bench_llm_counts(p, g, batch, t, r).map_err(|e| e.to_string())
        };
        assert!(b(1200, 200, &[1, 2, 4, 8], 0, 3).is_ok());
        assert!(b(0, 200, &[1], 0, 1).unwrap_err().contains("--prompt-tokens"));
        assert!(b(10, 0, &[1], 0, 1).unwrap_err().contains("--gen"));
        assert!(b(10, 10, &[], 0, 1).unwrap_err().contains("--batch"));
        assert!(b(10, 10, &[0], 0, 1).unwrap_err().contains("--batch"));
        assert!(b(10, 10, &[1], 0, 0).unwrap_err().contains("--rounds"));
    }
}
