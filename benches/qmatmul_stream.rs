//! A model's worth of packed weights streamed from memory, as a decode step streams them: 60
//! FFN-sized Q4_K matrices (8960 x 1536, 455 MiB in all, far beyond the caches), one matmul each,
//! for 1 and for 4 input rows. What the batch-4 decode target rests on: four rows should cost
//! little more than one, since both read the same bytes. The two take turns round by round (this
//! machine's speed drifts more between runs than the difference); each figure is the median of
//! its rounds, the ratio the median of the per-round ratios.
//! `cargo bench --bench qmatmul_stream [ROUNDS]` (the current rayon pool's threads).

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use opto::llm::local::bench::median;
use opto::llm::local::qmatmul::{Kernels, PackedWeight};
use std::time::Instant;

const MATRICES: usize = 60;

/// Seconds for one matmul with every matrix of `set`.
fn pass(set: &[PackedWeight], x: &[f32], m: usize) -> f64 {
    let start = Instant::now();
    for w in set {
        std::hint::black_box(w.matmul(x, m));
    }
    start.elapsed().as_secs_f64()
}

fn main() {
    let Some(kernels) = Kernels::best() else {
        eprintln!("skipped: this CPU has neither AVX-512 VNNI nor AVX2, so the engine uses candle's kernels");
        return;
    };
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(15);
    let (n, k) = (8960, 1536);
    let data: Vec<f32> =
        (0..n * k).map(|i| ((i * 7919 % 1009) as f32 / 1009.0 - 0.5) * 0.1).collect();
    let q =
        QTensor::quantize(&Tensor::from_vec(data, (n, k), &Device::Cpu).unwrap(), GgmlDType::Q4K)
            .unwrap();
    let bytes = q.data().unwrap();
    // Separate copies, so that no matrix is still cached when its turn comes again.
    let set: Vec<PackedWeight> = (0..MATRICES)
        .map(|_| PackedWeight::pack(GgmlDType::Q4K, &bytes, n, k, kernels).unwrap())
        .collect();
    let gib = (MATRICES * set[0].bytes()) as f64 / (1u64 << 30) as f64;
    let inputs: Vec<Vec<f32>> =
        [1usize, 4].iter().map(|&m| (0..m * k).map(|i| (i % 17) as f32 - 8.0).collect()).collect();
    let (mut one, mut four) = (Vec::new(), Vec::new());
    pass(&set, &inputs[0], 1);
    for _ in 0..rounds {
        one.push(pass(&set, &inputs[0], 1));
        four.push(pass(&set, &inputs[1], 4));
    }
    let ratio = median(&four.iter().zip(&one).map(|(f, o)| f / o).collect::<Vec<_>>());
    let (one, four) = (median(&one), median(&four));
    println!(
        "{MATRICES} matrices {n}x{k} Q4_K ({:.0} MiB), {:?} kernels, {} threads, {rounds} rounds",
        gib * 1024.0,
        kernels,
        rayon::current_num_threads()
    );
    println!("1 row:  {:.1} ms a pass, {:.1} GiB/s", one * 1e3, gib / one);
    println!(
        "4 rows: {:.1} ms a pass, {:.1} GiB/s; {ratio:.2}x the time of 1 row",
        four * 1e3,
        gib / four
    );
}
