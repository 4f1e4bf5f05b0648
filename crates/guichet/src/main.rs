//! `guichet`: parse the command line, load the configuration, run the command.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = guichet::cli::Cli::parse();
    match guichet::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
