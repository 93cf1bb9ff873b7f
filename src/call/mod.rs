//! The traced LLM call (Trace's `call_llm`): a program's own question to the language model,
//! recorded in the graph as one operator, so feedback on a wrong answer reaches the prompt
//! template parameter through it. Built on the graph's traced-function API the way `code/` builds
//! trainable Python; it depends on `graph` and `llm`, and neither depends on it.

mod llm_call;

pub use llm_call::{render_prompt, template_parameter, CallReply, LlmCall, INPUT_SLOT};
