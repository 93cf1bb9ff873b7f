//! The `opto` binary: parses the command line and reports any error as one line, exit code 2.

fn main() {
    let cli = opto::cli::parse();
    if let Err(e) = opto::cli::dispatch(cli) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
