//! Speculative decoding gives the same bytes out: greedy, seeded sampling, constrained replies,
//! stop strings, token caps, the context limit and mixed batches each decode to exactly what the
//! engine gives without guesses, on tiny random-weight models the suite writes, while guesses
//! are really fed and accepted (the counters say how many). A real-model tier runs OptoPrime-
//! style prompts on SmolLM2-135M (`OPTO_REAL_MODEL_TESTS=1`, or `OPTO_TEST_MODEL` = a GGUF path).

mod common;
use common::real_model;
use opto::llm::local::fixture::{write_tiny, write_tiny_qwen2, TinySpec};
use opto::llm::local::{LocalLlm, LocalOptions};
use opto::llm::{FinishReason, GenerationParams, Llm, Message, Request, Usage};
use opto::optim::reply_schema::{suggestion_schema, ParamType, SuggestionSchemaOptions};

fn opts() -> LocalOptions {
    LocalOptions { threads: 1, prefix_cache_entries: 0, ..LocalOptions::default() }
}

fn ask(system: &str, user: &str, params: GenerationParams) -> Request {
    Request::new(vec![Message::system(system), Message::user(user)]).with_params(params)
}

fn greedy(max_tokens: usize) -> GenerationParams {
    GenerationParams { max_tokens, ..GenerationParams::default() }
}

fn sampled(max_tokens: usize, seed: u64) -> GenerationParams {
    GenerationParams { max_tokens, temperature: 0.9, seed, ..GenerationParams::default() }
}

/// What a reply came to: its text, finish and usage, or the error's message.
type Outcome = Result<(String, FinishReason, Usage), String>;

fn outcomes(llm: &LocalLlm, reqs: &[Request]) -> Vec<Outcome> {
    llm.generate(reqs)
        .into_iter()
        .map(|r| r.map(|r| (r.text, r.finish, r.usage)).map_err(|e| e.to_string()))
        .collect()
}

/// Replies to `reqs` (one batch) with speculation off, then on; asserts they are identical
/// (errors too: a reply cut at its token cap is cut at the same token) and returns the guesses
/// fed and accepted while on.
fn same_with_and_without(llm: &LocalLlm, reqs: &[Request]) -> (usize, usize) {
    assert!(!llm.set_speculation(false));
    let plain = outcomes(llm, reqs);
    assert!(llm.set_speculation(true), "the model decodes on our kernels, so it speculates");
    let before = llm.batching_stats();
    let spec = outcomes(llm, reqs);
    let after = llm.batching_stats();
    for (i, (a, b)) in plain.iter().zip(&spec).enumerate() {
        assert_eq!(a, b, "request {i}: the reply differs with speculation");
    }
    (after.guessed_tokens - before.guessed_tokens, after.accepted_guesses - before.accepted_guesses)
}

/// A prompt whose text repeats, so that the lookup finds places to guess from (a random-weight
/// model loops on such text too).
fn repetitive(n: usize) -> String {
    "the value of x is 2.5 and the value of y is 3.5; ".repeat(n)
}

#[test]
fn greedy_replies_are_the_same_with_guesses_and_guesses_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut guessed, mut accepted) = (0, 0);
    for seed in [1, 2, 3] {
        let p = dir.path().join(format!("m{seed}.gguf"));
        write_tiny_qwen2(&p, seed).unwrap();
        let llm = LocalLlm::load(&p, opts()).unwrap();
        for n in [1, 4, 12] {
            let req = ask(&repetitive(n), "Repeat the notes.", greedy(120));
            let (g, a) = same_with_and_without(&llm, &[req]);
            guessed += g;
            accepted += a;
        }
    }
    assert!(guessed > 0, "no guess was fed");
    assert!(accepted > 0, "no guess was accepted ({guessed} fed)");
}

#[test]
fn seeded_sampling_draws_the_same_tokens_with_guesses() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.gguf");
    write_tiny_qwen2(&p, 4).unwrap();
    let llm = LocalLlm::load(&p, opts()).unwrap();
    let reqs: Vec<Request> =
        (0..6).map(|s| ask(&repetitive(6), "Go on.", sampled(100, 1000 + s))).collect();
    // One request at a time (the most guess rows each), then all six in one batch.
    let mut accepted = 0;
    for r in &reqs {
        accepted += same_with_and_without(&llm, std::slice::from_ref(r)).1;
    }
    same_with_and_without(&llm, &reqs);
    assert!(accepted > 0);
}

#[test]
fn constrained_replies_take_forced_tokens_as_guesses_and_stay_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.gguf");
    write_tiny_qwen2(&p, 6).unwrap();
    let llm = LocalLlm::load(&p, opts()).unwrap();
    let params = [
        ("learning_rate", ParamType::Float),
        ("use_momentum", ParamType::Bool),
        ("prompt_template", ParamType::Str),
        ("steps", ParamType::Int),
    ];
    let mut accepted = 0;
    for (i, with_answer) in [false, true].into_iter().enumerate() {
        let o = SuggestionSchemaOptions { with_answer, reasoning_max_chars: 40 };
        let schema = suggestion_schema(params, &o);
        let reqs = vec![
            ask(&repetitive(3), "Improve the parameters.", greedy(800)).with_schema(schema.clone()),
            ask("Short.", "Improve.", sampled(800, 7 + i as u64)).with_schema(schema),
        ];
        accepted += same_with_and_without(&llm, &reqs).1;
    }
    // Every key of the suggestion is forced by the grammar once its first byte is written.
    assert!(accepted >= 8, "only {accepted} guesses accepted");
}

#[test]
fn stop_strings_token_caps_and_stop_tokens_end_replies_where_they_did() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.gguf");
    write_tiny_qwen2(&p, 2).unwrap();
    let llm = LocalLlm::load(&p, opts()).unwrap();
    let stop = GenerationParams { stop: vec!["value".into(), "; t".into()], ..greedy(200) };
    let reqs = vec![
        ask(&repetitive(8), "Repeat.", stop),
        ask(&repetitive(8), "Repeat.", greedy(1)),
        ask(&repetitive(8), "Repeat.", greedy(2)),
        ask(&repetitive(8), "Repeat.", greedy(9)),
        ask(&repetitive(8), "Repeat.", GenerationParams { min_tokens: 30, ..greedy(40) }),
    ];
    for r in &reqs {
        same_with_and_without(&llm, std::slice::from_ref(r));
    }
    same_with_and_without(&llm, &reqs);
}

#[test]
fn a_sequence_near_the_context_limit_guesses_only_what_fits() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TinySpec { closer_bias: 0.0, seed: 17, ..TinySpec::default() };
    let p = dir.path().join("flat.gguf");
    write_tiny(&p, &spec).unwrap();
    let llm = LocalLlm::load(&p, opts()).unwrap();
    // Close to the fixture's 2,048 positions, asking for far more than fits.
    let near_full = "word ".repeat(390);
    let reqs = vec![ask("", &near_full, greedy(100_000)), ask("", "short", greedy(20))];
    same_with_and_without(&llm, &reqs);
}

/// The real-model tier: a small instruct model rewriting code it was shown, the case prompt
/// lookup is for. The reply must be the same and guesses must be kept.
#[test]
fn real_model_copies_code_from_its_prompt_with_fewer_passes_and_the_same_reply() {
    let Some(path) = real_model() else { return };
    let llm = LocalLlm::load(&path, LocalOptions { threads: 2, ..opts() }).unwrap();
    let code = "def controller(obs):\n    x, v = obs[0], obs[1]\n    kp = 1.0\n    kd = 0.0\n    force = kp * (0.0 - x) - kd * v\n    return [force]\n";
    let user = format!(
        "#Code\n{code}\n#Feedback\nThe controller oscillates: add damping.\n\nReply with the whole function, rewritten."
    );
    let params = [("controller", ParamType::Code)];
    let schema = suggestion_schema(
        params,
        &SuggestionSchemaOptions { with_answer: false, reasoning_max_chars: 200 },
    );
    let reqs = vec![
        ask("You improve Python code.", &user, greedy(300)),
        ask("You improve Python code.", &user, greedy(400)).with_schema(schema),
    ];
    let (guessed, accepted) = same_with_and_without(&llm, &reqs);
    eprintln!("real model: {accepted} of {guessed} guesses kept");
    assert!(accepted * 4 >= guessed, "{accepted} of {guessed} guesses kept");
    assert!(accepted >= 20, "only {accepted} guesses kept");
}
