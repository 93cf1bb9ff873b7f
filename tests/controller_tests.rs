//! The `controller` task family: the simulators behave like the physics they claim (good gains
//! succeed everywhere, the starting ones nowhere), the trace stays a few lines however long the
//! rollout, out-of-range gains are clamped and said so, and every way a Python controller can
//! fail stops its rollout with the failure as feedback while the run goes on. Python runs in the
//! worker process (the memory-capped sandbox the task uses).

use indexmap::IndexMap;
use opto::code::{Limits, WorkerSandbox};
use opto::graph::{Graph, Node, Value};
use opto::llm::scripted::ScriptedLlm;
use opto::optim::{Optimizer, OptoPrime, OptoPrimeOptions};
use opto::propagate::summarize;
use opto::tasks::controller::{CartPole, ControllerTask, GainLaw, PointMass, PythonLaw};
use opto::train::{RunConfig, Task, Trainer};
use std::sync::Arc;
use std::time::Duration;

fn worker() -> Arc<WorkerSandbox> {
    Arc::new(WorkerSandbox::with_program(
        env!("CARGO_BIN_EXE_opto-sandbox"),
        Limits::default().with_wall_time(Duration::from_millis(50)),
        2,
    ))
}

fn python_task(plant: &str) -> ControllerTask {
    let task = match plant {
        "reach" => ControllerTask::python(PointMass, PythonLaw::reach()),
        _ => ControllerTask::python(CartPole, PythonLaw::cartpole()),
    };
    task.with_sandbox(worker())
}

fn values(pairs: &[(&str, Value)]) -> IndexMap<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// Runs one forward pass with `set` applied to the parameters; the output node or the error.
fn forward_with(
    task: &ControllerTask,
    set: &[(&str, Value)],
) -> (Graph, Vec<Node>, opto::Result<Node>) {
    let g = Graph::new();
    let params = task.parameters(&g, 0);
    for (name, v) in set {
        params.iter().find(|p| p.name() == *name).expect("parameter exists").set_value(v.clone());
    }
    let out = task.forward(&g, &params, 0, 0);
    (g, params, out)
}

/// The rollout nodes of a forward pass with the starting parameters.
fn out_rollouts(task: &ControllerTask) -> Vec<Node> {
    forward_with(task, &[]).2.unwrap().parents()
}

fn failure_feedback(result: opto::Result<Node>) -> String {
    match result {
        Err(opto::Error::Execution { node: Some(node), .. }) => {
            node.error_text().expect("exception node has its text")
        }
        Err(other) => panic!("expected an execution error with its node, got {other}"),
        Ok(node) => panic!("expected the controller to fail, got {}", node.value()),
    }
}

const PD_REACH: &str = "def controller(obs):\n    \"\"\"PD.\"\"\"\n    fx = 4.0 * (obs['target_x'] - obs['x']) - 3.0 * obs['vx']\n    fy = 4.0 * (obs['target_y'] - obs['y']) - 3.0 * obs['vy']\n    return [fx, fy]\n";

#[test]
fn reach_gains_fail_at_the_start_and_damped_gains_succeed_on_every_held_out_state() {
    let task = ControllerTask::gains(PointMass, GainLaw::reach_pd());
    let start =
        task.held_out(&values(&[("kp", Value::Float(1.0)), ("kd", Value::Float(0.0))])).unwrap();
    assert_eq!(
        (start.successes, start.trials),
        (0, 10),
        "undamped P control must not settle: {start:?}"
    );
    let damped =
        task.held_out(&values(&[("kp", Value::Float(4.0)), ("kd", Value::Float(3.0))])).unwrap();
    assert_eq!(damped.successes, 10, "{damped:?}");
    // Under-damped but settling gains are in between: the task is not all-or-nothing.
    let weak =
        task.held_out(&values(&[("kp", Value::Float(3.0)), ("kd", Value::Float(0.5))])).unwrap();
    assert!(weak.successes < 10, "{weak:?}");

    let (_, _, out) = forward_with(&task, &[("kp", Value::Float(4.0)), ("kd", Value::Float(3.0))]);
    let e = task.evaluate(&out.unwrap(), 0, 0);
    assert!(e.success && e.score == 1.0, "{e:?}");
    let (_, _, out) = forward_with(&task, &[]);
    let e = task.evaluate(&out.unwrap(), 0, 0);
    assert!(!e.success && e.score == 0.0, "{e:?}");
    assert!(e.feedback.starts_with("0 of 3 rollouts succeeded"), "{}", e.feedback);
    let diagnoses: Vec<String> = out_rollouts(&task).iter().map(|r| r.value().py_repr()).collect();
    assert!(
        diagnoses.iter().any(|d| d.contains("(overshoot)")),
        "an oscillating mass is diagnosed as overshooting: {diagnoses:?}"
    );
}

#[test]
fn cartpole_needs_position_feedback_as_well_as_angle_feedback() {
    let task = ControllerTask::gains(CartPole, GainLaw::cartpole_linear());
    let k = |x: f64, v: f64, t: f64, w: f64| {
        values(&[
            ("k_x", Value::Float(x)),
            ("k_v", Value::Float(v)),
            ("k_theta", Value::Float(t)),
            ("k_omega", Value::Float(w)),
        ])
    };
    assert_eq!(
        task.held_out(&k(0.0, 0.0, 5.0, 0.0)).unwrap().successes,
        0,
        "the starting gains let the pole fall"
    );
    assert_eq!(task.held_out(&k(1.0, 2.0, 30.0, 5.0)).unwrap().successes, 10);
    assert_eq!(
        task.held_out(&k(-1.0, -2.0, 30.0, 5.0)).unwrap().successes,
        0,
        "pushing the cart the wrong way loses the pole"
    );
    let (_, _, out) = forward_with(&task, &[]);
    let e = task.evaluate(&out.unwrap(), 0, 0);
    assert!(e.feedback.contains("the pole fell past 12 degrees"), "{}", e.feedback);
    // Balancing longer scores higher before anything succeeds: the score ranks candidates.
    assert!(!e.success && e.score > 0.0 && e.score < 0.5, "{e:?}");
    let (_, _, out) = forward_with(
        &task,
        &[
            ("k_x", Value::Float(0.0)),
            ("k_v", Value::Float(0.0)),
            ("k_theta", Value::Float(30.0)),
            ("k_omega", Value::Float(5.0)),
        ],
    );
    let angle_only = task.evaluate(&out.unwrap(), 0, 0);
    assert!(angle_only.score > e.score, "{angle_only:?} vs {e:?}");
}

#[test]
fn a_rollout_of_hundreds_of_steps_is_one_traced_line_and_a_short_summary() {
    let task = ControllerTask::gains(CartPole, GainLaw::cartpole_linear());
    let (_, params, out) = forward_with(
        &task,
        &[
            ("k_x", Value::Float(1.0)),
            ("k_v", Value::Float(2.0)),
            ("k_theta", Value::Float(30.0)),
            ("k_omega", Value::Float(5.0)),
        ],
    );
    let out = out.unwrap();
    out.backward("feedback").unwrap();
    let s = summarize(&params);
    assert_eq!(
        s.code,
        vec![
            "rollout0 = rollout(start=start0, k_x=k_x, k_v=k_v, k_theta=k_theta, k_omega=k_omega)",
            "rollout1 = rollout(start=start1, k_x=k_x, k_v=k_v, k_theta=k_theta, k_omega=k_omega)",
            "rollout2 = rollout(start=start2, k_x=k_x, k_v=k_v, k_theta=k_theta, k_omega=k_omega)",
            "count_successes0 = count_successes(rollout0=rollout0, rollout1=rollout1, rollout2=rollout2)",
        ]
    );
    assert!(
        s.documentation["rollout"].contains("force = k_x * x + k_v * x_dot"),
        "the law is documented: {}",
        s.documentation["rollout"]
    );
    // 500 simulated steps per rollout, yet each summary stays a few hundred characters.
    for other in &s.others {
        let text = other.value.py_repr();
        assert!(text.len() < 450, "{} is {} chars: {text}", other.name, text.len());
        assert!(
            text.contains("'success': True") && text.contains("theta_every_63_steps"),
            "{text}"
        );
    }
}

#[test]
fn out_of_range_gains_are_clamped_and_the_feedback_says_so() {
    let task = ControllerTask::gains(PointMass, GainLaw::reach_pd());
    let (_, _, out) =
        forward_with(&task, &[("kp", Value::Float(50.0)), ("kd", Value::Float(-2.0))]);
    let out = out.unwrap();
    let e = task.evaluate(&out, 0, 0);
    assert!(
        e.feedback.contains("kp=50 is above its range [0, 20], so the rollouts used kp=20"),
        "{}",
        e.feedback
    );
    assert!(
        e.feedback.contains("kd=-2 is below its range [0, 10], so the rollouts used kd=0"),
        "{}",
        e.feedback
    );
    // The clamped run is the run of the clamped gains, not of the suggested ones.
    let (_, _, clamped) =
        forward_with(&task, &[("kp", Value::Float(20.0)), ("kd", Value::Float(0.0))]);
    let first = |n: &Node| n.parents()[0].value();
    let mut a = first(&out);
    if let Value::Dict(d) = &mut a {
        d.shift_remove("clamped");
    }
    assert_eq!(a, first(&clamped.unwrap()));
}

#[test]
fn a_gain_that_is_not_a_number_stops_the_rollout_with_the_reason() {
    let task = ControllerTask::gains(PointMass, GainLaw::reach_pd());
    let text = failure_feedback(forward_with(&task, &[("kp", Value::Str("fast".into()))]).2);
    assert!(text.contains("kp must be a number, got str 'fast'"), "{text}");
    let text = failure_feedback(forward_with(&task, &[("kd", Value::Float(f64::NAN))]).2);
    assert!(text.contains("kd is NaN, not a finite number"), "{text}");
}

#[test]
fn python_controllers_start_failing_and_a_pd_controller_succeeds_in_the_sandbox() {
    let task = python_task("reach");
    let start =
        task.held_out(&values(&[("__code0", Value::Code(PythonLaw::reach().initial))])).unwrap();
    assert_eq!(start.successes, 0, "{start:?}");
    let pd = task.held_out(&values(&[("__code0", Value::Code(PD_REACH.into()))])).unwrap();
    assert_eq!(pd.successes, 10, "{pd:?}");
    // The code controller and the gains with the same law agree rollout for rollout.
    let gains = ControllerTask::gains(PointMass, GainLaw::reach_pd());
    let (_, _, a) = forward_with(&task, &[("__code0", Value::Code(PD_REACH.into()))]);
    let (_, _, b) = forward_with(&gains, &[("kp", Value::Float(4.0)), ("kd", Value::Float(3.0))]);
    let steps = |n: Node| {
        n.parents()
            .iter()
            .map(|r| r.value().py_repr())
            .map(|s| s[..s.find("'first_action'").unwrap()].to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(steps(a.unwrap()), steps(b.unwrap()));

    let (_, params, out) = forward_with(&task, &[]);
    let out = out.unwrap();
    out.backward("f").unwrap();
    let s = summarize(&params);
    assert_eq!(s.code[0], "rollout0 = rollout(start=start0, controller=__code0)");
    assert!(s.others[0].value.py_repr().contains("'first_action': {'fx': -0.695, 'fy': 1.367}"), "the summary shows what the function did on the first observation (target - position of start0)");
}

#[test]
fn every_way_a_python_controller_fails_stops_the_rollout_with_the_failure_as_feedback() {
    let task = python_task("reach");
    let body = |b: &str| Value::Code(format!("def controller(obs):\n    \"\"\"x\"\"\"\n{b}"));
    let cases: [(&str, &str); 7] = [
        ("    return 1 / (obs['x'] - obs['x'])\n", "ZeroDivisionError"),
        ("    while True:\n        pass\n", "TimeoutError"),
        ("    return [float('nan'), 0.0]\n", "nan is not a finite number"),
        ("    return [1.0, 2.0, 3.0]\n", "must return a list of 2 numbers [fx, fy]"),
        ("    return 'left'\n", "returned 'left'"),
        ("    return [obs['z'], 0]\n", "KeyError"),
        ("    return [0.0, 0.0\n", "SyntaxError"),
    ];
    for (code, expected) in cases {
        let text = failure_feedback(forward_with(&task, &[("__code0", body(code))]).2);
        assert!(text.contains(expected), "{code:?}: {text}");
        assert!(text.starts_with("rollout0 stopped at step 0 (obs = {'x':"), "{code:?}: {text}");
    }
    // A controller that fails only later says at which step.
    let late = body("    if abs(obs['vx']) > 0.3:\n        raise ValueError('too fast')\n    return [obs['target_x'] - obs['x'], obs['target_y'] - obs['y']]\n");
    let text = failure_feedback(forward_with(&task, &[("__code0", late.clone())]).2);
    assert!(text.contains("ValueError: too fast") && !text.contains("at step 0 "), "{text}");
    // A header change is refused before anything runs.
    let text = failure_feedback(
        forward_with(
            &task,
            &[("__code0", Value::Code("def controller(obs, t):\n    return [0, 0]\n".into()))],
        )
        .2,
    );
    assert!(text.contains("(obs) to (obs, t)"), "{text}");
    // Held-out counts a failing controller as failing, with the reason.
    let h = task.held_out(&values(&[("__code0", late)])).unwrap();
    assert!(h.successes < 10 && h.note.as_deref().is_some_and(|n| n.contains("too fast")), "{h:?}");
}

#[test]
fn cartpole_code_takes_one_number_and_the_starting_code_lets_the_pole_fall() {
    let task = python_task("cartpole");
    let start =
        task.held_out(&values(&[("__code0", Value::Code(PythonLaw::cartpole().initial))])).unwrap();
    assert_eq!(start.successes, 0);
    let good = "def controller(obs):\n    \"\"\"x\"\"\"\n    return obs['x'] + 2 * obs['x_dot'] + 30 * obs['theta'] + 5 * obs['theta_dot']\n";
    assert_eq!(
        task.held_out(&values(&[("__code0", Value::Code(good.into()))])).unwrap().successes,
        10
    );
}

#[test]
fn variants_are_chosen_by_task_name_and_unknown_ones_are_named() {
    for (name, expected) in [
        ("controller", "controller-reach-gains"),
        ("controller-reach", "controller-reach-gains"),
        ("controller-reach-code", "controller-reach-code"),
        ("controller-cartpole", "controller-cartpole-gains"),
        ("controller-cartpole-code", "controller-cartpole-code"),
    ] {
        assert_eq!(opto::tasks::by_name(name, 0).unwrap().name(), expected);
    }
    let err = opto::tasks::by_name("controller-arm", 0).err().unwrap().to_string();
    assert!(err.contains("controller-arm") && err.contains("controller-reach-gains"), "{err}");
    // Training starts differ by seed and never equal the held-out ones.
    let task = ControllerTask::gains(PointMass, GainLaw::reach_pd());
    let held: Vec<Vec<f64>> = task.starts(None).into_iter().map(|s| s.0).collect();
    let s0: Vec<Vec<f64>> = task.starts(Some(0)).into_iter().map(|s| s.0).collect();
    let s1: Vec<Vec<f64>> = task.starts(Some(1)).into_iter().map(|s| s.0).collect();
    assert_ne!(s0, s1);
    assert!(s0.iter().chain(&s1).all(|s| !held.contains(s)));
    assert_eq!(held.len(), 10);
    // A search stays inside the gains' ranges.
    assert_eq!(task.bounds("kd"), Some((0.0, 10.0)));
    assert_eq!(task.bounds("x"), None);
}

#[test]
fn a_run_with_a_failing_suggestion_goes_on_and_reports_held_out_before_and_after() {
    let dir = tempfile::tempdir().unwrap();
    // Step 0: a gain that is text (rejected by coercion, shown next time); step 1: gains that
    // are far out of range (clamped, said so); step 2: damped gains that succeed.
    let llm = Arc::new(ScriptedLlm::new([
        r#"{"suggestion": {"kp": "fast", "kd": 0.0}}"#,
        r#"{"suggestion": {"kp": 1.0, "kd": 500.0}}"#,
        r#"{"suggestion": {"kp": 4.0, "kd": 3.0}}"#,
    ]));
    let config = RunConfig {
        task: "controller-reach-gains".into(),
        steps: 5,
        memory: 2,
        model: "scripted".into(),
        max_tokens: 200,
        ..Default::default()
    };
    let trainer = Trainer {
        task: Arc::new(ControllerTask::gains(PointMass, GainLaw::reach_pd())),
        llm: llm.clone(),
        config,
        out_dir: dir.path().join("run"),
        make_optimizer: Arc::new(|params, llm, _| {
            Box::new(OptoPrime::with_options(
                params,
                llm,
                OptoPrimeOptions { memory_size: 2, ..Default::default() },
            )) as Box<dyn Optimizer>
        }),
        progress: false,
    };
    let summary = trainer.run().unwrap();
    assert_eq!(summary.solved_at, vec![Some(3)]);
    let h = &summary.held_out[0];
    assert_eq!((h.before.successes, h.after.successes, h.best.successes), (0, 10, 10), "{h:?}");
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("run/held_out.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(file[0]["after"]["successes"], 10);
    let prompts: Vec<String> =
        llm.requests().iter().map(|r| r.messages.last().unwrap().content.clone()).collect();
    assert!(prompts[1].contains("kp: your value fast was rejected"), "{}", prompts[1]);
    assert!(
        prompts[2].contains("kd=500 is above its range [0, 10], so the rollouts used kd=10"),
        "{}",
        prompts[2]
    );
}
