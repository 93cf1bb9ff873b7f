//! The `.verified` marker beside a cached model: the sha256 of each file as it was checked,
//! with the size, modification time, change time and inode the file had then.
//!
//! Hashing a 1 GB model at every start would cost seconds, so startup trusts a file whose stamp
//! still matches the marker; `verify` re-hashes. Size and mtime alone are not enough: a file
//! rewritten in place and `touch`ed back to its old mtime kept both and was loaded as garbage.
//! The change time (ctime) is set by the kernel on every write or `touch` and cannot be set by a
//! user, and a copied-over file gets a new inode, so those two are stamped as well (on Unix;
//! elsewhere the stamp falls back to size + mtime). A marker written before they were stamped
//! reads them as 0, never matches, and the file is re-hashed once. The marker is written atomically
//! (temporary file + rename), so a crash leaves the old marker or the new one.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::UNIX_EPOCH;

pub const MARKER_FILE: &str = ".verified";

/// One checked file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    pub mtime_ns: u64,
    /// Status-change time; 0 where the platform has none.
    #[serde(default)]
    pub ctime_ns: u64,
    #[serde(default)]
    pub inode: u64,
}

impl FileStamp {
    /// Stamps `dir/file` with a sha256 computed by the caller.
    pub fn of(dir: &Path, file: &str, sha256: &str) -> Result<FileStamp> {
        let Identity { bytes, mtime_ns, ctime_ns, inode } = identity(&dir.join(file))?;
        Ok(FileStamp {
            file: file.to_string(),
            sha256: sha256.to_string(),
            bytes,
            mtime_ns,
            ctime_ns,
            inode,
        })
    }

    /// True when `dir/<file>` is still the very file that was hashed: same size, mtime, ctime
    /// and inode.
    pub fn still_matches(&self, dir: &Path) -> bool {
        identity(&dir.join(&self.file)).is_ok_and(|now| {
            now == Identity {
                bytes: self.bytes,
                mtime_ns: self.mtime_ns,
                ctime_ns: self.ctime_ns,
                inode: self.inode,
            }
        })
    }
}

/// Marker contents: the file as published, and the re-quantized file where there is one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub source: Option<FileStamp>,
    /// The re-quantized file, with the quant type it was made for (`"Q8_0"`).
    pub derived: Option<DerivedStamp>,
    /// The usable file's `general.architecture`, as read once (see architecture.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<ArchitectureStamp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchitectureStamp {
    pub file: String,
    /// The manifest sha256 of the source it was read for.
    pub sha256: String,
    pub architecture: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerivedStamp {
    pub target: String,
    /// sha256 of the source it was made from, so a new source invalidates it.
    pub from_sha256: String,
    pub stamp: FileStamp,
}

impl Marker {
    /// Reads the marker of a model folder; a missing or unreadable marker is an empty one
    /// (the files are then re-hashed, never trusted blindly).
    pub fn load(dir: &Path) -> Marker {
        std::fs::read(dir.join(MARKER_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MARKER_FILE);
        let tmp = dir.join(format!("{MARKER_FILE}.tmp"));
        let text = serde_json::to_vec_pretty(self).map_err(|e| Error::ModelFile {
            path: path.clone(),
            reason: format!("cannot encode marker: {e}"),
        })?;
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }

    /// The source stamp, if it is for `file` with `sha256` and the file is unchanged.
    pub fn valid_source(&self, dir: &Path, file: &str, sha256: &str) -> Option<&FileStamp> {
        self.source
            .as_ref()
            .filter(|s| s.file == file && s.sha256 == sha256 && s.still_matches(dir))
    }

    /// The derived stamp, if it was made from `from_sha256` for `target` and is unchanged.
    pub fn valid_derived(
        &self,
        dir: &Path,
        file: &str,
        target: &str,
        from_sha256: &str,
    ) -> Option<&DerivedStamp> {
        self.derived.as_ref().filter(|d| {
            d.stamp.file == file
                && d.target == target
                && d.from_sha256 == from_sha256
                && d.stamp.still_matches(dir)
        })
    }
}

/// What identifies one version of a file without reading it.
#[derive(Debug, PartialEq, Eq)]
struct Identity {
    bytes: u64,
    mtime_ns: u64,
    ctime_ns: u64,
    inode: u64,
}

fn identity(path: &Path) -> Result<Identity> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let (ctime_ns, inode) = change_time_and_inode(&meta);
    Ok(Identity { bytes: meta.len(), mtime_ns, ctime_ns, inode })
}

#[cfg(unix)]
fn change_time_and_inode(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let ctime_ns = u64::try_from(meta.ctime())
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(meta.ctime_nsec()).unwrap_or(0));
    (ctime_ns, meta.ino())
}

#[cfg(not(unix))]
fn change_time_and_inode(_meta: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_notices_a_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.gguf"), b"1234").unwrap();
        let stamp = FileStamp::of(dir.path(), "m.gguf", "aa").unwrap();
        assert!(stamp.still_matches(dir.path()));
        std::fs::write(dir.path().join("m.gguf"), b"12345").unwrap();
        assert!(!stamp.still_matches(dir.path()));
        std::fs::remove_file(dir.path().join("m.gguf")).unwrap();
        assert!(!stamp.still_matches(dir.path()));
    }

    #[test]
    fn a_file_rewritten_in_place_with_its_size_and_mtime_restored_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, b"good bytes").unwrap();
        let stamp = FileStamp::of(dir.path(), "m.gguf", "aa").unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        // ctime has the kernel's clock granularity: let it move on.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, b"evil bytes").unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (meta.len(), meta.modified().unwrap()),
            (stamp.bytes, mtime),
            "size and mtime are as they were"
        );
        assert!(!stamp.still_matches(dir.path()), "the change time gives it away");
    }

    #[test]
    fn a_marker_without_change_time_and_inode_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.gguf"), b"1234").unwrap();
        let stamp = FileStamp::of(dir.path(), "m.gguf", "aa").unwrap();
        let old = serde_json::json!({"file": "m.gguf", "sha256": "aa", "bytes": stamp.bytes, "mtime_ns": stamp.mtime_ns});
        let old: FileStamp = serde_json::from_value(old).unwrap();
        assert!(!old.still_matches(dir.path()), "an old marker makes the file be hashed once");
    }

    #[test]
    fn a_marker_round_trips_and_a_garbled_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.gguf"), b"1234").unwrap();
        std::fs::write(dir.path().join("m.q8_0.gguf"), b"12345678").unwrap();
        let marker = Marker {
            source: Some(FileStamp::of(dir.path(), "m.gguf", "aa").unwrap()),
            derived: Some(DerivedStamp {
                target: "Q8_0".into(),
                from_sha256: "aa".into(),
                stamp: FileStamp::of(dir.path(), "m.q8_0.gguf", "cc").unwrap(),
            }),
            architecture: None,
        };
        marker.save(dir.path()).unwrap();
        let loaded = Marker::load(dir.path());
        assert_eq!(loaded, marker);
        assert!(loaded.valid_source(dir.path(), "m.gguf", "aa").is_some());
        assert!(loaded.valid_source(dir.path(), "m.gguf", "bb").is_none());
        assert!(loaded.valid_derived(dir.path(), "m.q8_0.gguf", "Q8_0", "aa").is_some());
        assert!(
            loaded.valid_derived(dir.path(), "m.q8_0.gguf", "Q8_0", "bb").is_none(),
            "made from another source"
        );
        assert!(
            loaded.valid_derived(dir.path(), "m.q8_0.gguf", "Q4_0", "aa").is_none(),
            "made for another type"
        );
        std::fs::write(dir.path().join(MARKER_FILE), b"{not json").unwrap();
        assert_eq!(Marker::load(dir.path()), Marker::default());
    }
}
