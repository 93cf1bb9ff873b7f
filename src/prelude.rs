//! What a program written against opto usually needs, in one `use opto::prelude::*;`: the graph
//! and its values, the local model, the optimizers, the trainer and the sandbox.

pub use crate::call::LlmCall;
pub use crate::code::{default_sandbox, Limits, MontySandbox, Sandbox, TracedCode};
// `Result` stays `opto::Result`: a glob import of it would shadow std's two-parameter one.
pub use crate::error::Error;
pub use crate::graph::value::py_float;
pub use crate::graph::{Graph, Node, Value};
pub use crate::llm::local::{LocalLlm, LocalOptions};
pub use crate::llm::{GenerationParams, Llm, Message};
pub use crate::optim::{Optimizer, OptoPrime, OptoPrimeOptions, StepReport};
pub use crate::traced;
pub use crate::train::{Evaluation, RunConfig, RunSummary, Task, Trainer};
