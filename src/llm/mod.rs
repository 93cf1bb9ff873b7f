//! The LLM interface: batch-first, every request carries the JSON schema of the reply it wants.
//!
//! One request is a batch of one. A backend answers each request separately (`Vec<Result<Reply>>`
//! in request order), so one bad request never sinks the batch. The schema lets the local engine
//! constrain decoding to exactly the trainable parameters' names and types, and lets a remote
//! backend send it as `response_format`. This module knows nothing of graphs or optimizers.

pub mod local;
pub mod remote;
pub mod schema;
pub mod scripted;

pub use schema::ReplySchema;

use crate::error::Result;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Message { role: Role::System, content: content.into() }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Message { role: Role::User, content: content.into() }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Message { role: Role::Assistant, content: content.into() }
    }
}

/// Sampling and length settings of one request. `temperature == 0` means greedy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationParams {
    pub max_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    /// 0 disables top-k.
    pub top_k: usize,
    pub seed: u64,
    /// Extra stop strings (the model's own end-of-turn tokens always stop).
    pub stop: Vec<String>,
    /// Free text only: the end-of-turn tokens are not chosen before this many tokens (benchmarks
    /// that must decode a fixed length). A constrained reply ends when its JSON does.
    #[serde(default)]
    pub min_tokens: usize,
}

impl Default for GenerationParams {
    fn default() -> Self {
        GenerationParams {
            max_tokens: 512,
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            seed: 0,
            stop: Vec::new(),
            min_tokens: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub messages: Vec<Message>,
    /// The reply's JSON schema; `None` asks for free text.
    pub schema: Option<ReplySchema>,
    pub params: GenerationParams,
}

impl Request {
    pub fn new(messages: Vec<Message>) -> Self {
        Request { messages, schema: None, params: GenerationParams::default() }
    }
    pub fn with_schema(mut self, schema: ReplySchema) -> Self {
        self.schema = Some(schema);
        self
    }
    pub fn with_params(mut self, params: GenerationParams) -> Self {
        self.params = params;
        self
    }
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// End of turn, a stop string, or the schema's grammar completed.
    #[default]
    Stop,
    /// `max_tokens` was reached.
    Length,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV state came from the prefix cache.
    pub cached_prompt_tokens: usize,
    pub generated_tokens: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub prefill_s: f64,
    pub decode_s: f64,
    pub total_s: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub text: String,
    pub finish: FinishReason,
    pub usage: Usage,
    pub timings: Timings,
}

/// A language model that answers a batch of requests.
pub trait Llm: Send + Sync {
    /// Answers every request, in order. Backends that can, run the batch in one forward pass
    /// per token; an error in one request does not fail the others.
    fn generate(&self, requests: &[Request]) -> Vec<Result<Reply>>;

    /// Identifies the model for logs and run records (name, and sha256 where known).
    fn describe(&self) -> String;

    /// Number of tokens `text` takes for this model, when the backend knows its tokenizer.
    fn count_tokens(&self, _text: &str) -> Option<usize> {
        None
    }
}

impl<T: Llm + ?Sized> Llm for std::sync::Arc<T> {
    fn generate(&self, requests: &[Request]) -> Vec<Result<Reply>> {
        (**self).generate(requests)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn count_tokens(&self, text: &str) -> Option<usize> {
        (**self).count_tokens(text)
    }
}
