//! A relaxed JSON / Python-literal parser for what small models write in place of JSON: single
//! quotes, trailing commas, bare keys, comments, Python's `True/False/None` and tuples, quotes
//! left unescaped inside strings, and objects cut off by the token cap (the complete key/values
//! of a truncated object are kept, each value marked complete or not).
//!
//! It is hand-written rather than a crate: `json5` accepts single quotes and trailing commas but
//! neither Python's `True/False/None`, nor unescaped quotes inside strings, nor a truncated object,
//! which are the three things small models do most.
//!
//! A value that is not a value is refused with its reason ([`LooseValue::Refused`]), never read as
//! something else: an expression (`2+3`), a bare word, `NaN`/`Infinity`, `1e400`. Python's integer
//! literals `0x10`, `0o17`, `0b101` are read exactly.

use crate::util::preview;
use serde_json::Value as Json;

const MAX_DEPTH: usize = 48;

/// A relaxed-parsed value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum LooseValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Parsed>),
    Object(Vec<(String, Parsed)>),
    /// Something in a value's place that is not a value: (as written, why it is refused).
    Refused(String, String),
}

/// A value and whether it was complete (not cut off by the end of the text or a syntax error).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Parsed {
    pub value: LooseValue,
    pub complete: bool,
}

impl LooseValue {
    pub(super) fn from_json(j: Json) -> LooseValue {
        match j {
            Json::Null => LooseValue::Null,
            Json::Bool(b) => LooseValue::Bool(b),
            Json::Number(n) => LooseValue::Number(n),
            Json::String(s) => LooseValue::String(s),
            Json::Array(a) => LooseValue::Array(
                a.into_iter()
                    .map(|v| Parsed { value: LooseValue::from_json(v), complete: true })
                    .collect(),
            ),
            Json::Object(o) => LooseValue::Object(
                o.into_iter()
                    .map(|(k, v)| (k, Parsed { value: LooseValue::from_json(v), complete: true }))
                    .collect(),
            ),
        }
    }

    /// The first refused part of this value, if any: (as written, why).
    pub(super) fn first_bad(&self) -> Option<(&str, &str)> {
        match self {
            LooseValue::Refused(written, reason) => Some((written, reason)),
            LooseValue::Array(items) => items.iter().find_map(|p| p.value.first_bad()),
            LooseValue::Object(pairs) => pairs.iter().find_map(|(_, p)| p.value.first_bad()),
            _ => None,
        }
    }

    pub(super) fn as_text(&self) -> Option<String> {
        match self {
            LooseValue::String(s) => Some(s.clone()),
            LooseValue::Null => None,
            other => other.clone().into_json_complete().map(|j| j.to_string()),
        }
    }

    /// Plain JSON when every part is complete.
    pub(super) fn into_json_complete(self) -> Option<Json> {
        Some(match self {
            LooseValue::Null => Json::Null,
            LooseValue::Bool(b) => Json::Bool(b),
            LooseValue::Number(n) => Json::Number(n),
            LooseValue::String(s) => Json::String(s),
            LooseValue::Refused(..) => return None,
            LooseValue::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for p in a {
                    if !p.complete {
                        return None;
                    }
                    out.push(p.value.into_json_complete()?);
                }
                Json::Array(out)
            }
            LooseValue::Object(o) => {
                let mut out = serde_json::Map::new();
                for (k, p) in o {
                    if !p.complete {
                        return None;
                    }
                    out.insert(k, p.value.into_json_complete()?);
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
    v.value.into_json_complete()
}

pub(crate) struct Parser<'a> {
    c: &'a [char],
    pub(super) i: usize,
    /// Values it may still start; each costs one. Keeps pathological nesting (`[[[[...`) linear
    /// together with the caller's budget.
    pub(super) budget: usize,
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
    fn refuse_expression(&mut self, start: usize, what: &str) -> Parsed {
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
        Parsed { value: LooseValue::Refused(written, reason), complete: self.i < self.c.len() }
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
    pub(crate) fn value(&mut self, depth: usize) -> Option<Parsed> {
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
                Some(Parsed { value: LooseValue::String(s), complete })
            }
            c if c == '-' || c == '+' || c == '.' || c.is_ascii_digit() => self.number(),
            c if c.is_alphabetic() => {
                let start = self.i;
                while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    self.i += 1;
                }
                let word: String = self.c[start..self.i].iter().collect();
                let v = match word.as_str() {
                    "true" | "True" => LooseValue::Bool(true),
                    "false" | "False" => LooseValue::Bool(false),
                    "null" | "None" | "undefined" => LooseValue::Null,
                    w if non_finite(w).is_some() => {
                        let reason = non_finite(w).unwrap_or_default();
                        return Some(Parsed {
                            value: LooseValue::Refused(word.clone(), reason),
                            complete: true,
                        });
                    }
                    _ => {
                        return Some(self.refuse_expression(start, "a bare word or an expression"))
                    }
                };
                // A literal at the very end may be a cut-off longer word; accept it anyway: the
                // three literals are not prefixes of anything a model writes as a value.
                Some(Parsed { value: v, complete: true })
            }
            _ => None,
        }
    }

    fn object(&mut self, depth: usize) -> Parsed {
        self.i += 1; // '{'
        let mut pairs: Vec<(String, Parsed)> = Vec::new();
        loop {
            self.ws();
            let Some(c) = self.peek() else {
                return Parsed { value: LooseValue::Object(pairs), complete: false };
            };
            match c {
                '}' => {
                    self.i += 1;
                    return Parsed { value: LooseValue::Object(pairs), complete: true };
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
                    return Parsed { value: LooseValue::Object(pairs), complete: false };
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
                    return Parsed { value: LooseValue::Object(pairs), complete: false };
                }
                self.c[start..self.i].iter().collect()
            };
            self.ws();
            match self.peek() {
                Some(':') | Some('=') => self.i += 1,
                _ => return Parsed { value: LooseValue::Object(pairs), complete: false },
            }
            self.ws();
            match self.value(depth + 1) {
                None => return Parsed { value: LooseValue::Object(pairs), complete: false },
                Some(v) => {
                    let complete = v.complete;
                    pairs.push((key, v));
                    if !complete {
                        return Parsed { value: LooseValue::Object(pairs), complete: false };
                    }
                }
            }
        }
    }

    fn array(&mut self, depth: usize, close: char) -> Parsed {
        self.i += 1;
        let mut items = Vec::new();
        loop {
            self.ws();
            let Some(c) = self.peek() else {
                return Parsed { value: LooseValue::Array(items), complete: false };
            };
            if c == close {
                self.i += 1;
                return Parsed { value: LooseValue::Array(items), complete: true };
            }
            if c == ',' {
                self.i += 1;
                continue;
            }
            match self.value(depth + 1) {
                None => return Parsed { value: LooseValue::Array(items), complete: false },
                Some(v) => {
                    let complete = v.complete;
                    items.push(v);
                    if !complete {
                        return Parsed { value: LooseValue::Array(items), complete: false };
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

    fn number(&mut self) -> Option<Parsed> {
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
                Some(reason) => Some(Parsed {
                    value: LooseValue::Refused(self.c[start..self.i].iter().collect(), reason),
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
                    Ok(v) => {
                        LooseValue::Number(serde_json::Number::from(if negative { -v } else { v }))
                    }
                    Err(_) if digits.is_empty() => {
                        LooseValue::Refused(written.clone(), format!("`{written}` has no digits"))
                    }
                    Err(_) => LooseValue::Refused(
                        written.clone(),
                        format!("{written} does not fit a 64-bit integer"),
                    ),
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
            LooseValue::Number(serde_json::Number::from(i))
        } else {
            match text.parse::<f64>() {
                Ok(f) => match serde_json::Number::from_f64(f) {
                    Some(n) => LooseValue::Number(n),
                    None => LooseValue::Refused(
                        written.clone(),
                        format!("{written} is too large for a 64-bit float"),
                    ),
                },
                // a lone sign or dot: no number starts here
                Err(_) if !text.chars().any(|c| c.is_ascii_digit()) => {
                    self.i = start;
                    return None;
                }
                Err(_) => {
                    LooseValue::Refused(written.clone(), format!("`{written}` is not a number"))
                }
            }
        };
        Some(self.after_number(start, v, at_end))
    }

    /// A number followed by an operator, a call or a letter (`2+3`, `2 * x`, `3(4)`, `5px`) is
    /// part of an expression: refused as a whole, never read as its first number. A number at
    /// the very end of the text may have lost digits: incomplete.
    fn after_number(&mut self, start: usize, v: LooseValue, at_end: bool) -> Parsed {
        if at_end {
            return Parsed { value: v, complete: false };
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
        Parsed { value: v, complete: true }
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
    fn relaxed_python_literals() {
        assert_eq!(parse_relaxed("[1, 'a', None, (2, 3)]"), Some(json!([1, "a", null, [2, 3]])));
        assert_eq!(parse_relaxed("{'k': False}"), Some(json!({"k": false})));
        assert_eq!(parse_relaxed("[1, 2"), None);
    }
}
