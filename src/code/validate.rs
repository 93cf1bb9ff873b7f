//! Checks on a suggested rewrite before it is ever run: the optimizer LLM must return the whole
//! function under the same name and parameters. A rejection is a reason text for the next prompt.

use super::signature::{top_level_defs, Signature};

/// Accepts `new_source` as a rewrite of the function whose header is `original`, or says why not.
/// Syntax errors in the body are left to `Sandbox::compile`, which reports them with a traceback.
pub fn validate_rewrite(original: &Signature, new_source: &str) -> Result<(), String> {
    let want = &original.header;
    if new_source.trim().is_empty() {
        return Err(format!(
            "The suggested code is empty. Write the whole function, starting with `{want}`."
        ));
    }
    let defs = top_level_defs(new_source);
    let Some(found) = defs.iter().find(|d| d.name == original.name) else {
        return Err(match defs.first() {
            Some(other) => format!(
                "The suggested code renames the function to `{}`. Keep the name: the code must start with `{want}`.",
                other.name
            ),
            None if new_source.contains(&format!("def {}", original.name)) => format!(
                "The header of `{}` in the suggested code is incomplete or indented. The code must start at column 0 with `{want}`.",
                original.name
            ),
            None => format!("The suggested code does not define a function. It must start with `{want}`."),
        });
    };
    if found.params != original.params {
        return Err(format!(
            "The suggested code changes the parameters of `{}` from {} to {}. Keep them exactly: the code must start with `{want}`.",
            original.name,
            original.params_text(),
            found.params_text()
        ));
    }
    Ok(())
}

/// Compiles `new_source` (parsing only: nothing runs) and returns the compiler's traceback when
/// it does not compile, so a broken suggestion never replaces code that works. The optimizer
/// calls this on every code suggestion; the reason goes into its next prompt.
pub fn check_compiles(original: &Signature, new_source: &str) -> Result<(), String> {
    use super::sandbox::Sandbox;
    match super::MontySandbox::default().compile(new_source, &original.name) {
        Ok(_) => Ok(()),
        Err(e) => {
            Err(format!("it does not compile, so the working code was kept:\n{}", e.traceback))
        }
    }
}

/// Cleans an LLM's code reply: drops Markdown fences (```python ... ```) and removes an indent
/// shared by every line. Apply before `validate_rewrite`.
pub fn normalize_suggestion(text: &str) -> String {
    let mut body = text.trim_matches('\n');
    if let Some(open) = body.find("```") {
        let after_open = &body[open + 3..];
        // Skip the language tag on the fence line.
        let start = after_open.find('\n').map(|n| n + 1).unwrap_or(after_open.len());
        let inner = &after_open[start..];
        body = match inner.find("```") {
            Some(close) => &inner[..close],
            None => inner,
        };
    }
    let lines: Vec<&str> = body.lines().collect();
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches([' ', '\t']).len())
        .min()
        .unwrap_or(0);
    let mut out: Vec<&str> = lines
        .iter()
        .map(|l| if l.len() >= indent { &l[indent..] } else { l.trim_start() })
        .collect();
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    while out.first().is_some_and(|l| l.trim().is_empty()) {
        out.remove(0);
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig() -> Signature {
        Signature::first("def controller(obs, gain=1.0):\n    \"\"\"Act.\"\"\"\n    return 0.0\n")
            .unwrap()
    }

    #[test]
    fn same_header_with_new_body_passes() {
        let new = "import math\n\ndef helper(x):\n    return x\n\ndef controller(obs, gain=2.0):\n    return helper(obs['pos']) * gain\n";
        assert_eq!(validate_rewrite(&sig(), new), Ok(()));
    }

    #[test]
    fn empty_code_is_rejected() {
        let err = validate_rewrite(&sig(), "  \n\t\n").unwrap_err();
        assert!(err.contains("empty") && err.contains("def controller(obs, gain=1.0):"), "{err}");
    }

    #[test]
    fn renamed_function_is_rejected_with_both_names() {
        let err =
            validate_rewrite(&sig(), "def control(obs, gain=1.0):\n    return 1.0\n").unwrap_err();
        assert!(err.contains("`control`") && err.contains("def controller("), "{err}");
    }

    #[test]
    fn changed_parameters_are_rejected_showing_old_and_new() {
        let err = validate_rewrite(&sig(), "def controller(obs, gain, t):\n    return 1.0\n")
            .unwrap_err();
        assert!(err.contains("from (obs, gain) to (obs, gain, t)"), "{err}");
        let err = validate_rewrite(&sig(), "def controller(state, gain=1.0):\n    return 1.0\n")
            .unwrap_err();
        assert!(err.contains("to (state, gain)"), "{err}");
    }

    #[test]
    fn prose_without_a_function_is_rejected() {
        let err = validate_rewrite(&sig(), "Increase the gain to 2.0.").unwrap_err();
        assert!(err.contains("does not define a function"), "{err}");
    }

    #[test]
    fn indented_header_is_explained() {
        let err = validate_rewrite(
            &sig(),
            "if True:\n    def controller(obs, gain=1.0):\n        return 1.0\n",
        )
        .unwrap_err();
        assert!(err.contains("column 0"), "{err}");
    }

    #[test]
    fn code_that_does_not_compile_is_rejected_with_its_traceback() {
        assert_eq!(
            check_compiles(&sig(), "def controller(obs, gain=1.0):\n    return gain * obs\n"),
            Ok(())
        );
        let why = check_compiles(&sig(), "def controller(obs, gain=1.0):\n    return (gain *\n")
            .unwrap_err();
        assert!(
            why.contains("does not compile")
                && why.contains("SyntaxError")
                && why.contains("controller.py"),
            "{why}"
        );
    }

    #[test]
    fn fences_and_shared_indent_are_removed() {
        let reply = "```python\n    def controller(obs, gain=1.0):\n        return 2.0\n```\n";
        assert_eq!(normalize_suggestion(reply), "def controller(obs, gain=1.0):\n    return 2.0\n");
        assert_eq!(validate_rewrite(&sig(), &normalize_suggestion(reply)), Ok(()));
    }
}
