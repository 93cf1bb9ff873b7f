//! Optimizers end to end with the scripted LLM: rendering oracles from the reference, the full
//! backward → step loop on a real graph, memory, rejections fed back, lockstep batching, OPRO,
//! TextGrad and OptoPrimeMulti.

use indexmap::IndexMap;
use opto::graph::{Graph, Node, Value};
use opto::llm::scripted::ScriptedLlm;
use opto::llm::{Llm, Request};
use opto::optim::optoprime::problem::{repr_node_constraint, repr_node_value};
use opto::optim::{
    render_problem, step_lockstep, Candidate, Opro, Optimizer, OptoPrime, OptoPrimeMulti,
    OptoPrimeOptions, Outcome, RenderOptions, Section, Selector, SummaryParams, Symbols, TextGrad,
    NO_TRACE_MASK,
};
use opto::propagate::{FeedbackEntry, NodeView, Summary};
use std::sync::Arc;

fn nv(name: &str, value: impl Into<Value>) -> NodeView {
    NodeView {
        name: name.into(),
        value: value.into(),
        constraint: None,
        must_contain: Vec::new(),
        description: String::new(),
    }
}

/// REFERENCE §3.2.4, first program: x → bar(x) → a; y = a + 1; z = a * y.
fn bar_summary() -> Summary {
    let mut doc = IndexMap::new();
    doc.insert("bar".to_string(), "[bar] This is a method that does negative scaling.".to_string());
    doc.insert("add".to_string(), "[add] This is an add operator of x and y.".to_string());
    doc.insert(
        "multiply".to_string(),
        "[multiply] This is a multiply operator of x and y.".to_string(),
    );
    let mut x = nv("float0", -1.0);
    x.constraint = Some("x must be a float".into());
    Summary {
        code: vec![
            "bar0 = bar(x=float0)".into(),
            "add0 = add(x=bar0, y=int0)".into(),
            "multiply0 = multiply(x=bar0, y=add0)".into(),
        ],
        documentation: doc,
        variables: vec![x],
        inputs: vec![nv("int0", 1)],
        others: vec![nv("bar0", 2.0), nv("add0", 3.0)],
        outputs: vec![nv("multiply0", 6.0)],
        feedback: vec![FeedbackEntry {
            output: "multiply0".into(),
            feedback: "Output should be larger.".into(),
        }],
    }
}

const MY_FUN: &str = "def my_fun(x):\n    \"\"\"Test function\"\"\"\n    return x**2 + 1";
const CODE_CONSTRAINT: &str =
    "The code should start with:\ndef my_fun(x):\n    \"\"\"Test function\"\"\"";

/// Second program: a trainable function called through `eval`.
fn code_summary() -> Summary {
    let mut doc = IndexMap::new();
    doc.insert(
        "eval".to_string(),
        "[eval] Evaluates the code of __code on the arguments.".to_string(),
    );
    let mut c = nv("__code0", Value::Code(MY_FUN.into()));
    c.constraint = Some(CODE_CONSTRAINT.into());
    Summary {
        code: vec!["eval0 = eval(x=int0, __code=__code0)".into()],
        documentation: doc,
        variables: vec![c],
        inputs: vec![nv("int0", 2)],
        others: vec![],
        outputs: vec![nv("eval0", 5)],
        feedback: vec![FeedbackEntry {
            output: "eval0".into(),
            feedback: "The output should be 10.".into(),
        }],
    }
}

/// Third program: the function raises.
fn exception_summary() -> Summary {
    let mut doc = IndexMap::new();
    doc.insert(
        "eval".to_string(),
        "[exception] The operator eval raises an exception.".to_string(),
    );
    let c = nv("__code0", Value::Code("def my_fun(x):\n    return x / 0".into()));
    Summary {
        code: vec!["exception_eval0 = eval(x=int0, __code=__code0)".into()],
        documentation: doc,
        variables: vec![c],
        inputs: vec![nv("int0", 2)],
        others: vec![],
        outputs: vec![nv("exception_eval0", "(ZeroDivisionError) division by zero")],
        feedback: vec![FeedbackEntry {
            output: "exception_eval0".into(),
            feedback: "def my_fun(x):\n    return x / 0 <--- (ZeroDivisionError) division by zero."
                .into(),
        }],
    }
}

/// The lines under `header` in a rendered problem.
fn section(text: &str, header: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut on = false;
    for line in text.lines() {
        if line.starts_with('#')
            && !line.starts_with("#!")
            && line.len() > 1
            && line[1..].chars().all(|c| c.is_alphanumeric())
        {
            on = line == header;
            continue;
        }
        if on && !line.is_empty() {
            out.push(line.to_string());
        }
    }
    out
}

#[test]
fn oracle_bar_program_renders_like_the_reference() {
    let p = render_problem(&bar_summary(), "OBJ", &RenderOptions::default());
    assert_eq!(section(&p, "#Instruction"), vec!["OBJ"]);
    assert_eq!(
        section(&p, "#Code"),
        vec![
            "bar0 = bar(x=float0)",
            "add0 = add(x=bar0, y=int0)",
            "multiply0 = multiply(x=bar0, y=add0)"
        ]
    );
    let doc_ops: Vec<String> = section(&p, "#Documentation")
        .iter()
        .map(|l| l[1..l.find(']').unwrap()].to_string())
        .collect();
    assert_eq!(doc_ops, vec!["bar", "add", "multiply"]);
    assert_eq!(section(&p, "#Variables"), vec!["(float) float0=-1.0"]);
    assert_eq!(section(&p, "#Constraints"), vec!["(float) float0: x must be a float"]);
    assert_eq!(section(&p, "#Inputs"), vec!["(int) int0=1"]);
    assert_eq!(section(&p, "#Others"), vec!["(float) bar0=2.0", "(float) add0=3.0"]);
    assert_eq!(section(&p, "#Outputs"), vec!["(float) multiply0=6.0"]);
    assert_eq!(section(&p, "#Feedback"), vec!["Output should be larger."]);
    // sections in the reference's order
    let order: Vec<&str> = p.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(
        order,
        vec![
            "#Instruction",
            "#Code",
            "#Documentation",
            "#Variables",
            "#Constraints",
            "#Inputs",
            "#Others",
            "#Outputs",
            "#Feedback"
        ]
    );
}

#[test]
fn oracle_code_program_renders_like_the_reference() {
    let s = code_summary();
    let p = render_problem(&s, "OBJ", &RenderOptions::default());
    assert_eq!(section(&p, "#Code"), vec!["eval0 = eval(x=int0, __code=__code0)"]);
    assert!(section(&p, "#Documentation")[0].starts_with("[eval]"));
    assert_eq!(repr_node_value(&s.variables[0], None), format!("(code) __code0:{MY_FUN}"));
    assert_eq!(
        repr_node_constraint(&s.variables[0]).unwrap(),
        format!("(code) __code0: {CODE_CONSTRAINT}")
    );
    assert!(p.contains(&format!("#Variables\n(code) __code0:{MY_FUN}\n\n#Constraints\n(code) __code0: {CODE_CONSTRAINT}\n\n#Inputs\n(int) int0=2")));
    assert_eq!(section(&p, "#Outputs"), vec!["(int) eval0=5"]);
}

#[test]
fn oracle_exception_program_renders_like_the_reference() {
    let p = render_problem(&exception_summary(), "OBJ", &RenderOptions::default());
    assert_eq!(
        section(&p, "#Outputs"),
        vec!["(str) exception_eval0=(ZeroDivisionError) division by zero"]
    );
    assert!(section(&p, "#Documentation")[0].starts_with("[exception]"));
    assert!(section(&p, "#Documentation")[0].contains("eval"));
    assert!(p.contains("return x / 0 <--- (ZeroDivisionError) division by zero."));
    // no constraint: the section is left out (the reference shows an empty header)
    assert!(!p.contains("#Constraints"));
    let with_empty = render_problem(
        &exception_summary(),
        "OBJ",
        &RenderOptions { show_empty_sections: true, ..Default::default() },
    );
    assert!(with_empty.contains("#Constraints\n\n\n#Inputs"));
}

/// The paper's program on the real graph, with `x` named `float0`.
fn paper_program(g: &Graph, x: &Node) -> Node {
    let bar = opto::traced!(
        /// This is a method that does negative scaling.
        fn bar(x: f64) -> f64 {
            -2.0 * x
        }
    );
    let a = bar(x).unwrap();
    let y = &a + 1;
    let _ = g;
    &a * &y
}

#[test]
fn oracle_bar_program_through_the_real_graph() {
    let g = Graph::new();
    let x = g.param(-1.0).constraint_text("x must be a float");
    let z = paper_program(&g, &x);
    z.backward("Output should be larger.").unwrap();
    let s = opto::propagate::summarize(std::slice::from_ref(&x));
    let by_hand = render_problem(&bar_summary(), "OBJ", &RenderOptions::default());
    let real = render_problem(&s, "OBJ", &RenderOptions::default());
    for h in ["#Code", "#Variables", "#Constraints", "#Inputs", "#Others", "#Outputs", "#Feedback"]
    {
        assert_eq!(section(&real, h), section(&by_hand, h), "{h}");
    }
    let ops = |t: &str| {
        section(t, "#Documentation")
            .iter()
            .map(|l| l[..l.find(']').unwrap() + 1].to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ops(&real), ops(&by_hand));
}

fn scripted(replies: &[&str]) -> Arc<ScriptedLlm> {
    Arc::new(ScriptedLlm::new(replies.iter().map(|s| s.to_string())))
}

#[test]
fn full_loop_on_the_real_graph_updates_and_remembers() {
    let g = Graph::new();
    let x = g.param(-1.0).constraint_text("x must be a float");
    let llm = scripted(&[
        r#"{"reasoning": "x should be negative and larger in size", "suggestion": {"float0": -3.0}}"#,
        "```json\n{\"reasoning\": \"more\", \"suggestion\": {\"float0\": \"-5\"}}\n```",
    ]);
    // The scripted values are applied as given (the line guard has its own test below).
    let opts = OptoPrimeOptions { memory_size: 2, line_guard: false, ..Default::default() };
    let mut opt = OptoPrime::with_options(vec![x.clone()], llm.clone(), opts);

    opt.zero_feedback();
    let z = paper_program(&g, &x);
    z.backward("Output should be larger.").unwrap();
    let r1 = opt.step().unwrap();
    assert_eq!(x.value(), Value::Float(-3.0));
    assert_eq!(r1.updates[0].old, Value::Float(-1.0));
    assert_eq!(r1.new_value("float0"), Some(&Value::Float(-3.0)));
    assert_eq!(r1.reasoning.as_deref(), Some("x should be negative and larger in size"));
    assert!(r1.error.is_none());

    opt.zero_feedback();
    let z = paper_program(&g, &x);
    z.backward("Still larger, please.").unwrap();
    let r2 = opt.step().unwrap();
    assert_eq!(x.value(), Value::Float(-5.0));
    assert_eq!(r2.step, 2);

    let reqs = llm.requests();
    assert_eq!(reqs.len(), 2);
    let first_user = &reqs[0].messages[1].content;
    let second_user = &reqs[1].messages[1].content;
    // the current step is not repeated in memory
    assert!(!first_user.contains("Earlier values"));
    assert!(second_user.contains("Earlier values"));
    // memory shows the earlier value, what the program output with it, and its feedback
    assert!(second_user.contains(r#"{"variables":{"float0":-1.0},"output":"#), "{second_user}");
    assert!(second_user.contains(r#""feedback":"Output should be larger."}"#), "{second_user}");
    assert!(second_user.contains("(float) float0=-3.0"));
    // every request carries the schema with exactly the parameter
    for r in &reqs {
        assert_eq!(
            opto::optim::reply_schema::suggestion_names(r.schema.as_ref().unwrap()),
            vec!["float0"]
        );
    }
    // the system prompt names the key and the type
    assert!(reqs[0].messages[0].content.contains("\"float0\""));
    assert!(reqs[0].messages[0].content.contains("float0 is a number (float)"));
    // state round trip
    let state = opt.state();
    let mut opt2 = OptoPrime::new(vec![x.clone()], llm.clone());
    opt2.load_state(state.clone()).unwrap();
    assert_eq!(opt2.state(), state);
    assert_eq!(opt2.steps_done(), 2);
}

#[test]
fn rejected_suggestions_and_unknown_keys_are_reported_and_fed_back() {
    let params = SummaryParams::new(bar_summary());
    let llm = scripted(&[
        r#"{"reasoning": "r", "suggestion": {"float0": "bigger", "int0": 3}}"#,
        r#"{"reasoning": "r", "suggestion": {"float:0": 4}}"#,
    ]);
    let params = Arc::new(params);
    let mut opt = OptoPrime::new(params.clone(), llm.clone());
    let r = opt.step().unwrap();
    assert!(
        matches!(&r.updates[0].outcome, Outcome::Rejected { reason, .. } if reason.contains("float"))
    );
    assert_eq!(r.unknown_keys, vec!["int0"]);
    assert_eq!(params.value("float0"), Some(Value::Float(-1.0)));
    let r2 = opt.step().unwrap();
    assert_eq!(params.value("float0"), Some(Value::Float(4.0)));
    assert_eq!(r2.changed(), 1);
    let user2 = &llm.requests()[1].messages[1].content;
    assert!(user2.contains("Your last reply had problems"), "{user2}");
    assert!(user2.contains("float0: your value bigger was rejected"));
    assert!(user2.contains("\"int0\" cannot be changed"));
}

#[test]
fn terminate_only_when_it_is_the_whole_reply() {
    let params = Arc::new(SummaryParams::new(bar_summary()));
    let llm = scripted(&[
        "TERMINATE",
        r#"{"reasoning": "do not TERMINATE", "suggestion": {"float0": 2}}"#,
    ]);
    let mut opt = OptoPrime::new(params.clone(), llm);
    let r = opt.step().unwrap();
    assert!(r.terminated);
    assert_eq!(params.value("float0"), Some(Value::Float(-1.0)));
    let r = opt.step().unwrap();
    assert!(!r.terminated);
    assert_eq!(params.value("float0"), Some(Value::Float(2.0)));
}

#[test]
fn llm_errors_and_garbage_do_not_change_anything() {
    let params = Arc::new(SummaryParams::new(bar_summary()));
    let llm = scripted(&["I think it should be bigger."]);
    llm.push_error("server down");
    let mut opt = OptoPrime::new(params.clone(), llm);
    let r = opt.step().unwrap();
    assert!(r.error.is_some());
    assert_eq!(r.updates[0].outcome, Outcome::Missing);
    let r = opt.step().unwrap();
    assert!(r.error.unwrap().contains("server down"));
    assert_eq!(params.value("float0"), Some(Value::Float(-1.0)));
}

#[test]
fn no_feedback_means_no_request() {
    let mut s = bar_summary();
    s.feedback.clear();
    let llm = scripted(&[]);
    let mut opt = OptoPrime::new(SummaryParams::new(s), llm.clone());
    assert!(opt.prepare().unwrap().is_empty());
    let r = opt.step().unwrap();
    assert_eq!(r.llm_calls, 0);
    assert!(llm.requests().is_empty());
}

#[test]
fn masks_symbols_and_size_controls() {
    let mut s = bar_summary();
    s.inputs.push(nv("str0", "y".repeat(5000)));
    s.variables.push(nv("str1", "v".repeat(3000)));
    let opts = RenderOptions {
        mask: NO_TRACE_MASK.to_vec(),
        symbols: Symbols::default().with(Section::Variables, "#Parameters"),
        value_char_limit: 100,
        ..Default::default()
    };
    let p = render_problem(&s, "OBJ", &opts);
    assert!(
        !p.contains("#Code")
            && !p.contains("#Documentation")
            && !p.contains("#Inputs")
            && !p.contains("#Others")
    );
    assert!(p.contains("#Parameters\n(float) float0=-1.0"));
    // variables are never cut
    assert!(p.contains(&"v".repeat(3000)));
    let p =
        render_problem(&s, "OBJ", &RenderOptions { value_char_limit: 100, ..Default::default() });
    assert!(p.contains("…[4900 more characters cut]"));

    // the token budget drops memory first, then shortens values
    let params = Arc::new(SummaryParams::new(s.clone()));
    let llm = Arc::new(ScriptedLlm::from_fn(|_| Ok(r#"{"suggestion": {"float0": 1.0}}"#.into())));
    let opts =
        OptoPrimeOptions { memory_size: 3, max_prompt_tokens: Some(1800), ..Default::default() };
    let mut opt = OptoPrime::with_options(params.clone(), llm.clone(), opts);
    for _ in 0..3 {
        opt.step().unwrap();
    }
    let last = opt.step().unwrap();
    assert!(last.notes.iter().any(|n| n.contains("memory")), "{:?}", last.notes);
    let chars: usize = last.messages.iter().map(|m| m.content.len()).sum();
    assert!(chars / 4 <= 1800 || last.notes.iter().any(|n| n.contains("cannot shrink")), "{chars}");
}

#[test]
fn the_backends_tokenizer_is_used_for_the_budget() {
    let params = SummaryParams::new(bar_summary());
    // a tokenizer that counts every character: the same prompt now needs shrinking
    let llm = Arc::new(ScriptedLlm::new(["{}"]).with_token_counter(|t| t.chars().count()));
    let opts = OptoPrimeOptions { max_prompt_tokens: Some(1200), ..Default::default() };
    let mut opt = OptoPrime::with_options(params, llm, opts);
    let r = opt.step().unwrap();
    assert!(r.notes.iter().any(|n| n.contains("over 1200 tokens")), "{:?}", r.notes);
}

#[test]
fn seeds_in_lockstep_share_one_generate_call() {
    let llm = Arc::new(ScriptedLlm::from_fn(|req: &Request| {
        let v = if req.messages[1].content.contains("float0=-1.0") { 1.5 } else { 9.0 };
        Ok(format!(r#"{{"suggestion": {{"float0": {v}}}}}"#))
    }));
    let graphs: Vec<(Graph, Node)> = (0..3)
        .map(|_| {
            let g = Graph::new();
            let x = g.param(-1.0);
            (g, x)
        })
        .collect();
    let mut opts: Vec<OptoPrime> =
        graphs.iter().map(|(_, x)| OptoPrime::new(vec![x.clone()], llm.clone())).collect();
    for (g, x) in &graphs {
        paper_program(g, x).backward("larger").unwrap();
    }
    let mut refs: Vec<&mut dyn Optimizer> =
        opts.iter_mut().map(|o| o as &mut dyn Optimizer).collect();
    let reports = step_lockstep(&mut refs, llm.as_ref());
    assert_eq!(llm.batch_sizes(), vec![3]);
    for ((_, x), r) in graphs.iter().zip(&reports) {
        assert_eq!(x.value(), Value::Float(1.5));
        assert_eq!(r.as_ref().unwrap().changed(), 1);
    }
}

#[test]
fn opro_sees_only_history() {
    let params = Arc::new(SummaryParams::new(bar_summary()));
    let llm =
        scripted(&[r#"{"suggestion": {"float0": 2.0}}"#, r#"{"suggestion": {"float0": 3.0}}"#]);
    let mut opt = Opro::new(params.clone(), llm.clone());
    opt.step().unwrap();
    let mut next = bar_summary();
    next.feedback[0].feedback = "Even larger.".into();
    params.set_summary(next);
    opt.step().unwrap();
    assert_eq!(params.value("float0"), Some(Value::Float(3.0)));
    let reqs = llm.requests();
    let u = &reqs[1].messages[1].content;
    assert!(!u.contains("#Code") && !u.contains("bar0"));
    assert!(
        u.contains(r#"{"variables":{"float0":-1.0},"output":"#)
            && u.contains(r#""feedback":"Output should be larger."}"#),
        "{u}"
    );
    assert!(
        u.contains(r#"{"variables":{"float0":2.0},"output":"#)
            && u.contains(r#""feedback":"Even larger."}"#),
        "{u}"
    );
    assert_eq!(
        opto::optim::reply_schema::suggestion_names(reqs[1].schema.as_ref().unwrap()),
        vec!["float0"]
    );
}

#[test]
fn textgrad_walks_edges_reduces_and_updates_in_rounds() {
    let g = Graph::new();
    let x = g.param(-1.0);
    let llm = Arc::new(ScriptedLlm::from_fn(|req: &Request| {
        Ok(if req.schema.is_some() {
            r#"{"reasoning": "r", "suggestion": {"float0": -4.0}}"#.to_string()
        } else {
            "It should be larger.".to_string()
        })
    }));
    let mut opt = TextGrad::new(vec![x.clone()], llm.clone());
    paper_program(&g, &x).backward("Output should be larger.").unwrap();
    let r = opt.step().unwrap();
    assert_eq!(x.value(), Value::Float(-4.0));
    // multiply0 → {bar0, add0}; add0 → bar0 (int0 leads to no parameter); reduce bar0; bar0 → float0; update
    assert_eq!(llm.batch_sizes(), vec![2, 1, 1, 1, 1]);
    assert_eq!(r.llm_calls, 6);
    assert!(r.notes.iter().any(|n| n.starts_with("gradient for float0")));
    assert_eq!(r.optimizer, "textgrad");
}

#[test]
fn multi_asks_n_candidates_in_one_batch_and_selects() {
    let params = Arc::new(SummaryParams::new(bar_summary()));
    // candidate i (temperatures 1.0, 0.5, 0.0) suggests 10 * (i + 1)
    let llm = Arc::new(ScriptedLlm::from_fn(|req: &Request| {
        let v = 10.0 * (3.0 - 2.0 * req.params.temperature as f64);
        Ok(format!(r#"{{"suggestion": {{"float0": {v}}}}}"#))
    }));
    let score = Selector::Score(Arc::new(|c: &Candidate| {
        c.values.get("float0").and_then(Value::as_f64).map(|v| -(v - 20.0).abs())
    }));
    let mut opt = OptoPrimeMulti::new(params.clone(), llm.clone(), OptoPrimeOptions::default(), 3)
        .with_selector(score);
    let r = opt.step().unwrap();
    assert_eq!(llm.batch_sizes(), vec![3]);
    let temps: Vec<f32> = llm.requests().iter().map(|r| r.params.temperature).collect();
    assert_eq!(temps, vec![1.0, 0.5, 0.0]);
    assert_eq!(params.value("float0"), Some(Value::Float(20.0)));
    assert_eq!(r.candidates.len(), 3);

    // default selector: the last (lowest temperature) candidate
    let params = Arc::new(SummaryParams::new(bar_summary()));
    let mut opt = OptoPrimeMulti::new(params.clone(), llm.clone(), OptoPrimeOptions::default(), 3);
    opt.step().unwrap();
    assert_eq!(params.value("float0"), Some(Value::Float(30.0)));

    // the candidates' sampling seeds differ within a step and from one step to the next
    let seeds: Vec<u64> = llm.requests().iter().map(|r| r.params.seed).collect();
    assert_eq!(seeds[0..3], seeds[3..6], "two optimizers at their first step draw alike");
    opt.step().unwrap();
    let later: Vec<u64> = llm.requests()[6..9].iter().map(|r| r.params.seed).collect();
    let mut all = seeds[3..6].to_vec();
    all.extend(&later);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 6, "{seeds:?} then {later:?}");
}

/// Prompt sizes of the three oracle programs (run with --nocapture to see them).
#[test]
fn prompt_sizes_of_the_oracle_programs() {
    let llm: Arc<dyn Llm> = scripted(&[]);
    for (name, s) in
        [("bar", bar_summary()), ("code", code_summary()), ("exception", exception_summary())]
    {
        let opt = OptoPrime::new(SummaryParams::new(s), llm.clone());
        let msgs = opt.preview_messages().unwrap();
        let sys = msgs[0].content.chars().count();
        let user = msgs[1].content.chars().count();
        println!("{name}: system {sys} + user {user} = {} chars", sys + user);
        assert!(sys + user < 2500, "{name}: {}", sys + user);
    }
}

/// Prints the full prompt of the first oracle program (run with --nocapture --ignored).
#[test]
#[ignore]
fn print_bar_prompt() {
    let opt = OptoPrime::with_options(
        SummaryParams::new(bar_summary()),
        scripted(&[]),
        OptoPrimeOptions { memory_size: 2, ..Default::default() },
    );
    for m in opt.preview_messages().unwrap() {
        println!("----- {:?}\n{}", m.role, m.content);
    }
}

#[test]
fn lockstep_mixes_single_and_multi_round_optimizers() {
    let llm = Arc::new(ScriptedLlm::from_fn(|req: &Request| {
        Ok(if req.schema.is_some() {
            r#"{"reasoning": "r", "suggestion": {"float0": 7.0}}"#.to_string()
        } else {
            "larger".to_string()
        })
    }));
    let (g1, g2) = (Graph::new(), Graph::new());
    let (x1, x2) = (g1.param(-1.0), g2.param(-1.0));
    paper_program(&g1, &x1).backward("larger").unwrap();
    paper_program(&g2, &x2).backward("larger").unwrap();
    let mut a = OptoPrime::new(vec![x1.clone()], llm.clone());
    let mut b = TextGrad::new(vec![x2.clone()], llm.clone());
    let mut refs: Vec<&mut dyn Optimizer> = vec![&mut a, &mut b];
    let reports = step_lockstep(&mut refs, llm.as_ref());
    assert!(reports.iter().all(|r| r.is_ok()));
    assert_eq!((x1.value(), x2.value()), (Value::Float(7.0), Value::Float(7.0)));
    // round 1 holds OptoPrime's request and TextGrad's first edges; later rounds only TextGrad's
    assert_eq!(llm.batch_sizes(), vec![3, 1, 1, 1, 1]);
}

#[test]
fn answer_is_asked_for_and_reported() {
    let llm = scripted(&[r#"{"reasoning": "r", "answer": "six", "suggestion": {"float0": 1.5}}"#]);
    let opts = OptoPrimeOptions {
        with_answer: true,
        objective: "What is the output? Also make it larger.".into(),
        ..Default::default()
    };
    let mut opt = OptoPrime::with_options(SummaryParams::new(bar_summary()), llm.clone(), opts);
    let r = opt.step().unwrap();
    assert_eq!(r.answer.as_deref(), Some("six"));
    let req = &llm.requests()[0];
    assert!(req.messages[0].content.contains("\"answer\""));
    let keys: Vec<String> = req.schema.as_ref().unwrap().json["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, vec!["reasoning", "answer", "suggestion"]);
}

/// Prompt sizes in tokens of a real model's tokenizer. Needs `OPTO_TOKENIZER_GGUF` (a GGUF file);
/// with `OPTO_REF_PROMPT_DIR` holding `bar.txt`, `code.txt`, `exception.txt` (the reference's
/// prompts for the same programs, captured separately) it counts those too.
#[test]
#[ignore]
fn prompt_tokens_with_a_real_tokenizer() {
    let Ok(path) = std::env::var("OPTO_TOKENIZER_GGUF") else { return };
    let file = opto::llm::local::gguf::GgufFile::open(std::path::Path::new(&path)).unwrap();
    let tok = opto::llm::local::tokenizer::GgufTokenizer::from_gguf(&file).unwrap();
    let llm: Arc<dyn Llm> = scripted(&[]);
    for (name, s) in
        [("bar", bar_summary()), ("code", code_summary()), ("exception", exception_summary())]
    {
        let msgs = OptoPrime::new(SummaryParams::new(s), llm.clone()).preview_messages().unwrap();
        let text = msgs.iter().map(|m| m.content.clone()).collect::<Vec<_>>().join("\n");
        let ours = tok.encode(&text).unwrap().len();
        let reference = std::env::var("OPTO_REF_PROMPT_DIR")
            .ok()
            .and_then(|d| std::fs::read_to_string(format!("{d}/{name}.txt")).ok())
            .map(|t| (t.chars().count(), tok.encode(&t).unwrap().len()));
        println!(
            "{name}: opto {} chars {ours} tokens; reference (chars, tokens) {reference:?}",
            text.chars().count()
        );
    }
}

/// A real local model drives OptoPrime on the paper's program for a few steps (needs
/// `OPTO_SMOKE_GGUF`; prints every reply and update).
#[test]
#[ignore]
fn real_model_smoke() {
    let Ok(path) = std::env::var("OPTO_SMOKE_GGUF") else { return };
    let opts = opto::llm::local::LocalOptions { threads: 2, ..Default::default() };
    let llm: Arc<dyn Llm> = Arc::new(opto::llm::local::LocalLlm::load(&path, opts).unwrap());
    let g = Graph::new();
    let x = g.param(-1.0).constraint_text("x must be a float");
    let o = OptoPrimeOptions {
        memory_size: 2,
        objective: "Make the output as large as possible (at least 100) by changing float0.".into(),
        ..Default::default()
    };
    let mut opt = OptoPrime::with_options(vec![x.clone()], llm, o);
    for step in 0..3 {
        opt.zero_feedback();
        let z = paper_program(&g, &x);
        let out = z.value().as_f64().unwrap();
        z.backward(&format!(
            "The output is {out}; it should be at least 100. Output should be larger."
        ))
        .unwrap();
        let t = std::time::Instant::now();
        let r = opt.step().unwrap();
        println!(
            "step {step}: out={out} reply={:?} update={:?} error={:?} tokens={:?} {:.1}s",
            r.reply,
            r.updates[0].outcome,
            r.error,
            r.usage,
            t.elapsed().as_secs_f64()
        );
    }
}

#[test]
fn the_line_guard_replaces_a_value_the_tries_rule_out_and_says_so() {
    // y = 2x must reach 5: from x=1 ("larger") and x=4 ("smaller") the answer lies between 1
    // and 4; the model then suggests x=4 again, which the tries rule out.
    let g = Graph::new();
    let x = g.param_named("x", 1.0);
    let llm = scripted(&[
        r#"{"reasoning": "r", "suggestion": {"x": 4}}"#,
        r#"{"reasoning": "r", "suggestion": {"x": 4}}"#,
    ]);
    let mut opt = OptoPrime::new(vec![x.clone()], llm);
    let feedback_step = |opt: &mut OptoPrime| {
        opt.zero_feedback();
        let y = &x * 2;
        let v = y.value().as_f64().unwrap();
        y.backward(if v < 5.0 {
            "The output should be larger."
        } else {
            "The output should be smaller."
        })
        .unwrap();
        opt.step().unwrap()
    };
    let first = feedback_step(&mut opt);
    assert_eq!(x.value(), Value::Float(4.0), "one try: the model's value is used");
    assert!(first.replaced.is_none());
    let second = feedback_step(&mut opt);
    let used = x.value().as_f64().unwrap();
    assert!(used > 1.0 && used < 4.0, "a value inside the bracket (1, 4), got {used}");
    let replaced = second.replaced.expect("the repeat was replaced");
    assert_eq!(replaced.suggested, Value::Float(4.0));
    assert_eq!(replaced.used, x.value());
    assert!(second.notes.iter().any(|n| n.contains("replaced by")), "{:?}", second.notes);

    // Off, the model's value stands.
    let g = Graph::new();
    let x = g.param_named("x", 4.0);
    let llm = scripted(&[r#"{"reasoning": "r", "suggestion": {"x": 4}}"#]);
    let opts = OptoPrimeOptions { line_guard: false, ..Default::default() };
    let mut opt = OptoPrime::with_options(vec![x.clone()], llm, opts);
    opt.zero_feedback();
    (&x * 2).backward("The output should be smaller.").unwrap();
    let r = opt.step().unwrap();
    assert!(r.replaced.is_none());
    assert_eq!(x.value(), Value::Float(4.0));
}
