//! Reading a GGUF file: the header and metadata, typed metadata look-ups, and tensors checked
//! against the shapes the configuration expects (candle can panic on bad shapes, we must not).

use crate::error::{Error, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::QTensor;
use candle_core::Device;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// An open GGUF file: its parsed header and a reader for the tensor data.
pub struct GgufFile {
    pub path: PathBuf,
    pub content: Content,
    reader: BufReader<File>,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader)
            .map_err(|e| model_err(path, format!("not a readable GGUF file: {e}")))?;
        Ok(GgufFile { path: path.to_path_buf(), content, reader })
    }

    pub fn err(&self, reason: impl Into<String>) -> Error {
        model_err(&self.path, reason)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    pub fn string(&self, key: &str) -> Result<String> {
        match self.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => {
                Err(self.err(format!("metadata `{key}` is not a string ({:?})", v.value_type())))
            }
            None => Err(self.err(format!("metadata `{key}` is missing"))),
        }
    }

    pub fn opt_string(&self, key: &str) -> Option<String> {
        match self.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        }
    }

    /// A non-negative integer of any GGUF integer type.
    pub fn usize(&self, key: &str) -> Result<usize> {
        match self.get(key) {
            Some(v) => value_usize(v)
                .ok_or_else(|| self.err(format!("metadata `{key}` is not a non-negative integer"))),
            None => Err(self.err(format!("metadata `{key}` is missing"))),
        }
    }

    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            Some(_) => self.usize(key).map(Some),
            None => Ok(None),
        }
    }

    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::F32(v)) => Ok(Some(*v)),
            Some(Value::F64(v)) => Ok(Some(*v as f32)),
            Some(v) => value_usize(v)
                .map(|u| Some(u as f32))
                .ok_or_else(|| self.err(format!("metadata `{key}` is not a number"))),
        }
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// Reads a tensor after checking that it exists and has exactly `dims` (candle order, outer
    /// first). The data size against the file size is checked by candle and reported here.
    pub fn tensor(&mut self, name: &str, dims: &[usize], device: &Device) -> Result<QTensor> {
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| model_err(&self.path, format!("tensor `{name}` is missing")))?;
        if info.shape.dims() != dims {
            return Err(model_err(
                &self.path,
                format!(
                    "tensor `{name}` has shape {:?}, the metadata implies {dims:?}",
                    info.shape.dims()
                ),
            ));
        }
        let block = info.ggml_dtype.block_size();
        if dims.last().is_some_and(|d| d % block != 0) {
            return Err(model_err(
                &self.path,
                format!("tensor `{name}` ({:?}) has a row length not divisible by its block size {block}", info.ggml_dtype),
            ));
        }
        self.content
            .tensor(&mut self.reader, name, device)
            .map_err(|e| model_err(&self.path, format!("tensor `{name}`: {e}")))
    }
}

pub fn model_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::ModelFile { path: path.to_path_buf(), reason: reason.into() }
}

pub fn value_usize(v: &Value) -> Option<usize> {
    match v {
        Value::U8(x) => Some(*x as usize),
        Value::U16(x) => Some(*x as usize),
        Value::U32(x) => Some(*x as usize),
        Value::U64(x) => usize::try_from(*x).ok(),
        Value::I8(x) => usize::try_from(*x).ok(),
        Value::I16(x) => usize::try_from(*x).ok(),
        Value::I32(x) => usize::try_from(*x).ok(),
        Value::I64(x) => usize::try_from(*x).ok(),
        _ => None,
    }
}
