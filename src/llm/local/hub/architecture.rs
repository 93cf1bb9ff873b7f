//! A manifest's `architecture` field, checked against the model file's own
//! `general.architecture`. A manifest that says `llama` for a qwen2 file is wrong about the file
//! (a copy-paste from another manifest, say); before this check nothing looked at the field.
//!
//! Reading a GGUF header costs a parse of its whole metadata (the vocabulary included), so the
//! answer is recorded in the `.verified` marker with the sha256 it was read for, and later
//! starts compare two strings.

use super::manifest::Manifest;
use super::marker::{ArchitectureStamp, Marker};
use crate::error::{Error, Result};
use crate::llm::local::gguf::GgufFile;
use std::path::Path;

/// Compares the manifest's architecture with the file's; `Ok(true)` when the marker learnt
/// something and should be saved.
pub(super) fn check(manifest: &Manifest, path: &Path, marker: &mut Marker) -> Result<bool> {
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default().to_string();
    let known = marker
        .architecture
        .as_ref()
        .filter(|a| a.file == file && a.sha256 == manifest.sha256)
        .map(|a| a.architecture.clone());
    let (found, learnt) = match known {
        Some(a) => (a, false),
        None => (GgufFile::open(path)?.string("general.architecture")?, true),
    };
    if !found.eq_ignore_ascii_case(manifest.architecture.trim()) {
        return Err(Error::Model {
            model: manifest.id.clone(),
            reason: format!(
                "the manifest's field `architecture` says {:?}, but {} says general.architecture = {found:?}; fix the manifest",
                manifest.architecture,
                path.display()
            ),
        });
    }
    if learnt {
        marker.architecture =
            Some(ArchitectureStamp { file, sha256: manifest.sha256.clone(), architecture: found });
    }
    Ok(learnt)
}
