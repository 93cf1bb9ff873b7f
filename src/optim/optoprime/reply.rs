//! Parsing an optimizer reply into reasoning, answer and suggestion — never panics.
//!
//! Small models wrap JSON in code fences, put prose around it, use single quotes, trailing commas
//! and Python literals, run into the token cap mid-object, or answer in the XML-like format of the
//! reference's OptoPrimeV2. [`parse_reply`] tries, in order: strict JSON; the contents of code
//! fences; an embedded JSON object; a relaxed JSON parser (our own, see below) that also recovers
//! the complete key/values of a truncated object; XML-like `<variable>` tags.
//!
//! The relaxed parser is hand-written rather than a crate: `json5` accepts single quotes and trailing
//! commas but neither Python's `True/False/None`, nor unescaped quotes inside strings, nor a
//! truncated object, which are the three things small models do most.
//!
//! `TERMINATE` ends a step only when it is the whole reply, or the whole `answer` with no
//! suggestion given — never because the word appears somewhere (a reference bug).
//!
//! A value that is not a value is rejected with its reason, never read as something else: an
//! expression (`2+3` used to read as 2), a bare word, `NaN`/`Infinity` (JSON has no such
//! numbers), `1e400` (no 64-bit float holds it). Python's integer literals `0x10`, `0o17`,
//! `0b101` are read exactly (`0x10` used to read as 0). The work is linear in the reply, which is
//! cut at [`MAX_REPLY_CHARS`]: the scan for an object tries every `{` against one shared budget
//! instead of at most 64 of them, so an object after 100 stray braces is found and a 10 MB reply
//! costs milliseconds, not half a minute.

use crate::error::{Error, Result};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// How the reply's object was found (what repair it needed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyFormat {
    /// The whole reply is one strict JSON object.
    Json,
    /// Strict JSON inside a ``` fence.
    Fenced,
    /// Strict JSON with text around it.
    Embedded,
    /// Needed the relaxed parser (quotes, commas, Python literals, bare keys).
    Relaxed,
    /// The object was cut off; only its complete key/values were kept.
    Truncated,
    /// XML-like `<variable><name>..</name><value>..</value></variable>` tags.
    Xml,
    /// The reply is just `TERMINATE`.
    Terminate,
}

/// A parsed reply. Suggestion keys are as the model wrote them; match them to parameters with
/// [`resolve_keys`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParsedReply {
    pub reasoning: Option<String>,
    pub answer: Option<String>,
    pub suggestion: IndexMap<String, Json>,
    /// The model asked to stop: nothing should change.
    pub terminate: bool,
    pub format: ReplyFormat,
    /// Repairs and oddities worth reporting ("no suggestion key: used the whole object", ...).
    pub notes: Vec<String>,
    /// Suggested values that were refused, by key as written: (the value as written, why).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub rejected: IndexMap<String, (String, String)>,
}

const MAX_DEPTH: usize = 48;

/// Replies longer than this (in characters) are read only up to it. A reply within any token cap
/// opto allows is far shorter; a server that ignores the cap cannot make parsing unbounded.
pub const MAX_REPLY_CHARS: usize = 1 << 20;

/// Characters the scan for an embedded object may examine per character of the reply, over all
/// the `{` it tries.
const SCAN_WORK_PER_CHAR: usize = 8;

/// Parses a reply. `Err(Error::Reply)` when it holds neither an object, nor tags, nor `TERMINATE`.
pub fn parse_reply(text: &str) -> Result<ParsedReply> {
    parse_reply_limited(text, MAX_REPLY_CHARS)
}

/// [`parse_reply`] reading at most `max_chars` characters of the reply (a note says when it cut).
pub fn parse_reply_limited(text: &str, max_chars: usize) -> Result<ParsedReply> {
    let (head, cut) = match text.char_indices().nth(max_chars) {
        Some((byte, _)) => (&text[..byte], true),
        None => (text, false),
    };
    let mut parsed = parse_whole(head)?;
    if cut {
        parsed.notes.push(format!(
            "the reply had more than {max_chars} characters; only the first {max_chars} were read"
        ));
    }
    Ok(parsed)
}

fn parse_whole(text: &str) -> Result<ParsedReply> {
    let t = text.trim();
    if t.is_empty() {
        return Err(Error::Reply("the reply is empty".into()));
    }
    if is_terminate(t) {
        return Ok(ParsedReply {
            reasoning: None,
            answer: None,
            suggestion: IndexMap::new(),
            terminate: true,
            format: ReplyFormat::Terminate,
            notes: vec![],
            rejected: IndexMap::new(),
        });
    }
    if let Some((obj, format)) = find_object(t) {
        return Ok(from_object(obj, format));
    }
    if let Some(p) = parse_xml_like(t) {
        return Ok(p);
    }
    let mut what = "no JSON object or <variable> tags found".to_string();
    if t.contains('{') {
        what = "the JSON object could not be read".into();
    }
    Err(Error::Reply(format!("{what} in: {}", preview(t, 120))))
}

pub use crate::util::preview;

/// `TERMINATE`, alone (quotes, backticks, a final period and case ignored).
pub fn is_terminate(s: &str) -> bool {
    let t =
        s.trim_matches(|c: char| matches!(c, '"' | '\'' | '`' | '.' | '!') || c.is_whitespace());
    t.eq_ignore_ascii_case("terminate")
}

// ---------------------------------------------------------------------------------------------
// Locating the object

type Pairs = Vec<(String, P)>;

fn find_object(t: &str) -> Option<(Pairs, ReplyFormat)> {
    // 1. strict, whole reply
    if let Ok(Json::Object(m)) = serde_json::from_str::<Json>(t) {
        return Some((
            m.into_iter().map(|(k, v)| (k, P { v: Lv::from_json(v), complete: true })).collect(),
            ReplyFormat::Json,
        ));
    }
    // 2. fences
    for block in fenced_blocks(t) {
        if let Ok(Json::Object(m)) = serde_json::from_str::<Json>(block.trim()) {
            return Some((
                m.into_iter()
                    .map(|(k, v)| (k, P { v: Lv::from_json(v), complete: true }))
                    .collect(),
                ReplyFormat::Fenced,
            ));
        }
    }
    // 3. scan every '{' under one work budget: relaxed first (it finds where the object ends),
    //    then strict JSON on exactly that span; keep the best object.
    let indexed: Vec<(usize, char)> = t.char_indices().collect();
    let chars: Vec<char> = indexed.iter().map(|(_, c)| *c).collect();
    let mut budget = SCAN_WORK_PER_CHAR.saturating_mul(chars.len()).saturating_add(4096);
    let mut best: Option<(Pairs, ReplyFormat, u8)> = None;
    for start in (0..chars.len()).filter(|&i| chars[i] == '{') {
        if budget == 0 {
            break;
        }
        let mut p = Parser::over(&chars, start);
        p.budget = budget;
        let value = p.value(0);
        budget = budget.saturating_sub(p.i.saturating_sub(start).max(1)).min(p.budget);
        let candidate = match value {
            Some(P { v: Lv::Obj(pairs), complete: true }) => {
                let end = indexed.get(p.i).map_or(t.len(), |(b, _)| *b);
                match serde_json::from_str::<Json>(&t[indexed[start].0..end]) {
                    Ok(Json::Object(m)) => (
                        m.into_iter()
                            .map(|(k, v)| (k, P { v: Lv::from_json(v), complete: true }))
                            .collect::<Vec<_>>(),
                        ReplyFormat::Embedded,
                    ),
                    _ => (pairs, ReplyFormat::Relaxed),
                }
            }
            Some(P { v: Lv::Obj(pairs), complete: false }) => (pairs, ReplyFormat::Truncated),
            _ => continue,
        };
        let (obj, fmt) = candidate;
        let score = score_object(&obj, fmt);
        if score == 0 {
            continue;
        }
        if best.as_ref().is_none_or(|b| score > b.2) {
            let done = score >= 3;
            best = Some((obj, fmt, score));
            if done {
                break;
            }
        }
    }
    best.map(|(o, f, _)| (o, f))
}

fn score_object(obj: &[(String, P)], _fmt: ReplyFormat) -> u8 {
    if obj.is_empty() {
        return 0;
    }
    let keys: Vec<String> = obj.iter().map(|(k, _)| k.trim().to_ascii_lowercase()).collect();
    if keys.iter().any(|k| is_suggestion_key(k)) {
        3
    } else if keys.iter().any(|k| k == "reasoning" || k == "answer") {
        2
    } else {
        1
    }
}

fn is_suggestion_key(k: &str) -> bool {
    matches!(k, "suggestion" | "suggestions" | "suggested" | "update" | "updates")
}

/// Contents of ``` fences, in order; an unclosed final fence counts (a truncated reply).
fn fenced_blocks(t: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        // skip the language tag up to the end of the line
        let body_start = after.find('\n').map(|i| i + 1).unwrap_or(after.len());
        let tag = &after[..body_start];
        let body_start = if tag.trim().contains('{') { 0 } else { body_start };
        let body = &after[body_start..];
        match body.find("```") {
            Some(close) => {
                out.push(&body[..close]);
                rest = &body[close + 3..];
            }
            None => {
                out.push(body);
                break;
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// From an object to a ParsedReply

fn from_object(obj: Vec<(String, P)>, format: ReplyFormat) -> ParsedReply {
    let mut notes = Vec::new();
    if format == ReplyFormat::Truncated {
        notes.push("the reply was cut off; only its complete key/values were used".to_string());
    }
    let mut reasoning = None;
    let mut answer = None;
    let mut suggestion_raw: Option<(String, P)> = None;
    let mut rest: Vec<(String, P)> = Vec::new();
    for (k, pv) in obj {
        let v = &pv.v;
        let key = k.trim().trim_matches(|c| c == '"' || c == '\'').to_ascii_lowercase();
        match key.as_str() {
            "reasoning" | "reason" | "thought" | "thoughts" | "analysis" | "explanation" => {
                if reasoning.is_none() {
                    reasoning = v.as_text();
                }
            }
            "answer" => answer = v.as_text(),
            k2 if is_suggestion_key(k2) && suggestion_raw.is_none() => {
                suggestion_raw = Some((k, pv))
            }
            _ => rest.push((k, pv)),
        }
    }
    let mut terminate = false;
    let mut suggestion = IndexMap::new();
    let mut rejected = IndexMap::new();
    match suggestion_raw {
        Some((_, P { v: Lv::Obj(pairs), .. })) => {
            collect_pairs(pairs, &mut suggestion, &mut rejected, &mut notes);
        }
        Some((_, P { v: Lv::Str(s), .. })) => {
            if is_terminate(&s) {
                terminate = true;
            } else {
                // A JSON object written as a string, or `name = value` lines.
                let inner: Vec<char> = s.trim().chars().collect();
                let mut p = Parser::over(&inner, 0);
                if let Some(P { v: Lv::Obj(pairs), .. }) =
                    s.trim().starts_with('{').then(|| p.value(0)).flatten()
                {
                    notes.push("the suggestion was an object inside a string".into());
                    collect_pairs(pairs, &mut suggestion, &mut rejected, &mut notes);
                } else {
                    for line in s.lines() {
                        if let Some((k, v)) = line.split_once('=').or_else(|| line.split_once(':'))
                        {
                            let k = k.trim();
                            if !k.is_empty() && !k.contains(' ') {
                                suggestion
                                    .insert(k.to_string(), Json::String(v.trim().to_string()));
                            }
                        }
                    }
                    if suggestion.is_empty() {
                        notes.push(format!(
                            "the suggestion is text, not an object: {}",
                            preview(&s, 80)
                        ));
                    } else {
                        notes.push("the suggestion was `name = value` text".into());
                    }
                }
            }
        }
        Some((_, P { v: Lv::Arr(items), .. })) => {
            // [{"name": "x", "value": 1}, ...]
            for it in items {
                if let Lv::Obj(pairs) = it.v {
                    let m: IndexMap<String, Lv> =
                        pairs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v.v)).collect();
                    let name =
                        m.get("name").or_else(|| m.get("variable")).and_then(|v| v.as_text());
                    let value = m.get("value").and_then(|v| v.clone().into_json_complete());
                    if let (Some(n), Some(v)) = (name, value) {
                        suggestion.insert(n, v);
                    }
                }
            }
            notes.push("the suggestion was a list of name/value objects".into());
        }
        Some((k, _)) => notes.push(format!("`{k}` is not an object; ignored")),
        None => {
            if !rest.is_empty() {
                notes.push("no \"suggestion\" key: the other keys of the object were used".into());
                collect_pairs(rest, &mut suggestion, &mut rejected, &mut notes);
            }
        }
    }
    if !terminate && suggestion.is_empty() && answer.as_deref().is_some_and(is_terminate) {
        terminate = true;
    } else if !suggestion.is_empty() && answer.as_deref().is_some_and(is_terminate) {
        notes
            .push("answer was TERMINATE but a suggestion was given: the suggestion is used".into());
    }
    ParsedReply { reasoning, answer, suggestion, terminate, format, notes, rejected }
}

fn collect_pairs(
    pairs: Vec<(String, P)>,
    out: &mut IndexMap<String, Json>,
    rejected: &mut IndexMap<String, (String, String)>,
    notes: &mut Vec<String>,
) {
    for (k, p) in pairs {
        if !p.complete {
            notes.push(format!("the value of `{k}` was cut off; dropped"));
            continue;
        }
        if let Some((written, reason)) = p.v.first_bad() {
            notes.push(format!("the value of `{k}` was rejected: {reason}"));
            rejected.entry(k).or_insert_with(|| (written.to_string(), reason.to_string()));
            continue;
        }
        match p.v.into_json_complete() {
            Some(j) => {
                out.entry(k).or_insert(j);
            }
            None => notes.push(format!("the value of `{k}` was cut off; dropped")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Key aliases

/// Normalized form of a key: quotes, backticks, a leading `#`, a `(type)` prefix, a `=value`
/// tail, `:` and spaces removed; lowercase. `float:0` and ` "Float0" ` both give `float0`.
pub fn normalize_key(k: &str) -> String {
    let mut s = k
        .trim()
        .trim_matches(|c: char| c == '"' || c == '\'' || c == '`' || c == '#' || c.is_whitespace());
    if s.starts_with('(') {
        if let Some(i) = s.find(')') {
            s = s[i + 1..].trim();
        }
    }
    if let Some(i) = s.find('=') {
        if i > 0 {
            s = &s[..i];
        }
    }
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != ':' && *c != '"' && *c != '\'' && *c != '`')
        .flat_map(|c| c.to_lowercase())
        .collect()
}

/// A suggestion matched to parameter names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resolved {
    /// parameter name → (the key as written, the suggested value), in parameter order.
    pub matched: IndexMap<String, (String, Json)>,
    /// Keys that name no parameter (or a parameter already matched), as written.
    pub unknown: Vec<String>,
}

/// Matches suggestion keys to parameter names: exactly first, then by [`normalize_key`].
pub fn resolve_keys(suggestion: &IndexMap<String, Json>, names: &[String]) -> Resolved {
    let mut found: IndexMap<String, (String, Json)> = IndexMap::new();
    let mut unknown = Vec::new();
    let mut used = vec![false; suggestion.len()];
    for (i, (k, v)) in suggestion.iter().enumerate() {
        if names.iter().any(|n| n == k) && !found.contains_key(k) {
            found.insert(k.clone(), (k.clone(), v.clone()));
            used[i] = true;
        }
    }
    let norm_names: Vec<String> = names.iter().map(|n| normalize_key(n)).collect();
    for (i, (k, v)) in suggestion.iter().enumerate() {
        if used[i] {
            continue;
        }
        let nk = normalize_key(k);
        match norm_names.iter().position(|n| *n == nk && !n.is_empty()) {
            Some(j) if !found.contains_key(&names[j]) => {
                found.insert(names[j].clone(), (k.clone(), v.clone()));
            }
            _ => unknown.push(k.clone()),
        }
    }
    let matched =
        names.iter().filter_map(|n| found.swap_remove(n).map(|x| (n.clone(), x))).collect();
    Resolved { matched, unknown }
}

/// Turns the reply's refused values into `Rejected` outcomes of the parameters they were meant
/// for (so the reason goes back to the model), where nothing else was suggested for them.
pub fn mark_rejected(
    updates: &mut [super::update::ParamUpdate],
    parsed: &ParsedReply,
    names: &[String],
) {
    if parsed.rejected.is_empty() {
        return;
    }
    let keys: IndexMap<String, Json> =
        parsed.rejected.keys().map(|k| (k.clone(), Json::Null)).collect();
    for (name, (key, _)) in resolve_keys(&keys, names).matched {
        let Some((written, reason)) = parsed.rejected.get(&key) else { continue };
        if let Some(u) = updates
            .iter_mut()
            .find(|u| u.name == name && u.outcome == super::update::Outcome::Missing)
        {
            u.outcome = super::update::Outcome::Rejected {
                suggested: written.clone(),
                reason: reason.clone(),
            };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// XML-like tags (the reference's OptoPrimeV2 format)

fn parse_xml_like(t: &str) -> Option<ParsedReply> {
    let lower = t.to_ascii_lowercase();
    if !lower.contains("<variable") && !lower.contains("<reasoning") {
        return None;
    }
    let reasoning = tag_content(t, &lower, "reasoning", 0).map(|(c, _)| c.trim().to_string());
    let answer = tag_content(t, &lower, "answer", 0).map(|(c, _)| c.trim().to_string());
    let mut suggestion = IndexMap::new();
    let mut notes = Vec::new();
    let mut from = 0;
    let mut truncated = false;
    while let Some(open) = lower[from..].find("<variable").map(|i| i + from) {
        // `<variable>` or `<variable name="x">`
        let Some(gt) = lower[open..].find('>').map(|i| i + open) else { break };
        let attrs = &t[open + "<variable".len()..gt];
        let close = lower[gt..].find("</variable>").map(|i| i + gt);
        let body_end = close.unwrap_or(t.len());
        let body = &t[gt + 1..body_end];
        let body_lower = &lower[gt + 1..body_end];
        let name = tag_content(body, body_lower, "name", 0)
            .map(|(c, _)| c.trim().to_string())
            .or_else(|| attr(attrs, "name"));
        let value = tag_content(body, body_lower, "value", 0).map(|(c, _)| c);
        match (name, value, close) {
            (Some(n), Some(v), _) if !n.is_empty() => {
                suggestion.insert(n, Json::String(trim_one_newline(v).to_string()));
            }
            (Some(n), None, Some(_)) if !n.is_empty() && !body_lower.contains("<name") => {
                suggestion.insert(n, Json::String(trim_one_newline(body).to_string()));
            }
            _ => truncated |= close.is_none(),
        }
        match close {
            Some(c) => from = c + "</variable>".len(),
            None => break,
        }
    }
    if truncated {
        notes.push("a <variable> block was cut off; dropped".into());
    }
    if suggestion.is_empty() && reasoning.is_none() {
        return None;
    }
    let terminate = suggestion.is_empty() && answer.as_deref().is_some_and(is_terminate);
    Some(ParsedReply {
        reasoning,
        answer,
        suggestion,
        terminate,
        format: ReplyFormat::Xml,
        notes,
        rejected: IndexMap::new(),
    })
}

fn trim_one_newline(s: &str) -> &str {
    let s = s.strip_prefix("\r\n").or_else(|| s.strip_prefix('\n')).unwrap_or(s);
    let s = s.strip_suffix("\r\n").or_else(|| s.strip_suffix('\n')).unwrap_or(s);
    if s.contains('\n') {
        s
    } else {
        s.trim()
    }
}

/// The content of the first `<tag>…</tag>` at or after `from` (a complete pair only), with the
/// index after the closing tag. `lower` is `t` lowercased (same byte offsets: ASCII lowercasing).
fn tag_content<'a>(t: &'a str, lower: &str, tag: &str, from: usize) -> Option<(&'a str, usize)> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut at = from;
    loop {
        let o = lower[at..].find(&open)? + at;
        let after = o + open.len();
        let next = lower[after..].chars().next()?;
        if next == '>' || next.is_whitespace() {
            let gt = lower[after..].find('>')? + after;
            let c = lower[gt..].find(&close)? + gt;
            return Some((&t[gt + 1..c], c + close.len()));
        }
        at = after;
    }
}

fn attr(attrs: &str, name: &str) -> Option<String> {
    let i = attrs.find(&format!("{name}="))? + name.len() + 1;
    let rest = &attrs[i..];
    let q = rest.chars().next()?;
    if q == '"' || q == '\'' {
        let end = rest[1..].find(q)? + 1;
        Some(rest[1..end].to_string())
    } else {
        Some(rest.split_whitespace().next()?.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// The relaxed JSON parser

/// A relaxed-parsed value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Lv {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    Arr(Vec<P>),
    Obj(Vec<(String, P)>),
    /// Something in a value's place that is not a value: (as written, why it is refused).
    Bad(String, String),
}

/// A value and whether it was complete (not cut off by the end of the text or a syntax error).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct P {
    pub v: Lv,
    pub complete: bool,
}

impl Lv {
    fn from_json(j: Json) -> Lv {
        match j {
            Json::Null => Lv::Null,
            Json::Bool(b) => Lv::Bool(b),
            Json::Number(n) => Lv::Num(n),
            Json::String(s) => Lv::Str(s),
            Json::Array(a) => {
                Lv::Arr(a.into_iter().map(|v| P { v: Lv::from_json(v), complete: true }).collect())
            }
            Json::Object(o) => Lv::Obj(
                o.into_iter()
                    .map(|(k, v)| (k, P { v: Lv::from_json(v), complete: true }))
                    .collect(),
            ),
        }
    }

    /// The first refused part of this value, if any: (as written, why).
    fn first_bad(&self) -> Option<(&str, &str)> {
        match self {
            Lv::Bad(written, reason) => Some((written, reason)),
            Lv::Arr(items) => items.iter().find_map(|p| p.v.first_bad()),
            Lv::Obj(pairs) => pairs.iter().find_map(|(_, p)| p.v.first_bad()),
            _ => None,
        }
    }

    fn as_text(&self) -> Option<String> {
        match self {
            Lv::Str(s) => Some(s.clone()),
            Lv::Null => None,
            other => other.clone().into_json_complete().map(|j| j.to_string()),
        }
    }

    /// Plain JSON when every part is complete.
    fn into_json_complete(self) -> Option<Json> {
        Some(match self {
            Lv::Null => Json::Null,
            Lv::Bool(b) => Json::Bool(b),
            Lv::Num(n) => Json::Number(n),
            Lv::Str(s) => Json::String(s),
            Lv::Bad(..) => return None,
            Lv::Arr(a) => {
                let mut out = Vec::with_capacity(a.len());
                for p in a {
                    if !p.complete {
                        return None;
                    }
                    out.push(p.v.into_json_complete()?);
                }
                Json::Array(out)
            }
            Lv::Obj(o) => {
                let mut out = serde_json::Map::new();
                for (k, p) in o {
                    if !p.complete {
                        return None;
                    }
                    out.insert(k, p.v.into_json_complete()?);
                }
                Json::Object(out)
            }
        })
    }
}

/// Parses relaxed JSON / a Python literal (`[1, 'a', None]`, `{'k': True}`) completely: `None`
/// unless the whole text is one complete value.
pub fn parse_relaxed(text: &str) -> Option<Json> {
    // the trailing space tells the parser a final number is complete
    let chars: Vec<char> = format!("{} ", text.trim()).chars().collect();
    let mut p = Parser::over(&chars, 0);
    let v = p.value(0)?;
    p.ws();
    if !v.complete || p.i < p.c.len() {
        return None;
    }
    v.v.into_json_complete()
}

pub(crate) struct Parser<'a> {
    c: &'a [char],
    i: usize,
    /// Values it may still start; each costs one. Keeps pathological nesting (`[[[[...`) linear
    /// together with the caller's budget.
    budget: usize,
}

impl<'a> Parser<'a> {
    /// A parser of `chars` starting at index `start`.
    pub(crate) fn over(chars: &'a [char], start: usize) -> Self {
        Parser { c: chars, i: start, budget: usize::MAX }
    }

    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }

    /// Consumes what is left of an expression or bare word that began at `start` (up to a `,`,
    /// `;` or line end, or the bracket that closes the surrounding value) and refuses it.
    fn refuse_expression(&mut self, start: usize, what: &str) -> P {
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' if depth == 0 => break,
                ')' | ']' | '}' => depth -= 1,
                ',' | ';' | '\n' if depth == 0 => break,
                _ => {}
            }
            self.i += 1;
        }
        let written: String = self.c[start..self.i].iter().collect::<String>().trim().to_string();
        let reason =
            format!("`{}` is {what}, not a value; write the value itself", preview(&written, 40));
        P { v: Lv::Bad(written, reason), complete: self.i < self.c.len() }
    }

    fn ws(&mut self) {
        loop {
            while self.peek().is_some_and(char::is_whitespace) {
                self.i += 1;
            }
            if self.peek() == Some('/') && self.c.get(self.i + 1) == Some(&'/') {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.i += 1;
                }
                continue;
            }
            if self.peek() == Some('/') && self.c.get(self.i + 1) == Some(&'*') {
                self.i += 2;
                while self.i < self.c.len()
                    && !(self.c[self.i] == '*' && self.c.get(self.i + 1) == Some(&'/'))
                {
                    self.i += 1;
                }
                self.i = (self.i + 2).min(self.c.len());
                continue;
            }
            break;
        }
    }

    /// One value. `None`: no value can start here. Some(incomplete): cut off or broken inside.
    pub(crate) fn value(&mut self, depth: usize) -> Option<P> {
        if depth > MAX_DEPTH || self.budget == 0 {
            return None;
        }
        self.budget -= 1;
        self.ws();
        match self.peek()? {
            '{' => Some(self.object(depth)),
            '[' => Some(self.array(depth, ']')),
            '(' => Some(self.array(depth, ')')),
            '"' | '\'' => {
                let (s, complete) = self.string();
                Some(P { v: Lv::Str(s), complete })
            }
            c if c == '-' || c == '+' || c == '.' || c.is_ascii_digit() => self.number(),
            c if c.is_alphabetic() => {
                let start = self.i;
                while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    self.i += 1;
                }
                let word: String = self.c[start..self.i].iter().collect();
                let v = match word.as_str() {
                    "true" | "True" => Lv::Bool(true),
                    "false" | "False" => Lv::Bool(false),
                    "null" | "None" | "undefined" => Lv::Null,
                    w if non_finite(w).is_some() => {
                        let reason = non_finite(w).unwrap_or_default();
                        return Some(P { v: Lv::Bad(word.clone(), reason), complete: true });
                    }
                    _ => {
                        return Some(self.refuse_expression(start, "a bare word or an expression"))
                    }
                };
                // A literal at the very end may be a cut-off longer word; accept it anyway: the
                // three literals are not prefixes of anything a model writes as a value.
                Some(P { v, complete: true })
            }
            _ => None,
        }
    }

    fn object(&mut self, depth: usize) -> P {
        self.i += 1; // '{'
        let mut pairs: Vec<(String, P)> = Vec::new();
        loop {
            self.ws();
            let Some(c) = self.peek() else { return P { v: Lv::Obj(pairs), complete: false } };
            match c {
                '}' => {
                    self.i += 1;
                    return P { v: Lv::Obj(pairs), complete: true };
                }
                ',' | ';' => {
                    self.i += 1;
                    continue;
                }
                _ => {}
            }
            let key = if c == '"' || c == '\'' {
                let (k, complete) = self.string();
                if !complete {
                    return P { v: Lv::Obj(pairs), complete: false };
                }
                k
            } else {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '-' | '.'))
                {
                    self.i += 1;
                }
                if self.i == start {
                    return P { v: Lv::Obj(pairs), complete: false };
                }
                self.c[start..self.i].iter().collect()
            };
            self.ws();
            match self.peek() {
                Some(':') | Some('=') => self.i += 1,
                _ => return P { v: Lv::Obj(pairs), complete: false },
            }
            self.ws();
            match self.value(depth + 1) {
                None => return P { v: Lv::Obj(pairs), complete: false },
                Some(v) => {
                    let complete = v.complete;
                    pairs.push((key, v));
                    if !complete {
                        return P { v: Lv::Obj(pairs), complete: false };
                    }
                }
            }
        }
    }

    fn array(&mut self, depth: usize, close: char) -> P {
        self.i += 1;
        let mut items = Vec::new();
        loop {
            self.ws();
            let Some(c) = self.peek() else { return P { v: Lv::Arr(items), complete: false } };
            if c == close {
                self.i += 1;
                return P { v: Lv::Arr(items), complete: true };
            }
            if c == ',' {
                self.i += 1;
                continue;
            }
            match self.value(depth + 1) {
                None => return P { v: Lv::Arr(items), complete: false },
                Some(v) => {
                    let complete = v.complete;
                    items.push(v);
                    if !complete {
                        return P { v: Lv::Arr(items), complete: false };
                    }
                }
            }
        }
    }

    /// A quoted string (`"`, `'`, or Python's triple quotes). A quote inside that is not
    /// followed by a delimiter is taken as part of the text (models forget to escape quotes).
    fn string(&mut self) -> (String, bool) {
        let q = self.c[self.i];
        let triple = self.c.get(self.i + 1) == Some(&q) && self.c.get(self.i + 2) == Some(&q);
        self.i += if triple { 3 } else { 1 };
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c == '\\' {
                let Some(&e) = self.c.get(self.i + 1) else {
                    self.i += 1;
                    return (out, false);
                };
                self.i += 2;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    '0' => out.push('\0'),
                    '/' | '\\' | '"' | '\'' => out.push(e),
                    'u' => match self.hex(4) {
                        Some(hi) if (0xD800..0xDC00).contains(&hi) => {
                            if self.c.get(self.i) == Some(&'\\')
                                && self.c.get(self.i + 1) == Some(&'u')
                            {
                                self.i += 2;
                                let lo = self.hex(4).unwrap_or(0);
                                let cp = 0x10000
                                    + ((hi - 0xD800) << 10)
                                    + (lo.wrapping_sub(0xDC00) & 0x3FF);
                                out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                            } else {
                                out.push('\u{FFFD}');
                            }
                        }
                        Some(cp) => out.push(char::from_u32(cp).unwrap_or('\u{FFFD}')),
                        None => {
                            if self.i >= self.c.len() {
                                return (out, false);
                            }
                            out.push_str("\\u");
                        }
                    },
                    'x' => match self.hex(2) {
                        Some(cp) => out.push(char::from_u32(cp).unwrap_or('\u{FFFD}')),
                        None => out.push_str("\\x"),
                    },
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
                continue;
            }
            if c == q {
                if triple {
                    if self.c.get(self.i + 1) == Some(&q) && self.c.get(self.i + 2) == Some(&q) {
                        self.i += 3;
                        return (out, true);
                    }
                } else {
                    // closing only if what follows can follow a string
                    let mut j = self.i + 1;
                    while self
                        .c
                        .get(j)
                        .is_some_and(|c| *c == ' ' || *c == '\t' || *c == '\r' || *c == '\n')
                    {
                        j += 1;
                    }
                    match self.c.get(j) {
                        None | Some(',' | '}' | ']' | ')' | ':' | ';' | '=') => {
                            self.i += 1;
                            return (out, true);
                        }
                        Some('"' | '\'')
                            if j > self.i + 1
                                && self.c[j..].iter().skip(1).take(64).any(|c| *c == ':') =>
                        {
                            // a missing comma before the next key: `"a": "x"\n "b": 1`
                            self.i += 1;
                            return (out, true);
                        }
                        _ => {}
                    }
                }
            }
            out.push(c);
            self.i += 1;
        }
        (out, false)
    }

    fn hex(&mut self, n: usize) -> Option<u32> {
        if self.i + n > self.c.len() {
            self.i = self.c.len();
            return None;
        }
        let s: String = self.c[self.i..self.i + n].iter().collect();
        let v = u32::from_str_radix(&s, 16).ok()?;
        self.i += n;
        Some(v)
    }

    fn number(&mut self) -> Option<P> {
        let start = self.i;
        let negative = self.peek() == Some('-');
        if matches!(self.peek(), Some('-' | '+')) {
            self.i += 1;
        }
        // -Infinity, +inf, -NaN
        if self.peek().is_some_and(char::is_alphabetic) {
            let word_start = self.i;
            while self.peek().is_some_and(char::is_alphanumeric) {
                self.i += 1;
            }
            let word: String = self.c[word_start..self.i].iter().collect();
            return match non_finite(&word) {
                Some(reason) => Some(P {
                    v: Lv::Bad(self.c[start..self.i].iter().collect(), reason),
                    complete: self.i < self.c.len(),
                }),
                None => {
                    self.i = start;
                    None
                }
            };
        }
        // Python's integer literals 0x10, 0o17, 0b101: read exactly.
        if self.peek() == Some('0') {
            if let Some(radix) = self.c.get(self.i + 1).and_then(|c| match c.to_ascii_lowercase() {
                'x' => Some(16),
                'o' => Some(8),
                'b' => Some(2),
                _ => None,
            }) {
                self.i += 2;
                let digits_start = self.i;
                while self.peek().is_some_and(|c| c.is_digit(radix) || c == '_') {
                    self.i += 1;
                }
                let digits: String =
                    self.c[digits_start..self.i].iter().filter(|c| **c != '_').collect();
                let written: String = self.c[start..self.i].iter().collect();
                let at_end = self.i >= self.c.len();
                let v = match i64::from_str_radix(&digits, radix) {
                    Ok(v) => Lv::Num(serde_json::Number::from(if negative { -v } else { v })),
                    Err(_) if digits.is_empty() => {
                        Lv::Bad(written.clone(), format!("`{written}` has no digits"))
                    }
                    Err(_) => {
                        Lv::Bad(written.clone(), format!("{written} does not fit a 64-bit integer"))
                    }
                };
                return Some(self.after_number(start, v, at_end));
            }
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '_'))
        {
            let c = self.c[self.i];
            self.i += 1;
            if (c == 'e' || c == 'E') && matches!(self.peek(), Some('-' | '+')) {
                self.i += 1;
            }
        }
        let at_end = self.i >= self.c.len();
        let written: String = self.c[start..self.i].iter().collect();
        let text: String = written.chars().filter(|c| *c != '_').collect();
        let text = text.strip_prefix('+').unwrap_or(&text).to_string();
        let v = if let Ok(i) = text.parse::<i64>() {
            Lv::Num(serde_json::Number::from(i))
        } else {
            match text.parse::<f64>() {
                Ok(f) => match serde_json::Number::from_f64(f) {
                    Some(n) => Lv::Num(n),
                    None => Lv::Bad(
                        written.clone(),
                        format!("{written} is too large for a 64-bit float"),
                    ),
                },
                // a lone sign or dot: no number starts here
                Err(_) if !text.chars().any(|c| c.is_ascii_digit()) => {
                    self.i = start;
                    return None;
                }
                Err(_) => Lv::Bad(written.clone(), format!("`{written}` is not a number")),
            }
        };
        Some(self.after_number(start, v, at_end))
    }

    /// A number followed by an operator, a call or a letter (`2+3`, `2 * x`, `3(4)`, `5px`) is
    /// part of an expression: refused as a whole, never read as its first number. A number at
    /// the very end of the text may have lost digits: incomplete.
    fn after_number(&mut self, start: usize, v: Lv, at_end: bool) -> P {
        if at_end {
            return P { v, complete: false };
        }
        let mut j = self.i;
        while self.c.get(j).is_some_and(|c| *c == ' ' || *c == '\t') {
            j += 1;
        }
        let comment = self.c.get(j) == Some(&'/') && matches!(self.c.get(j + 1), Some('/' | '*'));
        let continues = match self.c.get(j) {
            _ if comment => false,
            Some(
                '+' | '-' | '*' | '/' | '%' | '^' | '(' | '@' | '&' | '|' | '<' | '>' | '=' | '!',
            ) => true,
            Some(c) => j == self.i && (c.is_alphanumeric() || *c == '_' || *c == '.'),
            None => false,
        };
        if continues {
            return self.refuse_expression(start, "an expression");
        }
        P { v, complete: true }
    }
}

/// Why a word is not a finite number, if it names one of the non-finite ones.
fn non_finite(word: &str) -> Option<String> {
    match word.to_ascii_lowercase().as_str() {
        "nan" => {
            Some(format!("{word} (not a number) is not a value JSON or a float parameter can hold"))
        }
        "inf" | "infinity" => Some(format!("{word} is not a finite number")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_and_relaxed() {
        let p = parse_reply(r#"{"reasoning": "r", "suggestion": {"x": 2.5}}"#).unwrap();
        assert_eq!(p.format, ReplyFormat::Json);
        assert_eq!(p.suggestion["x"], json!(2.5));
        let p = parse_reply("{'suggestion': {'x': True, 'y': None,},}").unwrap();
        assert_eq!(p.format, ReplyFormat::Relaxed);
        assert_eq!(p.suggestion["x"], json!(true));
        assert_eq!(p.suggestion["y"], json!(null));
    }

    #[test]
    fn truncated_keeps_complete_pairs() {
        let p = parse_reply(r#"{"reasoning": "r", "suggestion": {"a": 1, "b": "unfini"#).unwrap();
        assert_eq!(p.format, ReplyFormat::Truncated);
        assert_eq!(p.suggestion.len(), 1);
        assert_eq!(p.suggestion["a"], json!(1));
    }

    #[test]
    fn terminate_only_alone() {
        assert!(parse_reply("TERMINATE").unwrap().terminate);
        let p = parse_reply(r#"{"reasoning": "no need to TERMINATE", "suggestion": {"x": 1}}"#)
            .unwrap();
        assert!(!p.terminate);
    }

    #[test]
    fn keys_resolve_through_aliases() {
        let mut s = IndexMap::new();
        s.insert("float:0".to_string(), json!(1));
        s.insert(" \"Int0\" ".to_string(), json!(2));
        s.insert("zzz".to_string(), json!(3));
        let r = resolve_keys(&s, &["float0".into(), "int0".into()]);
        assert_eq!(r.matched.len(), 2);
        assert_eq!(r.unknown, vec!["zzz".to_string()]);
    }

    #[test]
    fn relaxed_python_literals() {
        assert_eq!(parse_relaxed("[1, 'a', None, (2, 3)]"), Some(json!([1, "a", null, [2, 3]])));
        assert_eq!(parse_relaxed("{'k': False}"), Some(json!({"k": false})));
        assert_eq!(parse_relaxed("[1, 2"), None);
    }
}
