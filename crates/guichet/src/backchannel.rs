//! Back-channel logouts over HTTP: a form POST of `logout_token` to the application,
//! with `reqwest` on rustls (ring, the system's roots). Redirects are not followed (the
//! specification has none, and a redirect is no proof the logout was taken), and an
//! application gets ten seconds to answer.

use std::time::Duration;

use anyhow::Context as _;
use guichet_core::oidc::{Delivery, LogoutSender};

/// Sends logout tokens with one pooled HTTP client.
#[derive(Debug, Clone)]
pub struct HttpSender {
    client: reqwest::Client,
}

impl HttpSender {
    /// A client trusting the system's certificate authorities.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self { client: outbound_client()? })
    }

    /// The HTTP client, for guichet's other calls out (upstream providers): one pool,
    /// the system's roots loaded once.
    pub fn client(&self) -> reqwest::Client {
        self.client.clone()
    }
}

/// The HTTP client guichet calls others with (applications' back channels, upstream
/// providers): rustls with ring and the system's roots, no redirect followed, five
/// seconds to connect and ten to answer.
fn outbound_client() -> anyhow::Result<reqwest::Client> {
    {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for certificate in found.certs {
            // One unreadable authority does not stop the others.
            let _ = roots.add(certificate);
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("no TLS version to offer")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("guichet/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("could not build the outbound HTTP client")
    }
}

#[async_trait::async_trait]
impl LogoutSender for HttpSender {
    async fn send(&self, uri: &str, logout_token: &str) -> Delivery {
        let sent = self.client.post(uri).form(&[("logout_token", logout_token)]).send().await;
        let response = match sent {
            Ok(response) => response,
            // Not reached, or no answer in time: the application may be restarting.
            Err(error) => return Delivery::Temporary(without_url(&error)),
        };
        let status = response.status();
        let body: String = response.text().await.unwrap_or_default().chars().take(200).collect();
        let answer = format!("{status} {}", body.trim()).trim().to_owned();
        if status.is_success() {
            Delivery::Accepted(answer)
        } else if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            Delivery::Temporary(answer)
        } else {
            Delivery::Refused(answer)
        }
    }
}

/// What went wrong, without the URL (it is the client's, shown beside it already).
pub(crate) fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "no answer within 10 s"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if cause.is_empty() { kind.to_owned() } else { format!("{kind}: {cause}") }
}
