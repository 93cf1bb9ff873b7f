//! Matching the keys of a reply's suggestion to parameter names: models write `float:0` or
//! ` "Float0" ` for the parameter `float0` and `(int) x=3` for `x`, and a refused value must
//! still reach the parameter it was meant for.

use super::ParsedReply;
use crate::optim::optoprime::update::{Outcome, ParamUpdate};
use indexmap::IndexMap;
use serde_json::Value as Json;

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
pub fn mark_rejected(updates: &mut [ParamUpdate], parsed: &ParsedReply, names: &[String]) {
    if parsed.rejected.is_empty() {
        return;
    }
    let keys: IndexMap<String, Json> =
        parsed.rejected.keys().map(|k| (k.clone(), Json::Null)).collect();
    for (name, (key, _)) in resolve_keys(&keys, names).matched {
        let Some((written, reason)) = parsed.rejected.get(&key) else { continue };
        if let Some(u) =
            updates.iter_mut().find(|u| u.name == name && u.outcome == Outcome::Missing)
        {
            u.outcome = Outcome::Rejected { suggested: written.clone(), reason: reason.clone() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
