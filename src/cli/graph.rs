//! `opto graph DIR --svg|--dot`: the final trace graph of a run, as DOT text or as an SVG
//! picture drawn without Graphviz (`graph::picture`).

use crate::error::{Error, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct GraphArgs {
    /// The run folder.
    pub dir: PathBuf,
    /// Print an SVG picture (drawn by opto itself; no Graphviz needed).
    #[arg(long, conflicts_with = "dot")]
    pub svg: bool,
    /// Print DOT text (the default).
    #[arg(long)]
    pub dot: bool,
}

pub fn graph(args: GraphArgs) -> Result<()> {
    let path = args.dir.join("graph.dot");
    let dot = std::fs::read_to_string(&path).map_err(|e| Error::Checkpoint {
        path: path.clone(),
        reason: format!("no trace graph in this folder ({e})"),
    })?;
    if !args.svg {
        print!("{dot}");
        return Ok(());
    }
    let svg = crate::graph::picture::dot_to_svg(&dot)
        .map_err(|reason| Error::Checkpoint { path, reason })?;
    println!("{svg}");
    Ok(())
}
