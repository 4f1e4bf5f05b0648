//! `guichet`: parse the command line, load the configuration, run the command.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = guichet::cli::Cli::parse();
    match guichet::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.downcast_ref::<guichet::commands::PartialImport>().is_some() => {
            eprintln!("error: {}", error.root_cause());
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("error: {}", guichet::english::error(&error));
            ExitCode::FAILURE
        }
    }
}
