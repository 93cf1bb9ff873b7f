//! Trainable code through the optimizer (scripted LLM, real sandbox): a rewrite that does not
//! compile is rejected before it replaces the working code, its error is fed back in the next
//! prompt, and a later good rewrite fixes the output.

use opto::code::{Limits, MontySandbox, TracedCode};
use opto::graph::{Graph, Value};
use opto::llm::scripted::ScriptedLlm;
use opto::optim::{Optimizer, OptoPrime};
use std::sync::Arc;

const START: &str = "def f(x):\n    \"\"\"Maps x to the output.\"\"\"\n    return x + 1\n";

#[test]
fn a_rewrite_that_does_not_compile_is_rejected_and_fed_back() {
    let g = Graph::new();
    let code = TracedCode::new(&g, START).unwrap();
    let sandbox = MontySandbox::new(Limits::default());
    let broken = r#"{"reasoning": "triple it", "suggestion": {"__code0": "def f(x):\n    \"\"\"Maps x to the output.\"\"\"\n    return x * 3 +\n"}}"#;
    let fixed = r#"{"reasoning": "fix the syntax", "suggestion": {"__code0": "def f(x):\n    \"\"\"Maps x to the output.\"\"\"\n    return x * 3 + 1\n"}}"#;
    let llm = Arc::new(ScriptedLlm::new([broken, fixed]));
    let mut opt = OptoPrime::new(vec![code.param().clone()], llm.clone());
    let mark = g.mark();
    let x = 3;
    let mut outputs = Vec::new();
    for _ in 0..3 {
        g.rewind(mark);
        let input = g.value(x);
        let (output, feedback) = match code.call(&sandbox, &[&input]) {
            Ok(y) => {
                let v = y.value().as_i64().unwrap();
                let fb = if v == 10 {
                    "Correct.".to_string()
                } else {
                    format!("The output is {v}; it should be 10.")
                };
                (y, fb)
            }
            Err(opto::Error::Execution { node: Some(e), .. }) => {
                let fb = e.error_text().unwrap();
                (e, fb)
            }
            Err(other) => panic!("{other}"),
        };
        outputs.push(output.value());
        if feedback == "Correct." {
            break;
        }
        opt.zero_feedback();
        output.backward(&feedback).unwrap();
        opt.step().unwrap();
    }
    assert_eq!(outputs[0], Value::Int(4));
    // The broken rewrite never ran: the second forward pass ran the working code again.
    assert_eq!(outputs[1], Value::Int(4));
    assert_eq!(outputs[2], Value::Int(10));
    // The second prompt showed the rejection with the compiler's traceback.
    let second = llm.requests()[1].messages.last().unwrap().content.clone();
    assert!(!second.contains("exception_eval0"), "{second}");
    assert!(
        second.contains("does not compile")
            && second.contains("SyntaxError")
            && second.contains("line 3"),
        "{second}"
    );
}
