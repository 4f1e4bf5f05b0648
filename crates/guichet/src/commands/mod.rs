//! The commands behind the command line.

/// `println!` for a command's output, except that a reader gone away (`member show X |
/// head`) ends the command quietly instead of panicking on the closed pipe.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(error) = writeln!(std::io::stdout(), $($arg)*) {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

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

/// `guichet retention`: each kind, its period, and what the next round removes.
async fn retention(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    use guichet_core::retention::Kept;
    let app = crate::app::Application::build(settings, clock).await?;
    let result = app.retention_preview().await;
    app.store.close().await;
    let (next, due) = result?;
    let period = |kind: Kept| crate::config::short_duration(kind.period(app.retention()));
    say!("{:<36} {:<10} {:>11}  what", "setting", "kept", "next round");
    for kind in Kept::ALL {
        say!("{:<36} {:<10} {:>11}  {}", kind.setting(), period(kind), next.of(kind), kind.english());
    }
    say!(
        "{:<36} {:<10} {:>11}  erasures asked for, done after this delay unless cancelled",
        "GUICHET_ERASURE_DELAY",
        crate::config::short_duration(settings.erasure_delay),
        due
    );
    say!("housekeeping runs at the start of guichet serve and every ten minutes.");
    Ok(())
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let serving = matches!(cli.command, Command::Serve);
    init_logging(if serving { "info,sqlx=warn" } else { "warn" }, log_format()?);
    let sources = Sources::from_process(cli.config.as_deref())?;
    let settings = Settings::load(&sources)?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("could not start the runtime")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve::run(&settings, clock).await,
            Command::Migrate => {
                SqlStore::connect_and_migrate(&settings.database_url).await?;
                say!("migrations applied to {}", settings.database_url);
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
                say!("backup of {} written to {}", settings.database_url, file.display());
                Ok(())
            }
            Command::Retention => retention(&settings, clock).await,
            Command::Config(crate::cli::ConfigCommand::Check { connect }) => {
                // What `serve` would refuse later: the mail transport and DKIM key, the
                // database URL's options and its sslrootcert.
                let mailer = guichet_mail::Mailer::new(crate::app::mail_settings(&settings))?;
                SqlStore::check_url(&settings.database_url)?;
                say!("{}", settings.describe().trim_end());
                say!("{}", sources.origins().trim_end());
                if connect {
                    let store = SqlStore::connect(&settings.database_url).await?;
                    let schema = guichet_core::ports::Health::schema(&store).await?;
                    say!("database: answers, schema {schema:?}");
                    say!("mail: {}", mailer.check_connection().await?);
                    store.close().await;
                }
                Ok(())
            }
        }
    })
}

/// `GUICHET_LOG_FORMAT`: `text` (the default) or `json` (one object per line). Read
/// before the other settings, so that their own errors are logged in the chosen format.
fn log_format() -> anyhow::Result<bool> {
    match std::env::var("GUICHET_LOG_FORMAT").as_deref().map(str::trim) {
        Err(_) | Ok("" | "text") => Ok(false),
        Ok("json") => Ok(true),
        Ok(other) => anyhow::bail!("GUICHET_LOG_FORMAT: expected text or json, got {other:?}"),
    }
}

/// Libraries whose own debug output carries what guichet never logs: lettre writes the
/// SMTP conversation (`AUTH PLAIN` credentials, whole messages with their codes and
/// temporary passwords); hyper and rustls may write raw bytes. They are held at `info`
/// whatever `GUICHET_LOG` asks.
const QUIET_LIBRARIES: [&str; 5] = ["lettre", "hyper", "hyper_util", "rustls", "mailin"];

/// Logs to standard error, as text or one JSON object per line; `GUICHET_LOG` (or
/// `RUST_LOG`) overrides the level, except for [`QUIET_LIBRARIES`].
fn init_logging(default: &str, json: bool) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = std::env::var("GUICHET_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    // Applied after the filter the operator chose, whatever it says (even
    // `lettre::transport::smtp=trace`): nothing below `info` from these libraries.
    let quiet = tracing_subscriber::filter::filter_fn(|meta| {
        let target = meta.target();
        let quiet_library = QUIET_LIBRARIES
            .iter()
            .any(|library| target.strip_prefix(library).is_some_and(|rest| rest.is_empty() || rest.starts_with("::")));
        !quiet_library || *meta.level() <= tracing::Level::INFO
    });
    // Colours only for a person at a terminal, never in a journal or a file.
    let format =
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry().with(filter).with(quiet);
    let _ = if json {
        registry.with(format.json().flatten_event(true).with_current_span(true).with_span_list(false)).try_init()
    } else {
        registry.with(format).try_init()
    };
}
