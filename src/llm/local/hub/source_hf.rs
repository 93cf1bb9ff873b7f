//! Pulling a model file from its Hugging Face repository with `hf-hub`.
//!
//! Many machines cannot reach the hub, and `hf-hub` has no connect timeout of its own (a
//! blackholed connection would hang for minutes). So a short probe of the file's URL runs
//! first, on a thread with a deadline that also covers name resolution; only when it answers
//! does the real download start. Any failure sends the caller on to the next source.

use super::assemble::{Assembler, Expected};
use super::manifest::Manifest;
use super::progress::bytes_bar;
use crate::error::{Error, Result};
use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Repo, RepoType};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// How long the reachability probe may take in all (resolve + connect + first answer).
const PROBE_DEADLINE: Duration = Duration::from_secs(6);
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(4);

/// Downloads the manifest's file into `scratch` (hf-hub's own cache layout, which lets hf-hub
/// resume an interrupted download), then streams it through the assembler into `target`.
pub fn pull_from_hub(
    manifest: &Manifest,
    scratch: &Path,
    target: &Path,
    progress: bool,
) -> Result<String> {
    let hf = &manifest.huggingface;
    let fail = |reason: String| Error::Model {
        model: manifest.id.clone(),
        reason: format!("hub: {reason}"),
    };
    let api = ApiBuilder::from_env()
        .with_cache_dir(scratch.join("hf"))
        .with_progress(progress)
        .with_retries(0)
        .build()
        .map_err(|e| fail(format!("cannot set up the client: {e}")))?;
    let repo = api.repo(Repo::with_revision(hf.repo.clone(), RepoType::Model, hf.revision.clone()));
    let url = repo.url(&hf.file);
    probe(&url).map_err(|reason| fail(format!("{} is not reachable: {reason}", hf.repo)))?;

    if progress {
        eprintln!(
            "{}: downloading {} ({}) from the Hugging Face hub ({})",
            manifest.id,
            hf.file,
            indicatif::HumanBytes(manifest.bytes),
            hf.repo
        );
    }
    // hf-hub draws its own bar on a terminal; a log gets the download folder's growth.
    let watch = super::progress::watch_growth(
        progress,
        &scratch.join("hf"),
        manifest.bytes,
        format!("downloading {}", hf.file),
    );
    let downloaded = repo
        .download(&hf.file)
        .map_err(|e| fail(format!("download of {} failed: {e}", hf.file)))?;
    drop(watch);
    let mut file = std::fs::File::open(&downloaded).map_err(|e| Error::io(&downloaded, e))?;
    let expected = Expected { bytes: manifest.bytes, sha256: manifest.sha256.clone() };
    let bar = bytes_bar(progress, manifest.bytes, format!("checking {}", hf.file));
    let mut assembler = Assembler::create(target, expected, bar)?;
    assembler.append(&mut file, &format!("{} from the hub", hf.file))?;
    assembler.finish()
}

/// One HEAD request without redirects: any HTTP answer below 400 means the hub is there.
fn probe(url: &str) -> std::result::Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let url = url.to_string();
    // A thread, because name resolution has no timeout in ureq; a stuck probe is abandoned.
    std::thread::spawn(move || {
        let agent = ureq::AgentBuilder::new()
            .try_proxy_from_env(true)
            .timeout_connect(PROBE_CONNECT_TIMEOUT)
            .timeout(PROBE_DEADLINE)
            .redirects(0)
            .build();
        let outcome = match agent.head(&url).call() {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(code, _)) => Err(format!("HTTP {code}")),
            Err(e) => Err(e.to_string()),
        };
        let _ = tx.send(outcome);
    });
    rx.recv_timeout(PROBE_DEADLINE)
        .unwrap_or_else(|_| Err(format!("no answer within {PROBE_DEADLINE:?}")))
}
