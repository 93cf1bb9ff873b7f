//! One writer per run folder: a run holds an exclusive OS lock on `<dir>/.run.lock` for its
//! whole life, so a second `opto run --out DIR` or `--resume DIR` started while the first is
//! still going gets a clear error instead of mixing its events and checkpoint with the other's.
//!
//! The lock is an advisory `flock` taken through std's `File::try_lock` (no extra crate): the
//! kernel drops it when the holder exits for any reason (kill -9 included), so a lock left by a
//! dead process never blocks anyone. The holder's process id is written into the file only to
//! name it in the error message; it is never trusted for the decision itself.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = ".run.lock";

/// Held for as long as this value lives.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the folder's lock (creating the folder and the lock file if needed), or says who
    /// holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let mut file = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let who = match holder.trim() {
                    "" => "another process".to_string(),
                    pid => format!("process {pid}"),
                };
                return Err(Error::invalid(
                    "run folder",
                    format!("{} is in use by a live run ({who}); wait for it to end, or use another --out", dir.display()),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        // Ours now: record who holds it (for the message another process will show).
        let _ = file
            .set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| write!(file, "{}", std::process::id()))
            .and_then(|_| file.flush());
        Ok(RunLock { _file: file, path })
    }

    /// Fails fast (before a model is loaded) when the folder is locked right now; the lock is
    /// released again at once. The run takes it for real with [`RunLock::acquire`].
    pub fn check_free(dir: &Path) -> Result<()> {
        if !dir.exists() {
            return Ok(());
        }
        RunLock::acquire(dir).map(drop)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_a_released_lock_is_free_again() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let first = RunLock::acquire(&run).unwrap();
        let err = RunLock::acquire(&run).unwrap_err().to_string();
        assert!(err.contains("in use by a live run"), "{err}");
        assert!(
            err.contains(&format!("process {}", std::process::id())),
            "names the holder: {err}"
        );
        assert!(RunLock::check_free(&run).is_err());
        drop(first);
        RunLock::check_free(&run).unwrap();
        let _again = RunLock::acquire(&run).unwrap();
    }

    #[test]
    fn a_lock_file_left_behind_does_not_block() {
        // A lock file with a (dead) holder's pid but no OS lock on it: free.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "999999999").unwrap();
        let lock = RunLock::acquire(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(lock.path()).unwrap(), std::process::id().to_string());
    }
}
