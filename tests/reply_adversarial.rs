//! An adversarial corpus for the reply parser (issue #16): values that are not values, number
//! spellings JSON does not have, stray braces, and sizes no token cap allows. Each case says what
//! a correct parser does with it: read a value exactly, or refuse it with a reason that names it.
//! The test prints the tally (read exactly / refused with the reason / wrong) and fails on any
//! wrong one.

use opto::optim::parse_reply;
use serde_json::{json, Value as Json};

enum Want {
    /// `x` is read as exactly this value.
    Value(Json),
    /// `x` is refused, and the reason contains this text.
    Refused(&'static str),
}

fn cases() -> Vec<(&'static str, String, Want)> {
    use Want::*;
    let s = |x: &str| format!(r#"{{"reasoning": "r", "suggestion": {{"x": {x}}}}}"#);
    let stray = format!("{}{}", "{".repeat(100), r#" {"suggestion": {"x": 7}}"#);
    let stray_spaced = format!("{} {}", "{ ".repeat(300), r#"{"suggestion": {"x": 8}}"#);
    vec![
        ("sum", s("2+3"), Refused("expression")),
        ("sum with spaces", s("2 + 3"), Refused("expression")),
        ("product", s("2 * 3.5"), Refused("expression")),
        ("quotient", s("10 / 4"), Refused("expression")),
        ("power", s("2 ** 10"), Refused("expression")),
        ("difference", s("5 - 3"), Refused("expression")),
        ("call", s("abs(-3)"), Refused("bare word")),
        ("bare word", s("foo"), Refused("bare word")),
        ("unit", s("5px"), Refused("expression")),
        ("date", s("2024-01-01"), Refused("expression")),
        ("two dots", s("1.2.3"), Refused("not a number")),
        ("expression in a list", s("[1, 2+3]"), Refused("expression")),
        ("hex", s("0x10"), Value(json!(16))),
        ("hex upper", s("0XFF"), Value(json!(255))),
        ("negative hex", s("-0x10"), Value(json!(-16))),
        ("octal", s("0o17"), Value(json!(15))),
        ("binary", s("0b101"), Value(json!(5))),
        ("hex without digits", s("0x"), Refused("no digits")),
        ("huge hex", s("0xFFFFFFFFFFFFFFFFFFFF"), Refused("64-bit integer")),
        ("NaN", s("NaN"), Refused("NaN")),
        ("nan", s("nan"), Refused("nan")),
        ("Infinity", s("Infinity"), Refused("finite")),
        ("-Infinity", s("-Infinity"), Refused("finite")),
        ("inf", s("inf"), Refused("finite")),
        ("1e400", s("1e400"), Refused("too large")),
        ("-1e400", s("-1e400"), Refused("too large")),
        ("1e308", s("1e308"), Value(json!(1e308))),
        ("1e-400 underflows to 0", s("1e-400"), Value(json!(0.0))),
        ("leading dot", s(".5"), Value(json!(0.5))),
        ("trailing dot", s("5."), Value(json!(5.0))),
        ("plus", s("+7"), Value(json!(7))),
        ("underscores", s("1_000"), Value(json!(1000))),
        ("exponent", s("1E+3"), Value(json!(1000.0))),
        ("negative zero", s("-0.0"), Value(json!(-0.0))),
        ("100 stray braces", stray, Value(json!(7))),
        ("300 stray braces with spaces", stray_spaced, Value(json!(8))),
        (
            "neighbours survive a refused value",
            r#"{"suggestion": {"a": 1, "x": 2+2, "b": 3}}"#.to_string(),
            Refused("expression"),
        ),
    ]
}

#[test]
fn adversarial_values_are_read_exactly_or_refused_with_their_reason() {
    let (mut exact, mut refused, mut wrong) = (0, 0, Vec::new());
    for (name, text, want) in cases() {
        let parsed = parse_reply(&text);
        let outcome = match (&parsed, &want) {
            (Ok(p), Want::Value(v))
                if p.suggestion.get("x") == Some(v) && p.rejected.is_empty() =>
            {
                Some(true)
            }
            (Ok(p), Want::Refused(why))
                if !p.suggestion.contains_key("x")
                    && p.rejected.get("x").is_some_and(|(_, r)| r.contains(why)) =>
            {
                Some(false)
            }
            _ => None,
        };
        match outcome {
            Some(true) => exact += 1,
            Some(false) => refused += 1,
            None => wrong.push(format!("{name}: {parsed:?}")),
        }
    }
    println!(
        "adversarial corpus: {exact} read exactly, {refused} refused with the reason, {} wrong",
        wrong.len()
    );
    assert!(wrong.is_empty(), "{wrong:#?}");
    // A refused value does not take its neighbours with it.
    let p = parse_reply(r#"{"suggestion": {"a": 1, "x": 2+2, "b": 3}}"#).unwrap();
    assert_eq!((p.suggestion.get("a"), p.suggestion.get("b")), (Some(&json!(1)), Some(&json!(3))));
}

#[test]
fn a_refused_value_reaches_the_model_as_a_rejected_suggestion() {
    use opto::graph::Graph;
    use opto::optim::{Optimizer, OptoPrime};
    use std::sync::Arc;
    let g = Graph::new();
    let x = g.param_named("x", 1.0);
    let y = &x * 2;
    let llm = Arc::new(opto::llm::scripted::ScriptedLlm::new(vec![
        r#"{"reasoning": "r", "suggestion": {"x": 2+3}}"#.to_string(),
    ]));
    let mut opt = OptoPrime::new(vec![x.clone()], llm);
    opt.zero_feedback();
    y.backward("make it bigger").unwrap();
    let report = opt.step().unwrap();
    assert_eq!(x.value(), opto::graph::Value::Float(1.0), "x was not set to 2");
    let line = serde_json::to_string(&report.updates[0]).unwrap();
    assert!(
        line.contains("rejected") && line.contains("2+3") && line.contains("expression"),
        "{line}"
    );
}

#[test]
fn a_ten_megabyte_reply_is_read_only_up_to_the_cap() {
    let mut text = String::from(r#"{"reasoning": "r", "suggestion": {"x": 4}} "#);
    while text.len() < 10 << 20 {
        text.push_str("{ \"a\": [1, 2, {\"b\": \"");
    }
    let p = parse_reply(&text).unwrap();
    assert_eq!(p.suggestion.get("x"), Some(&json!(4)));
    assert!(p.notes.iter().any(|n| n.contains("only the first")), "{:?}", p.notes);
    // Twenty thousand broken objects first: the object is still found.
    let text = format!("{}{}", "{\"a\": 1 ".repeat(20_000), r#"{"suggestion": {"x": 5}}"#);
    let p = parse_reply(&text).unwrap();
    assert_eq!(p.suggestion.get("x"), Some(&json!(5)));
}
