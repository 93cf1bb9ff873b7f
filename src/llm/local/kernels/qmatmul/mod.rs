//! Our own quantized matmul for the CPU: `y = x · Wᵀ` with `W` a GGUF Q4_K, Q6_K or Q8_0 matrix.
//!
//! Why not candle's: on x86 candle repacks Q4_K weights into wider tiles on first use and keeps
//! the file's blocks too (2.3 GB resident for the 1.1 GB 1.5B model), and its kernels cost about
//! twice as much for four input rows as for one, so batching seeds gained little. Here the
//! weights are repacked once at load into tiles (`tiles.rs`: the file's size, within 3 %) and
//! the file's layout is dropped; the kernels (`avx512.rs`) read each tile once for up to four input
//! rows; `avx2.rs` does the same for CPUs without AVX-512. Where neither can run (another
//! architecture, format or shape, a GPU) the model keeps candle's `QMatMul`.

mod dispatch;
pub mod inputs;
pub mod scalar;
pub mod tiles;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

use candle_core::quantized::GgmlDType;
use inputs::QuantInputs;
use rayon::prelude::*;
use tiles::{TileQ4K, TileQ6K, TileQ8_0, QK8_0, QK_K, ROWS};

/// Which kernels run a [`PackedWeight`]'s matmul.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    Avx512Vnni,
    Avx2,
    /// The portable reference (slow; for tests and for checking the SIMD kernels).
    Scalar,
}

impl Kernels {
    /// The fastest kernels this CPU runs, if any beat candle's.
    pub fn best() -> Option<Kernels> {
        [Kernels::Avx512Vnni, Kernels::Avx2].into_iter().find(|&k| dispatch::available(k))
    }

    /// Every kernel set this CPU runs, the scalar reference first (for tests and benchmarks).
    pub fn all_available() -> Vec<Kernels> {
        [Kernels::Scalar, Kernels::Avx2, Kernels::Avx512Vnni]
            .into_iter()
            .filter(|&k| dispatch::available(k))
            .collect()
    }
}

enum Tiles {
    Q4K(Vec<TileQ4K>),
    Q6K(Vec<TileQ6K>),
    Q8_0(Vec<TileQ8_0>),
}

/// A quantized `[n, k]` weight matrix in row tiles: tile `t` holds rows `16t..16t+16`, as
/// `blocks` consecutive tiles (one per block of inputs).
pub struct PackedWeight {
    tiles: Tiles,
    n: usize,
    k: usize,
    kernels: Kernels,
}

/// Raw pointer that may cross to the worker threads (each writes its own columns).
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl PackedWeight {
    /// Whether a `[n, k]` matrix of `dtype` can be packed.
    pub fn supports(dtype: GgmlDType, n: usize, k: usize) -> bool {
        n.is_multiple_of(ROWS)
            && n > 0
            && match dtype {
                GgmlDType::Q4K | GgmlDType::Q6K => k.is_multiple_of(QK_K) && k > 0,
                GgmlDType::Q8_0 => k.is_multiple_of(QK8_0) && k > 0,
                _ => false,
            }
    }

    /// Packs the GGUF bytes of a `[n, k]` matrix (rows of blocks, row-major). The caller checks
    /// [`PackedWeight::supports`] and that `data` has the matrix's size.
    pub fn pack(
        dtype: GgmlDType,
        data: &[u8],
        n: usize,
        k: usize,
        kernels: Kernels,
    ) -> Option<Self> {
        if !Self::supports(dtype, n, k) {
            return None;
        }
        let (block_inputs, block_bytes) = match dtype {
            GgmlDType::Q4K => (QK_K, tiles::Q4K_BLOCK_BYTES),
            GgmlDType::Q6K => (QK_K, tiles::Q6K_BLOCK_BYTES),
            _ => (QK8_0, tiles::Q8_0_BLOCK_BYTES),
        };
        let blocks = k / block_inputs;
        let row_bytes = blocks * block_bytes;
        if data.len() != n * row_bytes {
            return None;
        }
        fn pack_all<T: Send>(
            data: &[u8],
            n: usize,
            row_bytes: usize,
            blocks: usize,
            f: fn(&[&[u8]; ROWS], usize) -> T,
        ) -> Vec<T> {
            (0..n / ROWS)
                .into_par_iter()
                .flat_map_iter(|t| {
                    let rows: [&[u8]; ROWS] = std::array::from_fn(|r| {
                        &data[(t * ROWS + r) * row_bytes..(t * ROWS + r + 1) * row_bytes]
                    });
                    (0..blocks).map(move |b| f(&rows, b))
                })
                .collect()
        }
        let tiles = match dtype {
            GgmlDType::Q4K => Tiles::Q4K(pack_all(data, n, row_bytes, blocks, tiles::pack_q4k)),
            GgmlDType::Q6K => Tiles::Q6K(pack_all(data, n, row_bytes, blocks, tiles::pack_q6k)),
            _ => Tiles::Q8_0(pack_all(data, n, row_bytes, blocks, tiles::pack_q8_0)),
        };
        Some(PackedWeight { tiles, n, k, kernels })
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn bytes(&self) -> usize {
        match &self.tiles {
            Tiles::Q4K(t) => std::mem::size_of_val(t.as_slice()),
            Tiles::Q6K(t) => std::mem::size_of_val(t.as_slice()),
            Tiles::Q8_0(t) => std::mem::size_of_val(t.as_slice()),
        }
    }

    fn block_inputs(&self) -> usize {
        match self.tiles {
            Tiles::Q8_0(_) => QK8_0,
            _ => QK_K,
        }
    }

    /// Row `r` of the matrix, dequantized (an embedding look-up).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let (t, lane) = (r / ROWS, r % ROWS);
        let bi = self.block_inputs();
        let blocks = self.k / bi;
        for (b, chunk) in out[..self.k].chunks_exact_mut(bi).enumerate() {
            match &self.tiles {
                Tiles::Q4K(ts) => ts[t * blocks + b].dequantize_row(lane, chunk),
                Tiles::Q6K(ts) => ts[t * blocks + b].dequantize_row(lane, chunk),
                Tiles::Q8_0(ts) => ts[t * blocks + b].dequantize_row(lane, chunk),
            }
        }
    }

    /// `y[m, n] = x[m, k] · Wᵀ`, on the current rayon pool.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        Self::matmul_many(&[self], x, m).pop().expect("one output per matrix")
    }

    /// `x · Wᵢᵀ` for several matrices that read the same input (q, k, v; gate, up): the input is
    /// quantized once per block size and all their tiles share one parallel pass, which saves
    /// a hand-off to the thread pool per matrix in every decode step.
    pub fn matmul_many(ws: &[&PackedWeight], x: &[f32], m: usize) -> Vec<Vec<f32>> {
        let k = ws.first().map_or(0, |w| w.k);
        assert!(ws.iter().all(|w| w.k == k) && x.len() == m * k, "matmul input shape");
        let mut quantized: Vec<(usize, QuantInputs)> = Vec::new();
        for w in ws {
            let b = w.block_inputs();
            if !quantized.iter().any(|(qb, _)| *qb == b) {
                quantized.push((b, QuantInputs::new(x, m, k, b)));
            }
        }
        let inputs: Vec<&QuantInputs> = ws
            .iter()
            .map(|w| {
                &quantized.iter().find(|(b, _)| *b == w.block_inputs()).expect("quantized above").1
            })
            .collect();
        let mut ys: Vec<Vec<f32>> = ws.iter().map(|w| vec![0f32; m * w.n]).collect();
        let outs: Vec<OutPtr> = ys.iter_mut().map(|y| OutPtr(y.as_mut_ptr())).collect();
        // Global tile index -> (matrix, tile): matrix i owns tiles first[i]..first[i + 1].
        let mut first = vec![0usize];
        for w in ws {
            first.push(first.last().copied().unwrap_or(0) + w.n / ROWS);
        }
        let total = first.last().copied().unwrap_or(0);
        // About 64 KB of weights per task: enough work to pay for the hand-off.
        let tile_bytes = ws.iter().map(|w| w.bytes()).sum::<usize>() / total.max(1);
        let min_len = (65_536 / tile_bytes.max(1)).max(1);
        (0..total).into_par_iter().with_min_len(min_len).for_each(|g| {
            let i = first.partition_point(|&f| f <= g) - 1;
            ws[i].run_tile(g - first[i], inputs[i], outs[i]);
        });
        ys
    }

    /// All input rows against row tile `t`, written to `out` (`[m, n]`).
    fn run_tile(&self, t: usize, xq: &QuantInputs, out: OutPtr) {
        let blocks = self.k / self.block_inputs();
        let span = t * blocks..(t + 1) * blocks;
        match &self.tiles {
            Tiles::Q4K(ts) => self.tile(&ts[span], xq, t, out, scalar::q4k, dispatch::q4k),
            Tiles::Q6K(ts) => self.tile(&ts[span], xq, t, out, scalar::q6k, dispatch::q6k),
            Tiles::Q8_0(ts) => self.tile(&ts[span], xq, t, out, scalar::q8_0, dispatch::q8_0),
        }
    }

    /// All input rows against row tile `t`.
    fn tile<T>(
        &self,
        tiles: &[T],
        xq: &QuantInputs,
        t: usize,
        out: OutPtr,
        scalar: fn(&[T], &QuantInputs, usize, &mut [f32; ROWS]),
        simd: fn(Kernels, &[T], &QuantInputs, &[usize], &[*mut f32]),
    ) {
        let col = |row: usize| unsafe { out.0.add(row * self.n + t * ROWS) };
        match self.kernels {
            Kernels::Scalar => {
                for row in 0..xq.rows {
                    let mut o = [0f32; ROWS];
                    scalar(tiles, xq, row, &mut o);
                    // SAFETY: row < m and the tile's 16 columns are inside the row; no other
                    // task writes these columns.
                    unsafe { std::ptr::copy_nonoverlapping(o.as_ptr(), col(row), ROWS) };
                }
            }
            simd_kernels => {
                let mut first = 0;
                while first < xq.rows {
                    let count = (xq.rows - first).min(dispatch::MT);
                    let rows: [usize; dispatch::MT] =
                        std::array::from_fn(|i| first + i.min(count - 1));
                    let outs: [*mut f32; dispatch::MT] = std::array::from_fn(|i| col(rows[i]));
                    simd(simd_kernels, tiles, xq, &rows[..count], &outs[..count]);
                    first += count;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::QTensor;
    use candle_core::{Device, Tensor};

    /// A random `[n, k]` matrix quantized by candle (the GGUF writer's own code), with its
    /// dequantized values.
    fn quantized(dtype: GgmlDType, n: usize, k: usize, seed: u64) -> (Vec<u8>, Vec<f32>) {
        let mut s = seed;
        let data: Vec<f32> = (0..n * k)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 2.0
            })
            .collect();
        let q = QTensor::quantize(&Tensor::from_vec(data, (n, k), &Device::Cpu).unwrap(), dtype)
            .unwrap();
        let deq =
            q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        (q.data().unwrap().into_owned(), deq)
    }

    fn inputs(m: usize, k: usize) -> Vec<f32> {
        (0..m * k).map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 3.0).collect()
    }

    const FORMATS: [GgmlDType; 3] = [GgmlDType::Q4K, GgmlDType::Q6K, GgmlDType::Q8_0];

    #[test]
    fn tiles_hold_exactly_the_files_weights() {
        for dtype in FORMATS {
            let (n, k) = (48, 512);
            let (raw, want) = quantized(dtype, n, k, 3);
            let w = PackedWeight::pack(dtype, &raw, n, k, Kernels::Scalar).unwrap();
            // Every format takes about the file's size (Q4_K: +3 %, its scales unpacked).
            let most = raw.len() * 21 / 20;
            assert!(
                w.bytes() >= raw.len() && w.bytes() <= most,
                "{dtype:?}: {} vs {}",
                w.bytes(),
                raw.len()
            );
            let mut row = vec![0f32; k];
            for r in 0..n {
                w.dequantize_row(r, &mut row);
                assert_eq!(row, want[r * k..(r + 1) * k], "{dtype:?} row {r}");
            }
        }
    }

    #[test]
    fn matmul_matches_the_dequantized_product_for_every_kernel_and_row_count() {
        let kernels = Kernels::all_available();
        for dtype in FORMATS {
            let (n, k) = (64, 768);
            let (raw, deq) = quantized(dtype, n, k, 5);
            for m in [1, 2, 3, 4, 5, 9] {
                let x = inputs(m, k);
                let want: Vec<f32> = (0..m * n)
                    .map(|i| {
                        let (r, c) = (i / n, i % n);
                        x[r * k..(r + 1) * k]
                            .iter()
                            .zip(&deq[c * k..(c + 1) * k])
                            .map(|(a, b)| a * b)
                            .sum()
                    })
                    .collect();
                let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
                let mut results = Vec::new();
                for &kern in &kernels {
                    let w = PackedWeight::pack(dtype, &raw, n, k, kern).unwrap();
                    let got = w.matmul(&x, m);
                    for (g, e) in got.iter().zip(&want) {
                        // The inputs are quantized to 8 bits: about 1 % of the largest output.
                        assert!(
                            (g - e).abs() <= 0.02 * scale,
                            "{dtype:?} {kern:?} m={m}: {g} vs {e}"
                        );
                    }
                    results.push(got);
                }
                // The SIMD kernels do the scalar kernels' integer arithmetic.
                for other in &results[1..] {
                    for (a, b) in other.iter().zip(&results[0]) {
                        assert!((a - b).abs() <= 1e-4 * scale, "{dtype:?} m={m}: {a} vs {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn several_matrices_in_one_pass_give_each_ones_product() {
        let k = 512;
        for kern in Kernels::all_available() {
            let ws: Vec<PackedWeight> = [
                (GgmlDType::Q4K, 48),
                (GgmlDType::Q6K, 16),
                (GgmlDType::Q8_0, 32),
                (GgmlDType::Q4K, 64),
            ]
            .iter()
            .enumerate()
            .map(|(i, &(dtype, n))| {
                let (raw, _) = quantized(dtype, n, k, 11 + i as u64);
                PackedWeight::pack(dtype, &raw, n, k, kern).unwrap()
            })
            .collect();
            let x = inputs(3, k);
            let together = PackedWeight::matmul_many(&ws.iter().collect::<Vec<_>>(), &x, 3);
            for (w, y) in ws.iter().zip(&together) {
                assert_eq!(y, &w.matmul(&x, 3), "{kern:?}");
            }
        }
    }

    #[test]
    fn unsupported_shapes_and_sizes_are_refused() {
        assert!(!PackedWeight::supports(GgmlDType::Q4K, 16, 576));
        assert!(!PackedWeight::supports(GgmlDType::Q8_0, 20, 64));
        assert!(!PackedWeight::supports(GgmlDType::Q5K, 16, 256));
        assert!(PackedWeight::pack(GgmlDType::Q8_0, &[0u8; 10], 16, 32, Kernels::Scalar).is_none());
    }
}
