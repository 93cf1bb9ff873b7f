//! Re-quantizes the tensors of a GGUF file whose types candle runs slowly.
//!
//! candle has SIMD kernels for Q4_0, Q8_0 and the k-quants, but runs Q4_1, Q5_0 and Q5_1 on a
//! scalar path: the published Qwen2.5-Coder-0.5B (mostly Q5_0) and SmolLM2-135M (Q4_1) decode
//! 3-4x slower than after a one-off Q8_0 re-quantization (shared/MODELS.md). This module does
//! that re-quantization with candle itself: every other tensor and all metadata are kept.

use crate::error::{Error, Result};
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The alignment candle's GGUF writer pads tensor data to.
const WRITER_ALIGNMENT: u32 = 32;
/// Row length a k-quant block spans.
const K_QUANT_BLOCK: usize = 256;

/// What a re-quantization did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequantReport {
    pub tensors: usize,
    /// Tensors converted to the requested type.
    pub requantized: usize,
    /// Tensors that asked for a k-quant but whose row length is not a multiple of 256: Q8_0.
    pub fell_back_to_q8_0: usize,
    /// Tensors of a type not in `from`, copied as they were.
    pub kept: usize,
}

/// True for the k-quants, whose blocks span 256 values of one row.
pub fn is_k_quant(dtype: GgmlDType) -> bool {
    matches!(
        dtype,
        GgmlDType::Q2K
            | GgmlDType::Q3K
            | GgmlDType::Q4K
            | GgmlDType::Q5K
            | GgmlDType::Q6K
            | GgmlDType::Q8K
    )
}

/// The type a tensor with rows of `row_len` values gets when `to` is asked for: a k-quant
/// only where the rows are whole 256-blocks, else Q8_0.
pub fn target_for_row(to: GgmlDType, row_len: usize) -> GgmlDType {
    if is_k_quant(to) && !row_len.is_multiple_of(K_QUANT_BLOCK) {
        GgmlDType::Q8_0
    } else {
        to
    }
}

/// Reads `src`, re-quantizes every tensor whose type is in `from` to `to`, and writes the
/// result to `dst` (through `dst.partial` and a rename, so a failure leaves no `dst`).
pub fn requantize_file(
    src: &Path,
    dst: &Path,
    from: &[GgmlDType],
    to: GgmlDType,
) -> Result<RequantReport> {
    let bad = |reason: String| Error::ModelFile { path: src.to_path_buf(), reason };
    let file = File::open(src).map_err(|e| Error::io(src, e))?;
    let mut reader = BufReader::new(file);
    let content = gguf_file::Content::read(&mut reader)
        .map_err(|e| bad(format!("not a readable GGUF file: {e}")))?;

    // Keep the file's tensor order (the map has none) so the output is deterministic.
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort_by_key(|name| (content.tensor_infos[*name].offset, (*name).clone()));

    let mut report = RequantReport { tensors: names.len(), ..Default::default() };
    let mut tensors: Vec<(&str, QTensor)> = Vec::with_capacity(names.len());
    for name in names {
        let tensor = content
            .tensor(&mut reader, name, &Device::Cpu)
            .map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        if !from.contains(&tensor.dtype()) {
            report.kept += 1;
            tensors.push((name, tensor));
            continue;
        }
        let row_len = tensor.shape().dims().last().copied().unwrap_or(0);
        let target = target_for_row(to, row_len);
        if !row_len.is_multiple_of(target.block_size()) {
            // Cannot happen for a valid GGUF with a 32-block source type and a 32-block target,
            // but a tensor that cannot be converted is better kept than refused.
            report.kept += 1;
            tensors.push((name, tensor));
            continue;
        }
        let values = tensor
            .dequantize(&Device::Cpu)
            .map_err(|e| bad(format!("dequantizing `{name}`: {e}")))?;
        let converted = QTensor::quantize(&values, target)
            .map_err(|e| bad(format!("quantizing `{name}` to {target:?}: {e}")))?;
        if target == to {
            report.requantized += 1;
        } else {
            report.fell_back_to_q8_0 += 1;
        }
        tensors.push((name, converted));
    }

    let metadata = metadata_for_writer(&content);
    let metadata_refs: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (*k, v)).collect();
    write_atomically(dst, |out| {
        gguf_file::write(out, &metadata_refs, &tensor_refs).map_err(|e| Error::ModelFile {
            path: dst.to_path_buf(),
            reason: format!("writing GGUF: {e}"),
        })
    })?;
    Ok(report)
}

/// All metadata, sorted by key for a deterministic file. The one change: an explicit
/// `general.alignment` must say what candle's writer really uses, or readers would look for the
/// tensors at the wrong offsets.
fn metadata_for_writer(content: &gguf_file::Content) -> Vec<(String, gguf_file::Value)> {
    let mut metadata: Vec<(String, gguf_file::Value)> =
        content.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    metadata.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in metadata.iter_mut() {
        if key == "general.alignment" {
            *value = gguf_file::Value::U32(WRITER_ALIGNMENT);
        }
    }
    metadata
}

/// Runs `write` on `<dst>.partial`, syncs it, and renames it to `dst`; removes the partial
/// file on any failure.
fn write_atomically(
    dst: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
) -> Result<()> {
    let partial = partial_of(dst);
    let outcome = (|| {
        let file = File::create(&partial).map_err(|e| Error::io(&partial, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        write(&mut out)?;
        out.flush().map_err(|e| Error::io(&partial, e))?;
        let file = out.into_inner().map_err(|e| Error::io(&partial, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&partial, e))?;
        std::fs::rename(&partial, dst).map_err(|e| Error::io(dst, e))
    })();
    if outcome.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    outcome
}

fn partial_of(dst: &Path) -> PathBuf {
    let mut name = dst.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dst.with_file_name(name)
}

/// Formats candle runs on a slow scalar path on CPU (worth converting to Q8_0 once).
pub fn is_slow_on_cpu(dtype: GgmlDType) -> bool {
    SLOW_ON_CPU.contains(&dtype)
}

const SLOW_ON_CPU: [GgmlDType; 4] =
    [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q5_1, GgmlDType::Q8_1];

/// Whether `path` holds any tensor that [`requantize`] would convert.
pub fn needs_requantize(path: &Path) -> Result<bool> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let content = gguf_file::Content::read(&mut f).map_err(|e| Error::ModelFile {
        path: path.into(),
        reason: format!("not a readable GGUF file: {e}"),
    })?;
    Ok(content.tensor_infos.values().any(|t| is_slow_on_cpu(t.ggml_dtype)))
}

/// Converts every slow-format tensor of `src` to `target` in `dst`; returns how many changed.
pub fn requantize(src: &Path, dst: &Path, target: GgmlDType) -> Result<usize> {
    requantize_file(src, dst, &SLOW_ON_CPU, target).map(|r| r.requantized + r.fell_back_to_q8_0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_quants_need_whole_256_rows() {
        assert_eq!(target_for_row(GgmlDType::Q4K, 512), GgmlDType::Q4K);
        assert_eq!(target_for_row(GgmlDType::Q4K, 896), GgmlDType::Q8_0);
        assert_eq!(target_for_row(GgmlDType::Q6K, 576), GgmlDType::Q8_0);
        assert_eq!(target_for_row(GgmlDType::Q8_0, 576), GgmlDType::Q8_0);
        assert_eq!(target_for_row(GgmlDType::Q4_0, 96), GgmlDType::Q4_0);
    }

    #[test]
    fn a_file_that_is_not_gguf_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("junk.gguf");
        std::fs::write(&src, b"this is not a gguf file at all").unwrap();
        let dst = dir.path().join("out.gguf");
        let err = requantize_file(&src, &dst, &[GgmlDType::Q5_0], GgmlDType::Q8_0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("junk.gguf") && err.contains("GGUF"), "{err}");
        assert!(!dst.exists() && !partial_of(&dst).exists());
    }
}
