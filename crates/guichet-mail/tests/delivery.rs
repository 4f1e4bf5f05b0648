//! Messages over real SMTP to a sink the test starts, DKIM checked by an independent
//! implementation (mail-auth) against the public key, and the file transport.
#![expect(
    clippy::unwrap_used,
    reason = "a test stops at the first surprise (clippy.toml allows it only inside #[test] functions)"
)]

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use guichet_core::account::EmailAddress;
use guichet_core::codes::RecoveryCode;
use guichet_core::mail::{MailContent, MailSender as _, OutgoingMail};
use guichet_mail::{DkimSettings, MailSettings, Mailer, TransportSpec};
use guichet_testkit::{Mode, SmtpSink};
use mail_auth::common::parse::TxtRecordParser as _;
use mail_auth::common::verify::DomainKey;
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt};
use mail_parser::MessageParser;

fn settings(transport: String) -> MailSettings {
    MailSettings {
        site_name: "Réseau Santé".into(),
        public_url: "https://membres.example.org".into(),
        from: "Réseau Santé <no-reply@example.org>".into(),
        assistance_email: Some("assistance@example.org".into()),
        transport: TransportSpec::new(transport),
        dkim: None,
        time_zone: jiff::tz::TimeZone::UTC,
    }
}

fn reset_mail() -> (RecoveryCode, OutgoingMail) {
    let code = RecoveryCode::generate();
    let mail = OutgoingMail {
        to: EmailAddress::parse("marie.durand@chu.example.fr").unwrap(),
        name: "Marie Durand".into(),
        content: MailContent::PasswordReset {
            identifier: "marie.durand".into(),
            code: code.clone(),
            expires_at: "2026-03-02T09:00:00Z".parse().unwrap(),
        },
    };
    (code, mail)
}

#[tokio::test]
async fn a_reset_message_goes_over_smtp_with_the_headers_filters_expect() {
    let sink = SmtpSink::start();
    let mailer = Mailer::new(settings(sink.url())).unwrap_or_else(|e| panic!("{e:#}"));
    let (code, mail) = reset_mail();

    let answer = mailer.send(&mail).await.unwrap();
    assert!(answer.starts_with("250"), "{answer}");

    let received = sink.wait_for(1).await.remove(0);
    assert_eq!(received.to, ["marie.durand@chu.example.fr"]);
    let raw = received.text();
    let parsed = MessageParser::default().parse(&received.data).unwrap_or_else(|| panic!("unparsable:\n{raw}"));
    assert!(parsed.message_id().is_some_and(|id| id.ends_with("@example.org")), "{:?}", parsed.message_id());
    assert!(parsed.date().is_some());
    assert_eq!(parsed.header_raw("Auto-Submitted").map(str::trim), Some("auto-generated"));
    assert!(parsed.reply_to().and_then(|r| r.first()).and_then(|a| a.address()) == Some("assistance@example.org"));
    let text = parsed.body_text(0).unwrap_or_default().replace("\r\n", "\n");
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    assert!(lines.contains(&code.grouped().as_str()), "{text}");
    let link = format!("https://membres.example.org/reset-password?code={}", code.grouped().replace('-', ""));
    assert!(lines.contains(&link.as_str()), "{text}");
    assert!(parsed.body_html(0).is_some_and(|html| html.contains(&link)));
    // Not broken by quoted-printable: the encoded link is one line of the raw message.
    assert!(raw.lines().any(|l| l.trim_end() == link.replace('=', "=3D")), "{raw}");
    assert!(!raw.contains("<img") && !raw.contains("http://"), "no remote image, no tracking, https links only");
}

#[tokio::test]
async fn temporary_and_permanent_failures_are_told_apart() {
    let sink = SmtpSink::start();
    let mailer = Mailer::new(settings(sink.url())).unwrap_or_else(|e| panic!("{e:#}"));
    let (_, mail) = reset_mail();
    sink.set_mode(Mode::TemporaryFailure);
    let temporary = mailer.send(&mail).await.err();
    assert!(temporary.as_ref().is_some_and(|e| !e.permanent && e.message.contains("451")), "{temporary:?}");
    sink.set_mode(Mode::PermanentFailure);
    let permanent = mailer.send(&mail).await.err();
    assert!(permanent.as_ref().is_some_and(|e| e.permanent && e.message.contains("550")), "{permanent:?}");

    let down =
        Mailer::new(settings(guichet_testkit::url_for(SmtpSink::unused_address()))).unwrap_or_else(|e| panic!("{e:#}"));
    let refused = down.send(&mail).await.err();
    assert!(refused.is_some_and(|e| !e.permanent), "a server that is down is a temporary failure");
}

#[tokio::test]
async fn the_file_transport_writes_one_eml_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let mailer = Mailer::new(settings(format!("file:{}", dir.path().display()))).unwrap_or_else(|e| panic!("{e:#}"));
    let (code, mail) = reset_mail();
    let answer = mailer.send(&mail).await.unwrap();
    assert!(answer.starts_with("written to "), "{answer}");
    let files: Vec<PathBuf> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(files.len(), 1);
    assert!(files[0].extension().is_some_and(|e| e == "eml"));
    let parsed_text = std::fs::read(&files[0]).unwrap_or_default();
    let parsed = MessageParser::default().parse(&parsed_text).unwrap_or_else(|| panic!("unparsable"));
    assert!(parsed.body_text(0).unwrap_or_default().contains(&code.grouped()));
}

/// A DNS TXT cache holding our test key, so that verification needs no network.
struct KeyRecords(Mutex<HashMap<Box<str>, Txt>>);

impl ResolverCache<Box<str>, Txt> for KeyRecords {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().ok()?.get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().ok()?.remove(name)
    }

    fn insert(&self, key: Box<str>, value: Txt, _: Instant) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(key, value);
        }
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

async fn signed_message_verifies(key: &str, key_type: &str) {
    let sink = SmtpSink::start();
    let mut settings = settings(sink.url());
    settings.dkim = Some(DkimSettings {
        domain: "example.org".into(),
        selector: "guichet".into(),
        key_file: fixture(&format!("dkim-{key}.pem")),
    });
    let mailer = Mailer::new(settings).unwrap_or_else(|e| panic!("{e:#}"));
    mailer.send(&reset_mail().1).await.unwrap();
    let raw = sink.wait_for(1).await.remove(0).data;

    let public = std::fs::read_to_string(fixture(&format!("dkim-{key}.pub.b64"))).unwrap_or_default();
    let record = format!("v=DKIM1; k={key_type}; p={}", public.trim());
    let records = KeyRecords(Mutex::new(HashMap::new()));
    let domain_key = DomainKey::parse(record.as_bytes()).unwrap();
    records.insert(
        "guichet._domainkey.example.org.".into(),
        Txt::from(domain_key),
        Instant::now() + Duration::from_secs(3600),
    );

    let message = AuthenticatedMessage::parse(&raw).unwrap_or_else(|| panic!("unparsable"));
    let resolver = MessageAuthenticator::new_cloudflare().unwrap();
    let outputs = resolver.verify_dkim(Parameters::new(&message).with_txt_cache(&records)).await;
    assert!(!outputs.is_empty(), "no DKIM signature found");
    for output in &outputs {
        assert_eq!(output.result(), &DkimResult::Pass, "{key}");
    }
}

#[tokio::test]
async fn rsa_signatures_verify_against_the_public_key() {
    signed_message_verifies("rsa", "rsa").await;
}

#[tokio::test]
async fn ed25519_signatures_verify_against_the_public_key() {
    signed_message_verifies("ed25519", "ed25519").await;
}

#[tokio::test]
async fn a_missing_or_wrong_key_stops_start_up_naming_the_variable() {
    let mut settings = settings("file:/tmp".into());
    settings.dkim =
        Some(DkimSettings { domain: "example.org".into(), selector: "s".into(), key_file: fixture("missing.pem") });
    let error = Mailer::new(settings.clone()).err().map(|e| format!("{e:#}"));
    assert!(error.is_some_and(|e| e.starts_with("GUICHET_DKIM_KEY_FILE")));
    settings.dkim =
        Some(DkimSettings { domain: "example.org".into(), selector: "s".into(), key_file: fixture("README.md") });
    let error = Mailer::new(settings).err().map(|e| format!("{e:#}"));
    assert!(error.is_some_and(|e| e.starts_with("GUICHET_DKIM_KEY_FILE")));
}
