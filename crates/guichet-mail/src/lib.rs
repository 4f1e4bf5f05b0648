//! guichet's mail: French messages written from template files, signed with DKIM when
//! configured, and handed to an SMTP server — or written as `.eml` files, the embedded
//! default that needs no mail server.
//!
//! [`Mailer`] implements the domain's `MailSender` port; the outbox and its retries are
//! the domain's postman's business, not this crate's.

mod calendar;
mod dkim;
mod transport;
mod view;

use std::path::PathBuf;

use anyhow::Context as _;
use async_trait::async_trait;
use guichet_core::mail::{MailContent, MailKind, MailSender, OutgoingMail, SendError};
use guichet_core::token::{hex, random_bytes};
use lettre::Message;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};

pub use dkim::DkimKey;
pub use transport::TransportSpec;

/// What the mailer needs.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// The association's name.
    pub site_name: String,
    /// Base of every link, without a trailing slash.
    pub public_url: String,
    /// Sender, like `Réseau Santé <no-reply@reseau-sante.fr>`.
    pub from: String,
    /// The assistance desk's address: shown in messages and set as `Reply-To`.
    pub assistance_email: Option<String>,
    /// `file:DIR` or `smtp://…`.
    pub transport: TransportSpec,
    /// DKIM signing, when configured.
    pub dkim: Option<DkimSettings>,
    /// Time zone for dates in messages.
    pub time_zone: jiff::tz::TimeZone,
}

/// Where the DKIM key is and what it signs for.
#[derive(Debug, Clone)]
pub struct DkimSettings {
    /// `d=`.
    pub domain: String,
    /// `s=`.
    pub selector: String,
    /// PEM file: RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8).
    pub key_file: PathBuf,
}

/// Writes and sends guichet's messages.
#[derive(Debug)]
pub struct Mailer {
    settings: MailSettings,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    transport: transport::Transport,
    dkim: Option<DkimKey>,
}

impl Mailer {
    /// Checks the settings, reads the DKIM key and prepares the transport.
    pub fn new(settings: MailSettings) -> anyhow::Result<Self> {
        let from: Mailbox = settings
            .from
            .parse()
            .with_context(|| format!("GUICHET_MAIL_FROM: {:?} is not a sender address", settings.from))?;
        let reply_to = settings
            .assistance_email
            .as_deref()
            .map(|a| a.parse::<Mailbox>().with_context(|| format!("GUICHET_ASSISTANCE_EMAIL: {a:?} is not an address")))
            .transpose()?;
        let dkim = settings.dkim.as_ref().map(DkimKey::load).transpose()?;
        let hello = url_host(&settings.public_url).unwrap_or_else(|| from.email.domain().to_owned());
        let transport = transport::Transport::new(&settings.transport, &hello)?;
        Ok(Self { settings, from, reply_to, transport, dkim })
    }

    /// Where messages go, for logs (no password).
    pub fn describe(&self) -> String {
        self.settings.transport.to_string()
    }

    /// Reaches the mail server (or the folder) without sending anything.
    pub async fn check_connection(&self) -> anyhow::Result<String> {
        self.transport.check().await
    }

    /// The message as it will be sent, signed when DKIM is configured.
    pub fn compose(&self, mail: &OutgoingMail) -> anyhow::Result<Message> {
        let view = view::View::new(mail, &self.settings);
        let (subject, text, html) = view.render().context("a mail template did not render")?;
        let to = Mailbox::new(
            (!mail.name.is_empty()).then(|| mail.name.clone()),
            mail.to.as_str().parse().context("recipient address")?,
        );
        let domain = self.from.email.domain().to_owned();
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .date_now()
            .message_id(Some(format!("<{}@{domain}>", hex(&random_bytes::<16>()))))
            .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("Auto-Submitted"), "auto-generated".into()))
            .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("X-Auto-Response-Suppress"), "All".into()))
            .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("Content-Language"), "fr".into()));
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        // Quoted-printable keeps every line short and 7-bit, so no relay re-encodes the
        // body (which would break the DKIM signature).
        let part = |content_type: ContentType, body: String| {
            Body::new_with_encoding(body, ContentTransferEncoding::QuotedPrintable)
                .map(|body| SinglePart::builder().header(content_type).body(body))
                .map_err(|_| anyhow::anyhow!("a mail part could not be encoded"))
        };
        let body = MultiPart::alternative()
            .singlepart(part(ContentType::TEXT_PLAIN, text)?)
            .singlepart(part(ContentType::TEXT_HTML, html)?);
        let body = match &mail.content {
            MailContent::CallConfirmed { reference, starts_at, ends_at, written_at, .. } => {
                let ics =
                    calendar::call(reference, *starts_at, *ends_at, &self.settings.site_name, &domain, *written_at);
                let calendar_type = ContentType::parse("text/calendar; charset=utf-8; method=PUBLISH")
                    .map_err(|_| anyhow::anyhow!("calendar content type"))?;
                MultiPart::mixed()
                    .multipart(body)
                    .singlepart(Attachment::new("rendez-vous.ics".to_owned()).body(ics, calendar_type))
            }
            _ => body,
        };
        let mut message = builder.multipart(body).context("the message could not be built")?;
        if let Some(key) = &self.dkim {
            key.sign(&mut message, self.reply_to.is_some());
        }
        Ok(message)
    }
}

/// The subject lines of the messages members may receive, for their IT department
/// (`/aide/messagerie`): what varies is shown as a placeholder.
pub fn member_subjects(settings: &MailSettings) -> Vec<String> {
    MailKind::ALL
        .into_iter()
        .filter(|kind| kind.reaches_a_member() && !matches!(kind, MailKind::Test))
        .filter_map(|kind| view::View::sample(kind, settings).subject().ok())
        .collect()
}

fn url_host(url: &str) -> Option<String> {
    url::Url::parse(url).ok()?.host_str().map(str::to_owned)
}

#[async_trait]
impl MailSender for Mailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<String, SendError> {
        let message = self.compose(mail).map_err(|e| SendError {
            permanent: true,
            unreachable: false,
            message: format!("{e:#}"),
        })?;
        self.transport.send(message).await
    }
}
