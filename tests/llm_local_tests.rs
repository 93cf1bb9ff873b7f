//! Local engine tests on tiny random-weight GGUF models that the suite writes itself, plus one
//! real-model tier on SmolLM2-135M-Instruct (`OPTO_REAL_MODEL_TESTS=1`, or `OPTO_TEST_MODEL` = a GGUF path).

mod common;
use candle_core::quantized::gguf_file;
use common::real_model;
use opto::llm::local::fixture::{write_tiny, write_tiny_llama, write_tiny_qwen2, TinySpec};
use opto::llm::local::{LocalLlm, LocalOptions};
use opto::llm::{FinishReason, GenerationParams, Llm, Message, ReplySchema, Request};
use opto::optim::reply_schema::{suggestion_schema, ParamType, SuggestionSchemaOptions};
use opto::Error;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

fn tiny(dir: &tempfile::TempDir, name: &str, seed: u64) -> PathBuf {
    let p = dir.path().join(name);
    write_tiny_qwen2(&p, seed).unwrap();
    p
}

fn opts() -> LocalOptions {
    LocalOptions { threads: 1, ..LocalOptions::default() }
}

fn no_cache() -> LocalOptions {
    LocalOptions { prefix_cache_entries: 0, ..opts() }
}

fn ask(text: &str, params: GenerationParams) -> Request {
    Request::new(vec![Message::system("You answer briefly."), Message::user(text)])
        .with_params(params)
}

fn greedy(max_tokens: usize) -> GenerationParams {
    GenerationParams { max_tokens, ..GenerationParams::default() }
}

fn sampled(max_tokens: usize, seed: u64) -> GenerationParams {
    GenerationParams { max_tokens, temperature: 1.0, seed, ..GenerationParams::default() }
}

fn one(llm: &LocalLlm, req: Request) -> opto::Result<opto::llm::Reply> {
    llm.generate(&[req]).pop().unwrap()
}

#[test]
fn loads_tokenizes_templates_and_generates() {
    let dir = tempfile::tempdir().unwrap();
    let llm = LocalLlm::load(tiny(&dir, "m.gguf", 1), opts()).unwrap();
    assert_eq!(llm.config().architecture, "qwen2");
    assert!(llm.config().qkv_bias);
    let prompt = llm.render_prompt(&[Message::user("hi there")]);
    assert_eq!(prompt, "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n");
    let tok = llm.tokenizer();
    let ids = tok.encode(&prompt).unwrap();
    assert_eq!(ids[0], tok.token_id("<|im_start|>").unwrap());
    assert!(ids.contains(&tok.token_id("<|im_end|>").unwrap()));
    // " the" is one merged token; text round-trips byte for byte.
    assert_eq!(tok.encode(" the").unwrap().len(), 1);
    assert_eq!(tok.decode(&tok.encode("héllo, wörld 123").unwrap()), "héllo, wörld 123");
    assert_eq!(llm.count_tokens(" the"), Some(1));
    let r = one(&llm, ask("Say something.", greedy(20))).unwrap();
    assert_eq!(
        r.usage.prompt_tokens,
        tok.encode(&llm.render_prompt(&ask("Say something.", greedy(1)).messages)).unwrap().len()
    );
    assert!(r.usage.generated_tokens <= 20);
    assert!(r.usage.generated_tokens == 20 || r.finish == FinishReason::Stop);
    assert!(llm.describe().contains("qwen2"), "{}", llm.describe());
}

#[test]
fn llama_architecture_with_tied_head_and_smollm_pretokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("llama.gguf");
    write_tiny_llama(&p, 3).unwrap();
    let llm = LocalLlm::load(&p, opts()).unwrap();
    assert_eq!(llm.config().architecture, "llama");
    assert!(!llm.config().qkv_bias);
    // No prefix space: "the" stays two tokens ("t", "he"), " the" is one.
    assert_eq!(llm.tokenizer().encode("the").unwrap().len(), 2);
    assert_eq!(llm.tokenizer().encode(" the").unwrap().len(), 1);
    let a = one(&llm, ask("Hello", greedy(12))).unwrap();
    let b = one(&llm, ask("Hello", greedy(12))).unwrap();
    assert_eq!(a.text, b.text);
    assert!(a.usage.generated_tokens > 0 || a.finish == FinishReason::Stop);
}

#[test]
fn seeded_sampling_is_reproducible_and_seed_dependent() {
    let dir = tempfile::tempdir().unwrap();
    let llm = LocalLlm::load(tiny(&dir, "m.gguf", 2), opts()).unwrap();
    let run = |seed| one(&llm, ask("Tell me a story.", sampled(30, seed))).unwrap().text;
    let texts: Vec<String> = (0..5).map(run).collect();
    assert_eq!(texts, (0..5).map(run).collect::<Vec<_>>(), "same seeds, same texts");
    let distinct: std::collections::HashSet<_> = texts.iter().collect();
    assert!(distinct.len() >= 3, "seeds should change the samples: {texts:?}");
    // Greedy ignores the seed.
    let g = |seed| {
        one(&llm, ask("Tell me a story.", GenerationParams { seed, ..greedy(30) })).unwrap().text
    };
    assert_eq!(g(1), g(2));
}

#[test]
fn stop_tokens_and_stop_strings_end_the_reply() {
    let dir = tempfile::tempdir().unwrap();
    let llm = LocalLlm::load(tiny(&dir, "m.gguf", 4), opts()).unwrap();
    let max = 64;
    let replies: Vec<_> =
        llm.generate(&(0..12).map(|s| ask("Go on.", sampled(max, s))).collect::<Vec<_>>());
    let replies: Vec<_> = replies.into_iter().map(Result::unwrap).collect();
    let stopped: Vec<_> = replies.iter().filter(|r| r.finish == FinishReason::Stop).collect();
    assert!(!stopped.is_empty(), "the end-of-turn token should end some replies");
    for r in &replies {
        assert!(!r.text.contains("<|im_end|>"));
        match r.finish {
            FinishReason::Stop => assert!(r.usage.generated_tokens < max),
            FinishReason::Length => assert_eq!(r.usage.generated_tokens, max),
        }
    }
    // A stop string taken from a free reply cuts the same reply right before it.
    let long =
        replies.iter().find(|r| r.text.chars().count() >= 6).expect("a reply with some text");
    let chars: Vec<char> = long.text.chars().collect();
    let stop: String = chars[3..5].iter().collect();
    let seed = replies.iter().position(|r| std::ptr::eq(r, long)).unwrap() as u64;
    let cut = one(
        &llm,
        ask("Go on.", GenerationParams { stop: vec![stop.clone()], ..sampled(max, seed) }),
    )
    .unwrap();
    assert_eq!(cut.finish, FinishReason::Stop);
    assert_eq!(cut.text, long.text[..long.text.find(&stop).unwrap()]);
}

#[test]
fn min_tokens_holds_off_the_end_of_turn() {
    let dir = tempfile::tempdir().unwrap();
    let llm = LocalLlm::load(tiny(&dir, "m.gguf", 4), opts()).unwrap();
    let (min, max) = (40, 64);
    let free: Vec<_> =
        (0..12).map(|s| one(&llm, ask("Go on.", sampled(max, s))).unwrap()).collect();
    assert!(
        free.iter().any(|r| r.usage.generated_tokens < min),
        "some replies should end early on their own"
    );
    for s in 0..12 {
        let r = one(&llm, ask("Go on.", GenerationParams { min_tokens: min, ..sampled(max, s) }))
            .unwrap();
        assert!(r.usage.generated_tokens >= min, "seed {s}: {} tokens", r.usage.generated_tokens);
        assert!(!r.text.contains("<|im_end|>"));
    }
}

#[test]
fn max_tokens_gives_length_for_free_text() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TinySpec { closer_bias: 0.0, seed: 5, ..TinySpec::default() };
    let p = dir.path().join("flat.gguf");
    write_tiny(&p, &spec).unwrap();
    let llm = LocalLlm::load(&p, opts()).unwrap();
    let r = one(&llm, ask("Count.", greedy(7))).unwrap();
    if r.finish == FinishReason::Length {
        assert_eq!(r.usage.generated_tokens, 7);
    } else {
        assert!(r.usage.generated_tokens < 7);
    }
    let zero = one(&llm, ask("Count.", greedy(0))).unwrap();
    assert_eq!(
        (zero.finish, zero.usage.generated_tokens, zero.text.as_str()),
        (FinishReason::Length, 0, "")
    );
}

// ---------- constrained decoding ----------

/// Checks `v` against the suggestion schema built from `params` (our own small validator).
fn check_reply(
    text: &str,
    params: &[(String, ParamType)],
    o: &SuggestionSchemaOptions,
) -> Result<(), String> {
    let v: Json = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}: {text}"))?;
    let obj = v.as_object().ok_or("not an object")?;
    let mut want = vec!["reasoning", "suggestion"];
    if o.with_answer {
        want.push("answer");
    }
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    want.sort();
    if keys != want {
        return Err(format!("top-level keys {keys:?}"));
    }
    let reasoning = obj["reasoning"].as_str().ok_or("reasoning is not a string")?;
    if reasoning.chars().count() > o.reasoning_max_chars {
        return Err(format!("reasoning longer than {}", o.reasoning_max_chars));
    }
    if o.with_answer && !obj["answer"].is_string() {
        return Err("answer is not a string".into());
    }
    let sugg = obj["suggestion"].as_object().ok_or("suggestion is not an object")?;
    if sugg.len() != params.len() {
        return Err(format!("suggestion keys {:?}", sugg.keys().collect::<Vec<_>>()));
    }
    for (name, ty) in params {
        let val = sugg.get(name).ok_or(format!("missing {name}"))?;
        let ok = match ty {
            ParamType::Bool => val.is_boolean(),
            ParamType::Int => val.is_i64() || val.is_u64(),
            ParamType::Float => val.is_number(),
            ParamType::Str | ParamType::Code => val.is_string(),
            ParamType::List => val.is_array(),
            ParamType::Dict => val.is_object(),
            ParamType::Any => true,
        };
        if !ok {
            return Err(format!("{name} = {val} is not {ty:?}"));
        }
    }
    Ok(())
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn random_schema(rng: &mut Lcg) -> (Vec<(String, ParamType)>, SuggestionSchemaOptions) {
    const TYPES: [ParamType; 8] = [
        ParamType::Bool,
        ParamType::Int,
        ParamType::Float,
        ParamType::Str,
        ParamType::List,
        ParamType::Dict,
        ParamType::Code,
        ParamType::Any,
    ];
    const FIRST: &[u8] = b"abcdefghijklmnopqrstuvwxyz_";
    const REST: &[u8] = b"abcdefghijklmnopqrstuvwxyz_0123456789";
    let n = 1 + rng.next(4) as usize;
    let mut params: Vec<(String, ParamType)> = Vec::new();
    while params.len() < n {
        let len = 1 + rng.next(8) as usize;
        let mut name = String::new();
        name.push(FIRST[rng.next(FIRST.len() as u64) as usize] as char);
        for _ in 1..len {
            name.push(REST[rng.next(REST.len() as u64) as usize] as char);
        }
        if !params.iter().any(|(p, _)| *p == name) {
            params.push((name, TYPES[rng.next(8) as usize]));
        }
    }
    let o = SuggestionSchemaOptions {
        with_answer: rng.next(4) == 0,
        reasoning_max_chars: 5 + rng.next(40) as usize,
    };
    (params, o)
}

#[test]
fn constrained_replies_validate_against_100_random_suggestion_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let llm = LocalLlm::load(tiny(&dir, "m.gguf", 6), opts()).unwrap();
    let mut rng = Lcg(42);
    let cases: Vec<_> = (0..100).map(|_| random_schema(&mut rng)).collect();
    let mut failures = Vec::new();
    // Ten batches of ten: different schemas and seeds decode together.
    for (b, chunk) in cases.chunks(10).enumerate() {
        let reqs: Vec<Request> = chunk
            .iter()
            .enumerate()
            .map(|(i, (params, o))| {
                let schema = suggestion_schema(params.iter().map(|(n, t)| (n.as_str(), *t)), o);
                ask("Improve the parameters.", sampled(800, (b * 10 + i) as u64))
                    .with_schema(schema)
            })
            .collect();
        for (r, (params, o)) in llm.generate(&reqs).into_iter().zip(chunk) {
            match r {
                Ok(reply) => {
                    assert_eq!(reply.finish, FinishReason::Stop);
                    if let Err(e) = check_reply(&reply.text, params, o) {
                        failures.push(format!("{params:?}: {e}"));
                    }
                }
                Err(e) => failures.push(format!("{params:?}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{} of 100 failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn greedy_constrained_reply_is_valid_json_too() {
    let dir = tempfile::tempdir().unwrap();
    let llm = LocalLlm::load(tiny(&dir, "m.gguf", 7), opts()).unwrap();
    let params = vec![("x".to_string(), ParamType::Float), ("flag".to_string(), ParamType::Bool)];
    let o = SuggestionSchemaOptions { with_answer: false, reasoning_max_chars: 12 };
    let schema = suggestion_schema(params.iter().map(|(n, t)| (n.as_str(), *t)), &o);
    let r = one(&llm, ask("Improve x.", greedy(400)).with_schema(schema)).unwrap();
    check_reply(&r.text, &params, &o).unwrap();
}

#[test]
fn a_constrained_reply_cut_by_max_tokens_is_an_error_that_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let llm = LocalLlm::load(tiny(&dir, "m.gguf", 8), opts()).unwrap();
    let schema = suggestion_schema([("x", ParamType::Str)], &SuggestionSchemaOptions::default());
    let err = one(&llm, ask("Improve x.", greedy(3)).with_schema(schema)).unwrap_err();
    assert!(matches!(err, Error::Llm { .. }), "{err:?}");
    assert!(err.to_string().contains("cut at 3 tokens"), "{err}");
}

#[test]
fn an_unusable_schema_fails_only_its_own_request() {
    let dir = tempfile::tempdir().unwrap();
    let llm = LocalLlm::load(tiny(&dir, "m.gguf", 9), opts()).unwrap();
    let bad = ReplySchema::raw(
        serde_json::json!({"type": "object", "properties": {"a": {"type": "nonsense"}}}),
    );
    let out = llm.generate(&[ask("a", greedy(5)).with_schema(bad), ask("b", greedy(5))]);
    assert!(out[0].is_err());
    assert!(out[1].is_ok());
}

// ---------- batching ----------

#[test]
fn batched_greedy_output_equals_unbatched_output() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny(&dir, "m.gguf", 10);
    let llm = LocalLlm::load(&p, no_cache()).unwrap();
    let schema = suggestion_schema(
        [("x", ParamType::Int)],
        &SuggestionSchemaOptions { with_answer: false, reasoning_max_chars: 10 },
    );
    // Prompts of different lengths, one constrained, one sampled with a seed.
    let reqs = vec![
        ask("Hi.", greedy(40)),
        ask("A much longer question that takes many more tokens to say.", greedy(25)),
        ask("Medium length prompt.", greedy(400)).with_schema(schema),
        ask("Sampled.", sampled(30, 77)),
        ask("Hi.", greedy(5)),
    ];
    let batched: Vec<_> = llm.generate(&reqs).into_iter().map(Result::unwrap).collect();
    for (req, b) in reqs.iter().zip(&batched) {
        let single = one(&llm, req.clone()).unwrap();
        assert_eq!(single.text, b.text);
        assert_eq!(single.usage, b.usage);
        assert_eq!(single.finish, b.finish);
    }
    assert!(
        batched
            .iter()
            .map(|r| r.usage.generated_tokens)
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 1,
        "sequences should leave the batch at different steps"
    );
}

/// Decode steps (one token each, the CPU attention loop) give the logits that one prefill pass
/// over the same tokens gives (candle's attention with a causal mask).
#[test]
fn decode_steps_give_the_logits_of_one_prefill_pass() {
    // qwen2 (rotary halves, q/k/v biases) and llama (rotary pairs, no biases).
    let dir = tempfile::tempdir().unwrap();
    let qwen2 = tiny(&dir, "qwen2.gguf", 12);
    let llama = dir.path().join("llama.gguf");
    write_tiny_llama(&llama, 12).unwrap();
    for p in [qwen2, llama] {
        check_decode_against_prefill(&p, false);
        // Candle's kernels everywhere: the decode steps take the tensor path.
        check_decode_against_prefill(&p, true);
    }
}

fn check_decode_against_prefill(p: &Path, candle_only: bool) {
    use opto::llm::local::model::{Model, Step};
    use opto::llm::local::weights::WeightLoader;
    let mut file = opto::llm::local::gguf::GgufFile::open(p).unwrap();
    let cfg = opto::llm::local::arch::config_from_gguf(&file).unwrap();
    let dev = candle_core::Device::Cpu;
    let loader =
        if candle_only { WeightLoader::candle_only(&dev) } else { WeightLoader::new(&dev) };
    let model = Model::load_with(&mut file, cfg, &dev, loader).unwrap();
    // Where our kernels run, the decode steps below take the plain-buffer path and the prefill
    // the tensor path: the two must agree.
    let our_kernels = !candle_only
        && opto::llm::local::qmatmul::Kernels::best().is_some()
        && std::env::var("OPTO_MATMUL").as_deref() != Ok("candle");
    assert_eq!(model.decodes_on_plain_buffers(), our_kernels);
    let tokens: Vec<u32> = (0..40).map(|i| (i * 37 % 250) as u32).collect();
    let mut whole = model.new_cache();
    whole.reserve(tokens.len()).unwrap();
    let want = model
        .forward(&mut [Step { tokens: &tokens, cache: &mut whole }])
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    // Two sequences decoding together, the second one position behind the first.
    let (mut a, mut b) = (model.new_cache(), model.new_cache());
    a.reserve(tokens.len()).unwrap();
    b.reserve(tokens.len()).unwrap();
    model.forward(&mut [Step { tokens: &tokens[..30], cache: &mut a }]).unwrap();
    model.forward(&mut [Step { tokens: &tokens[..29], cache: &mut b }]).unwrap();
    let mut last = Vec::new();
    for i in 30..40 {
        let rows = model
            .forward(&mut [
                Step { tokens: &tokens[i..i + 1], cache: &mut a },
                Step { tokens: &tokens[i - 1..i], cache: &mut b },
            ])
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        last = rows;
    }
    assert_eq!(b.len(), 39);
    for (x, y) in last[0].iter().zip(&want[0]) {
        assert!((x - y).abs() < 1e-3, "{}: decoded {x} vs prefilled {y}", p.display());
    }
}

// ---------- prefix cache ----------

#[test]
fn cached_prefix_gives_the_uncached_output() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny(&dir, "m.gguf", 11);
    let cached = LocalLlm::load(&p, opts()).unwrap();
    let fresh = LocalLlm::load(&p, no_cache()).unwrap();
    let system =
        "You are the optimizer. Here is a long static instruction block that every call repeats. "
            .repeat(4);
    let req = |user: &str, params| {
        Request::new(vec![Message::system(system.clone()), Message::user(user)]).with_params(params)
    };
    let first = one(&cached, req("First question?", greedy(20))).unwrap();
    assert_eq!(first.usage.cached_prompt_tokens, 0);
    let (_, one_prompt_bytes) = cached.prefix_cache_usage();
    let second = one(&cached, req("Second, different question?", greedy(20))).unwrap();
    assert!(second.usage.cached_prompt_tokens > 50, "{:?}", second.usage);
    assert!(second.usage.cached_prompt_tokens < second.usage.prompt_tokens);
    assert_eq!(
        second.text,
        one(&fresh, req("Second, different question?", greedy(20))).unwrap().text
    );
    // The same prompt again (another seed): all but the last token come from the cache.
    let again = one(&cached, req("First question?", sampled(20, 3))).unwrap();
    assert_eq!(again.usage.cached_prompt_tokens, again.usage.prompt_tokens - 1);
    assert_eq!(again.text, one(&fresh, req("First question?", sampled(20, 3))).unwrap().text);
    assert_eq!(first.text, one(&fresh, req("First question?", greedy(20))).unwrap().text);
    // Seeds in one batch share the prompt's prefill.
    let batch = cached
        .generate(&(0..3).map(|s| req("Batch question?", sampled(10, s))).collect::<Vec<_>>());
    let usages: Vec<_> =
        batch.iter().map(|r| r.as_ref().unwrap().usage.cached_prompt_tokens).collect();
    assert!(
        usages[1] == usages[2] && usages[1] + 1 == batch[1].as_ref().unwrap().usage.prompt_tokens,
        "{usages:?}"
    );
    // Restored through snapshots that share their parents' positions: still the uncached output.
    let third = one(&cached, req("Batch question? And one more.", greedy(20))).unwrap();
    assert!(third.usage.cached_prompt_tokens > 50, "{:?}", third.usage);
    assert_eq!(
        third.text,
        one(&fresh, req("Batch question? And one more.", greedy(20))).unwrap().text
    );
    // The entries share the system prompt's kv rather than holding a copy each.
    let (entries, bytes) = cached.prefix_cache_usage();
    assert!(entries >= 3, "{entries} entries");
    assert!(
        bytes < 2 * one_prompt_bytes,
        "{entries} entries hold {bytes} bytes; one prompt's kv is {one_prompt_bytes}"
    );
}

#[test]
fn prefix_cache_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny(&dir, "m.gguf", 12);
    let llm = LocalLlm::load(&p, LocalOptions { prefix_cache_entries: 2, ..opts() }).unwrap();
    for i in 0..5 {
        one(&llm, ask(&format!("Question number {i} with its own words"), greedy(2))).unwrap();
        assert!(llm.prefix_cache_usage().0 <= 2);
    }
    let small = LocalLlm::load(&p, LocalOptions { prefix_cache_bytes: 4096, ..opts() }).unwrap();
    one(&small, ask("Anything", greedy(2))).unwrap();
    assert!(small.prefix_cache_usage().1 <= 4096);
}

// ---------- bad files ----------

fn load_err(path: &Path) -> Error {
    match std::panic::catch_unwind(|| LocalLlm::load(path, opts())) {
        Ok(Ok(_)) => panic!("{} loaded", path.display()),
        Ok(Err(e)) => e,
        Err(_) => panic!("loading {} panicked", path.display()),
    }
}

/// Rewrites a GGUF with `edit` applied to its metadata.
fn rewrite(
    src: &Path,
    dst: &Path,
    edit: impl FnOnce(&mut std::collections::HashMap<String, gguf_file::Value>),
) {
    let mut f = std::fs::File::open(src).unwrap();
    let mut content = gguf_file::Content::read(&mut f).unwrap();
    let names: Vec<String> = content.tensor_infos.keys().cloned().collect();
    let tensors: Vec<_> = names
        .iter()
        .map(|n| content.tensor(&mut f, n, &candle_core::Device::Cpu).unwrap())
        .collect();
    edit(&mut content.metadata);
    let meta: Vec<(&str, &gguf_file::Value)> =
        content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &candle_core::quantized::QTensor)> =
        names.iter().map(String::as_str).zip(tensors.iter()).collect();
    gguf_file::write(&mut std::fs::File::create(dst).unwrap(), &meta, &ts).unwrap();
}

#[test]
fn truncated_corrupt_and_wrong_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let good = tiny(&dir, "good.gguf", 13);
    let bytes = std::fs::read(&good).unwrap();

    let missing = dir.path().join("missing.gguf");
    assert!(matches!(load_err(&missing), Error::Io { .. }));

    for (name, data) in [
        ("empty.gguf", Vec::new()),
        ("truncated.gguf", bytes[..bytes.len() / 2].to_vec()),
        ("header-only.gguf", bytes[..64].to_vec()),
        ("not-gguf.gguf", b"PK\x03\x04 this is a zip, not a model".repeat(10)),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        let e = load_err(&p);
        assert!(matches!(e, Error::ModelFile { .. }), "{name}: {e:?}");
        assert!(e.to_string().contains(name), "{name}: the error names the file: {e}");
    }

    let wrong_arch = dir.path().join("gemma.gguf");
    rewrite(&good, &wrong_arch, |m| {
        m.insert("general.architecture".into(), gguf_file::Value::String("gemma3".into()));
    });
    let e = load_err(&wrong_arch).to_string();
    assert!(e.contains("gemma3") && e.contains("not supported"), "{e}");

    let wrong_shape = dir.path().join("shape.gguf");
    rewrite(&good, &wrong_shape, |m| {
        m.insert("qwen2.embedding_length".into(), gguf_file::Value::U32(96));
    });
    let e = load_err(&wrong_shape).to_string();
    assert!(e.contains("shape"), "{e}");

    let no_heads = dir.path().join("heads.gguf");
    rewrite(&good, &no_heads, |m| {
        m.insert("qwen2.attention.head_count_kv".into(), gguf_file::Value::U32(3));
    });
    assert!(load_err(&no_heads).to_string().contains("kv heads"));

    let no_tokenizer = dir.path().join("tok.gguf");
    rewrite(&good, &no_tokenizer, |m| {
        m.insert("tokenizer.ggml.model".into(), gguf_file::Value::String("llama".into()));
    });
    assert!(load_err(&no_tokenizer).to_string().contains("tokenizer"));

    // Random byte flips in the header and metadata: any outcome but a panic.
    let mut rng = Lcg(7);
    for _ in 0..60 {
        let mut data = bytes.clone();
        for _ in 0..3 {
            let at = rng.next(6000) as usize;
            data[at] ^= 1 << rng.next(8);
        }
        let p = dir.path().join("flipped.gguf");
        std::fs::write(&p, &data).unwrap();
        let outcome = std::panic::catch_unwind(|| LocalLlm::load(&p, opts()).map(|_| ()));
        assert!(outcome.is_ok(), "a corrupted file made the loader panic");
    }
}

// ---------- real model ----------

#[test]
fn real_model_gives_a_schema_valid_optoprime_reply() {
    let Some(path) = real_model() else {
        println!("skipped: set OPTO_REAL_MODEL_TESTS=1 (pulls SmolLM2-135M-Instruct) or OPTO_TEST_MODEL to a GGUF file to run the real-model test");
        return;
    };
    let llm =
        LocalLlm::load(&path, LocalOptions { threads: 2, ..LocalOptions::default() }).unwrap();
    let params = vec![("x".to_string(), ParamType::Float)];
    let o = SuggestionSchemaOptions { with_answer: false, reasoning_max_chars: 200 };
    let schema = suggestion_schema(params.iter().map(|(n, t)| (n.as_str(), *t)), &o);
    let req = Request::new(vec![
        Message::system("You optimize a variable. Reply with JSON: reasoning, then a suggestion for x."),
        Message::user("#Variables\n(float) x=-1.0\n#Code\ny = x * x\n#Feedback\nThe output y should be larger."),
    ])
    .with_params(greedy(200))
    .with_schema(schema);
    let r = one(&llm, req).unwrap();
    println!("{}", r.text);
    check_reply(&r.text, &params, &o).unwrap();
}

#[test]
fn real_model_answers_a_plain_question() {
    let Some(path) = real_model() else {
        println!("skipped: set OPTO_REAL_MODEL_TESTS=1 (pulls SmolLM2-135M-Instruct) or OPTO_TEST_MODEL to a GGUF file to run the real-model test");
        return;
    };
    let llm =
        LocalLlm::load(&path, LocalOptions { threads: 2, ..LocalOptions::default() }).unwrap();
    let req =
        Request::new(vec![Message::user("What is the capital of France? Answer in one sentence.")])
            .with_params(greedy(40));
    let r = one(&llm, req).unwrap();
    println!("{} ({:?}, {:?})", r.text, r.usage, r.timings);
    assert!(r.text.contains("Paris"), "{}", r.text);
}

#[test]
fn bench_reports_every_figure_on_the_tiny_model() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny(&dir, "m.gguf", 14);
    let report = opto::llm::local::bench_llm(&p, opts(), 100, 8, &[1, 2], 3).unwrap();
    println!("{report}");
    assert!(report.prompt_tokens >= 100);
    assert!(report.prefill_tok_s > 0.0 && report.ttft_cold_s > 0.0);
    assert!(report.cached_prompt_tokens >= 90, "the system prompt should come from the cache");
    assert_eq!(report.decode.iter().map(|d| d.batch).collect::<Vec<_>>(), vec![1, 2]);
    assert!(report
        .decode
        .iter()
        .all(|d| d.generated_tokens == 8 * d.batch && d.decode_tok_s > 0.0));
    for d in &report.decode {
        // Three rounds, and the figure is their median.
        let mut r = d.rounds_tok_s.clone();
        r.sort_by(f64::total_cmp);
        assert_eq!(r.len(), 3);
        assert_eq!(d.decode_tok_s, r[1]);
        assert!(d.vs_single.is_some_and(|x| x > 0.0));
    }
    assert_eq!(report.decode[0].vs_single, Some(1.0), "batch 1 against itself");
    assert!(report.peak_rss_bytes.is_some_and(|b| b > 0));
    assert!(opto::llm::local::bench_llm(&p, opts(), 10, 0, &[1], 1).is_err());
    assert!(opto::llm::local::bench_llm(&p, opts(), 10, 4, &[1], 0).is_err(), "zero rounds");
}

#[test]
fn requantizing_slow_formats_keeps_the_model_working() {
    use candle_core::quantized::{GgmlDType, QTensor};
    use opto::llm::local::requant::{needs_requantize, requantize};
    let dir = tempfile::tempdir().unwrap();
    let good = tiny(&dir, "q8.gguf", 15);
    // Make a Q5_0 copy (the slow format of the shipped 0.5B model), then convert it back.
    let slow = dir.path().join("q5.gguf");
    {
        let mut f = std::fs::File::open(&good).unwrap();
        let content = gguf_file::Content::read(&mut f).unwrap();
        let names: Vec<String> = content.tensor_infos.keys().cloned().collect();
        let ts: Vec<QTensor> = names
            .iter()
            .map(|n| {
                let t = content.tensor(&mut f, n, &candle_core::Device::Cpu).unwrap();
                if t.dtype() == GgmlDType::Q8_0 {
                    QTensor::quantize(
                        &t.dequantize(&candle_core::Device::Cpu).unwrap(),
                        GgmlDType::Q5_0,
                    )
                    .unwrap()
                } else {
                    t
                }
            })
            .collect();
        let meta: Vec<_> = content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let refs: Vec<_> = names.iter().map(String::as_str).zip(ts.iter()).collect();
        gguf_file::write(&mut std::fs::File::create(&slow).unwrap(), &meta, &refs).unwrap();
    }
    assert!(needs_requantize(&slow).unwrap());
    assert!(!needs_requantize(&good).unwrap());
    let fast = dir.path().join("fast.gguf");
    assert!(requantize(&slow, &fast, GgmlDType::Q8_0).unwrap() > 10);
    assert!(!needs_requantize(&fast).unwrap());
    let a = one(&LocalLlm::load(&slow, opts()).unwrap(), ask("Hi", greedy(6))).unwrap();
    let b = one(&LocalLlm::load(&fast, opts()).unwrap(), ask("Hi", greedy(6))).unwrap();
    assert_eq!(a.usage.prompt_tokens, b.usage.prompt_tokens);
    assert!(b.usage.generated_tokens > 0 || b.finish == FinishReason::Stop);
}

/// Manual tools (ignored): `OPTO_BENCH_MODEL=PATH cargo test --test llm_local_tests bench_model -- --ignored --nocapture`
/// (optional `OPTO_BENCH_ARGS="P G B1,B2 THREADS [ROUNDS]"`), and
/// `OPTO_REQUANT="SRC DST" cargo test --test llm_local_tests requantize_model -- --ignored`.
#[test]
#[ignore]
fn bench_model() {
    let path = PathBuf::from(std::env::var("OPTO_BENCH_MODEL").expect("OPTO_BENCH_MODEL"));
    let args = std::env::var("OPTO_BENCH_ARGS").unwrap_or_else(|_| "200 32 1,2,4 2".into());
    let a: Vec<&str> = args.split_whitespace().collect();
    let batches: Vec<usize> = a[2].split(',').map(|b| b.parse().unwrap()).collect();
    let o = LocalOptions { threads: a[3].parse().unwrap(), ..LocalOptions::default() };
    let rounds = a.get(4).map_or(1, |r| r.parse().unwrap());
    let report = opto::llm::local::bench_llm(
        &path,
        o,
        a[0].parse().unwrap(),
        a[1].parse().unwrap(),
        &batches,
        rounds,
    )
    .unwrap();
    println!("{report}");
}

#[test]
#[ignore]
fn requantize_model() {
    let v = std::env::var("OPTO_REQUANT").expect("OPTO_REQUANT=\"SRC DST\"");
    let (src, dst) = v.split_once(' ').unwrap();
    let n = opto::llm::local::requant::requantize(
        Path::new(src),
        Path::new(dst),
        candle_core::quantized::GgmlDType::Q8_0,
    )
    .unwrap();
    println!("{n} tensors converted");
}

#[test]
fn long_prompts_prefill_in_chunks_and_overlong_ones_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny(&dir, "m.gguf", 16);
    let llm = LocalLlm::load(&p, no_cache()).unwrap();
    // ~1,300 tokens: three prefill chunks; the reply must match a run whose prefix came from
    // the cache in one piece (same kv, other chunking).
    let long = "word ".repeat(260);
    let a = one(&llm, ask(&long, greedy(8))).unwrap();
    assert!(a.usage.prompt_tokens > 1024, "{}", a.usage.prompt_tokens);
    let cached = LocalLlm::load(&p, opts()).unwrap();
    one(&cached, ask(&long, greedy(1))).unwrap();
    let b = one(&cached, ask(&long, greedy(8))).unwrap();
    assert_eq!(b.usage.cached_prompt_tokens, b.usage.prompt_tokens - 1);
    assert_eq!(a.text, b.text);
    // The tiny model has 2,048 positions.
    let out = llm.generate(&[ask(&"word ".repeat(500), greedy(4)), ask("short", greedy(4))]);
    let e = out[0].as_ref().unwrap_err().to_string();
    assert!(e.contains("positions"), "{e}");
    assert!(out[1].is_ok());
}

#[test]
fn a_sequence_reaching_the_context_limit_ends_alone() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TinySpec { closer_bias: 0.0, seed: 17, ..TinySpec::default() };
    let p = dir.path().join("flat.gguf");
    write_tiny(&p, &spec).unwrap();
    let llm = LocalLlm::load(&p, no_cache()).unwrap();
    // ~2,000 prompt tokens of the 2,048 positions, asking for far more than fits.
    let near_full = "word ".repeat(398);
    let out = llm.generate(&[ask(&near_full, greedy(100_000)), ask("short", greedy(20))]);
    let long = out[0].as_ref().unwrap();
    // Every position holds a token; the last sampled token needs none.
    assert!(long.usage.prompt_tokens + long.usage.generated_tokens <= 2049);
    if long.finish == FinishReason::Length {
        assert_eq!(long.usage.prompt_tokens + long.usage.generated_tokens, 2049);
    }
    assert!(out[1].is_ok());
}

// ---------- continuous batching ----------

/// A request made from another thread while a long one is decoding joins its batch (the two
/// share decode steps), and both get exactly the tokens they get alone.
#[test]
fn a_request_from_another_thread_joins_the_running_batch_with_unchanged_output() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny(&dir, "m.gguf", 21);
    let llm = std::sync::Arc::new(LocalLlm::load(&p, no_cache()).unwrap());
    let long_params = GenerationParams { min_tokens: 1500, ..greedy(1500) };
    let long = ask("A long reply, please.", long_params);
    let short = ask("Short.", greedy(12));
    let long_alone = one(&llm, long.clone()).unwrap();
    let short_alone = one(&llm, short.clone()).unwrap();
    let before = llm.batching_stats();
    let runner = {
        let llm = llm.clone();
        std::thread::spawn(move || one(&llm, long).unwrap())
    };
    // Wait until the long request is decoding, then ask from this thread.
    while llm.batching_stats().decode_steps < before.decode_steps + 3 {
        std::thread::yield_now();
    }
    let short_joined = one(&llm, short).unwrap();
    let long_joined = runner.join().unwrap();
    assert_eq!(short_joined.text, short_alone.text);
    assert_eq!(short_joined.usage, short_alone.usage);
    assert_eq!(long_joined.text, long_alone.text);
    assert_eq!(long_joined.usage.generated_tokens, 1500);
    let after = llm.batching_stats();
    assert!(after.joined_running > before.joined_running, "{after:?}");
    assert!(after.max_batch >= 2, "{after:?}");
    // Had the short request waited for the long one, the steps would add up.
    let steps = after.decode_steps - before.decode_steps;
    assert!(
        steps < long_joined.usage.generated_tokens + short_joined.usage.generated_tokens,
        "{steps} decode steps for {after:?}"
    );
}

/// Many threads at once: every reply is the one its request gets alone, in each caller's order,
/// with the prefix cache on (prompts share a system prompt).
#[test]
fn concurrent_callers_each_get_their_own_replies_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny(&dir, "m.gguf", 22);
    let llm = std::sync::Arc::new(LocalLlm::load(&p, opts()).unwrap());
    let system = "A shared instruction that every caller repeats. ".repeat(3);
    let req = |i: usize| {
        Request::new(vec![
            Message::system(system.clone()),
            Message::user(format!("Question number {i}?")),
        ])
        .with_params(if i.is_multiple_of(3) {
            sampled(10 + i, i as u64)
        } else {
            greedy(5 + 3 * i)
        })
    };
    let alone: Vec<String> = (0..8).map(|i| one(&llm, req(i)).unwrap().text).collect();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let (llm, barrier, reqs) =
                (llm.clone(), barrier.clone(), vec![req(2 * t), req(2 * t + 1)]);
            std::thread::spawn(move || {
                barrier.wait();
                llm.generate(&reqs).into_iter().map(|r| r.unwrap().text).collect::<Vec<_>>()
            })
        })
        .collect();
    for (t, h) in handles.into_iter().enumerate() {
        let got = h.join().unwrap();
        assert_eq!(got, vec![alone[2 * t].clone(), alone[2 * t + 1].clone()], "caller {t}");
    }
    assert!(llm.generate(&[]).is_empty());
}

/// Dropping the model stops its scheduler thread (the test would hang otherwise).
#[test]
fn dropping_the_model_ends_its_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny(&dir, "m.gguf", 23);
    for _ in 0..3 {
        let llm = LocalLlm::load(&p, no_cache()).unwrap();
        one(&llm, ask("Hi.", greedy(3))).unwrap();
        drop(llm);
    }
}
