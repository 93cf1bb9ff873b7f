//! Local engine tests on tiny random-weight GGUF models written by the suite itself.

use opto::llm::local::fixture::{write_tiny, write_tiny_llama, write_tiny_qwen2, TinySpec};
use opto::llm::local::{LocalLlm, LocalOptions};
use opto::llm::{FinishReason, GenerationParams, Llm, Message, Request};
use std::path::PathBuf;

fn tiny(dir: &tempfile::TempDir, name: &str, seed: u64) -> PathBuf {
    let p = dir.path().join(name);
    write_tiny_qwen2(&p, seed).unwrap();
    p
}

fn opts() -> LocalOptions {
    LocalOptions { threads: 1, ..LocalOptions::default() }
}

fn ask(text: &str, params: GenerationParams) -> Request {
    Request::new(vec![Message::system("You answer briefly."), Message::user(text)]).with_params(params)
}

fn greedy(max_tokens: usize) -> GenerationParams {
    GenerationParams { max_tokens, ..GenerationParams::default() }
}

#[test]
fn loads_tokenizes_templates_and_generates() {
    let dir = tempfile::tempdir().unwrap();
    let llm = LocalLlm::load(tiny(&dir, "m.gguf", 1), opts()).unwrap();
    assert_eq!(llm.config().architecture, "qwen2");
    let prompt = llm.render_prompt(&[Message::user("hi there")]);
    assert_eq!(prompt, "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n");
    let tok = llm.tokenizer();
    let ids = tok.encode(&prompt).unwrap();
    assert_eq!(ids[0], tok.token_id("<|im_start|>").unwrap());
    assert!(ids.contains(&tok.token_id("<|im_end|>").unwrap()));
    // " the" is one merged token; text round-trips byte for byte.
    let the = tok.encode(" the").unwrap();
    assert_eq!(the.len(), 1);
    assert_eq!(tok.decode(&tok.encode("héllo, wörld 123").unwrap()), "héllo, wörld 123");
    let replies = llm.generate(&[ask("Say something.", greedy(20))]);
    let r = replies[0].as_ref().unwrap();
    assert!(r.usage.prompt_tokens > 10);
    assert!(r.usage.generated_tokens <= 20);
    assert!(r.usage.generated_tokens > 0 || r.finish == FinishReason::Stop);
    println!("{:?}", r);
}
