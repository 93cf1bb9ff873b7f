//! A user's own models: GGUF files in Ollama's store, LM Studio's folder and the Hugging Face
//! cache, found by the names those tools use and read in place. The stores are laid out here
//! as the tools lay them out, holding a tiny model the suite writes.

use opto::llm::local::fixture::write_tiny_qwen2;
use opto::llm::local::hub::user_stores::{find, StoreRoots};
use opto::llm::local::{LocalLlm, LocalOptions};
use std::path::{Path, PathBuf};

fn roots(base: &Path) -> StoreRoots {
    StoreRoots {
        ollama: base.join("ollama/models"),
        lmstudio: vec![base.join("nope"), base.join("lmstudio/models")],
        huggingface: base.join("hf/hub"),
    }
}

fn tiny(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    write_tiny_qwen2(path, 3).unwrap();
}

/// Ollama keeps the weights as a content-addressed blob named by the tag's manifest.
fn ollama_store(root: &Path, namespace: &str, model: &str, tag: &str) -> PathBuf {
    let digest = format!("{:064x}", 0xabcdefu64);
    let blob = root.join("blobs").join(format!("sha256-{digest}"));
    tiny(&blob);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "sha256:00", "size": 1},
        "layers": [
            {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:11", "size": 10},
            {"mediaType": "application/vnd.ollama.image.model", "digest": format!("sha256:{digest}"), "size": 1},
        ]
    });
    let dir = root.join("manifests/registry.ollama.ai").join(namespace).join(model);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(tag), manifest.to_string()).unwrap();
    blob
}

#[test]
fn an_ollama_name_finds_the_blob_its_manifest_names_and_it_loads() {
    let dir = tempfile::tempdir().unwrap();
    let r = roots(dir.path());
    let blob = ollama_store(&r.ollama, "library", "qwen2.5-coder", "1.5b");
    assert_eq!(find("ollama:qwen2.5-coder:1.5b", &r).unwrap().unwrap(), blob);
    let llm = LocalLlm::load(&blob, LocalOptions { threads: 1, ..Default::default() }).unwrap();
    assert_eq!(llm.config().architecture, "qwen2");
    // No tag means `latest`, which this store does not have: the error names the manifest path.
    let e = find("ollama:qwen2.5-coder", &r).unwrap().unwrap_err().to_string();
    assert!(e.contains("qwen2.5-coder/latest") && e.contains("ollama list"), "{e}");
    // A user's namespace.
    let own = ollama_store(&r.ollama, "someone", "tuned", "latest");
    assert_eq!(find("ollama:someone/tuned", &r).unwrap().unwrap(), own);
}

#[test]
fn an_lmstudio_repo_with_one_file_needs_no_file_name_and_one_with_several_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let r = roots(dir.path());
    let repo = r.lmstudio[1].join("Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF");
    tiny(&repo.join("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"));
    let found = find("lmstudio:Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", &r).unwrap().unwrap();
    assert_eq!(found, repo.join("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"));
    tiny(&repo.join("qwen2.5-coder-1.5b-instruct-q8_0.gguf"));
    let e = find("lmstudio:Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", &r).unwrap().unwrap_err();
    let e = e.to_string();
    assert!(e.contains("several") && e.contains("q8_0.gguf") && e.contains("q4_k_m.gguf"), "{e}");
    let named =
        "lmstudio:Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/qwen2.5-coder-1.5b-instruct-q8_0.gguf";
    assert!(find(named, &r).unwrap().unwrap().ends_with("qwen2.5-coder-1.5b-instruct-q8_0.gguf"));
    let e = find("lmstudio:Nobody/Nothing", &r).unwrap().unwrap_err().to_string();
    assert!(e.contains("no such folder"), "{e}");
}

#[test]
fn a_hugging_face_cache_entry_resolves_through_refs_main_and_its_symlinked_blob() {
    let dir = tempfile::tempdir().unwrap();
    let r = roots(dir.path());
    let repo = r.huggingface.join("models--Qwen--Qwen2.5-Coder-0.5B-Instruct-GGUF");
    let blob = repo.join("blobs/4f2c");
    tiny(&blob);
    for rev in ["old000", "cafe01"] {
        std::fs::create_dir_all(repo.join("snapshots").join(rev)).unwrap();
    }
    let file = repo.join("snapshots/cafe01/qwen2.5-coder-0.5b-instruct-q8_0.gguf");
    std::os::unix::fs::symlink(&blob, &file).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "cafe01\n").unwrap();
    assert_eq!(find("hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF", &r).unwrap().unwrap(), file);
    let llm = LocalLlm::load(&file, LocalOptions { threads: 1, ..Default::default() }).unwrap();
    assert_eq!(llm.config().architecture, "qwen2");
    let e = find("hf:Qwen/Missing", &r).unwrap().unwrap_err().to_string();
    assert!(e.contains("not in the Hugging Face cache"), "{e}");
    assert!(find("hf:justone", &r).unwrap().is_err());
}

#[test]
fn names_without_a_store_prefix_are_left_to_the_model_store() {
    let dir = tempfile::tempdir().unwrap();
    let r = roots(dir.path());
    assert!(find("qwen2.5-coder-1.5b-instruct", &r).is_none());
    assert!(find("other:thing", &r).is_none());
    // The model store's error for an unknown id names the store prefixes.
    let e = opto::llm::local::hub::builtin_manifest("no-such-model").unwrap_err().to_string();
    assert!(e.contains("ollama:") && e.contains("hf:"), "{e}");
}

/// `resolve_model` (what `--model` calls) reads the tools' folders from their variables.
#[test]
fn resolve_model_reads_the_stores_named_by_their_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let r = roots(dir.path());
    let blob = ollama_store(&r.ollama, "library", "m", "q8");
    // The only test in this binary that reads these variables.
    std::env::set_var("OLLAMA_MODELS", &r.ollama);
    assert_eq!(opto::llm::local::hub::resolve_model("ollama:m:q8").unwrap(), blob);
    let e = opto::llm::local::hub::resolve_model("ollama:m:q4").unwrap_err().to_string();
    assert!(e.contains("no Ollama manifest"), "{e}");
}
