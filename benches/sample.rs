//! Choosing one token from a Qwen-sized vocabulary (151,936 logits): greedy, plain temperature,
//! top-k with top-p, and top-p alone over flat logits (its worst case: a wide nucleus).
//! `cargo bench --bench sample`.

use criterion::{criterion_group, criterion_main, Criterion};
use opto::llm::local::sample::Sampler;
use opto::llm::GenerationParams;

fn sampling(c: &mut Criterion) {
    // A thousand distinct levels spread over [-5, 5): far flatter than a model's logits.
    let logits: Vec<f32> =
        (0..151_936u64).map(|i| (i * 2_654_435_761 % 1000) as f32 / 100.0 - 5.0).collect();
    let mut group = c.benchmark_group("sample_152k");
    for (name, temperature, top_k, top_p) in [
        ("greedy", 0.0, 0, 1.0),
        ("temperature", 1.0, 0, 1.0),
        ("top_k40_top_p0.95", 0.7, 40, 0.95),
        ("top_p0.9_flat", 1.0, 0, 0.9),
    ] {
        let mut s = Sampler::new(&GenerationParams {
            temperature,
            top_k,
            top_p,
            seed: 1,
            ..GenerationParams::default()
        });
        group.bench_function(name, |b| b.iter(|| s.sample(&logits)));
    }
    group.finish();
}

criterion_group!(benches, sampling);
criterion_main!(benches);
