//! The local engine on a CUDA GPU, on the suite's tiny random-weight model: its logits match the
//! CPU's, and a schema-constrained reply parses. Built only with `--features cuda`; with no GPU
//! present each test prints "skipped" and returns.
#![cfg(feature = "cuda")]

use candle_core::Device;
use opto::llm::local::fixture::write_tiny_qwen2;
use opto::llm::local::gguf::GgufFile;
use opto::llm::local::model::{Model, Step};
use opto::llm::local::weights::WeightLoader;
use opto::llm::local::{DeviceSpec, LocalLlm, LocalOptions};
use opto::llm::{GenerationParams, Llm, Message, ReplySchema, Request};
use opto::optim::reply_schema::{suggestion_schema, ParamType, SuggestionSchemaOptions};

fn gpu() -> Option<Device> {
    match DeviceSpec::Cuda(0).device() {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("skipped: no CUDA device ({e})");
            None
        }
    }
}

/// Logits for 40 tokens of prefill and then 10 decode steps.
fn logits(path: &std::path::Path, dev: &Device) -> Vec<Vec<f32>> {
    let mut file = GgufFile::open(path).unwrap();
    let cfg = opto::llm::local::arch::config_from_gguf(&file).unwrap();
    let model = Model::load_with(&mut file, cfg, dev, WeightLoader::candle_only(dev)).unwrap();
    let tokens: Vec<u32> = (0..50).map(|i| (i * 37 % 250) as u32).collect();
    let mut cache = model.new_cache();
    cache.reserve(tokens.len()).unwrap();
    let mut rows = model
        .forward(&mut [Step { tokens: &tokens[..40], cache: &mut cache }])
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for t in 40..50 {
        rows.extend(
            model
                .forward(&mut [Step { tokens: &tokens[t..t + 1], cache: &mut cache }])
                .unwrap()
                .to_vec2::<f32>()
                .unwrap(),
        );
    }
    rows
}

#[test]
fn gpu_logits_match_the_cpu_logits() {
    let Some(dev) = gpu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    write_tiny_qwen2(&path, 5).unwrap();
    let (cpu, gpu) = (logits(&path, &Device::Cpu), logits(&path, &dev));
    assert_eq!(cpu.len(), gpu.len());
    for (i, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
        // The GPU's quantized kernels round their inputs differently (and sum in another
        // order): agreement to a small fraction of the logits' spread, not to the bit.
        let spread = c.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
        let worst = c.iter().zip(g).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            worst <= 0.02 * spread,
            "step {i}: logits differ by {worst} (largest |logit| {spread})"
        );
    }
}

#[test]
fn gpu_constrained_reply_parses() {
    if gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    write_tiny_qwen2(&path, 6).unwrap();
    let llm = LocalLlm::load(
        &path,
        LocalOptions { threads: 1, device: DeviceSpec::Cuda(0), ..LocalOptions::default() },
    )
    .unwrap();
    let schema = suggestion_schema(
        [("x", ParamType::Int)],
        &SuggestionSchemaOptions { with_answer: false, reasoning_max_chars: 20 },
    );
    let req = Request::new(vec![Message::user("Suggest x.")])
        .with_params(GenerationParams { max_tokens: 200, ..GenerationParams::default() })
        .with_schema(schema);
    let reply = llm.generate(&[req]).pop().unwrap().unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&reply.text).unwrap_or_else(|e| panic!("{e}: {}", reply.text));
    assert!(
        json.get("suggestion").is_some_and(|s| s.get("x").is_some_and(|x| x.is_i64())),
        "{}",
        reply.text
    );
}
