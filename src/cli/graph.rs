//! `opto graph DIR --svg|--dot`: the final trace graph of a run.

use crate::error::{Error, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct GraphArgs {
    /// The run folder.
    pub dir: PathBuf,
    /// Print SVG (needs Graphviz's `dot`).
    #[arg(long, conflicts_with = "dot")]
    pub svg: bool,
    /// Print DOT text (the default).
    #[arg(long)]
    pub dot: bool,
}

pub fn graph(args: GraphArgs) -> Result<()> {
    let path = args.dir.join("graph.dot");
    let dot = std::fs::read_to_string(&path).map_err(|e| Error::Checkpoint { path: path.clone(), reason: format!("no trace graph in this folder ({e})") })?;
    if !args.svg {
        print!("{dot}");
        return Ok(());
    }
    use std::io::Write;
    let mut child = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::invalid("--svg", format!("Graphviz `dot` is not available ({e}); use --dot")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(dot.as_bytes()).map_err(|e| Error::io("dot", e))?;
    }
    let out = child.wait_with_output().map_err(|e| Error::io("dot", e))?;
    std::io::stdout().write_all(&out.stdout).map_err(|e| Error::io("stdout", e))
}
