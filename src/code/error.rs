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

    /// The text for the optimizer LLM (an exception node's data): the traceback, then the last
    /// `FEEDBACK_PRINT_CHARS` characters of what the code printed, if it printed anything.
    pub fn feedback(&self) -> String {
        let printed = self.printed.trim_end();
        if printed.is_empty() {
            return self.traceback.clone();
        }
        let skip = printed.chars().count().saturating_sub(FEEDBACK_PRINT_CHARS);
        let tail: String = printed.chars().skip(skip).collect();
        let cut = if skip > 0 { "...\n" } else { "" };
        format!("{}\nOutput printed before the error:\n{cut}{tail}", self.traceback)
    }
}

/// Printed output kept in `CodeError::feedback`: the end matters most, and prompts are small.
pub const FEEDBACK_PRINT_CHARS: usize = 600;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feedback_is_the_traceback_plus_the_end_of_the_printed_output() {
        let mut e = CodeError::bare(CodeErrorKind::Exception, "ValueError", "bad gain");
        assert_eq!(e.feedback(), "ValueError: bad gain");
        e.printed = "step 1\nstep 2\n".into();
        assert_eq!(
            e.feedback(),
            "ValueError: bad gain\nOutput printed before the error:\nstep 1\nstep 2"
        );
        e.printed = "x".repeat(FEEDBACK_PRINT_CHARS + 10);
        assert!(e
            .feedback()
            .ends_with(&format!("error:\n...\n{}", "x".repeat(FEEDBACK_PRINT_CHARS))));
    }

    #[test]
    fn converts_into_the_crate_error_with_the_traceback() {
        let e = CodeError::bare(CodeErrorKind::Timeout, "TimeoutError", "too slow");
        assert_eq!(crate::Error::from(e).to_string(), "sandbox: TimeoutError: too slow");
    }
}
