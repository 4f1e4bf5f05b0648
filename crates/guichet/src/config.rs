//! The configuration: defaults, overridden by a TOML file (`--config` or
//! `GUICHET_CONFIG`), overridden by `GUICHET_*` environment variables.
//!
//! Written by hand rather than with a layering crate so that every refusal names the
//! variable (or file key) at fault and says what it expected, in one line.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use guichet_core::SignedDuration;
use guichet_core::account::EmailAddress;
use guichet_core::gate::{AccessPolicy, AccessRule};
use guichet_core::redirect::ReturnHosts;
use guichet_mail::DkimSettings;
use guichet_store::DatabaseUrl;
use guichet_web::TrustedProxies;

/// Every setting, parsed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `GUICHET_DATABASE_URL`.
    pub database_url: DatabaseUrl,
    /// `GUICHET_LISTEN`.
    pub listen: SocketAddr,
    /// `GUICHET_SITE_NAME`.
    pub site_name: String,
    /// `GUICHET_PUBLIC_URL`, without a trailing slash.
    pub public_url: String,
    /// `GUICHET_MAIL_TRANSPORT`, redacted in `Debug`.
    pub mail_transport: MailTransportSpec,
    /// `GUICHET_MAIL_FROM`.
    pub mail_from: String,
    /// `GUICHET_ASSISTANCE_EMAIL`.
    pub assistance_email: Option<EmailAddress>,
    /// `GUICHET_DKIM_DOMAIN`, `GUICHET_DKIM_SELECTOR`, `GUICHET_DKIM_KEY_FILE`, when all three are set.
    pub dkim: Option<DkimSettings>,
    /// `GUICHET_LOCKOUT_THRESHOLD`.
    pub lockout_threshold: u32,
    /// `GUICHET_LOCKOUT_WINDOW`.
    pub lockout_window: SignedDuration,
    /// `GUICHET_LOCKOUT_DURATION`.
    pub lockout_duration: SignedDuration,
    /// `GUICHET_RECOVERY_CODE_TTL`.
    pub recovery_code_ttl: SignedDuration,
    /// `GUICHET_INVITATION_TTL`.
    pub invitation_ttl: SignedDuration,
    /// `GUICHET_TEMPORARY_PASSWORD_TTL`.
    pub temporary_password_ttl: SignedDuration,
    /// `GUICHET_OFFLINE_TOKEN_TTL`: how long an application registered `--offline` keeps
    /// a member without the guichet session.
    pub offline_token_ttl: SignedDuration,
    /// `GUICHET_STAFF_SECOND_FACTOR`: whether staff must have a second factor.
    pub staff_second_factor: guichet_core::second_factor::StaffRule,
    /// `GUICHET_SESSION_IDLE`.
    pub session_idle: SignedDuration,
    /// `GUICHET_SESSION_MAX`.
    pub session_max: SignedDuration,
    /// `GUICHET_PASSWORD_MIN_LENGTH`.
    pub password_min_length: usize,
    /// `GUICHET_COOKIE_SECURE`.
    pub cookie_secure: bool,
    /// `GUICHET_TRUSTED_PROXIES`.
    pub trusted_proxies: TrustedProxies,
    /// `GUICHET_ADDRESS_THROTTLE_FAILURES`: failed logins per address and window before `429`.
    pub address_throttle_failures: u32,
    /// `GUICHET_ADDRESS_THROTTLE_WINDOW`.
    pub address_throttle_window: SignedDuration,
    /// `GUICHET_TIMEZONE`: how dates are shown to people.
    pub time_zone: jiff::tz::TimeZone,
    /// `GUICHET_MAX_CONNECTIONS`: connections held at once; by default what the
    /// process's file-descriptor limit leaves room for.
    pub max_connections: Option<u32>,
    /// `GUICHET_COOKIE_DOMAIN`: the parent domain the forward-auth pass is shared with.
    pub cookie_domain: Option<String>,
    /// `GUICHET_RETURN_HOSTS`: hosts `next` may send a browser back to after login.
    pub return_hosts: ReturnHosts,
    /// `GUICHET_METRICS_LISTEN`: where Prometheus `/metrics` is served, apart from the
    /// public listener; none by default.
    pub metrics_listen: Option<SocketAddr>,
    /// The `[[access]]` rules of the members' area.
    pub access: AccessPolicy,
    /// The `[[upstream]]` identity providers (Pro Santé Connect…).
    pub upstreams: Vec<crate::upstream::UpstreamSettings>,
    /// `GUICHET_RETENTION_*`: how long each kind of personal data is kept.
    pub retention: guichet_core::retention::Retention,
    /// `GUICHET_ERASURE_DELAY`: between an erasure asked for and done.
    pub erasure_delay: SignedDuration,
    /// `GUICHET_PRIVACY_CONTROLLER`: who is responsible for the processing (the
    /// association's name and address), on the privacy page; the site's name by default.
    pub privacy_controller: Option<String>,
    /// `GUICHET_PRIVACY_CONTACT`: the data protection officer or contact (an address),
    /// on the privacy page; the assistance address by default.
    pub privacy_contact: Option<String>,
}

/// `GUICHET_MAIL_TRANSPORT` as written; `Debug` hides an SMTP password.
#[derive(Clone)]
pub struct MailTransportSpec(pub String);

impl std::fmt::Debug for MailTransportSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", guichet_core::redact::url_password(&self.0))
    }
}

/// The names, in contract order: environment variable, and the TOML key is the same
/// without `GUICHET_`, in lower case.
pub const VARIABLES: &[&str] = &[
    "GUICHET_DATABASE_URL",
    "GUICHET_LISTEN",
    "GUICHET_SITE_NAME",
    "GUICHET_PUBLIC_URL",
    "GUICHET_MAIL_TRANSPORT",
    "GUICHET_MAIL_FROM",
    "GUICHET_ASSISTANCE_EMAIL",
    "GUICHET_DKIM_DOMAIN",
    "GUICHET_DKIM_SELECTOR",
    "GUICHET_DKIM_KEY_FILE",
    "GUICHET_LOCKOUT_THRESHOLD",
    "GUICHET_LOCKOUT_WINDOW",
    "GUICHET_LOCKOUT_DURATION",
    "GUICHET_RECOVERY_CODE_TTL",
    "GUICHET_INVITATION_TTL",
    "GUICHET_TEMPORARY_PASSWORD_TTL",
    "GUICHET_OFFLINE_TOKEN_TTL",
    "GUICHET_STAFF_SECOND_FACTOR",
    "GUICHET_SESSION_IDLE",
    "GUICHET_SESSION_MAX",
    "GUICHET_PASSWORD_MIN_LENGTH",
    "GUICHET_COOKIE_SECURE",
    "GUICHET_TRUSTED_PROXIES",
    "GUICHET_ADDRESS_THROTTLE_FAILURES",
    "GUICHET_ADDRESS_THROTTLE_WINDOW",
    "GUICHET_TIMEZONE",
    "GUICHET_MAX_CONNECTIONS",
    "GUICHET_COOKIE_DOMAIN",
    "GUICHET_RETURN_HOSTS",
    "GUICHET_METRICS_LISTEN",
    "GUICHET_RETENTION_AUDIT",
    "GUICHET_RETENTION_FAILED_ATTEMPTS",
    "GUICHET_RETENTION_ADDRESSES",
    "GUICHET_RETENTION_MAIL_LOG",
    "GUICHET_RETENTION_MESSAGE_BODIES",
    "GUICHET_RETENTION_CLOSED_REQUESTS",
    "GUICHET_RETENTION_UNUSED_ACCOUNTS",
    "GUICHET_ERASURE_DELAY",
    "GUICHET_PRIVACY_CONTROLLER",
    "GUICHET_PRIVACY_CONTACT",
];

/// The settings read from systemd credentials of the same name (see
/// [`Sources::with_credentials`]): the secrets.
pub const CREDENTIALS: &[&str] = &["GUICHET_DATABASE_URL", "GUICHET_MAIL_TRANSPORT"];

/// Where the raw values come from.
#[derive(Debug, Default)]
pub struct Sources {
    file: BTreeMap<String, String>,
    file_name: Option<PathBuf>,
    environment: BTreeMap<String, String>,
    /// The file's `[[access]]` tables: each rule's `url`, `groups` and `second_factor`.
    access: Vec<(String, Vec<String>, bool)>,
    /// The file's `[[upstream]]` tables.
    upstreams: Vec<crate::upstream::UpstreamSettings>,
}

impl Sources {
    /// Reads the process environment and, if given, the TOML file.
    pub fn from_process(config_file: Option<&Path>) -> anyhow::Result<Self> {
        let environment: BTreeMap<String, String> =
            std::env::vars().filter(|(name, _)| name.starts_with("GUICHET_")).collect();
        for name in environment.keys() {
            check_variable_name(name)?;
        }
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        let mut sources =
            Self { environment, ..Self::default() }.with_secret_files()?.with_credentials(credentials.as_deref())?;
        if let Some(path) = config_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("could not read the configuration file {}", path.display()))?;
            sources = sources.with_toml(&text, path)?;
        }
        Ok(sources)
    }

    /// Only the given environment (for tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self { environment: pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(), ..Self::default() }
    }

    /// Reads `GUICHET_<NAME>_FILE` for every setting: the value of `GUICHET_<NAME>` from
    /// that file (systemd credentials, container secrets), its last line end dropped. Both
    /// the variable and its `_FILE` set is an error that names them, never the value.
    pub fn with_secret_files(mut self) -> anyhow::Result<Self> {
        let files: Vec<(String, String)> = self
            .environment
            .iter()
            .filter(|(name, _)| !VARIABLES.contains(&name.as_str()))
            .filter_map(|(name, path)| {
                let base = name.strip_suffix("_FILE").filter(|base| VARIABLES.contains(base))?;
                Some((base.to_owned(), path.clone()))
            })
            .collect();
        for (base, path) in files {
            if self.environment.contains_key(&base) {
                bail!("{base} and {base}_FILE are both set: keep one of them");
            }
            let value = std::fs::read_to_string(&path)
                .with_context(|| format!("{base}_FILE: could not read the file {path}"))?;
            let value = value.strip_suffix('\n').map_or(value.as_str(), |v| v.strip_suffix('\r').unwrap_or(v));
            self.environment.insert(base, value.to_owned());
        }
        Ok(self)
    }

    /// Reads the secrets systemd hands over as credentials (`LoadCredential=`), named
    /// like the setting without `GUICHET_` in lower case (`mail_transport`,
    /// `database_url`), for those neither the environment nor a `_FILE` gave. A command
    /// run with the service's credentials thus needs no variable to find them.
    pub fn with_credentials(mut self, directory: Option<&Path>) -> anyhow::Result<Self> {
        let Some(directory) = directory else { return Ok(self) };
        for base in CREDENTIALS {
            let path = directory.join(base.trim_start_matches("GUICHET_").to_ascii_lowercase());
            if self.environment.contains_key(*base) || !path.is_file() {
                continue;
            }
            let value = std::fs::read_to_string(&path)
                .with_context(|| format!("the systemd credential {}: could not read it", path.display()))?;
            let value = value.strip_suffix('\n').map_or(value.as_str(), |v| v.strip_suffix('\r').unwrap_or(v));
            self.environment.insert((*base).to_owned(), value.to_owned());
        }
        Ok(self)
    }

    /// Adds a TOML file's keys.
    pub fn with_toml(mut self, text: &str, path: &Path) -> anyhow::Result<Self> {
        let table: toml::Table =
            toml::from_str(text).with_context(|| format!("{} is not valid TOML", path.display()))?;
        for (key, value) in table {
            if key == "access" {
                self.access = access_rules(value, path)?;
                continue;
            }
            if key == "upstream" {
                self.upstreams = crate::upstream::read_tables(value, path)?;
                continue;
            }
            let variable = format!("GUICHET_{}", key.trim_start_matches("GUICHET_").to_ascii_uppercase());
            if !VARIABLES.contains(&variable.as_str()) {
                bail!("{}: unknown setting `{key}` (settings are named like `lockout_window`)", path.display());
            }
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(","),
                other => bail!("{}: `{key}` should be a string, got {}", path.display(), other.type_str()),
            };
            self.file.insert(variable, text);
        }
        self.file_name = Some(path.to_owned());
        Ok(self)
    }

    /// Adds an access rule (for tests).
    pub fn with_access(mut self, url: &str, groups: &[&str]) -> Self {
        self.access.push((url.to_owned(), groups.iter().map(|g| (*g).to_owned()).collect(), false));
        self
    }

    /// Adds an access rule that asks for a second factor (for tests).
    pub fn with_access_second_factor(mut self, url: &str, groups: &[&str]) -> Self {
        self.access.push((url.to_owned(), groups.iter().map(|g| (*g).to_owned()).collect(), true));
        self
    }

    /// Where each setting came from, one line each, for `config check`.
    pub fn origins(&self) -> String {
        let file = self.file_name.as_deref().map_or_else(String::new, |p| p.display().to_string());
        let mut out = String::from("\nwhere each setting came from:\n");
        for variable in VARIABLES {
            let origin = if self.environment.contains_key(*variable) {
                "the environment (or its _FILE)".to_owned()
            } else if self.file.contains_key(*variable) {
                file.clone()
            } else {
                "default".to_owned()
            };
            out.push_str(&format!("{variable:<34} {origin}\n"));
        }
        out
    }

    /// The raw value and where it came from, for error messages.
    fn get(&self, variable: &str) -> Option<(String, String)> {
        if let Some(value) = self.environment.get(variable) {
            return Some((value.clone(), variable.to_owned()));
        }
        let key = variable.trim_start_matches("GUICHET_").to_ascii_lowercase();
        let file = self.file_name.as_deref().map_or_else(String::new, |p| p.display().to_string());
        self.file.get(variable).map(|value| (value.clone(), format!("{key} in {file}")))
    }

    /// Parses one setting, or takes its default.
    fn parse<T>(
        &self,
        variable: &str,
        expected: &str,
        default: T,
        parse: impl Fn(&str) -> Option<T>,
    ) -> anyhow::Result<T> {
        match self.get(variable) {
            None => Ok(default),
            Some((raw, origin)) => parse(raw.trim()).ok_or_else(|| {
                anyhow::anyhow!("{origin}: expected {expected}, got {:?}", guichet_core::redact::url_password(&raw))
            }),
        }
    }

    fn optional(&self, variable: &str) -> Option<String> {
        self.get(variable).map(|(value, _)| value.trim().to_owned()).filter(|v| !v.is_empty())
    }
}

/// Variables read before the settings, or by the tests, not settings themselves.
const OTHER_VARIABLES: [&str; 3] = ["GUICHET_CONFIG", "GUICHET_LOG", "GUICHET_LOG_FORMAT"];

/// A `GUICHET_*` variable must be a setting (or its `_FILE`), one of [`OTHER_VARIABLES`],
/// or a test's own (`GUICHET_TEST_*`): a misspelt one is refused like an unknown key in
/// the file, with the setting it was probably meant to be.
fn check_variable_name(name: &str) -> anyhow::Result<()> {
    let base = name.strip_suffix("_FILE").unwrap_or(name);
    // Kubernetes gives every pod `GUICHET_PORT`, `GUICHET_SERVICE_HOST`,
    // `GUICHET_PORT_8080_TCP…` when a Service is named `guichet`.
    let service_link =
        name == "GUICHET_PORT" || name.starts_with("GUICHET_PORT_") || name.starts_with("GUICHET_SERVICE_");
    if VARIABLES.contains(&name)
        || VARIABLES.contains(&base)
        || OTHER_VARIABLES.contains(&name)
        || name.starts_with("GUICHET_TEST_")
        || service_link
    {
        return Ok(());
    }
    let closest = VARIABLES
        .iter()
        .chain(&OTHER_VARIABLES)
        .map(|known| (strsim::levenshtein(base, known), known))
        .min_by_key(|(distance, _)| *distance)
        .filter(|(distance, _)| *distance <= 3)
        .map(|(_, known)| format!(" (did you mean {known}?)"))
        .unwrap_or_default();
    bail!("{name}: unknown setting{closest}")
}

/// Reads `[[access]]` tables: `url = "…"`, `groups = ["…"]` (optional) and
/// `second_factor = true` (optional).
fn access_rules(value: toml::Value, path: &Path) -> anyhow::Result<Vec<(String, Vec<String>, bool)>> {
    let toml::Value::Array(tables) = value else {
        bail!("{}: `access` should be [[access]] tables with `url` and `groups`", path.display());
    };
    tables
        .into_iter()
        .map(|table| {
            let url = table.get("url").and_then(toml::Value::as_str);
            let groups = match table.get("groups") {
                None => Some(Vec::new()),
                Some(toml::Value::Array(items)) => items.iter().map(|g| g.as_str().map(str::to_owned)).collect(),
                Some(_) => None,
            };
            let second_factor = match table.get("second_factor") {
                None => Some(false),
                Some(value) => value.as_bool(),
            };
            let unknown = table
                .as_table()
                .and_then(|t| t.keys().find(|k| !matches!(k.as_str(), "url" | "groups" | "second_factor")).cloned());
            match (url, groups, second_factor, unknown) {
                (Some(url), Some(groups), Some(second_factor), None) => Ok((url.to_owned(), groups, second_factor)),
                _ => bail!(
                    "{}: each [[access]] needs `url = \"https://…\"` and may have `groups = [\"…\"]` \
                     and `second_factor = true`",
                    path.display()
                ),
            }
        })
        .collect()
}

/// Parses `90s`, `15m`, `1h`, `3d` (and combinations humantime knows, like `1h30m`).
pub fn parse_duration(raw: &str) -> Option<SignedDuration> {
    let duration = humantime::parse_duration(raw).ok()?;
    SignedDuration::try_from(duration).ok().filter(|d| d.is_positive())
}

const DURATION: &str = "a duration like 90s, 15m, 1h or 3d";

/// A duration as the settings are written: `365d`, `12h`, `15m`, `90s` (humantime's
/// own writing counts a year as 365.25 days, and says `11months 30days 18h` for `365d`).
pub fn short_duration(span: SignedDuration) -> String {
    let seconds = span.as_secs();
    match seconds {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A cookie domain: a host name that the public URL's host is, or ends with after a dot.
fn cookie_domain(raw: &str, public_url: &str) -> Option<String> {
    let domain = raw.trim().trim_start_matches('.').to_lowercase();
    let valid = !domain.is_empty()
        && domain.contains('.')
        && domain.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    let host = public_url.split_once("://").map_or(public_url, |(_, r)| r).split(['/', ':']).next()?.to_lowercase();
    (valid && (host == domain || host.ends_with(&format!(".{domain}")))).then_some(domain)
}

impl Settings {
    /// What `guichet config check` prints: every setting as it will be used, passwords
    /// in URLs hidden.
    pub fn describe(&self) -> String {
        let duration = |d: SignedDuration| humantime::format_duration(d.unsigned_abs()).to_string();
        let dkim = self.dkim.as_ref().map_or_else(
            || "off".to_owned(),
            |d| format!("d={} s={} key {}", d.domain, d.selector, d.key_file.display()),
        );
        let lines = [
            ("database", self.database_url.to_string()),
            ("listen", self.listen.to_string()),
            ("site name", self.site_name.clone()),
            ("public URL", self.public_url.clone()),
            ("mail transport", guichet_core::redact::url_password(&self.mail_transport.0)),
            ("mail from", self.mail_from.clone()),
            (
                "assistance email",
                self.assistance_email.as_ref().map_or_else(|| "(none)".to_owned(), ToString::to_string),
            ),
            ("DKIM", dkim),
            (
                "lockout",
                format!(
                    "{} failures within {}, for {}",
                    self.lockout_threshold,
                    duration(self.lockout_window),
                    duration(self.lockout_duration)
                ),
            ),
            ("sessions", format!("idle {}, at most {}", duration(self.session_idle), duration(self.session_max))),
            (
                "staff second factor",
                match self.staff_second_factor {
                    guichet_core::second_factor::StaffRule::Required => "required".to_owned(),
                    guichet_core::second_factor::StaffRule::Optional => "optional".to_owned(),
                },
            ),
            (
                "code lifetimes",
                format!(
                    "recovery {}, invitation {}, temporary password {}, offline access {}",
                    duration(self.recovery_code_ttl),
                    duration(self.invitation_ttl),
                    duration(self.temporary_password_ttl),
                    duration(self.offline_token_ttl)
                ),
            ),
            (
                "address throttle",
                format!(
                    "{} failures within {}",
                    self.address_throttle_failures,
                    duration(self.address_throttle_window)
                ),
            ),
            ("trusted proxies", self.trusted_proxies.to_string()),
            ("return hosts", self.return_hosts.to_string()),
            ("timezone", self.time_zone.iana_name().unwrap_or("UTC").to_owned()),
            ("max connections", self.max_connections.map_or_else(|| "automatic".to_owned(), |n| n.to_string())),
            ("password min length", self.password_min_length.to_string()),
            ("secure cookies", self.cookie_secure.to_string()),
            ("cookie domain", self.cookie_domain.clone().unwrap_or_else(|| "(host only)".to_owned())),
            ("access rules", self.access.len().to_string()),
            (
                "upstream providers",
                if self.upstreams.is_empty() {
                    "none".to_owned()
                } else {
                    self.upstreams.iter().map(|u| format!("{} ({})", u.id, u.issuer)).collect::<Vec<_>>().join(", ")
                },
            ),
            ("metrics", self.metrics_listen.map_or_else(|| "off".to_owned(), |a| format!("http://{a}/metrics"))),
            (
                "retention",
                guichet_core::retention::Kept::ALL
                    .iter()
                    .map(|kind| {
                        format!(
                            "{} {}",
                            kind.setting().trim_start_matches("GUICHET_RETENTION_").to_lowercase(),
                            short_duration(kind.period(&self.retention))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("erasure delay", short_duration(self.erasure_delay)),
        ];
        let mut out = String::from("configuration OK\n");
        for (name, value) in lines {
            out.push_str(&format!("{name:<20} {value}\n"));
        }
        out
    }

    /// Loads and checks every setting.
    pub fn load(sources: &Sources) -> anyhow::Result<Self> {
        let s = sources;
        let database_url = s.parse(
            "GUICHET_DATABASE_URL",
            "sqlite://PATH or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
            DatabaseUrl::parse("sqlite://guichet.db").context("default database URL")?,
            |raw| DatabaseUrl::parse(raw).ok(),
        )?;
        let listen = s.parse(
            "GUICHET_LISTEN",
            "an address and port like 127.0.0.1:8080",
            ([127, 0, 0, 1], 8080).into(),
            |raw| raw.parse().ok(),
        )?;
        let site_name = s.parse("GUICHET_SITE_NAME", "a non-empty name", "Espace membres".to_owned(), |raw| {
            (!raw.is_empty() && raw.chars().count() <= 100).then(|| raw.to_owned())
        })?;
        let public_url =
            s.parse("GUICHET_PUBLIC_URL", "an http:// or https:// URL", "http://127.0.0.1:8080".to_owned(), |raw| {
                let ok = (raw.starts_with("http://") || raw.starts_with("https://"))
                    && raw.len() > "https://".len()
                    && !raw.contains(char::is_whitespace);
                ok.then(|| raw.trim_end_matches('/').to_owned())
            })?;
        let mail_transport = s.parse(
            "GUICHET_MAIL_TRANSPORT",
            "file:DIR or smtp://[USER:PASS@]HOST:PORT[?tls=none|starttls|tls]",
            MailTransportSpec("file:outbox".to_owned()),
            |raw| {
                let ok = raw.strip_prefix("file:").is_some_and(|dir| !dir.is_empty()) || raw.starts_with("smtp://");
                ok.then(|| MailTransportSpec(raw.to_owned()))
            },
        )?;
        let mail_from = s.parse(
            "GUICHET_MAIL_FROM",
            "a sender like `Name <address@domain>`",
            "guichet <no-reply@localhost>".to_owned(),
            |raw| raw.contains('@').then(|| raw.to_owned()),
        )?;
        let assistance_email = s.parse("GUICHET_ASSISTANCE_EMAIL", "an email address", None, |raw| {
            EmailAddress::parse(raw).ok().map(Some)
        })?;
        let dkim = match (
            s.optional("GUICHET_DKIM_DOMAIN"),
            s.optional("GUICHET_DKIM_SELECTOR"),
            s.optional("GUICHET_DKIM_KEY_FILE"),
        ) {
            (Some(domain), Some(selector), Some(key_file)) => {
                Some(DkimSettings { domain, selector, key_file: key_file.into() })
            }
            (None, None, None) => None,
            _ => bail!(
                "GUICHET_DKIM_DOMAIN, GUICHET_DKIM_SELECTOR and GUICHET_DKIM_KEY_FILE: expected all three or none"
            ),
        };
        let count = |variable: &str, default: u32| {
            s.parse(variable, "a whole number of at least 1", default, |raw| {
                raw.parse::<u32>().ok().filter(|n| *n >= 1)
            })
        };
        let duration = |variable: &str, default: SignedDuration| s.parse(variable, DURATION, default, parse_duration);
        let hours = SignedDuration::from_hours;
        let minutes = SignedDuration::from_mins;
        let public_is_loopback_http = public_url
            .strip_prefix("http://")
            .map(|rest| rest.split(['/', ':']).next().unwrap_or_default())
            .is_some_and(|host| {
                host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) || host == "[::1]"
            });
        let cookie_domain = s.parse(
            "GUICHET_COOKIE_DOMAIN",
            "a parent domain of GUICHET_PUBLIC_URL's host, like example.org",
            None,
            |raw| cookie_domain(raw, &public_url).map(Some),
        )?;
        let access = AccessPolicy::new(
            s.access
                .iter()
                .map(|(url, groups, second)| AccessRule::new(url, groups).map(|rule| rule.with_second_factor(*second)))
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    anyhow::anyhow!(
                        "[[access]] in {}: {e}",
                        s.file_name.as_deref().map_or_else(String::new, |p| p.display().to_string())
                    )
                })?,
        );
        let settings =
            Self {
                access,
                upstreams: s.upstreams.clone(),
                database_url,
                listen,
                site_name,
                public_url,
                mail_transport,
                mail_from,
                assistance_email,
                dkim,
                lockout_threshold: count("GUICHET_LOCKOUT_THRESHOLD", 5)?,
                lockout_window: duration("GUICHET_LOCKOUT_WINDOW", minutes(15))?,
                lockout_duration: duration("GUICHET_LOCKOUT_DURATION", hours(1))?,
                recovery_code_ttl: duration("GUICHET_RECOVERY_CODE_TTL", hours(1))?,
                invitation_ttl: duration("GUICHET_INVITATION_TTL", hours(7 * 24))?,
                temporary_password_ttl: duration("GUICHET_TEMPORARY_PASSWORD_TTL", hours(3 * 24))?,
                offline_token_ttl: duration("GUICHET_OFFLINE_TOKEN_TTL", hours(30 * 24))?,
                staff_second_factor: s.parse(
                    "GUICHET_STAFF_SECOND_FACTOR",
                    "required or optional",
                    guichet_core::second_factor::StaffRule::Required,
                    guichet_core::second_factor::StaffRule::parse,
                )?,
                session_idle: duration("GUICHET_SESSION_IDLE", minutes(30))?,
                session_max: duration("GUICHET_SESSION_MAX", hours(12))?,
                password_min_length: s.parse("GUICHET_PASSWORD_MIN_LENGTH", "a number from 8 to 64", 12, |raw| {
                    raw.parse::<usize>().ok().filter(|n| (8..=64).contains(n))
                })?,
                cookie_secure: s.parse("GUICHET_COOKIE_SECURE", "true or false", !public_is_loopback_http, |raw| {
                    match raw.to_ascii_lowercase().as_str() {
                        "true" | "1" | "yes" | "on" => Some(true),
                        "false" | "0" | "no" | "off" => Some(false),
                        _ => None,
                    }
                })?,
                trusted_proxies: s.parse(
                    "GUICHET_TRUSTED_PROXIES",
                    "a comma-separated list of IP addresses or networks (10.0.0.1, 192.168.0.0/24)",
                    TrustedProxies::default(),
                    |raw| TrustedProxies::parse(raw).ok(),
                )?,
                address_throttle_failures: count("GUICHET_ADDRESS_THROTTLE_FAILURES", 100)?,
                address_throttle_window: duration("GUICHET_ADDRESS_THROTTLE_WINDOW", minutes(15))?,
                cookie_domain,
                return_hosts: s.parse(
                    "GUICHET_RETURN_HOSTS",
                    "a comma-separated list of host names (docs.example.org, forum.example.org)",
                    ReturnHosts::default(),
                    |raw| ReturnHosts::parse(raw).ok(),
                )?,
                metrics_listen: s.parse(
                    "GUICHET_METRICS_LISTEN",
                    "an address and port like 127.0.0.1:9100",
                    None,
                    |raw| raw.parse().ok().map(Some),
                )?,
                max_connections: s.parse("GUICHET_MAX_CONNECTIONS", "a whole number of at least 16", None, |raw| {
                    raw.parse::<u32>().ok().filter(|n| *n >= 16).map(Some)
                })?,
                retention: {
                    use guichet_core::retention::{Kept, Retention};
                    let defaults = Retention::default();
                    let period = |kind: Kept| duration(kind.setting(), kind.period(&defaults));
                    Retention {
                        audit: period(Kept::Audit)?,
                        failed_attempts: period(Kept::FailedAttempts)?,
                        message_bodies: period(Kept::MessageBodies)?,
                        mail_log: period(Kept::MailLog)?,
                        closed_requests: period(Kept::ClosedRequests)?,
                        addresses: period(Kept::Addresses)?,
                        unused_accounts: period(Kept::UnusedAccounts)?,
                    }
                },
                erasure_delay: duration("GUICHET_ERASURE_DELAY", hours(7 * 24))?,
                privacy_controller: s.parse(
                    "GUICHET_PRIVACY_CONTROLLER",
                    "the association's name and address, at most 300 characters",
                    None,
                    |raw| (!raw.trim().is_empty() && raw.chars().count() <= 300).then(|| Some(raw.trim().to_owned())),
                )?,
                privacy_contact: s.parse(
                    "GUICHET_PRIVACY_CONTACT",
                    "an email address (the data protection officer or contact)",
                    None,
                    |raw| EmailAddress::parse(raw).ok().map(|a| Some(a.to_string())),
                )?,
                time_zone: s.parse(
                    "GUICHET_TIMEZONE",
                    "an IANA time zone like Europe/Paris",
                    jiff::tz::TimeZone::get("Europe/Paris").unwrap_or(jiff::tz::TimeZone::UTC),
                    |raw| jiff::tz::TimeZone::get(raw).ok(),
                )?,
            };
        if settings.session_idle > settings.session_max {
            bail!("GUICHET_SESSION_IDLE: expected at most GUICHET_SESSION_MAX");
        }
        let lockout = guichet_core::lockout::LockoutPolicy {
            threshold: settings.lockout_threshold,
            window: settings.lockout_window,
            duration: settings.lockout_duration,
        };
        if let Err(why) = settings.retention.check(&lockout, settings.invitation_ttl) {
            bail!("{why}");
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> anyhow::Result<Settings> {
        Settings::load(&Sources::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults_need_no_configuration() {
        let settings = load(&[]).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(settings.database_url.to_string(), "sqlite://guichet.db");
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.lockout_threshold, 5);
        assert_eq!(settings.lockout_window, SignedDuration::from_mins(15));
        assert_eq!(settings.invitation_ttl, SignedDuration::from_hours(168));
        assert!(!settings.cookie_secure, "http on loopback");
    }

    #[test]
    fn durations_take_the_contract_forms() {
        for (raw, secs) in [("90s", 90), ("15m", 900), ("1h", 3600), ("3d", 259_200), ("1h30m", 5400)] {
            assert_eq!(parse_duration(raw), Some(SignedDuration::from_secs(secs)), "{raw}");
        }
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("0s"), None);
    }

    #[test]
    fn a_bad_value_names_the_variable_and_what_was_expected() {
        let error = load(&[("GUICHET_LOCKOUT_WINDOW", "quinze")]).err().map(|e| format!("{e:#}"));
        assert_eq!(
            error.as_deref(),
            Some("GUICHET_LOCKOUT_WINDOW: expected a duration like 90s, 15m, 1h or 3d, got \"quinze\"")
        );
        let error = load(&[("GUICHET_LOCKOUT_THRESHOLD", "0")]).err().map(|e| format!("{e:#}"));
        assert!(error.is_some_and(|e| e.starts_with("GUICHET_LOCKOUT_THRESHOLD: expected a whole number")));
    }

    #[test]
    fn secrets_stay_out_of_errors_and_debug() {
        let error = load(&[("GUICHET_DATABASE_URL", "mysql://u:hunter2@db/x")]).err().map(|e| format!("{e:#}"));
        assert!(error.is_some_and(|e| e.contains("GUICHET_DATABASE_URL") && !e.contains("hunter2")));
        let settings = load(&[
            ("GUICHET_DATABASE_URL", "postgres://u:hunter2@db/x"),
            ("GUICHET_MAIL_TRANSPORT", "smtp://mailer:hunter3@relay:587?tls=starttls"),
        ])
        .unwrap_or_else(|e| panic!("{e:#}"));
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("hunter3"), "{debug}");
    }

    #[test]
    fn secrets_are_read_from_files_and_never_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("database_url");
        std::fs::write(&path, "postgres://guichet:s3cret@db/guichet\n").unwrap();
        let path = path.display().to_string();
        let sources = Sources::from_pairs([("GUICHET_DATABASE_URL_FILE", path.as_str())]).with_secret_files();
        let settings = sources.and_then(|s| Settings::load(&s)).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(settings.database_url.backend(), guichet_store::Backend::Postgres);
        assert!(!settings.database_url.to_string().contains("s3cret"), "hidden when shown");
        let both = Sources::from_pairs([
            ("GUICHET_DATABASE_URL", "sqlite://x.db"),
            ("GUICHET_DATABASE_URL_FILE", path.as_str()),
        ])
        .with_secret_files();
        let message = both.err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(message.contains("GUICHET_DATABASE_URL and GUICHET_DATABASE_URL_FILE are both set"), "{message}");
        let missing = Sources::from_pairs([("GUICHET_MAIL_TRANSPORT_FILE", "/nonexistent/secret")]).with_secret_files();
        let message = missing.err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(message.contains("GUICHET_MAIL_TRANSPORT_FILE") && !message.contains("s3cret"), "{message}");
        // GUICHET_DKIM_KEY_FILE is a setting of its own, not the file of another one.
        let dkim = Sources::from_pairs([("GUICHET_DKIM_KEY_FILE", "/etc/guichet/dkim.pem")]).with_secret_files();
        assert!(dkim.is_ok());
    }

    #[test]
    fn systemd_credentials_are_read_when_nothing_else_gave_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mail_transport"), "smtp://guichet:s3cret@smtp.example.org:587\n").unwrap();
        std::fs::write(dir.path().join("database_url"), "postgres://guichet:s3cret@db/guichet").unwrap();
        let sources =
            Sources::from_pairs([("GUICHET_DATABASE_URL", "sqlite://here.db")]).with_credentials(Some(dir.path()));
        let settings = sources.and_then(|s| Settings::load(&s)).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(settings.database_url.backend(), guichet_store::Backend::Sqlite, "the environment wins");
        assert!(format!("{:?}", settings.mail_transport).contains("smtp.example.org"), "the credential is read");
        let none = Sources::from_pairs([]).with_credentials(None).and_then(|s| Settings::load(&s));
        assert!(none.is_ok_and(|s| s.database_url.backend() == guichet_store::Backend::Sqlite));
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let sources = Sources::from_pairs([("GUICHET_LOCKOUT_THRESHOLD", "7")])
            .with_toml(
                "lockout_threshold = 3\nsite_name = \"Réseau Santé\"\ntrusted_proxies = [\"10.0.0.1\"]",
                Path::new("g.toml"),
            )
            .unwrap_or_else(|e| panic!("{e:#}"));
        let settings = Settings::load(&sources).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(settings.lockout_threshold, 7);
        assert_eq!(settings.site_name, "Réseau Santé");
    }

    /// The README's forward-auth settings and access rules, as written, load as the
    /// two rules they show.
    #[test]
    fn the_readme_access_rules_load_as_written() {
        let readme = include_str!("../../../README.md");
        let section = readme.split("## Opening the members' area").nth(1).unwrap_or_default();
        let blocks = |lang: &str| -> Vec<&str> {
            section.split(&format!("```{lang}\n")).skip(1).filter_map(|b| b.split("```").next()).collect()
        };
        let toml = blocks("toml").first().copied().unwrap_or_else(|| panic!("no toml block"));
        let settings_block = blocks("sh").into_iter().find(|b| b.contains("GUICHET_PUBLIC_URL="));
        let pairs: Vec<(&str, &str)> = settings_block
            .unwrap_or_else(|| panic!("no settings block"))
            .lines()
            .filter_map(|line| line.split('#').next()?.trim().split_once('='))
            .collect();
        assert_eq!(pairs.len(), 4, "{pairs:?}");
        let sources =
            Sources::from_pairs(pairs).with_toml(toml, Path::new("guichet.toml")).unwrap_or_else(|e| panic!("{e:#}"));
        let settings = Settings::load(&sources).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(settings.access.len(), 2);
        assert_eq!(settings.cookie_domain.as_deref(), Some("example.org"));
    }

    #[test]
    fn file_errors_name_the_key_and_file() {
        let sources = Sources::default()
            .with_toml("session_idle = \"long\"", Path::new("g.toml"))
            .unwrap_or_else(|e| panic!("{e:#}"));
        let error = Settings::load(&sources).err().map(|e| format!("{e:#}"));
        assert!(error.is_some_and(|e| e.starts_with("session_idle in g.toml: expected a duration")));
        let unknown =
            Sources::default().with_toml("lockout_treshold = 3", Path::new("g.toml")).err().map(|e| format!("{e:#}"));
        assert!(unknown.is_some_and(|e| e.contains("unknown setting `lockout_treshold`")));
    }

    #[test]
    fn cookies_are_secure_unless_plain_http_on_loopback() {
        let secure = |url: &str| load(&[("GUICHET_PUBLIC_URL", url)]).map(|s| s.cookie_secure).ok();
        assert_eq!(secure("https://membres.example.org"), Some(true));
        assert_eq!(secure("http://membres.example.org"), Some(true));
        assert_eq!(secure("http://localhost:8080/"), Some(false));
    }

    #[test]
    fn dkim_needs_all_three() {
        let error = load(&[("GUICHET_DKIM_DOMAIN", "example.org")]).err().map(|e| format!("{e:#}"));
        assert!(error.is_some_and(|e| e.contains("expected all three or none")));
    }
}
