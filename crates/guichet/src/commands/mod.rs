//! The commands behind the command line.

pub mod import;
pub use import::PartialImport;
mod client;
mod group;
mod mail;
mod member;
mod serve;

use std::sync::Arc;

use anyhow::Context as _;
use guichet_core::clock::{Clock, SystemClock};
use guichet_store::SqlStore;

use crate::cli::{Cli, Command};
use crate::config::{Settings, Sources};

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let serving = matches!(cli.command, Command::Serve);
    init_logging(if serving { "info,sqlx=warn" } else { "warn" });
    let settings = Settings::load(&Sources::from_process(cli.config.as_deref())?)?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("could not start the runtime")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve::run(&settings, clock).await,
            Command::Migrate => {
                SqlStore::connect_and_migrate(&settings.database_url).await?;
                println!("migrations applied to {}", settings.database_url);
                Ok(())
            }
            Command::Member(command) => member::run(command, &settings, clock).await,
            Command::Mail(command) => mail::run(command, &settings).await,
            Command::Group(command) => group::run(command, &settings, clock).await,
            Command::Client(command) => client::run(command, &settings, clock).await,
            Command::Backup { file } => {
                if settings.database_url.backend() == guichet_store::Backend::Postgres {
                    anyhow::bail!(
                        "guichet backup copies SQLite databases; back up PostgreSQL with its own tools: \
                         pg_dump --format=custom --file={} \"$GUICHET_DATABASE_URL\"",
                        file.display()
                    );
                }
                let store = SqlStore::connect(&settings.database_url).await?;
                store.backup_to(&file).await?;
                println!("backup of {} written to {}", settings.database_url, file.display());
                Ok(())
            }
            Command::Config(crate::cli::ConfigCommand::Check) => {
                print!("{}", settings.describe());
                Ok(())
            }
        }
    })
}

/// Logs to standard error; `GUICHET_LOG` (or `RUST_LOG`) overrides the level.
fn init_logging(default: &str) {
    let filter = std::env::var("GUICHET_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
