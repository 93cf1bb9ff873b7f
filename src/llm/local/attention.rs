//! Single-token attention on the CPU: one query row per head against the cached keys and
//! values, read straight from the kv buffers. For decode this replaces two small batched
//! matmuls (which pack their operands on every call) and a softmax with one pass per head.

use candle_core::{DType, Device, Storage, Tensor};
use rayon::prelude::*;

/// `q`: `[heads, hd]`; `keys`, `values`: `[kv_heads, total, hd]` views of the kv buffers (row
/// stride `hd`). Query head `h` reads kv head `h / group`. Returns `[1, heads * hd]`, or `None`
/// when the tensors are not f32 CPU tensors laid out that way (the caller then takes the
/// general path).
pub fn decode_cpu(q: &Tensor, keys: &Tensor, values: &Tensor, group: usize, scale: f32) -> candle_core::Result<Option<Tensor>> {
    if !matches!(q.device(), Device::Cpu) || q.dtype() != DType::F32 || keys.dtype() != DType::F32 || values.dtype() != DType::F32 {
        return Ok(None);
    }
    let (kvh, total, hd) = keys.dims3()?;
    let (heads, qd) = q.dims2()?;
    if qd != hd || heads != kvh * group || values.dims() != keys.dims() {
        return Ok(None);
    }
    let q = q.flatten_all()?.to_vec1::<f32>()?;
    let (k_store, k_layout) = keys.storage_and_layout();
    let (v_store, v_layout) = values.storage_and_layout();
    let (Storage::Cpu(k_cpu), Storage::Cpu(v_cpu)) = (&*k_store, &*v_store) else { return Ok(None) };
    let (ks, vs) = (k_layout.stride(), v_layout.stride());
    if ks[1] != hd || ks[2] != 1 || vs != ks {
        return Ok(None);
    }
    let (k_all, v_all) = (k_cpu.as_slice::<f32>()?, v_cpu.as_slice::<f32>()?);
    let (k_off, v_off, head_stride) = (k_layout.start_offset(), v_layout.start_offset(), ks[0]);
    let last = (kvh - 1) * head_stride + total * hd;
    if k_all.len() < k_off + last || v_all.len() < v_off + last {
        return Ok(None);
    }
    let mut out = vec![0f32; heads * hd];
    out.par_chunks_mut(hd).enumerate().for_each(|(h, out_h)| {
        let base = (h / group) * head_stride;
        let k = &k_all[k_off + base..k_off + base + total * hd];
        let v = &v_all[v_off + base..v_off + base + total * hd];
        let qh = &q[h * hd..(h + 1) * hd];
        let mut scores: Vec<f32> = k.chunks_exact(hd).map(|row| dot(qh, row) * scale).collect();
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
            sum += *s;
        }
        for (p, row) in scores.iter().zip(v.chunks_exact(hd)) {
            axpy(p / sum, row, out_h);
        }
    });
    Tensor::from_vec(out, (1, heads * hd), &Device::Cpu).map(Some)
}

/// Dot product with eight independent sums, which the compiler turns into SIMD lanes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `out += a * x`.
fn axpy(a: f32, x: &[f32], out: &mut [f32]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o += a * v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_matmul_softmax_attention_on_cache_views() {
        let dev = Device::Cpu;
        let (kvh, group, hd, cap, total) = (2, 3, 24, 40, 29);
        let kb = Tensor::randn(0f32, 1.0, (kvh, cap, hd), &dev).unwrap();
        let vb = Tensor::randn(0f32, 1.0, (kvh, cap, hd), &dev).unwrap();
        let q = Tensor::randn(0f32, 1.0, (kvh * group, hd), &dev).unwrap();
        let (k, v) = (kb.narrow(1, 0, total).unwrap(), vb.narrow(1, 0, total).unwrap());
        let scale = 1.0 / (hd as f32).sqrt();
        let fast = decode_cpu(&q, &k, &v, group, scale).unwrap().expect("cpu path");
        let qg = q.reshape((kvh, group, hd)).unwrap();
        let s = (qg.matmul(&k.t().unwrap()).unwrap() * scale as f64).unwrap();
        let p = candle_nn::ops::softmax_last_dim(&s).unwrap();
        let slow = p.matmul(&v).unwrap().reshape((1, kvh * group * hd)).unwrap();
        let diff = (fast - slow).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "max difference {diff}");
    }

    #[test]
    fn declines_layouts_it_does_not_handle() {
        let dev = Device::Cpu;
        let k = Tensor::zeros((2, 5, 8), DType::F32, &dev).unwrap();
        let q = Tensor::zeros((4, 8), DType::F32, &dev).unwrap();
        assert!(decode_cpu(&q, &k.transpose(1, 2).unwrap(), &k, 2, 1.0).unwrap().is_none());
        assert!(decode_cpu(&q, &k, &k, 3, 1.0).unwrap().is_none());
        assert!(decode_cpu(&q.to_dtype(DType::F16).unwrap(), &k, &k, 2, 1.0).unwrap().is_none());
    }
}
