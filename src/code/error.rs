//! `CodeError`: why a piece of LLM-written code did not produce a value. Its `traceback` text is
//! what the optimizer LLM reads, so it is shaped like CPython's (file, line, source line, caret,
//! `Type: message`).

use serde::{Deserialize, Serialize};
use std::fmt;

/// What kind of failure stopped the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CodeErrorKind {
    /// The source does not parse, uses syntax the interpreter does not support, or lacks the
    /// function it must define. Found when compiling, before anything runs.
    Syntax,
    /// The code raised an exception while running (including `RecursionError`, and a return
    /// value that cannot be converted to what the caller expects).
    Exception,
    /// The call ran past its wall-time budget.
    Timeout,
    /// The call went over its memory budget.
    Memory,
    /// The interpreter or the worker process died or misbehaved (abort, signal, panic, broken pipe).
    Crash,
}

impl CodeErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeErrorKind::Syntax => "syntax",
            CodeErrorKind::Exception => "exception",
            CodeErrorKind::Timeout => "timeout",
            CodeErrorKind::Memory => "memory",
            CodeErrorKind::Crash => "crash",
        }
    }
}

/// A failed compile or call of LLM-written code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodeError {
    pub kind: CodeErrorKind,
    /// Python's exception type name (`ZeroDivisionError`, `SyntaxError`, `TimeoutError`, ...).
    pub exc_type: String,
    /// The exception message alone (`division by zero`).
    pub message: String,
    /// The line of the function's source where it failed (1-based), innermost frame, when known.
    pub line: Option<u32>,
    /// The full CPython-shaped text: `Traceback (most recent call last):`, frames with file, line,
    /// source line and caret, then `Type: message`, then an optional hint line. Feed this to the LLM.
    pub traceback: String,
    /// What the code printed before it failed (capped).
    #[serde(default)]
    pub printed: String,
}

impl CodeError {
    /// An error without frames: the traceback is just `Type: message`.
    pub fn bare(kind: CodeErrorKind, exc_type: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        CodeError {
            kind,
            exc_type: exc_type.to_string(),
            traceback: format!("{exc_type}: {message}"),
            message,
            line: None,
            printed: String::new(),
        }
    }

    /// A failure of the machinery around the code (dead worker, broken pipe, interpreter panic).
    pub fn crash(message: impl Into<String>) -> Self {
        Self::bare(CodeErrorKind::Crash, "SandboxCrash", message)
    }

    /// `Type: message`, the last line of the traceback.
    pub fn summary(&self) -> String {
        format!("{}: {}", self.exc_type, self.message)
    }
}

impl fmt::Display for CodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceback)
    }
}

impl std::error::Error for CodeError {}

impl From<CodeError> for crate::Error {
    fn from(e: CodeError) -> Self {
        crate::Error::Sandbox(e.traceback)
    }
}
