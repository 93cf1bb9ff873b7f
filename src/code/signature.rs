//! Reading a Python function's header from source text without running anything: where
//! `def name(...)` starts, its parameters, and its docstring. The constraint shown to the LLM and
//! the check of a suggested rewrite are both built on this.

use std::fmt;

/// The header of one top-level function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub name: String,
    /// Parameters as written minus annotations and defaults: `x`, `*args`, `**kw`, and the bare
    /// markers `*` and `/`.
    pub params: Vec<String>,
    /// The `def ...:` header exactly as in the source (it may span lines).
    pub header: String,
    /// The header through the end of the docstring when there is one: the text a rewrite must
    /// start with (REFERENCE §1.5's `signature`).
    pub text: String,
}

impl Signature {
    /// The header of `def fn_name(...)` at top level in `source`.
    pub fn find(source: &str, fn_name: &str) -> Option<Signature> {
        top_level_defs(source).into_iter().find(|s| s.name == fn_name)
    }

    /// The header of the first top-level function in `source`.
    pub fn first(source: &str) -> Option<Signature> {
        top_level_defs(source).into_iter().next()
    }

    /// `(a, b=..., *args)` shown as `(a, b, *args)`.
    pub fn params_text(&self) -> String {
        format!("({})", self.params.join(", "))
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "def {}{}", self.name, self.params_text())
    }
}

/// Every `def` that starts a line at column 0 outside strings and brackets, in source order.
/// Headers that do not parse (no closing parenthesis, no colon) are skipped: the compiler reports those.
pub fn top_level_defs(source: &str) -> Vec<Signature> {
    let mut out = Vec::new();
    for start in statement_starts(source) {
        let rest = &source[start..];
        if let Some(after) = rest.strip_prefix("def") {
            if after.starts_with([' ', '\t']) {
                if let Some(sig) = parse_def(source, start) {
                    out.push(sig);
                }
            }
        }
    }
    out
}

/// Byte offsets of the lines that start a top-level statement: column 0, not inside a string,
/// a bracket or a backslash continuation.
fn statement_starts(source: &str) -> Vec<usize> {
    let b = source.as_bytes();
    let mut starts = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let mut at_line_start = true;
    let mut continued = false;
    while i < b.len() {
        if at_line_start {
            at_line_start = false;
            if depth == 0 && !continued && !matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b'#') {
                starts.push(i);
            }
            continued = false;
        }
        match b[i] {
            b'\n' => {
                at_line_start = true;
                i += 1;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'\\' => {
                if b.get(i + 1) == Some(&b'\n') {
                    continued = true;
                }
                i += 2;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                i += 1;
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'"' | b'\'' => i = skip_string(b, i),
            _ => i += 1,
        }
    }
    starts
}

/// The index just past the string literal that starts at `i` (a quote), or the end of input.
fn skip_string(b: &[u8], i: usize) -> usize {
    let q = b[i];
    let triple = b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q);
    let mut j = if triple { i + 3 } else { i + 1 };
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            c if c == q => {
                if !triple {
                    return j + 1;
                }
                if b.get(j + 1) == Some(&q) && b.get(j + 2) == Some(&q) {
                    return j + 3;
                }
                j += 1;
            }
            b'\n' if !triple => return j,
            _ => j += 1,
        }
    }
    b.len()
}

/// Parses `def name(params) [-> ann]:` starting at `start`, then an optional docstring.
fn parse_def(source: &str, start: usize) -> Option<Signature> {
    let b = source.as_bytes();
    let mut i = start + 3;
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    let name_start = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80) {
        i += 1;
    }
    let name = source[name_start..i].to_string();
    if name.is_empty() {
        return None;
    }
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    if b.get(i) != Some(&b'(') {
        return None;
    }
    let open = i;
    let close = matching_close(b, open)?;
    let params = split_params(&source[open + 1..close]);
    // The colon that ends the header: the first one at depth 0 after `)` (skips `-> dict[str, int]`).
    let mut j = close + 1;
    let mut depth = 0usize;
    let colon = loop {
        match b.get(j)? {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b':' if depth == 0 => break j,
            b'\n' if depth == 0 => return None,
            b'"' | b'\'' => {
                j = skip_string(b, j);
                continue;
            }
            _ => {}
        }
        j += 1;
    };
    let header = source[start..=colon].to_string();
    let text = match docstring_end(b, colon + 1) {
        Some(end) => source[start..end].to_string(),
        None => header.clone(),
    };
    Some(Signature { name, params, header, text })
}

/// The `)` that closes the `(` at `open`, skipping strings and nested brackets.
fn matching_close(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            b'"' | b'\'' => {
                i = skip_string(b, i);
                continue;
            }
            b'#' => {
                i = skip_comment(b, i);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index of the newline (or end) that ends the comment starting at `i`.
fn skip_comment(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] != b'\n' {
        i += 1;
    }
    i
}

/// Parameter names from the text between the parentheses: split at top-level commas, then cut
/// each at its annotation `:` or default `=`.
fn split_params(inner: &str) -> Vec<String> {
    let b = inner.as_bytes();
    let mut pieces = Vec::new();
    let mut depth = 0usize;
    let mut piece_start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                pieces.push(&inner[piece_start..i]);
                piece_start = i + 1;
            }
            b'"' | b'\'' => {
                i = skip_string(b, i);
                continue;
            }
            b'#' => {
                i = skip_comment(b, i);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    pieces.push(&inner[piece_start..]);
    pieces
        .into_iter()
        .map(|p| {
            let p = strip_comments(p);
            let cut = p.find([':', '=']).unwrap_or(p.len());
            p[..cut].chars().filter(|c| !c.is_whitespace()).collect::<String>()
        })
        .filter(|p| !p.is_empty())
        .collect()
}

fn strip_comments(piece: &str) -> String {
    piece.lines().map(|l| l.split('#').next().unwrap_or("")).collect::<Vec<_>>().join(" ")
}

/// The end of a docstring that directly follows a header ending at `from`, if there is one.
fn docstring_end(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        if b.get(i) == Some(&b'#') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        break;
    }
    // An optional string prefix (r, u, R, U) before the quote.
    let mut q = i;
    if matches!(b.get(q), Some(b'r' | b'R' | b'u' | b'U')) {
        q += 1;
    }
    if !matches!(b.get(q), Some(b'"' | b'\'')) {
        return None;
    }
    Some(skip_string(b, q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_params_and_docstring() {
        let src = "import math\n\ndef controller(obs: dict, gain=0.5, *args, **kw) -> list[float]:\n    \"\"\"Returns the action.\n    More.\"\"\"\n    return [0.0]\n";
        let sig = Signature::find(src, "controller").unwrap();
        assert_eq!(sig.params, vec!["obs", "gain", "*args", "**kw"]);
        assert_eq!(sig.header, "def controller(obs: dict, gain=0.5, *args, **kw) -> list[float]:");
        assert!(sig.text.ends_with("More.\"\"\""), "{}", sig.text);
        assert_eq!(sig.to_string(), "def controller(obs, gain, *args, **kw)");
    }

    #[test]
    fn header_spanning_lines_with_defaults_holding_commas() {
        let src = "def f(a,\n      b=(1, 2),  # pair\n      c: dict[str, int] = {'x': 1},\n):\n    return a\n";
        let sig = Signature::first(src).unwrap();
        assert_eq!(sig.params, vec!["a", "b", "c"]);
        assert_eq!(sig.text, sig.header);
    }

    #[test]
    fn nested_and_quoted_defs_are_not_top_level() {
        let src = "x = '''\ndef fake(a):\n'''\nclass K:\n    def method(self):\n        pass\ndef real(b):\n    def inner(c):\n        return c\n    return inner(b)\n";
        let names: Vec<_> = top_level_defs(src).into_iter().map(|s| s.name).collect();
        assert_eq!(names, vec!["real"]);
    }

    #[test]
    fn unparsable_header_is_skipped() {
        assert!(Signature::first("def f(a, b:\n    return a\n").is_none());
        assert!(Signature::first("def (a):\n    pass\n").is_none());
    }
}
