//! A corpus of optimizer replies — the shapes small models really produce — with the expected
//! parse result for each, plus a property test that parsing arbitrary text never panics.

use opto::graph::Value;
use opto::optim::optoprime::reply::{parse_relaxed, resolve_keys};
use opto::optim::optoprime::update::coerce;
use opto::optim::{parse_reply, ReplyFormat};
use proptest::prelude::*;
use serde_json::{json, Value as Json};

enum Exp {
    /// The suggestion object, exactly.
    Sugg(Json),
    Terminate,
    Error,
}

fn check(name: &str, text: &str, fmt: Option<ReplyFormat>, exp: Exp) {
    let got = parse_reply(text);
    match exp {
        Exp::Error => assert!(got.is_err(), "{name}: expected an error, got {got:?}"),
        Exp::Terminate => {
            let p = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(p.terminate, "{name}: expected terminate, got {p:?}");
            assert!(p.suggestion.is_empty(), "{name}");
        }
        Exp::Sugg(want) => {
            let p = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!p.terminate, "{name}: unexpected terminate");
            let sugg: Json = Json::Object(p.suggestion.clone().into_iter().collect());
            assert_eq!(sugg, want, "{name}: suggestion");
            if let Some(f) = fmt {
                assert_eq!(p.format, f, "{name}: format");
            }
        }
    }
}

use Exp::*;
use ReplyFormat as F;

#[test]
fn corpus() {
    let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
    let cases: Vec<(&str, &str, Option<ReplyFormat>, Exp)> = vec![
        ("good", r#"{"reasoning": "bigger", "suggestion": {"float0": 2.5}}"#, Some(F::Json), Sugg(json!({"float0": 2.5}))),
        ("good with answer", r#"{"reasoning": "r", "answer": "42", "suggestion": {"x": 1}}"#, Some(F::Json), Sugg(json!({"x": 1}))),
        ("two params", r#"{"reasoning":"r","suggestion":{"a":1,"b":"two"}}"#, Some(F::Json), Sugg(json!({"a": 1, "b": "two"}))),
        ("number as string", r#"{"suggestion": {"float0": "2.5"}}"#, Some(F::Json), Sugg(json!({"float0": "2.5"}))),
        ("fenced json", "```json\n{\"reasoning\": \"r\", \"suggestion\": {\"x\": 3}}\n```", Some(F::Fenced), Sugg(json!({"x": 3}))),
        ("fenced no lang", "```\n{\"suggestion\": {\"x\": 3}}\n```", Some(F::Fenced), Sugg(json!({"x": 3}))),
        ("fenced with prose", "Here is my answer:\n```json\n{\"suggestion\": {\"x\": -1}}\n```\nHope it helps.", Some(F::Fenced), Sugg(json!({"x": -1}))),
        ("text around", "Sure! {\"reasoning\": \"r\", \"suggestion\": {\"x\": 7}} That is all.", Some(F::Embedded), Sugg(json!({"x": 7}))),
        ("prose braces before", "We use {x} here. {\"suggestion\": {\"x\": 7}}", None, Sugg(json!({"x": 7}))),
        ("single quotes", "{'reasoning': 'r', 'suggestion': {'x': 2}}", Some(F::Relaxed), Sugg(json!({"x": 2}))),
        ("trailing commas", "{\"suggestion\": {\"x\": 2,},}", Some(F::Relaxed), Sugg(json!({"x": 2}))),
        ("python literals", "{'suggestion': {'a': True, 'b': False, 'c': None}}", Some(F::Relaxed), Sugg(json!({"a": true, "b": false, "c": null}))),
        ("unquoted keys", "{reasoning: \"r\", suggestion: {x: 4}}", Some(F::Relaxed), Sugg(json!({"x": 4}))),
        ("missing comma", "{\"reasoning\": \"r\"\n\"suggestion\": {\"x\": 4}}", Some(F::Relaxed), Sugg(json!({"x": 4}))),
        ("comments", "{\n// my idea\n\"suggestion\": {\"x\": 4 /* four */}}", Some(F::Relaxed), Sugg(json!({"x": 4}))),
        ("unescaped quotes in reasoning", "{\"reasoning\": \"the \"output\" is small\", \"suggestion\": {\"x\": 5}}", Some(F::Relaxed), Sugg(json!({"x": 5}))),
        ("literal newline in string", "{\"suggestion\": {\"__code0\": \"def f(x):\n    return x\"}}", Some(F::Relaxed), Sugg(json!({"__code0": "def f(x):\n    return x"}))),
        ("truncated after one pair", "{\"reasoning\": \"r\", \"suggestion\": {\"a\": 1, \"b\": \"unfin", Some(F::Truncated), Sugg(json!({"a": 1}))),
        ("truncated in reasoning", "{\"reasoning\": \"I think the value should be", Some(F::Truncated), Sugg(json!({}))),
        ("truncated number", "{\"suggestion\": {\"a\": 1, \"b\": 2.5", Some(F::Truncated), Sugg(json!({"a": 1}))),
        ("truncated nested list", "{\"suggestion\": {\"a\": \"ok\", \"b\": [1, 2", Some(F::Truncated), Sugg(json!({"a": "ok"}))),
        ("missing final brace", "{\"suggestion\": {\"x\": 3}", Some(F::Truncated), Sugg(json!({"x": 3}))),
        ("nested braces in code", r#"{"suggestion": {"__code0": "def f(d):\n    return {'a': {'b': 1}}[d]"}}"#, Some(F::Json), Sugg(json!({"__code0": "def f(d):\n    return {'a': {'b': 1}}[d]"}))),
        ("braces in code, relaxed", "{'suggestion': {'__code0': 'def f():\\n    return {\"k\": [1, {}]}'}}", Some(F::Relaxed), Sugg(json!({"__code0": "def f():\n    return {\"k\": [1, {}]}"}))),
        ("unicode", r#"{"reasoning": "größer → besser ✓", "suggestion": {"text0": "héllo 世界 🎉"}}"#, Some(F::Json), Sugg(json!({"text0": "héllo 世界 🎉"}))),
        ("unicode escapes", r#"{'suggestion': {'s': '\u00e9\ud83c\udf89'}}"#, Some(F::Relaxed), Sugg(json!({"s": "é🎉"}))),
        ("empty", "", None, Error),
        ("whitespace", "   \n\t ", None, Error),
        ("prose only", "I would increase the value a bit.", None, Error),
        ("broken object", "{ this is not json at all", None, Error),
        ("terminate alone", "TERMINATE", None, Terminate),
        ("terminate quoted", "\"TERMINATE\".", None, Terminate),
        ("terminate in reasoning", r#"{"reasoning": "no need to TERMINATE yet", "suggestion": {"x": 9}}"#, Some(F::Json), Sugg(json!({"x": 9}))),
        ("terminate as answer, no suggestion", r#"{"reasoning": "fine", "answer": "TERMINATE", "suggestion": {}}"#, None, Terminate),
        ("terminate as answer with suggestion", r#"{"reasoning": "r", "answer": "TERMINATE", "suggestion": {"x": 1}}"#, None, Sugg(json!({"x": 1}))),
        ("terminate as suggestion", r#"{"reasoning": "r", "suggestion": "TERMINATE"}"#, None, Terminate),
        ("no suggestion key", r#"{"reasoning": "r", "float0": 3.5}"#, Some(F::Json), Sugg(json!({"float0": 3.5}))),
        ("bare object", r#"{"x": 1, "y": 2}"#, Some(F::Json), Sugg(json!({"x": 1, "y": 2}))),
        ("suggestions plural", r#"{"suggestions": {"x": 1}}"#, Some(F::Json), Sugg(json!({"x": 1}))),
        ("suggestion as json string", r#"{"suggestion": "{\"x\": 5}"}"#, None, Sugg(json!({"x": 5}))),
        ("suggestion as name=value text", r#"{"suggestion": "x = 5"}"#, None, Sugg(json!({"x": "5"}))),
        ("suggestion as list", r#"{"suggestion": [{"name": "x", "value": 5}]}"#, None, Sugg(json!({"x": 5}))),
        ("xml v2", "<reasoning>bigger</reasoning>\n<variable>\n<name>float0</name>\n<value>2.5</value>\n</variable>", Some(F::Xml), Sugg(json!({"float0": "2.5"}))),
        ("xml two vars", "<variable><name>a</name><value>1</value></variable><variable><name>b</name><value>x</value></variable>", Some(F::Xml), Sugg(json!({"a": "1", "b": "x"}))),
        ("xml multiline code", "<variable>\n<name>__code0</name>\n<value>\ndef f(x):\n    return x\n</value>\n</variable>", Some(F::Xml), Sugg(json!({"__code0": "def f(x):\n    return x"}))),
        ("xml name attribute", "<variable name=\"x\">3</variable>", Some(F::Xml), Sugg(json!({"x": "3"}))),
        ("xml truncated second", "<variable><name>a</name><value>1</value></variable><variable><name>b</name><val", Some(F::Xml), Sugg(json!({"a": "1"}))),
        ("wrong types kept raw", r#"{"suggestion": {"float0": "abc", "int0": [1]}}"#, Some(F::Json), Sugg(json!({"float0": "abc", "int0": [1]}))),
        ("unknown keys kept raw", r#"{"suggestion": {"float0": 1.0, "divide14": 3}}"#, Some(F::Json), Sugg(json!({"float0": 1.0, "divide14": 3}))),
        ("alias keys kept raw", r#"{"suggestion": {"float:0": 1.0}}"#, Some(F::Json), Sugg(json!({"float:0": 1.0}))),
        ("python tuple value", "{'suggestion': {'x': (1, 2)}}", Some(F::Relaxed), Sugg(json!({"x": [1, 2]}))),
        ("plus sign and underscores", "{suggestion: {x: +1_000}}", Some(F::Relaxed), Sugg(json!({"x": 1000}))),
        ("triple-quoted code", "{'suggestion': {'__code0': \"\"\"def f():\n    return 'a'\"\"\"}}", Some(F::Relaxed), Sugg(json!({"__code0": "def f():\n    return 'a'"}))),
        ("deep nesting", &deep, None, Error),
    ];
    assert!(cases.len() >= 40, "corpus has {} cases", cases.len());
    for (name, text, fmt, exp) in cases {
        check(name, text, fmt, exp);
    }
}

#[test]
fn keys_and_types_after_parsing() {
    let names = vec!["float0".to_string(), "int0".to_string(), "__code0".to_string()];
    let p = parse_reply(r#"{"suggestion": {"Float:0": "2.5", " int0 ": 3.0, "__code:0": "```python\ndef f():\n    return 1\n```", "add3": 1}}"#).unwrap();
    let r = resolve_keys(&p.suggestion, &names);
    assert_eq!(r.unknown, vec!["add3".to_string()]);
    assert_eq!(coerce(&Value::Float(0.0), &r.matched["float0"].1), Ok(Value::Float(2.5)));
    assert_eq!(coerce(&Value::Int(0), &r.matched["int0"].1), Ok(Value::Int(3)));
    assert_eq!(
        coerce(&Value::Code(String::new()), &r.matched["__code0"].1),
        Ok(Value::Code("def f():\n    return 1".into()))
    );
    // wrong types are rejected with a reason, never garbled
    assert!(coerce(&Value::List(vec![Value::Int(1)]), &json!("hello"))
        .unwrap_err()
        .contains("list"));
    assert!(coerce(&Value::Int(1), &json!("3.5")).is_err());
    assert!(coerce(&Value::Float(1.0), &json!("nan")).is_err());
    assert_eq!(
        parse_relaxed("{'a': [1, 2.5, 'x', True]}"),
        Some(json!({"a": [1, 2.5, "x", true]}))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn parsing_arbitrary_text_never_panics(s in "\\PC*") {
        let _ = parse_reply(&s);
        let _ = parse_relaxed(&s);
    }

    #[test]
    fn parsing_json_like_text_never_panics(s in "[{}\\[\\]\"':,\\\\ a-z0-9.TRUEtrue<>/\n-]{0,200}") {
        if let Ok(p) = parse_reply(&s) {
            let names = vec!["a".to_string(), "x".to_string()];
            let r = resolve_keys(&p.suggestion, &names);
            for (_, (_, v)) in r.matched {
                let _ = coerce(&Value::Float(0.0), &v);
                let _ = coerce(&Value::List(vec![]), &v);
                let _ = coerce(&Value::Dict(Default::default()), &v);
            }
        }
    }

    #[test]
    fn prefixes_of_a_good_reply_never_panic(cut in 0usize..80) {
        let good = r#"{"reasoning": "r ✓", "suggestion": {"a": 1, "b": [1, {"c": "d"}]}}"#;
        let s: String = good.chars().take(cut).collect();
        let _ = parse_reply(&s);
    }
}
