//! Stops a run whose LLM backend cannot answer. Without it, a server that is down turns every
//! step into a logged "no update" and the run ends "solved 0/1" with exit code 0; with it, the
//! step in flight is neither logged nor checkpointed, and the run returns the backend's error,
//! so `--resume` redoes exactly that step once the server is back.

use crate::error::{Error, Result};
use crate::llm::{Llm, Reply, Request};
use std::sync::Mutex;

/// An `Llm` that forwards to another and remembers the first [`Error::Unavailable`] it saw.
pub struct BackendWatch<'a> {
    inner: &'a dyn Llm,
    unavailable: Mutex<Option<(String, String)>>,
}

impl<'a> BackendWatch<'a> {
    pub fn new(inner: &'a dyn Llm) -> Self {
        BackendWatch { inner, unavailable: Mutex::new(None) }
    }

    /// `Err(Unavailable)` when any request since the watch was made could not reach the backend.
    pub fn check(&self) -> Result<()> {
        match self.unavailable.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some((backend, reason)) => Err(Error::Unavailable { backend, reason: format!("{reason}; the step was not recorded, and --resume continues from the last finished step") }),
            None => Ok(()),
        }
    }
}

impl Llm for BackendWatch<'_> {
    fn generate(&self, requests: &[Request]) -> Vec<Result<Reply>> {
        let replies = self.inner.generate(requests);
        if let Some(Err(Error::Unavailable { backend, reason })) =
            replies.iter().find(|r| matches!(r, Err(Error::Unavailable { .. })))
        {
            let mut slot = self.unavailable.lock().unwrap_or_else(|e| e.into_inner());
            slot.get_or_insert_with(|| (backend.clone(), reason.clone()));
        }
        replies
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn count_tokens(&self, text: &str) -> Option<usize> {
        self.inner.count_tokens(text)
    }
}
