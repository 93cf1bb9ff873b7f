//! `ScriptedLlm`: a deterministic test double. Replies come from a queue or from a function of
//! the request; every request received is recorded. For optimizer-logic tests only.

use super::{FinishReason, Llm, Reply, Request, Timings, Usage};
use crate::error::{Error, Result};
use std::collections::VecDeque;
use std::sync::Mutex;

type ReplyFn = Box<dyn Fn(&Request) -> Result<String> + Send + Sync>;

enum Source {
    Queue(VecDeque<Result<String>>),
    Func(ReplyFn),
}

/// A scripted LLM. Usage counts are chars/4 estimates; `count_tokens` answers only when
/// [`ScriptedLlm::with_token_counter`] was set (so the chars/4 fallback is exercised otherwise).
pub struct ScriptedLlm {
    source: Mutex<Source>,
    requests: Mutex<Vec<Request>>,
    batches: Mutex<Vec<usize>>,
    token_counter: Option<fn(&str) -> usize>,
}

impl ScriptedLlm {
    /// Replies taken in order, one per request; when they run out, requests fail.
    pub fn new<S: Into<String>>(replies: impl IntoIterator<Item = S>) -> Self {
        Self::from_source(Source::Queue(replies.into_iter().map(|s| Ok(s.into())).collect()))
    }

    /// Replies computed from each request.
    pub fn from_fn(f: impl Fn(&Request) -> Result<String> + Send + Sync + 'static) -> Self {
        Self::from_source(Source::Func(Box::new(f)))
    }

    fn from_source(source: Source) -> Self {
        ScriptedLlm {
            source: Mutex::new(source),
            requests: Mutex::new(Vec::new()),
            batches: Mutex::new(Vec::new()),
            token_counter: None,
        }
    }

    /// Makes `count_tokens` answer with this function.
    pub fn with_token_counter(mut self, f: fn(&str) -> usize) -> Self {
        self.token_counter = Some(f);
        self
    }

    /// Queues one more reply (queue mode only).
    pub fn push(&self, reply: impl Into<String>) {
        if let Source::Queue(q) = &mut *self.source.lock().unwrap_or_else(|e| e.into_inner()) {
            q.push_back(Ok(reply.into()));
        }
    }

    /// Queues an error (queue mode only).
    pub fn push_error(&self, reason: impl Into<String>) {
        if let Source::Queue(q) = &mut *self.source.lock().unwrap_or_else(|e| e.into_inner()) {
            q.push_back(Err(Error::Llm { backend: "scripted".into(), reason: reason.into() }));
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The size of every `generate` call so far.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.batches.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replies left in the queue (0 in function mode).
    pub fn remaining(&self) -> usize {
        match &*self.source.lock().unwrap_or_else(|e| e.into_inner()) {
            Source::Queue(q) => q.len(),
            Source::Func(_) => 0,
        }
    }
}

impl Llm for ScriptedLlm {
    fn generate(&self, requests: &[Request]) -> Vec<Result<Reply>> {
        self.batches.lock().unwrap_or_else(|e| e.into_inner()).push(requests.len());
        requests
            .iter()
            .map(|req| {
                self.requests.lock().unwrap_or_else(|e| e.into_inner()).push(req.clone());
                let text = match &mut *self.source.lock().unwrap_or_else(|e| e.into_inner()) {
                    Source::Queue(q) => q.pop_front().unwrap_or_else(|| {
                        Err(Error::Llm {
                            backend: "scripted".into(),
                            reason: "no scripted reply left".into(),
                        })
                    }),
                    Source::Func(f) => f(req),
                }?;
                let prompt_chars: usize =
                    req.messages.iter().map(|m| m.content.chars().count()).sum();
                Ok(Reply {
                    finish: FinishReason::Stop,
                    usage: Usage {
                        prompt_tokens: prompt_chars.div_ceil(4),
                        cached_prompt_tokens: 0,
                        generated_tokens: text.chars().count().div_ceil(4),
                    },
                    timings: Timings::default(),
                    text,
                })
            })
            .collect()
    }

    fn describe(&self) -> String {
        "scripted".into()
    }

    fn count_tokens(&self, text: &str) -> Option<usize> {
        self.token_counter.map(|f| f(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Message;

    #[test]
    fn queue_then_exhausted() {
        let llm = ScriptedLlm::new(["a"]);
        let r = llm.generate(&[
            Request::new(vec![Message::user("q")]),
            Request::new(vec![Message::user("q2")]),
        ]);
        assert_eq!(r[0].as_ref().unwrap().text, "a");
        assert!(r[1].is_err());
        assert_eq!(llm.requests().len(), 2);
        assert_eq!(llm.batch_sizes(), vec![2]);
    }
}
