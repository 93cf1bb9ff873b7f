//! The README's quickstart (a test holds the two equal): one traced program, one feedback,
//! one OptoPrime step with the local model. `cargo run --release --example quickstart`

use opto::prelude::*;
use std::sync::Arc;

fn main() -> opto::Result<()> {
    let g = Graph::new();
    let x = g.param_named("x", -1.0).constraint_text("a float");
    let bar = opto::traced!(
        /// Negative scaling.
        fn bar(x: f64) -> f64 {
            -2.0 * x
        }
    );
    let a = bar(&x)?;
    let z = &a * (&a + 1); // traced: multiply(bar0, add0)
    let llm = LocalLlm::open("qwen2.5-coder-1.5b-instruct")?; // pulled on first use
    let mut opt = OptoPrime::new(vec![x.clone()], Arc::new(llm));
    opt.zero_feedback();
    z.backward("Output should be larger.")?;
    let report = opt.step()?; // x gets the LLM's suggestion
    println!("x = {} ({:?})", x.value(), report.updates);
    Ok(())
}
