//! `spawn_app()`: the application on port 0 with a fresh database and a clock the test
//! moves, plus typed helpers to drive it like a browser would.

/// Says a test was skipped, on the real standard error: `eprintln!` is captured by
/// the test harness and would hide it.
macro_rules! say_skipped {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use guichet::app::Application;
use guichet::config::{Settings, Sources};
use guichet_core::SignedDuration;
use guichet_core::account::{Account, Role};
use guichet_core::audit::{Actor, AuditEvent, RequestContext};
use guichet_core::clock::ManualClock;
use guichet_core::hashing::{Argon2Cost, Argon2Pool, HashError, PasswordHasher, Verification};
use guichet_core::members::AddMember;
use guichet_core::password::PasswordHash;
use guichet_store::testing::TestDatabase;
use guichet_testkit::SmtpSink;
use reqwest::StatusCode;
use secrecy::SecretString;
use tokio::net::TcpListener;

/// A password that meets the policy.
pub const PASSWORD: &str = "cheval agrafe pile";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A temporary SQLite file.
    Sqlite,
    /// A fresh database on `GUICHET_TEST_POSTGRES_URL`.
    Postgres,
}

/// Runs each listed `async fn(Backend)` on SQLite and on PostgreSQL.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::helpers::postgres_available() {
                        super::$name($crate::helpers::Backend::Postgres).await;
                    }
                }
            )*
        }
    };
}

/// Whether PostgreSQL tests can run; says so when they cannot.
pub fn postgres_available() -> bool {
    let available = std::env::var_os(guichet_store::testing::POSTGRES_URL_VARIABLE).is_some();
    if !available {
        assert!(std::env::var_os("CI").is_none(), "GUICHET_TEST_POSTGRES_URL must be set under CI");
        say_skipped!("SKIPPED (PostgreSQL): set GUICHET_TEST_POSTGRES_URL to run it");
    }
    available
}

/// Counts password verifications, to show that every login costs exactly one.
#[derive(Debug)]
pub struct CountingHasher {
    inner: Argon2Pool,
    pub verifications: AtomicUsize,
}

#[async_trait]
impl PasswordHasher for CountingHasher {
    async fn hash(&self, password: SecretString) -> Result<PasswordHash, HashError> {
        self.inner.hash(password).await
    }

    async fn verify(&self, password: SecretString, hash: PasswordHash) -> Result<Verification, HashError> {
        self.verifications.fetch_add(1, Ordering::SeqCst);
        self.inner.verify(password, hash).await
    }
}

/// A running application.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The clock the server reads.
    pub clock: Arc<ManualClock>,
    /// The hasher the server uses.
    pub hasher: Arc<CountingHasher>,
    /// The wired application (its use cases and store).
    pub app: Application,
    /// A browser-like client: keeps cookies, does not follow redirects.
    pub client: reqwest::Client,
    /// The mail server the app sends to.
    pub mail: SmtpSink,
    database: TestDatabase,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The application on SQLite with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Backend::Sqlite, &[]).await
}

/// The application on `backend`, with extra settings (`GUICHET_*` pairs).
pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    spawn_app_mailing_to(backend, extra, SmtpSink::start()).await
}

/// The same, sending mail to a given sink.
pub async fn spawn_app_mailing_to(backend: Backend, extra: &[(&str, &str)], mail: SmtpSink) -> TestApp {
    let transport = mail.url();
    spawn(backend, extra, &[], &transport, mail, false).await
}

/// The application with `[[access]]` rules (`url`, `groups`) as a TOML file would give them.
pub async fn spawn_app_with_access(backend: Backend, extra: &[(&str, &str)], access: &[(&str, &[&str])]) -> TestApp {
    let mail = SmtpSink::start();
    let transport = mail.url();
    spawn(backend, extra, access, &transport, mail, false).await
}

/// The application as `guichet serve` runs it, with its background postman.
pub async fn spawn_app_with_background_postman() -> TestApp {
    let mail = SmtpSink::start();
    let transport = mail.url();
    spawn(Backend::Sqlite, &[], &[], &transport, mail, true).await
}

/// The application on an existing SQLite database (one a command created).
pub async fn spawn_app_on_database(url: &str) -> TestApp {
    let mail = SmtpSink::start();
    let transport = mail.url();
    spawn(Backend::Sqlite, &[("GUICHET_DATABASE_URL", url)], &[], &transport, mail, false).await
}

/// The application with its mail server down (nothing listens at `address` yet).
pub async fn spawn_app_with_mail_down(backend: Backend, address: std::net::SocketAddr) -> TestApp {
    let transport = guichet_testkit::url_for(address);
    // A placeholder sink elsewhere; the test starts the real one at `address` later.
    spawn(backend, &[], &[], &transport, SmtpSink::start(), false).await
}

/// The application with a configuration file's text (`[[access]]` tables…).
pub async fn spawn_app_with_toml(backend: Backend, extra: &[(&str, &str)], toml: &str) -> TestApp {
    let mail = SmtpSink::start();
    let transport = mail.url();
    spawn_configured(backend, extra, &[], Some(toml), &transport, mail, false).await
}

/// The application at `http://localhost:<port>`: a host name, as WebAuthn needs (an
/// address cannot be a relying party).
pub async fn spawn_app_on_localhost(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let mail = SmtpSink::start();
    let transport = mail.url();
    let mut extra = extra.to_vec();
    extra.push(("GUICHET_PUBLIC_URL", "http://localhost"));
    spawn_configured(backend, &extra, &[], None, &transport, mail, false).await
}

async fn spawn(
    backend: Backend,
    extra: &[(&str, &str)],
    access: &[(&str, &[&str])],
    transport: &str,
    mail: SmtpSink,
    postman: bool,
) -> TestApp {
    spawn_configured(backend, extra, access, None, transport, mail, postman).await
}

async fn spawn_configured(
    backend: Backend,
    extra: &[(&str, &str)],
    access: &[(&str, &[&str])],
    toml: Option<&str>,
    transport: &str,
    mail: SmtpSink,
    postman: bool,
) -> TestApp {
    let database = match backend {
        Backend::Sqlite => TestDatabase::sqlite(),
        Backend::Postgres => TestDatabase::postgres().await.unwrap_or_else(|| panic!("PostgreSQL is not configured")),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
    let bound = listener.local_addr().unwrap();
    // `GUICHET_PUBLIC_URL=http://localhost` in `extra` asks for the host name, on this port.
    let localhost = extra.iter().any(|(key, value)| *key == "GUICHET_PUBLIC_URL" && *value == "http://localhost");
    let address = if localhost { format!("http://localhost:{}", bound.port()) } else { format!("http://{bound}") };
    let extra: Vec<(&str, &str)> =
        extra.iter().copied().filter(|(key, _)| !(localhost && *key == "GUICHET_PUBLIC_URL")).collect();
    let extra = extra.as_slice();
    let raw_url = database.url().expose_secret().to_owned();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("GUICHET_DATABASE_URL", &raw_url),
        ("GUICHET_PUBLIC_URL", &address),
        ("GUICHET_MAIL_TRANSPORT", transport),
        ("GUICHET_MAIL_FROM", "Réseau Santé <no-reply@reseau-sante.example>"),
    ];
    // Staff sign in with a password alone in the tests of everything else; the tests of
    // the second factor say `required` (the product's default) themselves.
    if !extra.iter().any(|(key, _)| *key == "GUICHET_STAFF_SECOND_FACTOR") {
        pairs.push(("GUICHET_STAFF_SECOND_FACTOR", "optional"));
    }
    pairs.extend_from_slice(extra);
    let mut sources = access.iter().fold(Sources::from_pairs(pairs), |s, (url, groups)| s.with_access(url, groups));
    if let Some(toml) = toml {
        sources = sources.with_toml(toml, std::path::Path::new("guichet.toml")).unwrap_or_else(|e| panic!("{e:#}"));
    }
    let settings = Settings::load(&sources).unwrap_or_else(|e| panic!("settings: {e:#}"));
    let clock = Arc::new(ManualClock::starting_now());
    let hasher = Arc::new(CountingHasher {
        inner: Argon2Pool::sized_to_cores(Argon2Cost::RECOMMENDED),
        verifications: AtomicUsize::new(0),
    });
    let app = Application::build_with_hasher(&settings, clock.clone(), hasher.clone())
        .await
        .unwrap_or_else(|e| panic!("build: {e:#}"));
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = app.clone();
    // The test sends the outbox when it chooses (`deliver_mail`), so that what it sees
    // of the mail does not race a background postman.
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        let _ = if postman {
            running.serve(listener, shutdown).await
        } else {
            running.serve_without_postman(listener, shutdown).await
        };
    });
    TestApp { address, clock, hasher, app, client: browser(), mail, database, shutdown: Some(shutdown) }
}

/// An HTTP client's builder. reqwest has rustls (guichet's back-channel client uses it)
/// but no provider of its own: the tests' clients get one TLS configuration made once,
/// with ring and no roots (they speak plain HTTP), so that making a client stays cheap
/// (loading the system's roots for each one costs tens of milliseconds).
pub fn http_client() -> reqwest::ClientBuilder {
    static TLS: std::sync::OnceLock<rustls::ClientConfig> = std::sync::OnceLock::new();
    let tls = TLS.get_or_init(|| {
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    });
    reqwest::Client::builder().tls_backend_preconfigured(tls.clone())
}

/// `GET url` with a fresh client.
pub async fn get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    http_client().build()?.get(url).send().await
}

/// A new cookie jar: another browser.
pub fn browser() -> reqwest::Client {
    http_client()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("guichet-tests/1")
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A response's status, headers and body, read at once.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    /// The body with the typography's spaces and apostrophes made plain (see [`plain`]),
    /// so that tests read sentences as they are written; `typeset` is as sent.
    pub body: String,
    pub typeset: String,
}

/// Text with French typography's no-break spaces and apostrophes as ordinary ones: what
/// the tests compare (the typography itself is tested on the text as sent).
pub fn plain(text: &str) -> String {
    text.replace(['\u{a0}', '\u{202f}'], " ").replace('’', "'")
}

/// Where French typography wants a no-break space and finds an ordinary one, or a
/// straight apostrophe between letters: the places, each with a few words around it.
pub fn typography_faults(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut faults = Vec::new();
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let (next, after) = (chars.get(i + 1).copied(), chars.get(i + 2).copied());
        let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
        let alone = after.is_none_or(char::is_whitespace);
        let fault = match c {
            ' ' => {
                (matches!(next, Some(':' | ';' | '?' | '!')) && alone)
                    || next == Some('»')
                    || prev == Some('«')
                    || (digit(prev) && next.is_some_and(|n| n.is_alphabetic() || n.is_ascii_digit()))
            }
            // An email address keeps its apostrophe (`o'brien@…`).
            '\'' => {
                let word_start = chars[..i].iter().rposition(|c| c.is_whitespace()).map_or(0, |p| p + 1);
                let word_end = chars[i..].iter().position(|c| c.is_whitespace()).map_or(chars.len(), |p| i + p);
                prev.is_some_and(char::is_alphabetic)
                    && next.is_some_and(char::is_alphabetic)
                    && !chars[word_start..word_end].contains(&'@')
            }
            _ => false,
        };
        if fault {
            let around: String = chars[i.saturating_sub(25)..(i + 25).min(chars.len())].iter().collect();
            faults.push(around.replace('\n', "⏎"));
        }
    }
    faults
}

/// What a reader sees of an HTML page: the text between tags, entities decoded, without
/// what the typography leaves verbatim (`code`, `pre`, `textarea`, `script`, `style`).
pub fn visible_text(html: &str) -> String {
    let mut text = String::new();
    let mut rest = html;
    let mut verbatim: Option<String> = None;
    while let Some(at) = rest.find('<') {
        if verbatim.is_none() {
            text.push_str(&rest[..at]);
        }
        let end = rest[at..].find('>').map_or(rest.len(), |e| at + e + 1);
        let tag = &rest[at..end];
        let name: String = tag.trim_start_matches(['<', '/']).chars().take_while(char::is_ascii_alphanumeric).collect();
        let name = name.to_ascii_lowercase();
        match &verbatim {
            Some(open) if tag.starts_with("</") && *open == name => verbatim = None,
            None if !tag.starts_with("</")
                && ["code", "pre", "textarea", "script", "style"].contains(&name.as_str()) =>
            {
                verbatim = Some(name);
            }
            _ => {}
        }
        text.push(' ');
        rest = &rest[end..];
    }
    text.push_str(rest);
    unescape(&text).replace("&nbsp;", "\u{a0}")
}

impl Page {
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let typeset = response.text().await.unwrap_or_default();
        // Every page any test reads is read for French typography as well.
        let html =
            headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("text/html"));
        if html {
            let faults = typography_faults(&visible_text(&typeset));
            assert!(faults.is_empty(), "French typography on a page: {faults:#?}");
        }
        Self { status, headers, body: plain(&typeset), typeset }
    }

    /// The `Location` header.
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    /// The value of the page's (first) hidden CSRF field.
    pub fn csrf_token(&self) -> String {
        field_value(&self.body, "csrf_token").unwrap_or_else(|| panic!("no csrf_token in:\n{}", self.body))
    }

    /// The body with every CSRF token blanked, to compare two pages.
    pub fn without_tokens(&self) -> String {
        let mut body = self.body.clone();
        while let Some(token) = field_value(&body, "csrf_token").filter(|t| !t.is_empty()) {
            body = body.replace(&token, "");
        }
        body
    }
}

/// The `value` of the input named `name`, as a browser reads it (entities decoded).
pub fn field_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let value_at = tag.find("value=\"")? + "value=\"".len();
    let value_end = value_at + tag[value_at..].find('"')?;
    Some(unescape(&tag[value_at..value_end]))
}

/// Decodes the entities the templates write (`&#38;`, `&amp;`, `&quot;`…).
fn unescape(text: &str) -> String {
    let entities = [("&#38;", "&"), ("&#34;", "\""), ("&#39;", "'"), ("&#60;", "<"), ("&#62;", ">")];
    let named = [("&quot;", "\""), ("&lt;", "<"), ("&gt;", ">"), ("&#x27;", "'"), ("&amp;", "&")];
    entities.iter().chain(&named).fold(text.to_owned(), |text, (entity, plain)| text.replace(entity, plain))
}

impl TestApp {
    /// GET with the app's own client.
    pub async fn get(&self, path: &str) -> Page {
        self.get_with(&self.client, path).await
    }

    /// GET with another client.
    pub async fn get_with(&self, client: &reqwest::Client, path: &str) -> Page {
        let response =
            client.get(format!("{}{path}", self.address)).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        Page::read(response).await
    }

    /// POST a form as is (the caller adds `csrf_token` or not).
    pub async fn post_form(&self, client: &reqwest::Client, path: &str, form: &[(&str, &str)]) -> Page {
        self.post_form_with_headers(client, path, form, &[]).await
    }

    /// POST a form with extra headers.
    pub async fn post_form_with_headers(
        &self,
        client: &reqwest::Client,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let mut request = client
            .post(format!("{}{path}", self.address))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Page::read(request.send().await.unwrap_or_else(|e| panic!("POST {path}: {e}"))).await
    }

    /// Logs in with the app's client.
    pub async fn login(&self, identifier: &str, password: &str) -> Page {
        self.login_with(&self.client, identifier, password, &[]).await
    }

    /// Logs in with another client and extra headers (`X-Forwarded-For`…).
    pub async fn login_with(
        &self,
        client: &reqwest::Client,
        identifier: &str,
        password: &str,
        headers: &[(&str, &str)],
    ) -> Page {
        let token = self.get_with(client, "/login").await.csrf_token();
        let form = [("csrf_token", token.as_str()), ("identifier", identifier), ("password", password)];
        self.post_form_with_headers(client, "/login", &form, headers).await
    }

    /// Creates a member with [`PASSWORD`].
    pub async fn add_member(&self, identifier: &str) -> Account {
        self.add_account(identifier, Role::Member).await
    }

    /// Creates an account with a role and [`PASSWORD`].
    pub async fn add_account(&self, identifier: &str, role: Role) -> Account {
        let request = AddMember {
            identifier: identifier.to_owned(),
            email: format!("{identifier}@chu.example.fr"),
            name: String::new(),
            given_name: "Marie".to_owned(),
            family_name: "Durand".to_owned(),
            role,
            password: Some(SecretString::from(PASSWORD.to_owned())),
            invite: false,
            rpps: String::new(),
        };
        self.app
            .state
            .members
            .add(request, Actor::Operator, RequestContext::default())
            .await
            .unwrap_or_else(|e| panic!("add: {e:?}"))
    }

    /// The account as stored now.
    pub async fn account(&self, identifier: &str) -> Account {
        self.app.state.members.find(identifier).await.unwrap_or_else(|e| panic!("find: {e:?}"))
    }

    /// The account's recent events, newest first.
    pub async fn events(&self, identifier: &str) -> Vec<AuditEvent> {
        self.app.state.members.status(identifier, 200).await.unwrap_or_else(|e| panic!("status: {e:?}")).recent_events
    }

    /// Moves the server's clock.
    pub fn advance(&self, by: SignedDuration) {
        self.clock.advance(by);
    }

    /// Sends what the outbox holds now (the background postman would, within seconds).
    pub async fn deliver_mail(&self) {
        self.app.state.postman.deliver_due().await.unwrap_or_else(|e| panic!("postman: {e:?}"));
    }

    /// The messages the sink received for `address`, parsed.
    pub fn mail_to(&self, address: &str) -> Vec<Mail> {
        self.mail.messages().iter().filter(|m| m.to.iter().any(|t| t == address)).map(Mail::parse).collect()
    }

    /// Sends what is due, then returns the messages received for `address`.
    pub async fn delivered_to(&self, address: &str) -> Vec<Mail> {
        self.deliver_mail().await;
        self.mail_to(address)
    }

    /// Opens `page` to get its CSRF token, then posts `form` with it.
    pub async fn submit(&self, client: &reqwest::Client, page: &str, action: &str, form: &[(&str, &str)]) -> Page {
        let token = self.get_with(client, page).await.csrf_token();
        let mut fields = vec![("csrf_token", token.as_str())];
        fields.extend_from_slice(form);
        self.post_form(client, action, &fields).await
    }

    /// Verifications the hasher has done so far.
    pub fn verifications(&self) -> usize {
        self.hasher.verifications.load(Ordering::SeqCst)
    }

    /// The database URL, for commands run against the same database.
    pub fn database_url(&self) -> &str {
        self.database.url().expose_secret()
    }
}

/// A received message, parsed.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The subject, with the typography's spaces and apostrophes made plain (see [`plain`]).
    pub subject: String,
    /// The text part, made plain likewise; `typeset` is as sent.
    pub text: String,
    pub typeset: String,
    raw: String,
}

impl Mail {
    /// Parses a message received by any sink.
    pub fn parse_for_tests(received: &guichet_testkit::Received) -> Self {
        Self::parse(received)
    }

    fn parse(received: &guichet_testkit::Received) -> Self {
        let parsed =
            mail_parser::MessageParser::default().parse(&received.data).unwrap_or_else(|| panic!("unparsable mail"));
        let text = parsed.body_text(0).unwrap_or_default().replace("\r\n", "\n");
        // Every message any test reads is read for French typography as well.
        let subject = parsed.subject().unwrap_or_default();
        let faults = typography_faults(&format!("{subject}\n{text}"));
        assert!(faults.is_empty(), "French typography in a message ({subject}): {faults:#?}");
        Self {
            subject: plain(parsed.subject().unwrap_or_default()),
            typeset: text.clone(),
            text: plain(&text),
            raw: received.text(),
        }
    }

    /// Whether the raw message (attachments included) contains `needle`.
    pub fn raw_contains(&self, needle: &str) -> bool {
        self.raw.contains(needle)
    }

    /// The line holding the `/reset-password?code=` link.
    pub fn link(&self) -> String {
        self.text
            .lines()
            .map(str::trim)
            .find(|l| l.contains("/reset-password?code="))
            .unwrap_or_else(|| panic!("no link in:\n{}", self.text))
            .to_owned()
    }

    /// The code, as written on its own line (groups of four).
    pub fn code(&self) -> String {
        self.text
            .lines()
            .map(str::trim)
            .find(|l| l.len() == 29 && l.split('-').count() == 6 && l.split('-').all(|g| g.len() == 4))
            .unwrap_or_else(|| panic!("no code in:\n{}", self.text))
            .to_owned()
    }
}
