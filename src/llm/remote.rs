//! `RemoteLlm`: an OpenAI-compatible chat-completions client (vLLM, llama.cpp server, Ollama).
//!
//! Each request's [`ReplySchema`](super::ReplySchema) is sent as
//! `response_format: {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}` so the
//! server can constrain decoding. Connection errors, timeouts while connecting, 5xx and 429 are
//! retried with exponential backoff (a `Retry-After` header in seconds is honoured). A batch is
//! answered by up to `parallel` concurrent calls; errors stay per request.
//!
//! Configuration comes from arguments, else from `OPTO_REMOTE_URL`, `OPTO_REMOTE_MODEL` and
//! `OPTO_REMOTE_API_KEY`.

use super::{FinishReason, Llm, Reply, Request, Timings, Usage};
use crate::error::{Error, Result};
use serde_json::{json, Value as Json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How the reply schema is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaMode {
    /// `{"type": "json_schema", ...}` (vLLM, llama.cpp server, recent Ollama).
    JsonSchema,
    /// `{"type": "json_object"}`: JSON, but not the schema.
    JsonObject,
    /// No `response_format`.
    Off,
}

/// Settings of [`RemoteLlm`].
#[derive(Clone, Debug)]
pub struct RemoteConfig {
    /// Base URL, e.g. `http://127.0.0.1:8000/v1` (`/chat/completions` is appended unless present).
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub connect_timeout: Duration,
    /// Whole-request timeout (generation included).
    pub timeout: Duration,
    /// Retries after the first try.
    pub max_retries: u32,
    /// First backoff; doubles each retry.
    pub backoff: Duration,
    /// Longest single wait (also caps `Retry-After`).
    pub max_backoff: Duration,
    /// Concurrent calls for a batch (1: sequential).
    pub parallel: usize,
    pub schema_mode: SchemaMode,
}

impl RemoteConfig {
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        RemoteConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(300),
            max_retries: 3,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            parallel: 4,
            schema_mode: SchemaMode::JsonSchema,
        }
    }

    /// Arguments where given, else the `OPTO_REMOTE_*` environment variables. The URL is
    /// required; the model defaults to `default`.
    pub fn resolve(url: Option<&str>, model: Option<&str>, api_key: Option<&str>) -> Result<Self> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let url = url.map(str::to_string).or_else(|| env("OPTO_REMOTE_URL")).ok_or_else(|| {
            Error::invalid(
                "remote URL",
                "give a base URL (e.g. http://127.0.0.1:8000/v1) or set OPTO_REMOTE_URL",
            )
        })?;
        let model = model
            .map(str::to_string)
            .or_else(|| env("OPTO_REMOTE_MODEL"))
            .unwrap_or_else(|| "default".into());
        let mut c = RemoteConfig::new(url, model);
        c.api_key = api_key.map(str::to_string).or_else(|| env("OPTO_REMOTE_API_KEY"));
        Ok(c)
    }

    /// Only the environment.
    pub fn from_env() -> Result<Self> {
        Self::resolve(None, None, None)
    }

    fn endpoint(&self) -> String {
        let b = self.base_url.trim_end_matches('/');
        if b.ends_with("/chat/completions") {
            b.to_string()
        } else {
            format!("{b}/chat/completions")
        }
    }
}

/// The OpenAI-compatible client.
pub struct RemoteLlm {
    config: RemoteConfig,
    agent: ureq::Agent,
    /// Retries made so far (for tests and logs).
    retries: AtomicUsize,
    last_error: Mutex<Option<String>>,
}

enum Failure {
    /// Worth another try.
    Retry(String, Option<Duration>),
    /// This request failed; others may not.
    Fatal(String),
    /// No request can succeed: nothing answers at this URL, or what answers is not an
    /// OpenAI-compatible server (not JSON, no such endpoint, no access).
    Down(String),
}

impl RemoteLlm {
    pub fn new(config: RemoteConfig) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(config.connect_timeout)
            .timeout(config.timeout)
            .build();
        RemoteLlm { config, agent, retries: AtomicUsize::new(0), last_error: Mutex::new(None) }
    }

    /// From `OPTO_REMOTE_URL`, `OPTO_REMOTE_MODEL`, `OPTO_REMOTE_API_KEY`.
    pub fn from_env() -> Result<Self> {
        Ok(Self::new(RemoteConfig::from_env()?))
    }

    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    /// Retries made since this client was created.
    pub fn retries(&self) -> usize {
        self.retries.load(Ordering::Relaxed)
    }

    /// The JSON body of one request.
    pub fn body(&self, req: &Request) -> Json {
        let messages: Vec<Json> = req
            .messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let p = &req.params;
        let mut body = json!({
            "model": self.config.model,
            "messages": messages,
            "max_tokens": p.max_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "seed": p.seed,
            "stream": false,
        });
        if p.top_k > 0 {
            body["top_k"] = json!(p.top_k);
        }
        if !p.stop.is_empty() {
            body["stop"] = json!(p.stop);
        }
        if let Some(schema) = &req.schema {
            match self.config.schema_mode {
                SchemaMode::JsonSchema => {
                    body["response_format"] = json!({
                        "type": "json_schema",
                        "json_schema": {"name": "reply", "schema": schema.json, "strict": true},
                    })
                }
                SchemaMode::JsonObject => body["response_format"] = json!({"type": "json_object"}),
                SchemaMode::Off => {}
            }
        }
        body
    }

    fn backend(&self) -> String {
        format!("remote {} at {}", self.config.model, self.config.base_url)
    }

    fn call_once(&self, body: &Json) -> std::result::Result<Reply, Failure> {
        let start = Instant::now();
        let mut req =
            self.agent.post(&self.config.endpoint()).set("Content-Type", "application/json");
        if let Some(k) = &self.config.api_key {
            req = req.set("Authorization", &format!("Bearer {k}"));
        }
        match req.send_json(body.clone()) {
            Ok(resp) => {
                let text = resp.into_string().map_err(|e| {
                    Failure::Retry(format!("reading the response failed: {e}"), None)
                })?;
                let j: Json = serde_json::from_str(&text).map_err(|e| {
                    Failure::Down(format!("the response is not JSON ({e}): {}", short(&text)))
                })?;
                parse_completion(&j, start.elapsed()).map_err(Failure::Fatal)
            }
            Err(ureq::Error::Status(code, resp)) => {
                let retry_after = resp
                    .header("retry-after")
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .map(Duration::from_secs_f64);
                let text = resp.into_string().unwrap_or_default();
                let msg = format!("HTTP {code}: {}", short(&text));
                if code == 429 || code >= 500 {
                    Err(Failure::Retry(msg, retry_after))
                } else if matches!(code, 401 | 403 | 404 | 405) {
                    Err(Failure::Down(format!(
                        "{msg} (is {} an OpenAI-compatible endpoint, and is the API key right?)",
                        self.config.endpoint()
                    )))
                } else {
                    Err(Failure::Fatal(msg))
                }
            }
            Err(ureq::Error::Transport(t)) => {
                let msg = t.to_string();
                let timed_out =
                    msg.contains("timed out") || msg.contains("Timeout") || msg.contains("timeout");
                match t.kind() {
                    // A request that timed out while generating would time out again.
                    ureq::ErrorKind::Io if timed_out => {
                        Err(Failure::Fatal(format!("timed out after {:?}: {msg}", start.elapsed())))
                    }
                    ureq::ErrorKind::Dns
                    | ureq::ErrorKind::InvalidUrl
                    | ureq::ErrorKind::UnknownScheme
                    | ureq::ErrorKind::InsecureRequestHttpsOnly => Err(Failure::Down(msg)),
                    _ => Err(Failure::Retry(msg, None)),
                }
            }
        }
    }

    fn call(&self, req: &Request) -> Result<Reply> {
        let body = self.body(req);
        let mut wait = self.config.backoff;
        let mut attempt = 0;
        loop {
            match self.call_once(&body) {
                Ok(r) => return Ok(r),
                Err(Failure::Fatal(reason)) => return Err(self.fail(reason)),
                Err(Failure::Down(reason)) => return Err(self.down(reason)),
                Err(Failure::Retry(reason, after)) => {
                    if attempt >= self.config.max_retries {
                        return Err(
                            self.down(format!("{reason} (gave up after {} tries)", attempt + 1))
                        );
                    }
                    attempt += 1;
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(after.unwrap_or(wait).min(self.config.max_backoff));
                    wait = (wait * 2).min(self.config.max_backoff);
                }
            }
        }
    }

    fn fail(&self, reason: String) -> Error {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
        Error::Llm { backend: self.backend(), reason }
    }

    fn down(&self, reason: String) -> Error {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
        Error::Unavailable { backend: self.backend(), reason }
    }

    /// Asks the server for a one-token reply (with the usual retries), so that a run can refuse
    /// to start against a server that is not there: any failure is [`Error::Unavailable`].
    pub fn check_health(&self) -> Result<()> {
        let params =
            super::GenerationParams { max_tokens: 1, temperature: 0.0, ..Default::default() };
        let probe = Request::new(vec![super::Message::user("Reply with OK.")]).with_params(params);
        match self.call(&probe) {
            Ok(_) => Ok(()),
            Err(Error::Llm { backend, reason } | Error::Unavailable { backend, reason }) => {
                Err(Error::Unavailable {
                    backend,
                    reason: format!("the health check before the first step failed: {reason}"),
                })
            }
            Err(other) => Err(other),
        }
    }
}

fn short(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Reads an OpenAI chat-completions response.
fn parse_completion(j: &Json, elapsed: Duration) -> std::result::Result<Reply, String> {
    if let Some(err) = j.get("error") {
        return Err(format!("the server answered with an error: {}", short(&err.to_string())));
    }
    let choice = j
        .pointer("/choices/0")
        .ok_or_else(|| format!("no choices in the response: {}", short(&j.to_string())))?;
    let text = choice
        .pointer("/message/content")
        .and_then(Json::as_str)
        .or_else(|| choice.get("text").and_then(Json::as_str))
        .unwrap_or("")
        .to_string();
    let finish = match choice.get("finish_reason").and_then(Json::as_str) {
        Some("length") => FinishReason::Length,
        _ => FinishReason::Stop,
    };
    let n = |p: &str| j.pointer(p).and_then(Json::as_u64).unwrap_or(0) as usize;
    let usage = Usage {
        prompt_tokens: n("/usage/prompt_tokens"),
        cached_prompt_tokens: n("/usage/prompt_tokens_details/cached_tokens"),
        generated_tokens: n("/usage/completion_tokens"),
    };
    let ms = |p: &str| j.pointer(p).and_then(Json::as_f64).map(|v| v / 1000.0);
    let timings = Timings {
        prefill_s: ms("/timings/prompt_ms").unwrap_or(0.0),
        decode_s: ms("/timings/predicted_ms").unwrap_or(0.0),
        total_s: elapsed.as_secs_f64(),
    };
    Ok(Reply { text, finish, usage, timings })
}

impl Llm for RemoteLlm {
    fn generate(&self, requests: &[Request]) -> Vec<Result<Reply>> {
        let workers = self.config.parallel.clamp(1, requests.len().max(1));
        if workers == 1 {
            return requests.iter().map(|r| self.call(r)).collect();
        }
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<Result<Reply>>>> =
            requests.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests.len() {
                        break;
                    }
                    let r = self.call(&requests[i]);
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                });
            }
        });
        slots
            .into_iter()
            .map(|m| {
                m.into_inner().unwrap_or_else(|e| e.into_inner()).unwrap_or_else(|| {
                    Err(Error::Llm { backend: self.backend(), reason: "no result".into() })
                })
            })
            .collect()
    }

    fn describe(&self) -> String {
        self.backend()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Message;
    use crate::optim::reply_schema::{suggestion_schema, ParamType, SuggestionSchemaOptions};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::Arc;

    /// What the test server does for one connection.
    #[derive(Clone)]
    enum Act {
        Respond(u16, String),
        Sleep(Duration),
    }

    /// A one-thread HTTP server on 127.0.0.1 answering connections with `acts` in order; it
    /// records each request body.
    fn server(acts: Vec<Act>) -> (String, Arc<Mutex<Vec<Json>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            for act in acts {
                let Ok((mut stream, _)) = listener.accept() else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let l = line.trim_end().to_ascii_lowercase();
                    if l.is_empty() {
                        break;
                    }
                    if let Some(v) = l.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                seen.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or(Json::Null));
                match act {
                    Act::Respond(code, text) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                            text.len()
                        );
                    }
                    Act::Sleep(d) => std::thread::sleep(d),
                }
            }
        });
        (format!("http://{addr}/v1"), bodies)
    }

    fn completion(text: &str) -> String {
        json!({
            "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 4}}
        })
        .to_string()
    }

    fn request() -> Request {
        Request::new(vec![Message::system("s"), Message::user("u")]).with_schema(suggestion_schema(
            [("float0", ParamType::Float)],
            &SuggestionSchemaOptions::default(),
        ))
    }

    fn client(url: &str) -> RemoteLlm {
        let mut c = RemoteConfig::new(url, "qwen");
        c.backoff = Duration::from_millis(10);
        c.api_key = Some("k".into());
        RemoteLlm::new(c)
    }

    #[test]
    fn sends_schema_and_reads_reply() {
        let (url, bodies) =
            server(vec![Act::Respond(200, completion("{\"suggestion\": {\"float0\": 1}}"))]);
        let llm = client(&url);
        let r = llm.generate(&[request()]).pop().unwrap().unwrap();
        assert_eq!(r.text, "{\"suggestion\": {\"float0\": 1}}");
        assert_eq!(
            r.usage,
            Usage { prompt_tokens: 12, cached_prompt_tokens: 4, generated_tokens: 5 }
        );
        let b = bodies.lock().unwrap()[0].clone();
        assert_eq!(b["model"], "qwen");
        assert_eq!(b["messages"][1]["content"], "u");
        assert_eq!(b["response_format"]["type"], "json_schema");
        assert_eq!(
            b["response_format"]["json_schema"]["schema"]["properties"]["suggestion"]["required"],
            json!(["float0"])
        );
    }

    #[test]
    fn retries_after_500_then_succeeds() {
        let (url, _) = server(vec![
            Act::Respond(500, "{\"error\": \"busy\"}".into()),
            Act::Respond(429, "{}".into()),
            Act::Respond(200, completion("ok")),
        ]);
        let llm = client(&url);
        let r = llm.generate(&[request()]).pop().unwrap().unwrap();
        assert_eq!(r.text, "ok");
        assert_eq!(llm.retries(), 2);
    }

    #[test]
    fn gives_up_after_max_retries_and_does_not_retry_400() {
        let (url, _) = server(vec![Act::Respond(503, "{}".into()); 4]);
        let mut llm = client(&url);
        llm.config.max_retries = 3;
        let e = llm.generate(&[request()]).pop().unwrap().unwrap_err().to_string();
        assert!(e.contains("HTTP 503") && e.contains("4 tries"), "{e}");
        let (url, _) = server(vec![Act::Respond(400, "{\"error\": \"bad\"}".into())]);
        let llm = client(&url);
        let e = llm.generate(&[request()]).pop().unwrap().unwrap_err().to_string();
        assert!(e.contains("HTTP 400"), "{e}");
        assert_eq!(llm.retries(), 0);
    }

    #[test]
    fn times_out() {
        let (url, _) = server(vec![Act::Sleep(Duration::from_secs(3))]);
        let mut c = RemoteConfig::new(url, "m");
        c.timeout = Duration::from_millis(300);
        let llm = RemoteLlm::new(c);
        let t = Instant::now();
        let e = llm.generate(&[request()]).pop().unwrap().unwrap_err().to_string();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(e.to_lowercase().contains("timed out") || e.contains("timeout"), "{e}");
    }

    #[test]
    fn connection_refused_is_an_error_per_request() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut c = RemoteConfig::new(format!("http://127.0.0.1:{port}/v1"), "m");
        c.max_retries = 1;
        c.backoff = Duration::from_millis(5);
        let llm = RemoteLlm::new(c);
        let r = llm.generate(&[request(), request()]);
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|x| x.is_err()));
    }

    #[test]
    fn the_health_check_tells_a_live_server_from_a_missing_one() {
        let (url, bodies) = server(vec![Act::Respond(200, completion("OK"))]);
        client(&url).check_health().unwrap();
        assert_eq!(bodies.lock().unwrap()[0]["max_tokens"], 1, "the probe asks for one token");
        // Nothing listening: unavailable after the retries.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut c = RemoteConfig::new(format!("http://127.0.0.1:{port}/v1"), "m");
        c.max_retries = 1;
        c.backoff = Duration::from_millis(5);
        let e = RemoteLlm::new(c).check_health().unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
        assert!(e.to_string().contains("health check") && e.to_string().contains("2 tries"), "{e}");
        // A garbage URL: unavailable at once.
        let e = RemoteLlm::new(RemoteConfig::new("not a url", "m")).check_health().unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
        // Something that answers, but not an OpenAI-compatible server.
        let (url, _) = server(vec![Act::Respond(404, "<html>no</html>".into())]);
        let e = client(&url).check_health().unwrap_err();
        assert!(
            matches!(e, Error::Unavailable { .. }) && e.to_string().contains("HTTP 404"),
            "{e:?}"
        );
        let (url, _) = server(vec![Act::Respond(200, "<html>hello</html>".into())]);
        let e = client(&url).check_health().unwrap_err();
        assert!(
            matches!(e, Error::Unavailable { .. }) && e.to_string().contains("not JSON"),
            "{e:?}"
        );
    }

    #[test]
    fn a_server_gone_after_retries_is_unavailable_but_a_bad_request_is_not() {
        let (url, _) = server(vec![Act::Respond(503, "{}".into()); 2]);
        let mut llm = client(&url);
        llm.config.max_retries = 1;
        assert!(matches!(
            llm.generate(&[request()]).pop().unwrap(),
            Err(Error::Unavailable { .. })
        ));
        let (url, _) = server(vec![Act::Respond(400, "{\"error\": \"context too long\"}".into())]);
        assert!(matches!(
            client(&url).generate(&[request()]).pop().unwrap(),
            Err(Error::Llm { .. })
        ));
    }

    #[test]
    fn batch_keeps_order_with_errors_per_request() {
        let (url, _) = server(vec![
            Act::Respond(200, completion("a")),
            Act::Respond(400, "{}".into()),
            Act::Respond(200, completion("c")),
        ]);
        let mut llm = client(&url);
        llm.config.parallel = 1;
        let r = llm.generate(&[request(), request(), request()]);
        assert_eq!(r[0].as_ref().unwrap().text, "a");
        assert!(r[1].is_err());
        assert_eq!(r[2].as_ref().unwrap().text, "c");
    }

    #[test]
    fn config_from_arguments_and_env() {
        assert_eq!(
            RemoteConfig::new("http://h/v1/", "m").endpoint(),
            "http://h/v1/chat/completions"
        );
        assert_eq!(
            RemoteConfig::new("http://h/v1/chat/completions", "m").endpoint(),
            "http://h/v1/chat/completions"
        );
        let c =
            RemoteConfig::resolve(Some("http://127.0.0.1:1/v1"), Some("mm"), Some("key")).unwrap();
        assert_eq!((c.model.as_str(), c.api_key.as_deref()), ("mm", Some("key")));
    }
}
