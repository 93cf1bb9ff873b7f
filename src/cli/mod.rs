//! The `opto` command line (clap), one file per subcommand.

pub mod bench;
mod bench_replay;
pub mod bounds;
pub mod graph;
pub mod models;
pub mod prompt;
pub mod resume;
pub mod run;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "opto", version, about = "Trace-style generative optimization with a local LLM", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of `run`'s arguments costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
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

/// Parses the process's command line (exiting with clap's message on a bad one), and records
/// which `opto run` flags were typed rather than defaulted (`RunArgs::explicit`), so that
/// `--resume` can tell "left out" from "asked for the default".
pub fn parse() -> Cli {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let (Command::Run(args), Some(("run", sub))) = (&mut cli.command, matches.subcommand()) {
        args.explicit = sub
            .ids()
            .filter(|id| {
                sub.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine)
            })
            .map(|id| id.to_string())
            .collect();
    }
    cli
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
