//! The dataset loop end to end: the prompt program (traced LLM call + sandboxed extractor) on a
//! scripted model, whose answers depend on the template the optimizer sets, so test accuracy
//! can only go up if the feedback reached the template and the kept parameters are the best on
//! validation. Plus the JSONL checks the CLI runs before any model is loaded, and the traced call
//! on the real engine (a tiny random-weight model) for cut-off replies.

use opto::call::{template_parameter, LlmCall};
use opto::code::MontySandbox;
use opto::graph::{Graph, Node};
use opto::llm::local::fixture::write_tiny_qwen2;
use opto::llm::local::{LocalLlm, LocalOptions};
use opto::llm::scripted::ScriptedLlm;
use opto::llm::{GenerationParams, Llm};
use opto::optim::{Optimizer, OptoPrime, OptoPrimeOptions};
use opto::tasks::prompt::PromptProgram;
use opto::train::dataset::{load_jsonl, split};
use opto::train::dataset_trainer::DATASET_EVENTS_FILE;
use opto::train::{DatasetOptions, DatasetSummary, DatasetTrainer, Item, SplitSizes, Splits};
use std::sync::Arc;

const GOOD_TEMPLATE: &str = "Reply with the number only. {input}";

/// The program's model answers `add A B` with the bare sum when the prompt says "number only",
/// else in a sentence; the optimizer (requests with a schema) always suggests the good template.
fn scripted() -> Arc<ScriptedLlm> {
    Arc::new(ScriptedLlm::from_fn(|req| {
        if req.schema.is_some() {
            return Ok(format!(
                r#"{{"reasoning": "ask for the bare number", "suggestion": {{"prompt": "{GOOD_TEMPLATE}"}}}}"#
            ));
        }
        let text = &req.messages.last().unwrap().content;
        let nums: Vec<i64> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        let sum: i64 = nums.iter().sum();
        Ok(if text.contains("number only") {
            sum.to_string()
        } else {
            format!("The sum is {sum}, I think.")
        })
    }))
}

fn items(range: std::ops::Range<i64>) -> Vec<Item> {
    range
        .map(|i| Item {
            id: i as usize,
            input: format!("add {i} {}", i * 2),
            expected: (3 * i).to_string(),
            split: None,
        })
        .collect()
}

fn trainer(llm: Arc<ScriptedLlm>, out: &std::path::Path, steps: usize) -> DatasetTrainer {
    let program = Arc::new(PromptProgram::new(
        "adding",
        llm.clone(),
        GenerationParams { max_tokens: 32, ..Default::default() },
        Arc::new(MontySandbox::default()),
    ));
    let make_optimizer = Arc::new(|params: Vec<Node>, llm: Arc<dyn Llm>| -> Box<dyn Optimizer> {
        Box::new(OptoPrime::with_options(
            params,
            llm,
            OptoPrimeOptions {
                objective: opto::tasks::prompt::OBJECTIVE.into(),
                ..Default::default()
            },
        ))
    });
    DatasetTrainer {
        program,
        llm,
        splits: Splits { train: items(0..6), validation: items(10..13), test: items(20..30) },
        grader: Default::default(),
        options: DatasetOptions {
            steps,
            minibatch: 3,
            seed: 1,
            eval_batch: 4,
            record_contents: false,
            ..Default::default()
        },
        out_dir: out.to_path_buf(),
        make_optimizer,
        config: serde_json::json!({ "task": "prompt", "data": { "path": "/somewhere/data.jsonl", "sha256": "ab" } }),
        progress: false,
    }
}

fn events(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join(DATASET_EVENTS_FILE))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn minibatch_feedback_reaches_the_template_and_the_best_on_validation_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let llm = scripted();
    let summary: DatasetSummary = trainer(llm.clone(), dir.path(), 2).run().unwrap();
    assert_eq!((summary.test_before.correct, summary.test_before.total), (0, 10));
    assert_eq!((summary.test_after.correct, summary.test_after.total), (10, 10));
    assert_eq!(summary.best_after_step, 1);
    assert_eq!(summary.best_params["prompt"], opto::graph::Value::Str(GOOD_TEMPLATE.into()));
    assert_eq!(
        summary.initial_params["prompt"],
        opto::graph::Value::Str(opto::tasks::prompt::INITIAL_TEMPLATE.into())
    );
    // One optimizer request for step 1 (three feedbacks in it); step 2 was all correct: no request.
    let optimizer_requests: Vec<_> =
        llm.requests().into_iter().filter(|r| r.schema.is_some()).collect();
    assert_eq!(optimizer_requests.len(), 1);
    let prompt = &optimizer_requests[0].messages.last().unwrap().content;
    assert_eq!(prompt.matches("call_llm(template=prompt, input=question").count(), 3, "{prompt}");
    assert!(prompt.contains("the expected answer is"), "{prompt}");
    // Evaluation and minibatch calls come one request per call (from their own threads).
    assert!(llm.batch_sizes().iter().all(|&n| n == 1));
    let ev = events(dir.path());
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0]["train"]["correct"], 0);
    assert_eq!(ev[1]["train"]["correct"], 3);
    // A private run writes no item, prompt or reply into the folder.
    for f in ["dataset-events.jsonl", "checkpoint.json", "summary.json", "config.json"] {
        let text = std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert!(!text.contains("add 2") && !text.contains("The sum is"), "{f} holds item contents");
    }
}

/// The greedy optimizer reply always suggests a template that keeps the sentence answers; only
/// sampled replies (temperature > 0) find "number only". A plain step never gets there; a
/// best-of search runs each candidate on the minibatch and keeps the one that answers.
#[test]
fn a_best_of_search_keeps_the_candidate_that_answers_the_minibatch() {
    let llm = Arc::new(ScriptedLlm::from_fn(|req| {
        if req.schema.is_some() {
            let template = if req.params.temperature > 0.0 {
                GOOD_TEMPLATE
            } else {
                "Please answer this: {input}"
            };
            return Ok(format!(
                r#"{{"reasoning": "r", "suggestion": {{"prompt": "{template}"}}}}"#
            ));
        }
        let text = &req.messages.last().unwrap().content;
        let nums: Vec<i64> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        let sum: i64 = nums.iter().sum();
        Ok(if text.contains("number only") { sum.to_string() } else { format!("It is {sum}.") })
    }));
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = trainer(llm.clone(), plain_dir.path(), 1).run().unwrap();
    assert_eq!(plain.test_after.correct, 0);

    let dir = tempfile::tempdir().unwrap();
    let mut searching = trainer(llm.clone(), dir.path(), 1);
    searching.options.candidates = 3;
    let before = llm.requests().len();
    let summary = searching.run().unwrap();
    assert_eq!((summary.test_after.correct, summary.test_after.total), (10, 10));
    assert_eq!(summary.best_params["prompt"], opto::graph::Value::Str(GOOD_TEMPLATE.into()));
    let asked: Vec<_> =
        llm.requests()[before..].iter().filter(|r| r.schema.is_some()).cloned().collect();
    assert_eq!(asked.len(), 3, "three candidates for the one step");
    assert_eq!(llm.batch_sizes().iter().filter(|&&n| n == 3).count(), 1, "asked in one batch");
    let search = &events(dir.path())[0]["optimizer"]["search"];
    assert_eq!(search["current_correct"], 0);
    assert_eq!(search["candidates"][0]["correct"], 0, "{search}");
    assert_eq!(search["candidates"][1]["correct"], 3, "{search}");
    assert!(search["candidates"][2]["skipped"].as_str().unwrap().contains("same values"));
    assert_eq!(search["kept"], 1);
    // The program's own answer-line edits ran beside them; they lose here (this model ignores
    // an `Answer:` request), and a tie would have gone to the model's candidate.
    let own: Vec<_> = search["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["source"].as_str().unwrap().starts_with("program: "))
        .collect();
    assert_eq!(own.len(), 2, "{search}");
    assert!(own.iter().all(|c| c["correct"] == 0), "{search}");
}

/// A search whose candidates are all rejected moves nothing, and the next prompt says why, as a
/// plain step's would.
#[test]
fn rejected_candidates_of_a_search_step_are_named_on_the_next_prompt() {
    let llm = Arc::new(ScriptedLlm::from_fn(|req| {
        if req.schema.is_some() {
            return Ok(
                r#"{"reasoning": "r", "suggestion": {"prompt": "What is add 1 2? It is 3."}}"#
                    .into(),
            );
        }
        Ok("It is a number.".into())
    }));
    let dir = tempfile::tempdir().unwrap();
    let mut searching = trainer(llm.clone(), dir.path(), 2);
    searching.options.candidates = 2;
    searching.options.program_proposals = false;
    let summary = searching.run().unwrap();
    assert_eq!(
        summary.best_params["prompt"],
        opto::graph::Value::Str(opto::tasks::prompt::INITIAL_TEMPLATE.into())
    );
    let asked: Vec<_> = llm.requests().into_iter().filter(|r| r.schema.is_some()).collect();
    assert_eq!(asked.len(), 4, "two candidates in each of two steps");
    let first = &asked[0].messages.last().unwrap().content;
    let second = &asked[2].messages.last().unwrap().content;
    assert!(!first.contains("was rejected"), "{first}");
    assert!(second.contains("was rejected: prompt: it must contain {input}"), "{second}");
    let search = &events(dir.path())[0]["optimizer"]["search"];
    assert!(search["kept"].is_null(), "{search}");
}

#[test]
fn a_killed_run_resumes_at_its_next_step() {
    let dir = tempfile::tempdir().unwrap();
    trainer(scripted(), dir.path(), 1).run().unwrap();
    assert!(trainer(scripted(), dir.path(), 1).run().unwrap_err().to_string().contains("--resume"));
    let llm = scripted();
    let summary = trainer(llm.clone(), dir.path(), 3).resume().unwrap();
    assert_eq!(summary.steps_done, 3);
    assert_eq!(summary.test_before.correct, 0, "test-before comes from the checkpoint");
    assert_eq!(summary.test_after.correct, 10);
    let ev = events(dir.path());
    assert_eq!(ev.iter().map(|e| e["step"].as_u64().unwrap()).collect::<Vec<_>>(), vec![0, 1, 2]);
    // The resumed run starts from the tuned template: no optimizer call was needed.
    assert_eq!(llm.requests().iter().filter(|r| r.schema.is_some()).count(), 0);
}

#[test]
fn jsonl_problems_are_named_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mine.jsonl");
    std::fs::write(
        &p,
        "{\"input\": \"a\", \"answer\": \"b\"}\n{\"input\": \"c\", \"answr\": \"d\"}\n",
    )
    .unwrap();
    let e = load_jsonl(&p).unwrap_err().to_string();
    assert!(e.contains("mine.jsonl line 2: missing field `answer`"), "{e}");
    std::fs::write(
        &p,
        (0..5)
            .map(|i| format!("{{\"input\": \"q{i}\", \"answer\": \"{i}\"}}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let (items, source) = load_jsonl(&p).unwrap();
    assert_eq!(source.items, 5);
    let e = split(items, SplitSizes { train: 15, validation: 5, test: None }, 0, &p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("mine.jsonl") && e.contains("too few items: 5"), "{e}");
}

/// On the real engine: a reply cut at `max_tokens` is an ordinary output that says so.
#[test]
fn a_cut_off_reply_is_an_ordinary_output_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.gguf");
    write_tiny_qwen2(&p, 5).unwrap();
    let llm: Arc<dyn Llm> =
        Arc::new(LocalLlm::load(&p, LocalOptions { threads: 1, ..Default::default() }).unwrap());
    let g = Graph::new();
    let template = template_parameter(&g, "prompt", "Say a lot. {input}");
    let call =
        LlmCall::new(llm, GenerationParams { max_tokens: 6, min_tokens: 6, ..Default::default() });
    let replies =
        call.call_many(&template, &[g.value("first"), g.value("second question")]).unwrap();
    for r in &replies {
        assert!(!r.node.is_exception());
        assert_eq!(r.generated_tokens, 6);
        assert!(r.problem.as_deref().unwrap().contains("cut off at 6 tokens"), "{:?}", r.problem);
    }
    replies[0].node.backward("Wrong answer.").unwrap();
    let s = opto::propagate::summarize(&[template]);
    assert_eq!(s.code, vec!["call_llm0 = call_llm(template=prompt, input=str0)"]);
}
