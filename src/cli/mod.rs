//! The `opto` command line (clap), one file per subcommand.

pub mod bench;
pub mod graph;
pub mod models;
pub mod prompt;
pub mod run;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "opto", version, about = "Trace-style generative optimization with a local LLM", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Optimize a task: `opto run numeric --seeds 4 --steps 10`.
    Run(run::RunArgs),
    /// Rebuild the HTML report of a run folder.
    Report {
        /// The run folder (holds events.jsonl).
        dir: std::path::PathBuf,
    },
    /// Show the final trace graph of a run folder as DOT or SVG.
    Graph(graph::GraphArgs),
    /// List, download, check and locate models.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Speed benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Runs a parsed command line.
pub fn dispatch(cli: Cli) -> crate::Result<()> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Report { dir } => {
            crate::train::report::write_report(&dir)?;
            println!("{}", dir.join(crate::train::report::REPORT_FILE).display());
            Ok(())
        }
        Command::Graph(args) => graph::graph(args),
        Command::Models(cmd) => models::models(cmd),
        Command::Bench(cmd) => bench::bench(cmd),
    }
}
