//! The README's quickstart is `examples/quickstart.rs` (which `cargo test` compiles): this test
//! holds the README's code block equal to the example's code, so the two cannot drift apart.
//! It also checks that every example the README lists exists.

const README: &str = include_str!("../README.md");
const QUICKSTART: &str = include_str!("../examples/quickstart.rs");

/// The first ```rust block after `heading`.
fn rust_block_after(text: &str, heading: &str) -> String {
    let at = text.find(heading).unwrap_or_else(|| panic!("README has no `{heading}` section"));
    let rest = &text[at..];
    let start =
        rest.find("```rust\n").expect("a rust block follows the heading") + "```rust\n".len();
    let end = rest[start..].find("```").expect("the block is closed");
    rest[start..start + end].to_string()
}

#[test]
fn the_readme_quickstart_is_the_quickstart_example() {
    let block = rust_block_after(README, "## Quickstart (library)");
    // The example's code is the file after its `//!` header (and the blank line that ends it).
    let code: String = QUICKSTART
        .lines()
        .skip_while(|l| l.starts_with("//!") || l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        block, code,
        "README.md's quickstart and examples/quickstart.rs differ: change both"
    );
}

#[test]
fn every_example_the_readme_lists_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let listed: Vec<&str> = README
        .split("--example ")
        .skip(1)
        .filter_map(|s| s.split(|c: char| !c.is_alphanumeric() && c != '_').next())
        .filter(|s| !s.is_empty())
        .collect();
    assert!(listed.len() >= 4, "the README lists the examples: {listed:?}");
    for name in listed {
        assert!(
            root.join("examples").join(format!("{name}.rs")).is_file(),
            "README lists `--example {name}`, which does not exist"
        );
    }
}
