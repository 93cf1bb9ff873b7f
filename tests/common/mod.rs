//! Helpers shared by the test binaries that `mod common;` them.

use std::path::PathBuf;

/// The real model for the real-model tier: `OPTO_TEST_MODEL` (a GGUF path), else with
/// `OPTO_REAL_MODEL_TESTS=1` the smallest manifest model, pulled into the cache if missing.
pub fn real_model() -> Option<PathBuf> {
    if let Some(path) =
        std::env::var_os("OPTO_TEST_MODEL").map(PathBuf::from).filter(|p| p.exists())
    {
        return Some(path);
    }
    if std::env::var("OPTO_REAL_MODEL_TESTS").as_deref() != Ok("1") {
        return None;
    }
    Some(
        opto::llm::local::hub::resolve_model("smollm2-135m-instruct")
            .expect("pull smollm2-135m-instruct"),
    )
}
