//! The XML-like tags format of the reference's OptoPrimeV2
//! (`<variable><name>..</name><value>..</value></variable>`), the last thing [`super::parse_reply`]
//! tries when a reply holds no object.

use super::{is_terminate, ParsedReply, ReplyFormat};
use indexmap::IndexMap;
use serde_json::Value as Json;

pub(super) fn parse_xml_like(t: &str) -> Option<ParsedReply> {
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
