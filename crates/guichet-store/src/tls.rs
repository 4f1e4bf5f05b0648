//! TLS to PostgreSQL with libpq's meaning of `sslrootcert`: that CA alone is trusted.
//!
//! sqlx adds the named CA to the system's trust store and offers no way to replace it, so
//! with `sslmode=verify-full` a server holding a certificate from any CA the system trusts
//! would pass. When the URL names a root certificate with `sslmode=verify-ca` or
//! `verify-full`, guichet makes the TLS connections itself instead ([`Relay`]): sqlx
//! speaks plain PostgreSQL to a Unix socket of guichet's own (in a private folder), and
//! for each connection guichet opens the TLS connection to the server trusting that CA
//! alone (and, for `verify-full`, checking the name), then copies bytes both ways. A
//! server that fails the handshake is never spoken to. Without `sslrootcert`,
//! `verify-full` is sqlx's own: the system's store and the name, as libpq does with
//! `sslrootcert=system`.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// PostgreSQL's `SSLRequest`: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// How long the check may take.
const CHECK_WITHIN: Duration = Duration::from_secs(10);

/// The server, and the one CA its certificate must come from.
pub(crate) struct PinnedCa {
    host: String,
    port: u16,
    name: ServerName<'static>,
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for PinnedCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedCa").field("host", &self.host).field("port", &self.port).finish_non_exhaustive()
    }
}

impl PinnedCa {
    /// The pin a PostgreSQL URL asks for: `None` unless it names a root certificate
    /// (`sslrootcert`, `ssl-root-cert`, `ssl-ca`, or `PGSSLROOTCERT`) with
    /// `sslmode=verify-ca|verify-full`, for a server reached over the network. Host, port
    /// and mode are read as the driver reads them (query parameters and `PG*` included).
    pub(crate) fn from_url(raw: &str) -> anyhow::Result<Option<Self>> {
        use sqlx::postgres::{PgConnectOptions, PgSslMode};
        use std::str::FromStr as _;
        let Ok(options) = PgConnectOptions::from_str(raw) else { return Ok(None) };
        let full = match options.get_ssl_mode() {
            PgSslMode::VerifyFull => true,
            PgSslMode::VerifyCa => false,
            _ => return Ok(None),
        };
        let named = url::Url::parse(raw).ok().and_then(|url| {
            url.query_pairs()
                .find(|(k, _)| matches!(k.as_ref(), "sslrootcert" | "ssl-root-cert" | "ssl-ca"))
                .map(|(_, v)| v.into_owned())
        });
        let Some(root) = named.or_else(|| std::env::var("PGSSLROOTCERT").ok()) else { return Ok(None) };
        if root == "system" || options.get_socket().is_some() {
            return Ok(None);
        }
        let host = options.get_host().trim_start_matches('[').trim_end_matches(']').to_owned();
        let pem = if root.trim_start().starts_with("-----BEGIN") {
            root.clone().into_bytes()
        } else {
            std::fs::read(&root).map_err(|e| anyhow::anyhow!("sslrootcert {root}: {e}"))?
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| anyhow::anyhow!("sslrootcert {root}: {e}"))?;
            roots.add(cert).map_err(|e| anyhow::anyhow!("sslrootcert {root}: {e}"))?;
        }
        anyhow::ensure!(!roots.is_empty(), "sslrootcert {root} holds no certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| anyhow::anyhow!("sslrootcert {root}: {e}"))?;
        let verifier: Arc<dyn ServerCertVerifier> = if full { verifier } else { Arc::new(AnyName(verifier)) };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow::anyhow!("TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let name = ServerName::try_from(host.clone()).map_err(|e| anyhow::anyhow!("database host {host}: {e}"))?;
        Ok(Some(Self { host, port: options.get_port(), name, config: Arc::new(config) }))
    }

    /// Shakes hands with the server trusting the pinned CA alone; `Err` when it cannot.
    pub(crate) async fn check(&self) -> Result<(), sqlx::Error> {
        let mut tls = self.connect().await?;
        let _ = tls.shutdown().await;
        Ok(())
    }

    /// A TLS connection to the server, after PostgreSQL's `SSLRequest`, trusting the
    /// pinned CA alone.
    async fn connect(&self) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, sqlx::Error> {
        let refused = |why: String| sqlx::Error::Tls(why.into());
        let handshake = async {
            let mut stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await?;
            stream.write_all(&SSL_REQUEST).await?;
            let mut answer = [0u8; 1];
            stream.read_exact(&mut answer).await?;
            if answer != *b"S" {
                return Err(refused("the database server does not offer TLS".to_owned()));
            }
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.config));
            connector.connect(self.name.clone(), stream).await.map_err(|e| {
                refused(format!("the database server's certificate is not from the CA in sslrootcert: {e}"))
            })
        };
        match tokio::time::timeout(CHECK_WITHIN, handshake).await {
            Ok(result) => result,
            Err(_) => Err(refused("the database server did not finish the TLS handshake in time".to_owned())),
        }
    }
}

/// A private Unix socket that sqlx connects to in plain text, each connection carried to
/// the server over a TLS connection of guichet's own ([`PinnedCa`]). Removed when dropped.
pub(crate) struct Relay {
    dir: std::path::PathBuf,
    accepting: tokio::task::JoinHandle<()>,
    /// What sqlx connects with: the URL, through the socket, without TLS of its own.
    connect: String,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Relay {
    /// Starts the relay for `raw` (a PostgreSQL URL that `pin` was made from).
    pub(crate) fn start(raw: &str, pin: Arc<PinnedCa>) -> anyhow::Result<Self> {
        use std::os::unix::fs::DirBuilderExt as _;
        let name = format!("guichet-pg-{}", guichet_core::token::hex(&guichet_core::token::random_bytes::<8>()));
        let dir = std::env::temp_dir().join(name);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| anyhow::anyhow!("could not make the folder for the database relay {}: {e}", dir.display()))?;
        let port = pin.port;
        let socket = dir.join(format!(".s.PGSQL.{port}"));
        let listener = tokio::net::UnixListener::bind(&socket)
            .map_err(|e| anyhow::anyhow!("could not open the database relay {}: {e}", socket.display()))?;
        let accepting = tokio::spawn(async move {
            while let Ok((mut local, _)) = listener.accept().await {
                let pin = Arc::clone(&pin);
                tokio::spawn(async move {
                    match pin.connect().await {
                        Ok(mut remote) => {
                            let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
                        }
                        Err(error) => tracing::error!(%error, "the database server was refused"),
                    }
                });
            }
        });
        let mut url = url::Url::parse(raw).map_err(|e| anyhow::anyhow!("database URL: {e}"))?;
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| {
                !matches!(
                    k.as_ref(),
                    "sslmode" | "ssl-mode" | "sslrootcert" | "ssl-root-cert" | "ssl-ca" | "host" | "hostaddr" | "port"
                )
            })
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("host", &dir.to_string_lossy())
            .append_pair("port", &port.to_string())
            .append_pair("sslmode", "disable");
        Ok(Self { dir, accepting, connect: url.to_string() })
    }

    /// The URL sqlx connects with.
    pub(crate) fn url(&self) -> &str {
        &self.connect
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accepting.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `verify-ca`: the chain must lead to the CA; the name is not checked.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
