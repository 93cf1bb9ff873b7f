//! The one error type of opto. Every variant says what failed and on what, so a message can be
//! shown to a user (or fed back to an LLM) as it is.

use std::path::PathBuf;

/// Everything that can go wrong in opto. Input (LLM replies, model files, manifests, CLI
/// arguments, task files) never panics: it ends up here with the thing and the reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Misuse of the graph API (unknown node, wrong kind of node, backward twice, ...).
    #[error("graph: {0}")]
    Graph(String),

    /// A traced operator or function failed while running; `node` is the exception node that
    /// holds the error in the graph, so the caller can backpropagate from it.
    #[error("execution of `{op}` failed: {message}")]
    Execution { op: String, message: String, node: Option<crate::graph::Node> },

    /// A value does not fit the type it must have (a suggestion for a float that is not a number).
    #[error("cannot convert {what}: {reason}")]
    Conversion { what: String, reason: String },

    /// An LLM reply that could not be used.
    #[error("LLM reply: {0}")]
    Reply(String),

    /// An LLM backend failed (server down, generation stopped by the token cap, ...).
    #[error("LLM backend `{backend}`: {reason}")]
    Llm { backend: String, reason: String },

    /// An LLM backend that cannot answer at all (nothing listening, a bad URL, retries used
    /// up): the run stops instead of logging a step that never reached a model.
    #[error("LLM backend `{backend}` is unavailable: {reason}")]
    Unavailable { backend: String, reason: String },

    /// A model file that cannot be loaded (truncated, corrupt, unsupported architecture).
    #[error("model file {path}: {reason}")]
    ModelFile { path: PathBuf, reason: String },

    /// A model manifest or the model cache.
    #[error("model `{model}`: {reason}")]
    Model { model: String, reason: String },

    /// Tensor-level failure inside the inference engine, with the operation that failed.
    #[error("inference ({op}): {source}")]
    Tensor {
        op: String,
        #[source]
        source: candle_core::Error,
    },

    /// The sandbox that runs LLM-written code.
    #[error("sandbox: {0}")]
    Sandbox(String),

    /// A task definition or its arguments.
    #[error("task `{task}`: {reason}")]
    Task { task: String, reason: String },

    /// A user-facing argument (CLI flag, option) with a value that cannot work.
    #[error("invalid {name}: {reason}")]
    InvalidArgument { name: String, reason: String },

    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A dataset file (JSONL of input/answer pairs) or its splits: the file, the line when one
    /// is to blame, and the reason (naming the field).
    #[error("dataset {}{}: {reason}", .path.display(), .line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Dataset { path: PathBuf, line: Option<usize>, reason: String },

    /// A run folder, checkpoint or log that cannot be read or written.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// Wraps a candle error with the name of the operation that failed.
    pub fn tensor(op: impl Into<String>, source: candle_core::Error) -> Self {
        Error::Tensor { op: op.into(), source }
    }

    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument { name: name.into(), reason: reason.into() }
    }
}
