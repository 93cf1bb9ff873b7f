//! Decode attention of the 1.5B default model's shapes (12 query heads over 2 kv heads of 128
//! dimensions) at 1,300 positions: one sequence, and four sequences that share a 1,200-position
//! prompt head (as seeds restored from the prefix cache do) and hold 100 positions of their own.
//! One layer per iteration, with the kv cache in the CPU caches (`warm`) and, as in a real decode
//! step where the layer's weights stream through between two attentions, out of them (`cold`).
//! `cargo bench --bench attention`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use half::f16;
use opto::llm::local::attention::{attend_batch, Heads, KvRun, KvView};

const HEADS: Heads = Heads { heads: 12, kv_heads: 2, head_dim: 128 };

/// A `[kv_heads, rows, head_dim]` buffer of small pseudo-random values.
fn buffer(rows: usize, seed: u64) -> Vec<f16> {
    let n = HEADS.kv_heads * rows * HEADS.head_dim;
    (0..n as u64)
        .map(|i| f16::from_f32(((i * 2_654_435_761 + seed) % 1000) as f32 / 500.0 - 1.0))
        .collect()
}

fn attention(c: &mut Criterion) {
    let (prompt, own) = (1200, 100);
    let (pk, pv) = (buffer(prompt, 1), buffer(prompt, 2));
    let tails: Vec<(Vec<f16>, Vec<f16>)> =
        (0..4).map(|s| (buffer(own, 3 + s), buffer(own, 7 + s))).collect();
    let view = |s: usize| KvView {
        runs: vec![
            KvRun { keys: &pk, values: &pv, capacity: prompt, len: prompt },
            KvRun { keys: &tails[s].0, values: &tails[s].1, capacity: own, len: own },
        ],
    };
    let width = HEADS.heads * HEADS.head_dim;
    let q: Vec<f32> = (0..4 * width).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
    // Larger than the last-level cache, read between cold iterations (untimed).
    let flush: Vec<u8> = (0..96u32 << 20).map(|i| i as u8).collect();
    let mut group = c.benchmark_group("decode_attention_1300_positions");
    for batch in [1usize, 4] {
        let views: Vec<KvView<'_>> = (0..batch).map(view).collect();
        group.bench_function(format!("batch_{batch}_warm"), |b| {
            b.iter(|| attend_batch(HEADS, &views, &q[..batch * width]))
        });
        group.bench_function(format!("batch_{batch}_cold"), |b| {
            b.iter_batched(
                || evict(&flush),
                |_| attend_batch(HEADS, &views, &q[..batch * width]),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// Reads every cache line of `buffer` (as a layer's weights stream through), pushing whatever
/// was cached out.
fn evict(buffer: &[u8]) -> u8 {
    buffer.chunks(64).fold(0u8, |a, line| a ^ std::hint::black_box(line[0]))
}

criterion_group!(benches, attention);
criterion_main!(benches);
