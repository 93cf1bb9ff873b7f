//! Our packed quantized matmul against candle's `QMatMul` on one FFN-sized Q4_K matrix
//! (8960 x 1536, the 1.5B model's gate projection), for 1 and 4 input rows: what a decode step of
//! one sequence and of four batched sequences costs per matrix. Both run on the current rayon
//! pool; candle's repacks on first use, which the warm-up absorbs.
//! `cargo bench --bench qmatmul` (prints "skipped" on CPUs without AVX2).

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use opto::llm::local::qmatmul::{Kernels, PackedWeight};

fn matmuls(c: &mut Criterion) {
    let Some(kernels) = Kernels::best() else {
        eprintln!("skipped: this CPU has neither AVX-512 VNNI nor AVX2, so the engine uses candle's kernels");
        return;
    };
    let (n, k) = (8960, 1536);
    let data: Vec<f32> =
        (0..n * k).map(|i| ((i * 7919 % 1009) as f32 / 1009.0 - 0.5) * 0.1).collect();
    let q =
        QTensor::quantize(&Tensor::from_vec(data, (n, k), &Device::Cpu).unwrap(), GgmlDType::Q4K)
            .unwrap();
    let packed = PackedWeight::pack(GgmlDType::Q4K, &q.data().unwrap(), n, k, kernels).unwrap();
    let candle = QMatMul::from_qtensor(q).unwrap();
    let mut group = c.benchmark_group("q4k_8960x1536");
    for m in [1usize, 4] {
        let x: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 - 8.0).collect();
        let xt = Tensor::from_vec(x.clone(), (m, k), &Device::Cpu).unwrap();
        candle.forward(&xt).unwrap();
        group.bench_with_input(BenchmarkId::new("opto", m), &m, |b, &m| {
            b.iter(|| packed.matmul(&x, m))
        });
        group.bench_with_input(BenchmarkId::new("candle", m), &m, |b, _| {
            b.iter(|| candle.forward(&xt).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, matmuls);
criterion_main!(benches);
