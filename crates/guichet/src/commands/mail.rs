//! `guichet mail test ADDRESS`, `guichet mail retry`.

use anyhow::Context as _;
use guichet_core::account::EmailAddress;
use guichet_core::mail::{MailContent, MailSender as _, OutgoingMail};
use guichet_mail::Mailer;

use crate::app::mail_settings;
use crate::cli::MailCommand;
use crate::config::Settings;

/// Runs a `mail` subcommand.
pub async fn run(command: MailCommand, settings: &Settings) -> anyhow::Result<()> {
    match command {
        MailCommand::Test { address } => {
            let to = EmailAddress::parse(&address).context("the test address")?;
            let mailer = Mailer::new(mail_settings(settings))?;
            say!("sending a test message to {to} through {}", mailer.describe());
            let mail = OutgoingMail { to, name: String::new(), content: MailContent::Test };
            let answer =
                mailer.send(&mail).await.with_context(|| format!("the mail server refused: {}", mailer.describe()))?;
            say!("{answer}");
            Ok(())
        }
        MailCommand::Retry => {
            use guichet_core::clock::Clock as _;
            use guichet_core::ports::OutboxStore as _;
            let store = guichet_store::SqlStore::connect_and_migrate(&settings.database_url).await?;
            let now = guichet_core::clock::SystemClock.now();
            let due = store.retry_waiting_mail(now).await.context("could not reach the outbox")?;
            let (pending, _) = store.backlog().await.context("could not reach the outbox")?;
            say!("{due} message(s) waiting for a retry are due now; {pending} in the outbox in all");
            Ok(())
        }
    }
}
