//! opto: Trace-style generative optimization in Rust, with the optimizer's LLM running in-process.
//!
//! A program records what it computes as a trace graph ([`graph`]); feedback on an output flows
//! back ([`propagate`]); an optimizer ([`optim`]) shows an LLM ([`llm`]) the code, the values and the
//! feedback, and applies the new values it proposes. [`train`] drives whole runs; [`code`] runs
//! LLM-written Python in a sandbox; [`prelude`] brings what a program usually needs.
//!
//! ```no_run
//! use opto::prelude::*;
//! use std::sync::Arc;
//!
//! fn main() -> opto::Result<()> {
//!     let g = Graph::new();
//!     let x = g.param_named("x", -1.0).constraint_text("a float");
//!     let bar = opto::traced!(
//!         /// Negative scaling.
//!         fn bar(x: f64) -> f64 {
//!             -2.0 * x
//!         }
//!     );
//!     let a = bar(&x)?;
//!     let z = &a * (&a + 1); // traced: multiply(bar0, add0)
//!     let llm = LocalLlm::open("qwen2.5-coder-1.5b-instruct")?; // pulled on first use
//!     let mut opt = OptoPrime::new(vec![x.clone()], Arc::new(llm));
//!     opt.zero_feedback();
//!     z.backward("Output should be larger.")?;
//!     let report = opt.step()?; // x gets the LLM's suggestion
//!     println!("x = {} ({:?})", x.value(), report.updates);
//!     Ok(())
//! }
//! ```

pub mod call;
pub mod cli;
pub mod code;
pub mod error;
pub mod graph;
pub mod llm;
pub mod optim;
pub mod prelude;
pub mod propagate;
pub mod tasks;
pub mod text;
pub mod train;
pub mod util;

pub use error::{Error, Result};
