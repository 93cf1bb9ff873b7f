//! The constraint text of a trainable function's code parameter: what the optimizer LLM reads
//! about the code it may write. It states the required first lines and the Python subset the
//! sandbox runs (monty 0.0.23, measured in SANDBOX.md §6), so a small model does not waste
//! iterations on imports and syntax that cannot work.

use super::signature::Signature;

/// What the sandbox's Python lacks, phrased as rules. Kept short: it is in every prompt.
pub const PYTHON_SUBSET: &str = "\
The code runs in a restricted Python sandbox:
- Imports allowed: math, json, re, collections, itertools (no combinations, permutations or product), functools, typing, dataclasses. No other modules (no os, sys, random, time, numpy, copy, statistics).
- Not supported: class inheritance and super(), generators and yield, match statements, `%` string formatting (use f-strings), `del x[i]`, @staticmethod, @property, math.hypot/prod/fsum.
- Supported: functions, lambdas, closures, simple classes with __init__ and methods, @dataclass, comprehensions, f-strings, try/except, tuples, dicts, sets, sorted/min/max/sum/zip/enumerate.
- No files, network, eval, exec or __import__. Each call has a time limit.";

/// The constraint for a function whose current header is `signature`: the reference's lead-in
/// (the code must start with the signature and docstring) followed by the supported subset.
pub fn code_constraint(signature: &Signature) -> String {
    format!(
        "The code should start with:\n{}\nKeep the function name and its parameters unchanged.\n{PYTHON_SUBSET}",
        signature.text
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_starts_with_header_and_docstring_and_names_the_subset() {
        let sig =
            Signature::first("def step(err, integral):\n    '''One PID step.'''\n    return 0.0\n")
                .unwrap();
        let c = code_constraint(&sig);
        assert!(
            c.starts_with(
                "The code should start with:\ndef step(err, integral):\n    '''One PID step.'''\n"
            ),
            "{c}"
        );
        assert!(c.contains("No other modules") && c.contains("yield") && c.contains("inheritance"));
    }
}
