//! DKIM signing with a PEM key: RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8), as
//! `openssl genrsa` / `openssl genpkey -algorithm ed25519` write them.
//!
//! lettre's default configuration signs headers with "simple" canonicalization, which
//! verifiers reject once any relay touches a header; we sign relaxed/relaxed.

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lettre::Message;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm, DkimSigningKey,
};
use lettre::message::header::HeaderName;
use rsa::pkcs1::{EncodeRsaPrivateKey as _, LineEnding};
use rsa::pkcs8::DecodePrivateKey as _;

use crate::DkimSettings;

/// The DER prefix of an Ed25519 private key in PKCS#8 (RFC 8410); the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

/// A loaded key and what it signs for.
#[derive(Debug)]
pub struct DkimKey {
    settings: DkimSettings,
    algorithm: DkimSigningAlgorithm,
    /// What lettre takes: PKCS#1 PEM for RSA, the base64 seed for Ed25519.
    material: String,
}

impl DkimKey {
    /// Reads and checks the key file.
    pub fn load(settings: &DkimSettings) -> anyhow::Result<Self> {
        let path = &settings.key_file;
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("GUICHET_DKIM_KEY_FILE: could not read {}", path.display()))?;
        let (algorithm, material) =
            parse_pem(&pem).with_context(|| format!("GUICHET_DKIM_KEY_FILE: {}", path.display()))?;
        DkimSigningKey::new(&material, algorithm).map_err(|e| anyhow::anyhow!("GUICHET_DKIM_KEY_FILE: {e}"))?;
        Ok(Self { settings: settings.clone(), algorithm, material })
    }

    /// Adds a `DKIM-Signature` header.
    pub fn sign(&self, message: &mut Message, with_reply_to: bool) {
        let Ok(key) = DkimSigningKey::new(&self.material, self.algorithm) else {
            tracing::error!("the DKIM key could not be used: the message goes unsigned");
            return;
        };
        // Not Content-Type: for a multipart message lettre writes it with the body, after
        // signing, so a signature covering it never verifies.
        let mut headers: Vec<HeaderName> =
            ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Auto-Submitted"]
                .into_iter()
                .map(HeaderName::new_from_ascii_str)
                .collect();
        if with_reply_to {
            headers.push(HeaderName::new_from_ascii_str("Reply-To"));
        }
        let relaxed =
            DkimCanonicalization { header: DkimCanonicalizationType::Relaxed, body: DkimCanonicalizationType::Relaxed };
        let config =
            DkimConfig::new(self.settings.selector.clone(), self.settings.domain.clone(), key, headers, relaxed);
        message.sign(&config);
    }
}

fn parse_pem(pem: &str) -> anyhow::Result<(DkimSigningAlgorithm, String)> {
    if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
        return Ok((DkimSigningAlgorithm::Rsa, pem.to_owned()));
    }
    let Some(body) = between(pem, "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----") else {
        bail!("expected a PEM private key (BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)");
    };
    let der = STANDARD.decode(body.split_whitespace().collect::<String>()).context("the PEM body is not base64")?;
    if der.len() == 48 && der.starts_with(&ED25519_PKCS8_PREFIX) {
        return Ok((DkimSigningAlgorithm::Ed25519, STANDARD.encode(&der[16..])));
    }
    let rsa = rsa::RsaPrivateKey::from_pkcs8_der(&der).context("neither an Ed25519 nor an RSA key")?;
    let pkcs1 = rsa.to_pkcs1_pem(LineEnding::LF).context("the RSA key could not be converted")?;
    Ok((DkimSigningAlgorithm::Rsa, pkcs1.to_string()))
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = from + text[from..].find(end)?;
    Some(&text[from..to])
}
