//! Our own CPU kernels, the hot loops of a decode step: the quantized matmul (`qmatmul/`), the
//! decode-step attention over the f16 kv cache (`attention/`) and the libm-free arithmetic they
//! and the sampler share (`fastmath.rs`). Plain functions over slices, knowing nothing of the
//! model file or of requests, so they can be tested and benchmarked alone.

pub mod attention;
pub(super) mod fastmath;
pub mod qmatmul;
