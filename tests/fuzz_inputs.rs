//! Property tests over the readers of untrusted input (issue #16): manifests, GGUF headers,
//! checkpoints and event logs, and the reply parser on adversarial shapes. Each property is "no
//! input panics, and a bad one is an error that names the thing". Cases proptest ever shrank to a
//! failure are kept in `proptest-regressions/fuzz_inputs.txt` (proptest's own persistence) and
//! replayed first on every run.

use opto::llm::local::gguf::GgufFile;
use opto::llm::local::hub::Manifest;
use opto::optim::parse_reply;
use opto::train::log::read_events;
use opto::train::Checkpoint;
use proptest::prelude::*;
use std::sync::OnceLock;

const GOOD_MANIFEST: &str = r#"id = "tiny"
description = "a test model"
architecture = "qwen2"
license = "Apache-2.0"
chat_format = "ChatML"
quantization = "Q8_0"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
bytes = 10
[huggingface]
repo = "someone/tiny-GGUF"
file = "tiny.gguf"
revision = "main"
[mirror]
registry = "PyPI"
[[mirror.parts]]
package = "tiny-part1"
version = "1.0"
path = "tiny/part1.bin"
"#;

/// A real (tiny) GGUF file's bytes, written once.
fn tiny_gguf() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.gguf");
        opto::llm::local::fixture::write_tiny_qwen2(&path, 3).unwrap();
        std::fs::read(path).unwrap()
    })
}

/// A checkpoint and event log of a real two-step run (scripted LLM), as text.
fn run_folder() -> &'static (String, String) {
    static FILES: OnceLock<(String, String)> = OnceLock::new();
    FILES.get_or_init(|| {
        use opto::optim::{Optimizer, OptoPrime};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let llm = Arc::new(opto::llm::scripted::ScriptedLlm::from_fn(|_| {
            Ok(r#"{"reasoning": "r", "suggestion": {"x": 1.5}}"#.into())
        }));
        let config = opto::train::RunConfig {
            task: "numeric".into(),
            seeds: 2,
            steps: 2,
            memory: 2,
            model: "scripted".into(),
            max_tokens: 100,
            batch_size: 2,
            stop_on_success: false,
            opto_version: "test".into(),
            ..Default::default()
        };
        let trainer = opto::train::Trainer {
            task: Arc::new(opto::tasks::numeric::NumericTask::new(0)),
            llm,
            config,
            out_dir: dir.path().to_path_buf(),
            make_optimizer: Arc::new(|params, llm, _| {
                Box::new(OptoPrime::new(params, llm)) as Box<dyn Optimizer>
            }),
            progress: false,
        };
        trainer.run().unwrap();
        (
            std::fs::read_to_string(dir.path().join("checkpoint.json")).unwrap(),
            std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap(),
        )
    })
}

/// `bytes` with `flips` (position, xor) applied and cut to `keep` of its length.
fn damaged(bytes: &[u8], flips: &[(usize, u8)], keep: f64) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for &(at, x) in flips {
        if !out.is_empty() {
            let n = out.len();
            out[at % n] ^= x;
        }
    }
    let len = ((out.len() as f64) * keep) as usize;
    out.truncate(len.min(out.len()));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn a_manifest_never_panics_and_a_bad_one_names_the_source(flips in prop::collection::vec((0usize..2000, 1u8..=255), 0..6), keep in 0.0f64..=1.0) {
        let text = String::from_utf8_lossy(&damaged(GOOD_MANIFEST.as_bytes(), &flips, keep)).into_owned();
        if let Err(e) = Manifest::parse(&text, "fuzz.toml") {
            let message = e.to_string();
            prop_assert!(message.contains("fuzz.toml"), "{}", message);
            prop_assert!(!message.contains('\n'), "one line: {}", message);
        }
    }

    #[test]
    fn arbitrary_text_as_a_manifest_never_panics(text in "\\PC{0,300}") {
        let _ = Manifest::parse(&text, "fuzz.toml");
    }

    #[test]
    fn a_damaged_gguf_header_never_panics(flips in prop::collection::vec((0usize..4096, 1u8..=255), 1..8), keep in 0.0f64..=1.0) {
        let bytes = damaged(tiny_gguf(), &flips, keep);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.gguf");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(file) = GgufFile::open(&path) {
            let _ = file.string("general.architecture");
            let _ = file.usize("qwen2.block_count");
        }
    }

    #[test]
    fn a_damaged_model_file_never_panics_the_loader(flips in prop::collection::vec((0usize..1_000_000, 1u8..=255), 1..4), keep in 0.5f64..=1.0) {
        let bytes = damaged(tiny_gguf(), &flips, keep);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.gguf");
        std::fs::write(&path, &bytes).unwrap();
        let _ = opto::llm::local::LocalLlm::load(&path, opto::llm::local::LocalOptions { threads: 1, ..Default::default() });
    }

    #[test]
    fn a_damaged_checkpoint_never_panics_and_is_never_half_trusted(flips in prop::collection::vec((0usize..20_000, 1u8..=127), 0..6), keep in 0.0f64..=1.0) {
        let (checkpoint, events) = run_folder();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("checkpoint.json"), damaged(checkpoint.as_bytes(), &flips, keep)).unwrap();
        std::fs::write(dir.path().join("events.jsonl"), events).unwrap();
        if let Ok(cp) = Checkpoint::load(dir.path()) {
            let _ = opto::train::resume::check_against_events(dir.path(), &cp);
        }
    }

    #[test]
    fn a_damaged_event_log_never_panics(flips in prop::collection::vec((0usize..20_000, 1u8..=127), 0..6), keep in 0.0f64..=1.0) {
        let (checkpoint, events) = run_folder();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("checkpoint.json"), checkpoint).unwrap();
        std::fs::write(dir.path().join("events.jsonl"), damaged(events.as_bytes(), &flips, keep)).unwrap();
        match read_events(&dir.path().join("events.jsonl")) {
            Ok(_) => {
                let cp = Checkpoint::load(dir.path()).unwrap();
                let _ = opto::train::resume::check_against_events(dir.path(), &cp);
            }
            Err(e) => prop_assert!(e.to_string().contains("events.jsonl"), "{}", e),
        }
    }

    #[test]
    fn adversarial_replies_never_panic(
        junk in prop::collection::vec(prop::sample::select(vec!["{", "}", "[", "]", "\"", "'", ":", ",", "2+3", "0x1F", "NaN", "-Infinity", "1e400", "True", "```", "<variable>", "</value>", "\\", "\n", "suggestion", "x", " "]), 0..120),
    ) {
        let text: String = junk.concat();
        if let Ok(p) = parse_reply(&text) {
            for (_, (written, reason)) in &p.rejected {
                prop_assert!(!reason.is_empty() && !written.is_empty());
            }
        }
    }
}
