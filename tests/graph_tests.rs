//! Graph and propagation behaviour, ported from the reference's unit tests where they apply to a
//! Rust API (nodes, backward, operators in both directions, containers, dependencies, errors,
//! multiple feedbacks), plus properties checked on random DAGs.

use opto::graph::{Graph, Module, Node, NodeKind, Value};
use opto::propagate::{
    backward_with_propagator, summarize, BackwardOptions, Propagator, SumFeedback, SumPropagator,
};
use proptest::prelude::*;

/// The paper's running example: x → bar(x) → a; y = a + 1; z = a * y.
fn paper_example(g: &Graph) -> (Node, Node) {
    let x = g.param(-1.0).constraint_text("x must be a float");
    let bar = opto::traced!(
        /// This is a method that does negative scaling.
        fn bar(x: f64) -> f64 {
            -2.0 * x
        }
    );
    let a = bar(&x).unwrap();
    let y = &a + 1;
    let z = &a * &y;
    (x, z)
}

#[test]
fn paper_example_summary_matches_reference_sections() {
    let g = Graph::new();
    let (x, z) = paper_example(&g);
    z.backward("Output should be larger.").unwrap();
    let s = summarize(std::slice::from_ref(&x));
    assert_eq!(
        s.code,
        vec![
            "bar0 = bar(x=float0)",
            "add0 = add(x=bar0, y=int0)",
            "multiply0 = multiply(x=bar0, y=add0)"
        ]
    );
    assert_eq!(s.documentation.keys().collect::<Vec<_>>(), vec!["bar", "add", "multiply"]);
    assert_eq!(s.documentation["bar"], "[bar] This is a method that does negative scaling.");
    let names = |v: &[opto::propagate::NodeView]| {
        v.iter().map(|n| format!("{}={}", n.name, n.value)).collect::<Vec<_>>()
    };
    assert_eq!(names(&s.variables), vec!["float0=-1.0"]);
    assert_eq!(s.variables[0].constraint.as_deref(), Some("x must be a float"));
    assert_eq!(names(&s.inputs), vec!["int0=1"]);
    assert_eq!(names(&s.others), vec!["bar0=2.0", "add0=3.0"]);
    assert_eq!(names(&s.outputs), vec!["multiply0=6.0"]);
    assert_eq!(s.feedback_text(), "Output should be larger.");
}

#[test]
fn names_are_per_graph_and_stable() {
    for _ in 0..2 {
        let g = Graph::new();
        let a = g.value(1.0);
        let b = g.value(2.0);
        let c = &a + &b;
        assert_eq!(
            (a.name(), b.name(), c.name()),
            ("float0".into(), "float1".into(), "add0".into())
        );
        let p = g.param_named("gain", 0.5);
        assert_eq!(p.name(), "gain");
        assert_eq!(g.param_named("gain", 1.0).name(), "gain0");
    }
}

#[test]
fn node_used_twice_in_one_op_works() {
    let g = Graph::new();
    let x = g.param(3.0);
    let y = &x + &x;
    assert_eq!(y.value(), Value::Float(6.0));
    assert_eq!(y.parents().len(), 1);
    assert_eq!(y.inputs().len(), 2);
    y.backward("bigger").unwrap();
    assert_eq!(summarize(&[x]).code, vec!["add0 = add(x=float0, y=float0)"]);
}

#[test]
fn operators_work_in_both_directions_with_python_semantics() {
    let g = Graph::new();
    let x = g.value(7);
    assert_eq!((&x + 1).value(), Value::Int(8));
    assert_eq!((1 + &x).value(), Value::Int(8));
    assert_eq!((10 - &x).value(), Value::Int(3));
    assert_eq!((&x - 10).value(), Value::Int(-3));
    assert_eq!((2.0 * &x).value(), Value::Float(14.0));
    assert_eq!((&x / 2).value(), Value::Float(3.5));
    assert_eq!((14 / &x).value(), Value::Float(2.0));
    assert_eq!(x.floor_div(-2).value(), Value::Int(-4));
    assert_eq!((&x % 3).value(), Value::Int(1));
    assert_eq!(x.pow(2).value(), Value::Int(49));
    assert_eq!((-&x).value(), Value::Int(-7));
    assert_eq!(x.lt(8).value(), Value::Bool(true));
    assert_eq!(x.ge(8).value(), Value::Bool(false));
    let s = g.value("Hello World");
    assert_eq!((&s + "!").value(), Value::from("Hello World!"));
    assert_eq!(s.lower().value(), Value::from("hello world"));
    assert_eq!(s.upper().value(), Value::from("HELLO WORLD"));
    assert_eq!(s.split(None).value(), Value::from(vec!["Hello", "World"]));
    assert_eq!(s.replace("World", "Trace").value(), Value::from("Hello Trace"));
    assert_eq!(g.value(", ").join(s.split(None)).value(), Value::from("Hello, World"));
    let t = g.value("{} has {n} items");
    let n = g.value(3);
    assert_eq!(g.format(&t, &[&s], &[("n", &n)]).value(), Value::from("Hello World has 3 items"));
    let c = g.cond(&x.gt(5), &g.value("big"), &g.value("small"));
    assert_eq!(c.value(), Value::from("big"));
    assert_eq!(c.parents().len(), 3);
}

#[test]
fn containers_and_traced_iteration() {
    let g = Graph::new();
    let a = g.param(1);
    let b = g.value(2);
    let l = g.make_list(&[&a, &b]);
    assert_eq!(l.value(), Value::from(vec![1, 2]));
    let items = l.iter_items().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1].value(), Value::Int(2));
    assert_eq!(items[1].op().as_deref(), Some("getitem"));
    let d = g.make_dict(&[("a", &a), ("b", &b)]);
    let pairs = d.iter_pairs().unwrap();
    assert_eq!(pairs[0].0.value(), Value::from("a"));
    assert_eq!(pairs[1].1.value(), Value::Int(2));
    assert_eq!(l.append(3).value(), Value::from(vec![1, 2, 3]));
    assert_eq!(l.value(), Value::from(vec![1, 2]), "functional update must not mutate its input");
    assert_eq!(l.len().value(), Value::Int(2));
    assert_eq!(d.keys().value(), Value::from(vec!["a", "b"]));
    assert!(g.value(3).iter_items().is_err());
    // Feedback at the sum of the items reaches the parameter through getitem.
    let total = &items[0] + &items[1];
    total.backward("too small").unwrap();
    let s = summarize(&[a]);
    assert!(
        s.code.iter().any(|l| l.starts_with("make_list0 = make_list(args_0=int0, args_1=int1)")),
        "{:?}",
        s.code
    );
}

#[test]
fn errors_become_exception_nodes_with_their_inputs() {
    let g = Graph::new();
    let x = g.param(1);
    let zero = g.value(0);
    let q = &x / &zero;
    assert_eq!(q.kind(), NodeKind::Exception);
    assert_eq!(q.value(), Value::from("(ZeroDivisionError) division by zero"));
    assert_eq!(q.parents(), vec![x.clone(), zero.clone()]);
    assert_eq!(q.name(), "exception_divide0");
    // The error travels on through later operators, and `check`/`try_*` turn it into Err.
    let r = &q + 1;
    assert!(r.is_exception());
    let err = x.try_div(&zero).unwrap_err();
    match err {
        opto::Error::Execution { node: Some(node), .. } => assert!(node.is_exception()),
        other => panic!("unexpected {other:?}"),
    }
    // Feedback from the exception reaches the parameter.
    q.backward(&q.value().py_str()).unwrap();
    let s = summarize(&[x]);
    assert_eq!(s.outputs[0].name, "exception_divide0");
    assert_eq!(s.code, vec!["exception_divide0 = divide(x=int0, y=int1)"]);
}

#[test]
fn traced_function_errors_and_panics_are_exception_nodes() {
    let g = Graph::new();
    let x = g.param(-4.0);
    let safe_sqrt = opto::traced!(
        /// Square root that refuses negatives.
        fn safe_sqrt(x: f64) -> Result<f64, String> {
            if x < 0.0 {
                Err(format!("negative input {x}"))
            } else {
                Ok(x.sqrt())
            }
        }
    );
    let err = safe_sqrt(&x).unwrap_err();
    let opto::Error::Execution { node: Some(e), message, .. } = err else {
        panic!("expected execution error")
    };
    assert!(message.contains("negative input -4"), "{message}");
    assert_eq!(e.parents(), vec![x.clone()]);
    assert_eq!(e.name(), "exception_safe_sqrt0");
    let boom = opto::traced!(
        /// Indexes out of bounds.
        fn boom(x: f64) -> f64 {
            let v: Vec<f64> = vec![x];
            v[(x.abs() as usize) + 3]
        }
    );
    let err = boom(&x).unwrap_err();
    assert!(err.to_string().contains("index out of bounds"), "{err}");
    // Wrong argument type is a TypeError inside the function, not a panic.
    let s = g.value("text");
    assert!(safe_sqrt(&s).unwrap_err().to_string().contains("TypeError"));
    // The source text is captured.
    let ok = safe_sqrt(&g.value(9.0)).unwrap();
    assert!(ok.info().unwrap().source.unwrap().contains("sqrt"));
}

#[test]
fn several_feedbacks_in_one_step_are_kept_with_their_outputs() {
    let g = Graph::new();
    let w = g.param(2.0);
    let out1 = &w * 3;
    let out2 = &w + 10;
    out1.backward("too small").unwrap();
    out2.backward("too large").unwrap();
    let s = summarize(std::slice::from_ref(&w));
    assert_eq!(s.feedback.len(), 2);
    assert_eq!(s.feedback_text(), "multiply0: too small\nadd0: too large");
    assert_eq!(s.outputs.len(), 2);
    // A second backward from the same output replaces, unless retain_graph.
    out1.backward("now too big").unwrap();
    assert_eq!(summarize(std::slice::from_ref(&w)).feedback.len(), 2);
    out1.backward_with("and more", BackwardOptions { retain_graph: true }).unwrap();
    assert_eq!(summarize(std::slice::from_ref(&w)).feedback.len(), 3);
    w.zero_feedback();
    let s = summarize(std::slice::from_ref(&w));
    assert!(s.feedback.is_empty());
    assert_eq!(s.variables.len(), 1, "a parameter without feedback is still a variable");
}

#[test]
fn parameters_see_only_their_own_subgraph_plus_blanket_parents() {
    let g = Graph::new();
    let p = g.param(1.0);
    let q = g.param(2.0);
    let c = g.value(5.0);
    let side = &c * 2; // q does not depend on this branch
    let a = &p + &side;
    let b = &q * 3;
    let out = &a + &b;
    out.backward("more").unwrap();
    let s = summarize(std::slice::from_ref(&q));
    // q: q → b → out; blanket parents: a (of out) and the constant 3 (int1; int0 is the 2).
    assert_eq!(
        s.code,
        vec!["multiply1 = multiply(x=float1, y=int1)", "add1 = add(x=add0, y=multiply1)"]
    );
    let inputs: Vec<_> = s.inputs.iter().map(|n| n.name.clone()).collect();
    assert_eq!(inputs, vec!["add0", "int1"]);
    // Both parameters together: the union.
    let s = summarize(&[p, q]);
    assert_eq!(s.code.len(), 3);
    assert_eq!(s.variables.len(), 2);
}

#[test]
fn untraced_regions_and_detach_record_no_parents() {
    let g = Graph::new();
    let x = g.param(1.0);
    let y = g.untraced(|| &x + 1.0);
    assert!(y.is_root());
    assert_eq!(y.value(), Value::Float(2.0));
    assert!(g.is_tracing());
    let z = (&x * 2.0).detach();
    assert!(z.is_root());
    assert_eq!(z.value(), Value::Float(2.0));
}

#[test]
fn sum_propagator_works_with_backward() {
    let g = Graph::new();
    let a = g.param(1.0);
    let b = g.param(2.0);
    let y = &(&a + &b) * &a;
    let roots = backward_with_propagator(&y, "1.5", &mut SumPropagator).unwrap();
    let got: Vec<_> = roots.iter().map(|(n, f)| (n.name(), f.clone())).collect();
    // a is reached through two paths (the add and the multiply), so it gets the sum.
    assert_eq!(
        got,
        vec![
            ("float0".into(), SumFeedback::Number(3.0)),
            ("float1".into(), SumFeedback::Number(1.5))
        ]
    );
    let texts = backward_with_propagator(&y, "grow", &mut SumPropagator).unwrap();
    assert_eq!(texts[0].1, SumFeedback::Text("grow\ngrow".into()));
}

/// A custom propagator: exact derivatives for add and multiply (the reference tutorial's
/// back-propagator), showing the trait carries numeric feedback.
struct Derivative;
impl Propagator for Derivative {
    type Feedback = f64;
    fn init_feedback(&mut self, _: &Node, _: &str) -> f64 {
        1.0
    }
    fn propagate(&mut self, child: &Node, grad: &f64) -> Vec<f64> {
        let parents = child.parents();
        let inputs = child.inputs();
        parents
            .iter()
            .map(|p| {
                inputs
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, n))| n == p)
                    .map(|(i, _)| match child.op().as_deref() {
                        Some("multiply") => grad * inputs[1 - i].1.value().as_f64().unwrap(),
                        _ => *grad,
                    })
                    .sum()
            })
            .collect()
    }
    fn aggregate(&mut self, f: Vec<f64>) -> f64 {
        f.iter().sum()
    }
}

#[test]
fn custom_propagator_computes_derivatives() {
    let g = Graph::new();
    let x = g.param(3.0);
    let y = &x * &x + &x; // dy/dx = 2x + 1 = 7
    let roots = backward_with_propagator(&y, "", &mut Derivative).unwrap();
    assert_eq!(roots, vec![(x, 7.0)]);
}

#[test]
fn parameters_save_and_load_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("params.json");
    let g = Graph::new();
    let params = vec![g.param_named("gain", 0.5), g.param_named("prompt", "Be brief.")];
    params.save(&path).unwrap();
    params[0].set_value(9.0);
    params.load(&path).unwrap();
    assert_eq!(params[0].value(), Value::Float(0.5));
    // A file with a wrong type changes nothing and names the parameter.
    std::fs::write(
        &path,
        r#"{"gain": {"type": "str", "value": "x"}, "prompt": {"type": "str", "value": "y"}}"#,
    )
    .unwrap();
    let err = params.load(&path).unwrap_err().to_string();
    assert!(err.contains("gain"), "{err}");
    assert_eq!(params[1].value(), Value::from("Be brief."));
}

#[test]
fn dot_styles_parameters_exceptions_and_messages() {
    let g = Graph::new();
    let x = g.param(1.0);
    let _e = &x / 0;
    let dot = opto::graph::dot::to_dot(&g, None, 20);
    assert!(dot.contains("fillcolor=\"#FFE5E5\""));
    assert!(dot.contains("firebrick1"));
    assert!(dot.contains("n0 -> n2"));
}

/// Random DAG: node i's parents are drawn among 0..i; the first `k` nodes are parameters.
fn random_dag() -> impl Strategy<Value = (usize, Vec<Vec<usize>>, Vec<usize>)> {
    (2usize..5, 5usize..40).prop_flat_map(|(k, n)| {
        let parents = (0..n)
            .map(move |i| {
                if i < k {
                    Just(Vec::new()).boxed()
                } else {
                    proptest::collection::vec(0..i, 1..3).boxed()
                }
            })
            .collect::<Vec<_>>();
        (Just(k), parents, proptest::collection::vec(k..n, 1..3))
    })
}

proptest! {
    #[test]
    fn subgraph_matches_brute_force_reachability((k, parents, outputs) in random_dag()) {
        let g = Graph::new();
        let mut nodes: Vec<Node> = Vec::new();
        for (i, ps) in parents.iter().enumerate() {
            let node = if i < k {
                g.param(i as f64)
            } else {
                let inputs: Vec<&Node> = ps.iter().map(|&p| &nodes[p]).collect();
                g.make_list(&inputs)
            };
            nodes.push(node);
        }
        for &o in &outputs {
            nodes[o].backward_with("fb", BackwardOptions { retain_graph: true }).unwrap();
        }
        let n = parents.len();
        let reaches = |from: usize, to: usize| -> bool {
            // Is `to` reachable from `from` along parent → child edges?
            let mut seen = vec![false; n];
            let mut stack = vec![from];
            while let Some(x) = stack.pop() {
                if x == to { return true; }
                for (c, ps) in parents.iter().enumerate() {
                    if ps.contains(&x) && !seen[c] { seen[c] = true; stack.push(c); }
                }
            }
            false
        };
        for p in 0..k {
            let s = summarize(&[nodes[p].clone()]);
            // Core: nodes on a path from p to some output.
            let core: Vec<usize> = (0..n).filter(|&v| outputs.iter().any(|&o| reaches(p, v) && reaches(v, o))).collect();
            let mut expected: std::collections::BTreeSet<usize> = core.iter().copied().collect();
            for &v in &core { expected.extend(parents[v].iter().copied()); }
            let mut got = std::collections::BTreeSet::new();
            let by_name = |name: &str| nodes.iter().position(|x| x.name() == name).unwrap();
            let sections = [&s.inputs, &s.others, &s.outputs];
            let mut count = 0;
            for sec in sections { for v in sec.iter() { got.insert(by_name(&v.name)); count += 1; } }
            got.insert(p);
            count += 1;
            if core.is_empty() {
                prop_assert!(s.code.is_empty());
                continue;
            }
            prop_assert_eq!(&got, &expected);
            // Sections partition the subgraph: no node is listed twice.
            prop_assert_eq!(count, expected.len());
            prop_assert_eq!(s.code.len(), core.iter().filter(|&&v| v >= k).count());
        }
    }
}

#[test]
fn rewind_keeps_parameters_and_reuses_names() {
    let g = Graph::new();
    let x = g.param(1.0);
    let mark = g.mark();
    let first = (&x + 1.0).name();
    (&x * 2.0).backward("fb").unwrap();
    g.rewind(mark);
    assert_eq!(g.len(), 1);
    assert!(x.children().is_empty());
    assert!(summarize(std::slice::from_ref(&x)).feedback.is_empty());
    assert_eq!((&x + 1.0).name(), first);
    assert_eq!(
        g.value(3.0).name(),
        "float2",
        "float0 is x, float1 was reused by the constant above"
    );
}
