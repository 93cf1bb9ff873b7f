//! Parsing an optimizer reply into reasoning, answer and suggestion — never panics.
//!
//! Small models wrap JSON in code fences, put prose around it, use single quotes, trailing commas
//! and Python literals, run into the token cap mid-object, or answer in the XML-like format of the
//! reference's OptoPrimeV2. [`parse_reply`] tries, in order: strict JSON; the contents of code
//! fences; an embedded JSON object; a relaxed JSON parser (our own, in `crate::optim::relaxed_json`,
//! which says why it is not a crate) that also recovers the complete key/values of a truncated
//! object; XML-like `<variable>` tags (in `xml`).
//!
//! This module finds the object in a reply and turns it into a [`ParsedReply`]. Matching the
//! suggestion's keys to parameter names is in `keys`; [`resolve_keys`], [`normalize_key`],
//! [`mark_rejected`] and [`parse_relaxed`] are re-exported here.
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

mod keys;
mod xml;

pub use crate::optim::relaxed_json::parse_relaxed;
pub use keys::{mark_rejected, normalize_key, resolve_keys, Resolved};

use crate::error::{Error, Result};
use crate::optim::relaxed_json::{LooseValue, Parsed, Parser};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use xml::parse_xml_like;

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

type Pairs = Vec<(String, Parsed)>;

fn find_object(t: &str) -> Option<(Pairs, ReplyFormat)> {
    // 1. strict, whole reply
    if let Ok(Json::Object(m)) = serde_json::from_str::<Json>(t) {
        return Some((
            m.into_iter()
                .map(|(k, v)| (k, Parsed { value: LooseValue::from_json(v), complete: true }))
                .collect(),
            ReplyFormat::Json,
        ));
    }
    // 2. fences
    for block in fenced_blocks(t) {
        if let Ok(Json::Object(m)) = serde_json::from_str::<Json>(block.trim()) {
            return Some((
                m.into_iter()
                    .map(|(k, v)| (k, Parsed { value: LooseValue::from_json(v), complete: true }))
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
            Some(Parsed { value: LooseValue::Object(pairs), complete: true }) => {
                let end = indexed.get(p.i).map_or(t.len(), |(b, _)| *b);
                match serde_json::from_str::<Json>(&t[indexed[start].0..end]) {
                    Ok(Json::Object(m)) => (
                        m.into_iter()
                            .map(|(k, v)| {
                                (k, Parsed { value: LooseValue::from_json(v), complete: true })
                            })
                            .collect::<Vec<_>>(),
                        ReplyFormat::Embedded,
                    ),
                    _ => (pairs, ReplyFormat::Relaxed),
                }
            }
            Some(Parsed { value: LooseValue::Object(pairs), complete: false }) => {
                (pairs, ReplyFormat::Truncated)
            }
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

fn score_object(obj: &[(String, Parsed)], _fmt: ReplyFormat) -> u8 {
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

fn from_object(obj: Vec<(String, Parsed)>, format: ReplyFormat) -> ParsedReply {
    let mut notes = Vec::new();
    if format == ReplyFormat::Truncated {
        notes.push("the reply was cut off; only its complete key/values were used".to_string());
    }
    let mut reasoning = None;
    let mut answer = None;
    let mut suggestion_raw: Option<(String, Parsed)> = None;
    let mut rest: Vec<(String, Parsed)> = Vec::new();
    for (k, pv) in obj {
        let v = &pv.value;
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
        Some((_, Parsed { value: LooseValue::Object(pairs), .. })) => {
            collect_pairs(pairs, &mut suggestion, &mut rejected, &mut notes);
        }
        Some((_, Parsed { value: LooseValue::String(s), .. })) => {
            if is_terminate(&s) {
                terminate = true;
            } else {
                // A JSON object written as a string, or `name = value` lines.
                let inner: Vec<char> = s.trim().chars().collect();
                let mut p = Parser::over(&inner, 0);
                if let Some(Parsed { value: LooseValue::Object(pairs), .. }) =
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
        Some((_, Parsed { value: LooseValue::Array(items), .. })) => {
            // [{"name": "x", "value": 1}, ...]
            for it in items {
                if let LooseValue::Object(pairs) = it.value {
                    let m: IndexMap<String, LooseValue> =
                        pairs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v.value)).collect();
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
    pairs: Vec<(String, Parsed)>,
    out: &mut IndexMap<String, Json>,
    rejected: &mut IndexMap<String, (String, String)>,
    notes: &mut Vec<String>,
) {
    for (k, p) in pairs {
        if !p.complete {
            notes.push(format!("the value of `{k}` was cut off; dropped"));
            continue;
        }
        if let Some((written, reason)) = p.value.first_bad() {
            notes.push(format!("the value of `{k}` was rejected: {reason}"));
            rejected.entry(k).or_insert_with(|| (written.to_string(), reason.to_string()));
            continue;
        }
        match p.value.into_json_complete() {
            Some(j) => {
                out.entry(k).or_insert(j);
            }
            None => notes.push(format!("the value of `{k}` was cut off; dropped")),
        }
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
}
