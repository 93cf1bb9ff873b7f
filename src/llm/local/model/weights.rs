//! A model's quantized matrices: packed for our own CPU kernels where they run (see
//! `kernels/qmatmul/`), else candle's `QMatMul` (GPU, CPUs without AVX2, other formats and shapes).
//!
//! `OPTO_MATMUL=candle` forces candle's kernels on the CPU too, `OPTO_MATMUL=avx2` our AVX2
//! kernels on a CPU that has AVX-512 as well: for side-by-side measurements and tests.

use super::gguf::GgufFile;
use crate::error::{Error, Result};
use crate::llm::local::kernels::qmatmul::{Kernels, PackedWeight};
use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use std::sync::Arc;

fn t(op: &'static str) -> impl FnOnce(candle_core::Error) -> Error {
    move |e| Error::tensor(op, e)
}

/// A `[n, k]` projection: `forward(x[rows, k]) -> [rows, n]`.
pub enum Proj {
    Packed(Arc<PackedWeight>),
    Candle(QMatMul),
}

impl Proj {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Proj::Candle(w) => w.forward(x).map_err(t("quantized matmul")),
            Proj::Packed(_) => forward_many([self], x).map(|[y]| y),
        }
    }
}

/// Several projections of the same input (q, k, v; gate, up): one pass over all their weights
/// when all are packed, else one after another.
pub fn forward_many<const N: usize>(projs: [&Proj; N], x: &Tensor) -> Result<[Tensor; N]> {
    let packed: Option<Vec<&PackedWeight>> = projs
        .iter()
        .map(|p| match p {
            Proj::Packed(w) => Some(&**w),
            Proj::Candle(_) => None,
        })
        .collect();
    let outs: Vec<Tensor> = match packed {
        Some(ws) => {
            let rows = x.dim(0).map_err(t("matmul input"))?;
            let xs = x.flatten_all().and_then(|x| x.to_vec1::<f32>()).map_err(t("matmul input"))?;
            PackedWeight::matmul_many(&ws, &xs, rows)
                .into_iter()
                .zip(&ws)
                .map(|(y, w)| {
                    Tensor::from_vec(y, (rows, w.n()), x.device()).map_err(t("matmul output"))
                })
                .collect::<Result<_>>()?
        }
        None => projs.iter().map(|p| p.forward(x)).collect::<Result<_>>()?,
    };
    Ok(outs.try_into().unwrap_or_else(|_| unreachable!("one output per projection")))
}

/// The token embedding: rows looked up by token id.
pub enum Embedding {
    Packed(Arc<PackedWeight>),
    Candle(Arc<QTensor>),
}

impl Embedding {
    pub fn lookup(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        match self {
            Embedding::Candle(q) => {
                let ids = Tensor::new(ids, device).map_err(t("ids"))?;
                q.embedding(&ids).map_err(t("embedding"))
            }
            Embedding::Packed(w) => {
                let k = w.k();
                let mut out = vec![0f32; ids.len() * k];
                for (row, &id) in out.chunks_exact_mut(k).zip(ids) {
                    w.dequantize_row(id as usize, row);
                }
                Tensor::from_vec(out, (ids.len(), k), device).map_err(t("embedding"))
            }
        }
    }

    /// The same matrix as an output head (models whose head is tied to the embedding).
    pub fn as_head(&self) -> Result<Proj> {
        match self {
            Embedding::Packed(w) => Ok(Proj::Packed(w.clone())),
            Embedding::Candle(q) => {
                QMatMul::from_arc(q.clone()).map(Proj::Candle).map_err(t("output head"))
            }
        }
    }
}

/// Loads matrices from a GGUF file, packing those our kernels can run.
pub struct WeightLoader {
    device: Device,
    kernels: Option<Kernels>,
}

impl WeightLoader {
    pub fn new(device: &Device) -> Self {
        let choice = std::env::var("OPTO_MATMUL").unwrap_or_default().to_ascii_lowercase();
        let kernels = match choice.as_str() {
            _ if !device.is_cpu() => None,
            "candle" => None,
            // The AVX2 kernels on a CPU that also has AVX-512 (to measure or test them there).
            "avx2" => {
                Some(Kernels::Avx2).filter(|_| Kernels::all_available().contains(&Kernels::Avx2))
            }
            _ => Kernels::best(),
        };
        WeightLoader { device: device.clone(), kernels }
    }

    /// Candle's kernels for every matrix, whatever the CPU has (tests of the tensor path).
    pub fn candle_only(device: &Device) -> Self {
        WeightLoader { device: device.clone(), kernels: None }
    }

    /// A quantized matrix `name` of shape `[n, k]`, packed when our kernels take it.
    fn packed_or(
        &self,
        file: &mut GgufFile,
        name: &str,
        n: usize,
        k: usize,
    ) -> Result<std::result::Result<Arc<PackedWeight>, QTensor>> {
        let q = file.tensor(name, &[n, k], &self.device)?;
        let Some(kernels) = self.kernels.filter(|_| PackedWeight::supports(q.dtype(), n, k)) else {
            return Ok(Err(q));
        };
        let data = q.data().map_err(|e| file.err(format!("tensor `{name}`: {e}")))?;
        match PackedWeight::pack(q.dtype(), &data, n, k, kernels) {
            Some(w) => Ok(Ok(Arc::new(w))),
            None => Err(file.err(format!(
                "tensor `{name}`: its data does not have the size of a {n}x{k} {:?} matrix",
                q.dtype()
            ))),
        }
    }

    pub fn proj(&self, file: &mut GgufFile, name: &str, n: usize, k: usize) -> Result<Proj> {
        match self.packed_or(file, name, n, k)? {
            Ok(w) => Ok(Proj::Packed(w)),
            Err(q) => QMatMul::from_qtensor(q)
                .map(Proj::Candle)
                .map_err(|e| file.err(format!("tensor `{name}`: {e}"))),
        }
    }

    pub fn embedding(
        &self,
        file: &mut GgufFile,
        name: &str,
        n: usize,
        k: usize,
    ) -> Result<Embedding> {
        Ok(match self.packed_or(file, name, n, k)? {
            Ok(w) => Embedding::Packed(w),
            Err(q) => Embedding::Candle(Arc::new(q)),
        })
    }
}

/// Hands freed heap back to the OS, once a model is loaded: each matrix was read whole and then
/// repacked, and glibc keeps most of those freed buffers mapped otherwise (about 60 MB resident
/// for the 1.5B model). Once, not per matrix: a trim walks the whole heap (load took 2x longer).
pub fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
