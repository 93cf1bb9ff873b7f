//! `opto run --resume DIR` takes its configuration from the folder, not from the command line's
//! defaults: a flag left out means "as the run was", a flag given must agree with the run (or,
//! for `--steps`, extend it). Without this, `--resume D --problem 3` silently continued problem
//! 0's state on problem 3, and a resume without `--steps` cut or stretched the run to the default.
//!
//! Which flags were typed is known from clap's value sources (`RunArgs::explicit`, filled by
//! [`crate::cli::parse`]); a `RunArgs` built by hand has none, so everything comes from the folder.

use super::run::RunArgs;
use crate::error::{Error, Result};
use crate::train::search::SearchSettings;
use crate::train::Checkpoint;

/// Overwrites `args` with the configuration of the run folder `args.resume`; an explicit flag
/// that disagrees with the folder is an error naming it. No-op without `--resume`.
pub fn apply_folder_config(args: &mut RunArgs) -> Result<()> {
    let Some(dir) = args.resume.clone() else { return Ok(()) };
    let cp = Checkpoint::load(&dir)?;
    let run = &cp.config;
    let given = |id: &str| args.explicit.iter().any(|e| e == id);
    let conflict = |flag: &str, typed: String, was: String| {
        Error::invalid(
            flag,
            format!("{typed} disagrees with the run in {} ({was}); a resumed run keeps its configuration: leave the flag out", dir.display()),
        )
    };
    if args.task != run.task {
        return Err(conflict("TASK", args.task.clone(), run.task.clone()));
    }
    macro_rules! take {
        ($field:ident, $flag:literal) => {
            if given(stringify!($field)) && args.$field != run.$field {
                return Err(conflict($flag, args.$field.to_string(), run.$field.to_string()));
            }
            args.$field = run.$field.clone();
        };
    }
    take!(problem, "--problem");
    take!(optimizer, "--optimizer");
    // With --problems, the folder counts runs (seeds × problems); the flag counts seeds.
    if run.problems.is_empty() {
        if given("problems") {
            return Err(conflict(
                "--problems",
                args.problems.clone().unwrap_or_default(),
                format!("problem {}", run.problem),
            ));
        }
        take!(seeds, "--seeds");
    } else {
        let listed = run.problems.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
        if let Some(typed) = args.problems.as_deref().filter(|_| given("problems")) {
            if crate::tasks::problem_set::parse_problems(typed)? != run.problems {
                return Err(conflict("--problems", typed.to_string(), listed));
            }
        }
        args.problems = Some(listed);
        let seeds = run.seeds / run.problems.len().max(1);
        if given("seeds") && args.seeds != seeds {
            return Err(conflict("--seeds", args.seeds.to_string(), seeds.to_string()));
        }
        args.seeds = seeds;
    }
    take!(first_seed, "--first-seed");
    take!(memory, "--memory");
    take!(temperature, "--temperature");
    take!(max_tokens, "--max-tokens");
    if given("no_stop_on_success") && args.no_stop_on_success == run.stop_on_success {
        return Err(conflict(
            "--no-stop-on-success",
            "given".into(),
            "the run stops a seed once it is solved".into(),
        ));
    }
    args.no_stop_on_success = !run.stop_on_success;
    // The off-switches: typed on a resume, they must match how the run was.
    for (id, flag, typed, was_on) in [
        ("no_line_guard", "--no-line-guard", args.no_line_guard, run.line_guard),
        ("no_bracket_hint", "--no-bracket-hint", args.no_bracket_hint, run.bracket_hint),
    ] {
        if given(id) && typed == was_on {
            return Err(conflict(flag, "given".into(), format!("the run had {} on", &flag[5..])));
        }
    }
    args.no_line_guard = !run.line_guard;
    args.no_bracket_hint = !run.bracket_hint;
    if given("steps") {
        if args.steps < run.steps {
            return Err(Error::invalid(
                "--steps",
                format!(
                    "{} would shorten the run in {} ({} steps); a resume can only extend it",
                    args.steps,
                    dir.display(),
                    run.steps
                ),
            ));
        }
        // A larger count is an explicit extension; the trainer records it in config.json.
    } else {
        args.steps = run.steps;
    }
    let run_was_remote = run.model.starts_with("remote ");
    if run_was_remote && args.remote.is_none() {
        return Err(Error::invalid(
            "--remote",
            format!(
                "the run in {} used {}; give --remote URL to continue it",
                dir.display(),
                run.model
            ),
        ));
    }
    if !run_was_remote && args.remote.is_some() {
        return Err(conflict(
            "--remote",
            args.remote.clone().unwrap_or_default(),
            run.model.clone(),
        ));
    }
    if !run_was_remote && !given("model") {
        if let Some(sha) = &run.model_sha256 {
            args.model = cached_model_with_sha256(sha).ok_or_else(|| {
                Error::invalid("--model", format!("the run in {} used a model with sha256 {sha} that is not in the cache; give --model", dir.display()))
            })?;
        }
    }
    Ok(())
}

/// On `--resume`, the folder's search settings, which replace what the flags would give; a search
/// flag that was typed and gives other settings is an error. `None` when not resuming.
pub fn folder_search(
    args: &RunArgs,
    asked: &Option<SearchSettings>,
) -> Result<Option<Option<SearchSettings>>> {
    let Some(dir) = &args.resume else { return Ok(None) };
    let run = Checkpoint::load(dir)?.config;
    let typed = ["search", "candidates", "no_numeric_proposals"]
        .iter()
        .any(|id| args.explicit.iter().any(|e| e == id));
    if typed && *asked != run.search {
        let was = run.search.as_ref().map_or("greedy".to_string(), |s| s.strategy.label());
        return Err(Error::invalid("--search", format!("{} disagrees with the run in {} ({was}); a resumed run keeps its configuration: leave the flag out", args.search, dir.display())));
    }
    Ok(Some(run.search))
}

/// The id of a cached built-in model whose usable file has this sha256 (nothing is hashed: the
/// cache markers say).
fn cached_model_with_sha256(sha: &str) -> Option<String> {
    let store = crate::llm::local::hub::ModelStore::open_default().ok()?;
    store
        .list()
        .into_iter()
        .filter(|m| m.cached)
        .find(|m| crate::llm::local::hub::cached_sha256(&m.path).as_deref() == Some(sha))
        .map(|m| m.id)
}
