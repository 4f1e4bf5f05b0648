//! Where messages go: `file:DIR` (one `.eml` per message) or
//! `smtp://[USER:PASS@]HOST:PORT[?tls=none|starttls|tls]`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use guichet_core::mail::SendError;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

/// `GUICHET_MAIL_TRANSPORT` as written. `Debug` and `Display` hide the password.
#[derive(Clone, PartialEq, Eq)]
pub struct TransportSpec(String);

impl TransportSpec {
    /// Wraps the setting.
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// The `file:DIR` transport's messages written before `before` (they hold codes and
    /// temporary passwords): counted, and removed with `remove`. Nothing for SMTP (the
    /// messages are the mail servers' then), nor for a folder not made yet.
    pub fn forget_written(&self, before: std::time::SystemTime, remove: bool) -> std::io::Result<u64> {
        let Some(dir) = self.0.strip_prefix("file:") else { return Ok(0) };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(error) => return Err(error),
        };
        let mut forgotten = 0;
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let written = entry.metadata()?.modified()?;
            if path.extension().is_some_and(|e| e == "eml") && written < before {
                if remove {
                    std::fs::remove_file(&path)?;
                }
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }

    /// The SMTP server messages are handed to (`None` for a folder): the host a
    /// hospital's filter sees them come from, unless that server relays them further.
    pub fn smtp_host(&self) -> Option<String> {
        let url = url::Url::parse(&self.0).ok().filter(|u| u.scheme() == "smtp")?;
        url.host_str().map(str::to_owned)
    }
}

impl std::fmt::Debug for TransportSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TransportSpec({self})")
    }
}

impl std::fmt::Display for TransportSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&guichet_core::redact::url_password(&self.0))
    }
}

/// A ready transport.
#[derive(Debug)]
pub enum Transport {
    /// `.eml` files in a folder.
    File(PathBuf, AsyncFileTransport<Tokio1Executor>),
    /// An SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl Transport {
    /// Parses the setting. `hello` is the name given in `EHLO`.
    pub fn new(spec: &TransportSpec, hello: &str) -> anyhow::Result<Self> {
        if let Some(dir) = spec.0.strip_prefix("file:") {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("could not create the mail folder {}", dir.display()))?;
            return Ok(Self::File(dir.clone(), AsyncFileTransport::new(dir)));
        }
        let url = url::Url::parse(&spec.0).with_context(|| format!("GUICHET_MAIL_TRANSPORT: {spec} is not a URL"))?;
        if url.scheme() != "smtp" {
            bail!("GUICHET_MAIL_TRANSPORT: expected file:DIR or smtp://…, got {spec}");
        }
        let host = url.host_str().with_context(|| format!("GUICHET_MAIL_TRANSPORT: {spec} names no host"))?.to_owned();
        let tls_mode = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
        let port = url.port();
        let tls = match (tls_mode.as_deref(), port) {
            (Some("none"), _) => Tls::None,
            (Some("tls"), _) | (None, Some(465)) => Tls::Wrapper(TlsParameters::new_rustls(host.clone())?),
            (Some("starttls") | None, _) => Tls::Required(TlsParameters::new_rustls(host.clone())?),
            (Some(other), _) => bail!("GUICHET_MAIL_TRANSPORT: tls={other}: expected none, starttls or tls"),
        };
        let default_port = if matches!(tls, Tls::Wrapper(_)) { 465 } else { 587 };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port.unwrap_or(default_port))
            .tls(tls)
            .hello_name(ClientId::Domain(hello.to_owned()))
            .timeout(Some(Duration::from_secs(30)));
        if !url.username().is_empty() {
            let decode =
                |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
            let user = decode(url.username()).unwrap_or_default();
            let password = url.password().and_then(decode).unwrap_or_default();
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Self::Smtp(builder.build()))
    }

    /// Opens a connection to the mail server and says hello (and logs in, with a
    /// password) without sending anything; a folder is checked by being there.
    pub async fn check(&self) -> anyhow::Result<String> {
        match self {
            Self::File(dir, _) => Ok(format!("the folder {} is there", dir.display())),
            Self::Smtp(transport) => match transport.test_connection().await {
                Ok(true) => Ok("the mail server answers".to_owned()),
                Ok(false) => bail!("the mail server did not answer"),
                Err(error) => bail!("the mail server: {error}"),
            },
        }
    }

    /// Sends; returns the server's answer (or the file written).
    pub async fn send(&self, message: Message) -> Result<String, SendError> {
        match self {
            Self::File(dir, transport) => transport
                .send(message)
                .await
                .map(|id| format!("written to {}", dir.join(format!("{id}.eml")).display()))
                .map_err(|e| SendError {
                    permanent: false,
                    unreachable: true,
                    message: format!("could not write the message: {e}"),
                }),
            Self::Smtp(transport) => match transport.send(message).await {
                Ok(response) => Ok(format!("{} {}", response.code(), response.message().collect::<Vec<_>>().join(" "))),
                Err(error) => Err(SendError {
                    permanent: error.is_permanent(),
                    // No SMTP code: the connection itself failed.
                    unreachable: error.status().is_none(),
                    message: error.to_string(),
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_do_not_show() {
        let spec = TransportSpec::new("smtp://mailer:s3cr3t@relay.example.org:587?tls=starttls");
        assert_eq!(spec.to_string(), "smtp://mailer:***@relay.example.org:587?tls=starttls");
        assert!(!format!("{spec:?}").contains("s3cr3t"));
    }

    #[tokio::test]
    async fn bad_specs_are_refused_with_the_variable_named() {
        for bad in ["smtp://", "http://relay:25", "smtp://relay:25?tls=maybe"] {
            let error = Transport::new(&TransportSpec::new(bad), "localhost").err().map(|e| format!("{e:#}"));
            assert!(error.is_some_and(|e| e.starts_with("GUICHET_MAIL_TRANSPORT")), "{bad}");
        }
    }

    #[tokio::test]
    async fn smtp_specs_are_understood() {
        for good in
            ["smtp://relay:25?tls=none", "smtp://u:p%40ss@relay:587", "smtp://relay:465", "smtp://relay?tls=tls"]
        {
            assert!(Transport::new(&TransportSpec::new(good), "localhost").is_ok(), "{good}");
        }
    }
}
