//! The continuous-batching measurement on a real model (ignored by default: minutes on a CPU):
//! a minibatch of 8 traced LLM calls made concurrently (one thread each; they join one decode
//! batch) against the same 8 calls one after another, in the same process, prefix cache cleared
//! before each. Replies must be identical either way.
//!
//! `OPTO_TEST_MODEL=$(opto models path qwen2.5-coder-1.5b-instruct) OPTO_THREADS=2 cargo test --release --test call_real_tests -- --ignored --nocapture`

use opto::call::{template_parameter, LlmCall};
use opto::graph::{Graph, Value};
use opto::llm::local::{LocalLlm, LocalOptions};
use opto::llm::{GenerationParams, Llm};
use opto::tasks::bbh::BbhTask;
use std::sync::Arc;
use std::time::Instant;

#[test]
#[ignore]
fn measure_eight_concurrent_traced_calls_against_eight_sequential() {
    let Some(path) = std::env::var_os("OPTO_TEST_MODEL") else {
        eprintln!("set OPTO_TEST_MODEL to a GGUF path");
        return;
    };
    let threads: usize =
        std::env::var("OPTO_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2);
    let max_tokens: usize =
        std::env::var("OPTO_CALL_TOKENS").ok().and_then(|t| t.parse().ok()).unwrap_or(64);
    let local =
        Arc::new(LocalLlm::load(&path, LocalOptions { threads, ..Default::default() }).unwrap());
    let llm: Arc<dyn Llm> = local.clone();
    let g = Graph::new();
    let template = template_parameter(&g, "prompt", opto::tasks::prompt::INITIAL_TEMPLATE);
    let questions: Vec<_> = BbhTask::WordSorting
        .generate(8, 0)
        .into_iter()
        .map(|i| g.value(i.input.as_str()))
        .collect();
    let params = GenerationParams { max_tokens, ..Default::default() };
    let call = LlmCall::new(llm.clone(), params.clone());
    // A call remembers its greedy replies: the sequential pass gets its own, so it asks again.
    let sequential_call = LlmCall::new(llm, params);

    local.clear_prefix_cache();
    let before = local.batching_stats();
    let t = Instant::now();
    let concurrent = call.call_many(&template, &questions).unwrap();
    let concurrent_s = t.elapsed().as_secs_f64();
    let stats = local.batching_stats();

    local.clear_prefix_cache();
    let t = Instant::now();
    let sequential: Vec<_> =
        questions.iter().map(|q| sequential_call.call(&template, q).unwrap()).collect();
    let sequential_s = t.elapsed().as_secs_f64();

    let text = |r: &opto::call::CallReply| match r.node.value() {
        Value::Str(s) => s,
        other => other.py_str(),
    };
    for (c, s) in concurrent.iter().zip(&sequential) {
        assert_eq!(text(c), text(s), "a reply changed with its company");
    }
    let tokens: usize = sequential.iter().map(|r| r.generated_tokens).sum();
    println!(
        "8 traced calls ({tokens} tokens, max {max_tokens} each, {threads} threads): sequential {sequential_s:.1} s, concurrent {concurrent_s:.1} s: {:.2}x; concurrent run: {} decode steps, largest batch {}, {} requests joined a running batch",
        sequential_s / concurrent_s,
        stats.decode_steps - before.decode_steps,
        stats.max_batch,
        stats.joined_running - before.joined_running
    );
}
