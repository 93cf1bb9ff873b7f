//! GGUF files a user already has from other tools, read in place (never copied):
//!
//! - `ollama:NAME[:TAG]` — Ollama's store (`$OLLAMA_MODELS`, else `~/.ollama/models`): the
//!   manifest `manifests/registry.ollama.ai/library/NAME/TAG` (a name with a `/` keeps its own
//!   namespace, one with a host its own registry) names the model layer, a blob
//!   `blobs/sha256-HEX`.
//! - `lmstudio:PUBLISHER/REPO[/FILE.gguf]` — LM Studio's models folder
//!   (`$LMSTUDIO_MODELS`, else `~/.lmstudio/models`, else `~/.cache/lm-studio/models`).
//! - `hf:ORG/REPO[/FILE.gguf]` — the Hugging Face cache (`$HF_HUB_CACHE`, else
//!   `$HF_HOME/hub`, else `~/.cache/huggingface/hub`): the snapshot `refs/main` points to,
//!   else the newest one.
//!
//! Where a repository holds several GGUF files and none is named, the error lists them.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Where each tool keeps its models on this machine.
#[derive(Clone, Debug)]
pub struct StoreRoots {
    pub ollama: PathBuf,
    /// LM Studio's folders, the first that exists is used.
    pub lmstudio: Vec<PathBuf>,
    pub huggingface: PathBuf,
}

impl StoreRoots {
    /// The tools' default folders, with their environment overrides.
    pub fn from_env() -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let ollama = var("OLLAMA_MODELS").unwrap_or_else(|| home.join(".ollama/models"));
        let lmstudio = match var("LMSTUDIO_MODELS") {
            Some(p) => vec![p],
            None => vec![home.join(".lmstudio/models"), home.join(".cache/lm-studio/models")],
        };
        let huggingface = var("HF_HUB_CACHE")
            .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
            .unwrap_or_else(|| home.join(".cache/huggingface/hub"));
        StoreRoots { ollama, lmstudio, huggingface }
    }
}

/// The store prefixes `--model` understands, for messages.
pub const STORE_PREFIXES: &str =
    "ollama:NAME[:TAG], lmstudio:PUBLISHER/REPO[/FILE.gguf], hf:ORG/REPO[/FILE.gguf]";

/// The GGUF file `spec` names in another tool's store, or `None` when `spec` names no store.
pub fn find(spec: &str, roots: &StoreRoots) -> Option<Result<PathBuf>> {
    let (store, name) = spec.split_once(':')?;
    Some(match store.to_ascii_lowercase().as_str() {
        "ollama" => ollama(name, &roots.ollama),
        "lmstudio" | "lm-studio" => lmstudio(name, &roots.lmstudio),
        "hf" | "huggingface" => huggingface(name, &roots.huggingface),
        _ => return None,
    })
}

fn err(spec: &str, reason: impl Into<String>) -> Error {
    Error::Model { model: spec.to_string(), reason: reason.into() }
}

/// Ollama: `[host/][namespace/]model[:tag]` → manifest → the model layer's blob.
fn ollama(name: &str, root: &Path) -> Result<PathBuf> {
    let spec = format!("ollama:{name}");
    let (path_part, tag) = match name.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') => (p, t),
        _ => (name, "latest"),
    };
    let parts: Vec<&str> = path_part.split('/').filter(|p| !p.is_empty()).collect();
    let (host, namespace, model) = match parts.as_slice() {
        [m] => ("registry.ollama.ai", "library", *m),
        [ns, m] => ("registry.ollama.ai", *ns, *m),
        [h, ns, m] => (*h, *ns, *m),
        _ => {
            return Err(err(
                &spec,
                "expected ollama:NAME[:TAG] (for example ollama:qwen2.5-coder:1.5b)",
            ))
        }
    };
    let manifest = root.join("manifests").join(host).join(namespace).join(model).join(tag);
    let text = std::fs::read_to_string(&manifest).map_err(|e| {
        err(
            &spec,
            format!(
                "no Ollama manifest at {} ({e}); `ollama list` shows the names",
                manifest.display()
            ),
        )
    })?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| err(&spec, format!("{}: not a manifest: {e}", manifest.display())))?;
    let layer = json["layers"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["mediaType"] == "application/vnd.ollama.image.model"))
        .ok_or_else(|| err(&spec, format!("{}: no model layer", manifest.display())))?;
    let digest = layer["digest"].as_str().ok_or_else(|| {
        err(&spec, format!("{}: the model layer has no digest", manifest.display()))
    })?;
    let blob = root.join("blobs").join(digest.replace(':', "-"));
    existing(&spec, blob)
}

/// LM Studio: `publisher/repo[/file.gguf]` under the first models folder that exists.
fn lmstudio(name: &str, roots: &[PathBuf]) -> Result<PathBuf> {
    let spec = format!("lmstudio:{name}");
    let root = roots.iter().find(|r| r.is_dir()).ok_or_else(|| {
        let tried: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        err(
            &spec,
            format!(
                "no LM Studio models folder (looked in {}; set LMSTUDIO_MODELS)",
                tried.join(", ")
            ),
        )
    })?;
    repo_file(&spec, &root.join(name.trim_matches('/')))
}

/// The Hugging Face cache: `org/repo[/file.gguf]` in the snapshot `refs/main` names.
fn huggingface(name: &str, root: &Path) -> Result<PathBuf> {
    let spec = format!("hf:{name}");
    let parts: Vec<&str> = name.trim_matches('/').splitn(3, '/').collect();
    let (org, repo, file) = match parts.as_slice() {
        [o, r] => (*o, *r, None),
        [o, r, f] => (*o, *r, Some(*f)),
        _ => return Err(err(&spec, "expected hf:ORG/REPO[/FILE.gguf]")),
    };
    let repo_dir = root.join(format!("models--{org}--{repo}"));
    let snapshots = repo_dir.join("snapshots");
    let revision = std::fs::read_to_string(repo_dir.join("refs/main"))
        .ok()
        .map(|r| r.trim().to_string())
        .filter(|r| snapshots.join(r).is_dir());
    let snapshot = match revision {
        Some(r) => snapshots.join(r),
        None => newest_dir(&snapshots).ok_or_else(|| {
            err(
                &spec,
                format!(
                    "not in the Hugging Face cache (no snapshot under {})",
                    snapshots.display()
                ),
            )
        })?,
    };
    match file {
        Some(f) => existing(&spec, snapshot.join(f)),
        None => repo_file(&spec, &snapshot),
    }
}

/// `dir` itself when it is a `.gguf` file, else its one GGUF file (searched one level down too,
/// as repositories keep quantizations in folders).
fn repo_file(spec: &str, dir: &Path) -> Result<PathBuf> {
    if is_gguf_name(dir) {
        return existing(spec, dir.to_path_buf());
    }
    if !dir.is_dir() {
        return Err(err(spec, format!("no such folder: {}", dir.display())));
    }
    let mut found = gguf_files(dir);
    if found.is_empty() {
        for sub in read_dir_sorted(dir).into_iter().filter(|p| p.is_dir()) {
            found.extend(gguf_files(&sub));
        }
    }
    // Split files (`-00001-of-00003.gguf`) and multimodal projectors are not a model to load.
    found.retain(|p| {
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
        !n.contains("mmproj") && !n.contains("-of-0")
    });
    match found.len() {
        0 => Err(err(spec, format!("no .gguf file in {}", dir.display()))),
        1 => Ok(found.remove(0)),
        _ => {
            let names: Vec<String> = found
                .iter()
                .filter_map(|p| p.strip_prefix(dir).ok())
                .map(|p| p.display().to_string())
                .collect();
            Err(err(
                spec,
                format!(
                    "{} holds several GGUF files; name one: {}",
                    dir.display(),
                    names.join(", ")
                ),
            ))
        }
    }
}

fn existing(spec: &str, path: PathBuf) -> Result<PathBuf> {
    // A Hugging Face snapshot file is a symlink into the blobs: `is_file` follows it.
    if path.is_file() {
        Ok(path)
    } else {
        Err(err(spec, format!("no such file: {}", path.display())))
    }
}

fn is_gguf_name(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

fn read_dir_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn gguf_files(dir: &Path) -> Vec<PathBuf> {
    read_dir_sorted(dir).into_iter().filter(|p| is_gguf_name(p) && p.is_file()).collect()
}

fn newest_dir(dir: &Path) -> Option<PathBuf> {
    read_dir_sorted(dir)
        .into_iter()
        .filter(|p| p.is_dir())
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
}
