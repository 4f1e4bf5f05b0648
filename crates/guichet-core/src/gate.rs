//! The members' area's gate: a reverse proxy asks, for each request to a protected
//! site, whether the browser's session may see the URL (forward auth). The access rules
//! (TOML `[[access]]`) match URL prefixes; the longest matching prefix decides; a rule
//! without groups lets any signed-in member through, a rule with groups lets members of
//! any of them. A URL no rule covers passes only when no rule asks for a group at all:
//! as soon as one does, what no rule names is refused, so that a surprising target (a
//! `Host` with another port, another site's name, a path the rules forgot) can never
//! widen access. An operator opens a site to every member with a rule for its root and
//! `groups = []`.
//!
//! The target is parsed as strictly as the proxy that will serve it ([`Target`]): an
//! `http(s)` scheme, an authority that is a host and an optional port and nothing else,
//! a path that starts right after it, no fragment, no user info, visible ASCII only.
//! Anything else is refused, never judged as some other URL.
//!
//! URLs are compared the way the proxy will serve them: scheme and host in lower case,
//! the default port dropped, the path percent-decoded with `.`/`..` resolved and repeated
//! slashes merged, query left out — so `/public/../bureau/` or `/public%2F..%2Fbureau/`
//! cannot borrow `/public/`'s rule to reach `/bureau/`. A path holding `;`, a backslash
//! or a NUL (which some servers read differently) is no URL the gate judges.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};
use url::Url;

use crate::clock::Clock;
use crate::groups::GroupName;
use crate::ports::{AccountStore, GroupStore, Ports, SessionStore, StoreError};
use crate::session::Sessions;
use crate::token::{PlainToken, TokenHash};

/// One access rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    /// The URL prefix, normalised.
    prefix: String,
    /// The same in lower case (for sites that serve paths whatever their case).
    folded: String,
    /// Who may pass: members of any of these groups; nobody in particular when empty.
    groups: Vec<GroupName>,
    /// Only a session signed in with a second factor passes (`second_factor = true`).
    second_factor: bool,
}

/// Why an access rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessRuleError {
    /// The URL is not an `http(s)` URL.
    #[error("« {0} » is not an http(s) URL")]
    Url(String),
    /// A group name is not one.
    #[error("« {0} » is not a group name")]
    Group(String),
}

impl AccessRule {
    /// A rule for URLs starting with `url`, for members of `groups` (any signed-in member
    /// when empty).
    pub fn new(url: &str, groups: &[String]) -> Result<Self, AccessRuleError> {
        let prefix = normalise(url).ok_or_else(|| AccessRuleError::Url(url.to_owned()))?;
        let groups = groups
            .iter()
            .map(|g| GroupName::parse(g).map_err(|_| AccessRuleError::Group(g.clone())))
            .collect::<Result<_, _>>()?;
        Ok(Self { folded: prefix.to_lowercase(), prefix, groups, second_factor: false })
    }

    /// The same rule, passing only sessions signed in with a second factor.
    #[must_use]
    pub fn with_second_factor(mut self, required: bool) -> Self {
        self.second_factor = required;
        self
    }
}

/// The access rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    rules: Vec<AccessRule>,
}

impl AccessPolicy {
    /// The policy made of these rules.
    pub fn new(rules: Vec<AccessRule>) -> Self {
        Self { rules }
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there is none (every signed-in member passes everywhere).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a member of `groups` may see `target` (already normalised). A prefix
    /// ending in `/` also covers the same path without it (`/bureau` is `/bureau/`).
    ///
    /// A site may serve paths whatever their case (`/BUREAU/` as `/bureau/`): the target
    /// passes only when it also passes with its path and the rules' paths in lower case.
    fn allows(&self, target: &str, groups: &[GroupName]) -> bool {
        if !self.allows_as(target, groups, false) {
            return false;
        }
        // Most paths are in lower case already: no second look needed.
        if !target.bytes().any(|b| b.is_ascii_uppercase()) && self.rules.iter().all(|r| r.folded == r.prefix) {
            return true;
        }
        self.allows_as(&target.to_lowercase(), groups, true)
    }

    fn allows_as(&self, target: &str, groups: &[GroupName], folded: bool) -> bool {
        match self.rule_for(target, folded) {
            Some(rule) => rule.groups.is_empty() || rule.groups.iter().any(|g| groups.contains(g)),
            None => self.allows_unnamed(),
        }
    }

    /// The rule that decides for `target`: the longest prefix that covers it.
    fn rule_for(&self, target: &str, folded: bool) -> Option<&AccessRule> {
        let covers = |rule: &&AccessRule| {
            let prefix = if folded { &rule.folded } else { &rule.prefix };
            target.starts_with(prefix.as_str()) || prefix.strip_suffix('/').is_some_and(|bare| target == bare)
        };
        self.rules.iter().filter(covers).max_by_key(|rule| rule.prefix.len())
    }

    /// Whether `target` (already normalised) asks for a second factor: when the rule
    /// deciding for it does, in its case or in lower case (the stricter reading wins).
    fn requires_second_factor(&self, target: &str) -> bool {
        let asks = |target: &str, folded| self.rule_for(target, folded).is_some_and(|rule| rule.second_factor);
        asks(target, false) || asks(&target.to_lowercase(), true)
    }

    /// Whether a URL no rule covers may be seen (or one the proxy did not name): only
    /// when no rule asks for a group. Otherwise nothing the rules forgot is open.
    fn allows_unnamed(&self) -> bool {
        self.rules.iter().all(|rule| rule.groups.is_empty())
    }
}

/// The URL a proxy says it is about to serve, parsed strictly ([`Target::parse`],
/// [`Target::forwarded`]) and brought to the form rules are compared in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// As the proxy sent it (for the way back after login).
    url: String,
    /// Normalised ([`normalise`]).
    normalised: String,
}

/// Why a target was refused: the gate answers `403` and judges nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadTarget {
    /// Not `http` or `https`.
    #[error("the scheme is not http or https")]
    Scheme,
    /// Something other than a host and an optional port before the path (`?`, `#`, `@`,
    /// a space, an empty host, a bad port…).
    #[error("the authority is not a host and an optional port")]
    Authority,
    /// The path does not start right after the authority, or holds a fragment, a byte
    /// outside visible ASCII, or what servers read differently (`;`, `\`, NUL).
    #[error("the path is not one the gate can judge")]
    Path,
}

impl Target {
    /// A full URL (`X-Original-URL`).
    pub fn parse(raw: &str) -> Result<Self, BadTarget> {
        let (scheme, rest) = raw.split_once("://").ok_or(BadTarget::Scheme)?;
        let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        Self::forwarded(scheme, authority, path)
    }

    /// The three `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Forwarded-Uri` values.
    pub fn forwarded(scheme: &str, authority: &str, uri: &str) -> Result<Self, BadTarget> {
        // Traefik names a WebSocket upgrade's scheme `ws`/`wss`: the same site.
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" | "ws" => "http",
            "https" | "wss" => "https",
            _ => return Err(BadTarget::Scheme),
        };
        if !is_authority(authority) {
            return Err(BadTarget::Authority);
        }
        if !uri.starts_with('/') || uri.contains('#') || !uri.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(BadTarget::Path);
        }
        // Dot segments and encoded slashes: a browser resolves the former and never
        // sends the latter, and the site behind the proxy may receive the path as it is
        // (nginx's `proxy_pass` without a URI, Caddy): `/bureau/..%2Fcours/` must not be
        // judged as `/cours/` while the site serves it from `/bureau/`.
        let path = uri.split('?').next().unwrap_or_default();
        let tricky = path.split('/').any(|segment| {
            let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
            matches!(&*decoded, "." | "..") || decoded.contains(['/', '\\'])
        });
        if tricky {
            return Err(BadTarget::Path);
        }
        let url = format!("{scheme}://{authority}{uri}");
        let normalised = normalise(&url).ok_or(BadTarget::Path)?;
        Ok(Self { url, normalised })
    }

    /// The URL as the proxy sent it.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// Whether two targets name the same URL, as the rules see it.
    pub fn same_as(&self, other: &Self) -> bool {
        self.normalised == other.normalised
    }
}

/// Whether `raw` is `host[:port]` and nothing else: a DNS name (letters, digits and
/// hyphens in dot-separated labels, one trailing dot allowed), an IPv4 address, or an
/// IPv6 address in brackets; a port of digits from 1 to 65535.
fn is_authority(raw: &str) -> bool {
    let (host, port) = match raw.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => (host, Some(port)),
        _ => (raw, None),
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|p| p > 0)
    });
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        let name = host.strip_suffix('.').unwrap_or(host);
        !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    };
    port_ok && host_ok
}

/// Brings a URL to the form rules are compared in; `None` unless it is `http(s)`, or
/// when its path holds what servers read differently (`;`, `\`, NUL).
fn normalise(raw: &str) -> Option<String> {
    let url = Url::parse(raw.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    // `membres.example.org.` is `membres.example.org` to DNS and to most proxies.
    let host = url.host_str()?.trim_end_matches('.');
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    // Decoded as a proxy does before serving it (invalid UTF-8 replaced).
    let decoded = percent_encoding::percent_decode_str(url.path()).decode_utf8_lossy();
    if decoded.contains([';', '\\', '\0']) {
        return None;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let trailing = if decoded.ends_with('/') && !segments.is_empty() { "/" } else { "" };
    Some(format!("{}://{host}{port}/{}{trailing}", url.scheme(), segments.join("/")))
}

/// Who passes, for the proxy to tell the site behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passport {
    /// The identifier.
    pub identifier: String,
    /// The display name.
    pub name: String,
    /// The email address.
    pub email: String,
    /// The groups, sorted.
    pub groups: Vec<GroupName>,
    /// The session signed in with a second factor.
    pub second_factor: bool,
}

/// What RFC 8187 leaves as it is in an `ext-value` (its `attr-char`).
const ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

impl Passport {
    /// The display name as an RFC 8187 `ext-value` (`UTF-8''Marie%20Dup%C3%A9`): plain
    /// ASCII, for servers that read header bytes as Latin-1 (Python's WSGI).
    pub fn name_encoded(&self) -> String {
        format!("UTF-8''{}", percent_encoding::utf8_percent_encode(&self.name, ATTR_CHAR))
    }
}

/// What the browser's cookies present to the gate.
#[derive(Debug, Clone, Copy)]
pub enum Presented<'a> {
    /// No session.
    Nothing,
    /// guichet's own session cookie (a protected site on guichet's host).
    Session(&'a PlainToken),
    /// The pass of the cookie shared with sub-domains ([`Sessions::pass`]).
    Pass(&'a str),
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Signed in and allowed.
    Pass(Passport),
    /// No live session (or one that may not be used: disabled, or a password to change).
    NotSignedIn,
    /// Signed in, but the rules do not let this account see this URL.
    Forbidden,
    /// Signed in and allowed, but the URL asks for a second factor this session did not
    /// give: the login page sends the member to give it (or to enrol one).
    SecondFactor,
}

/// How long a cached answer may serve without the database even when nothing moved:
/// then the session is read again, which also pushes its idle expiry back.
const CACHE_FOR: SignedDuration = SignedDuration::from_secs(30);
/// Past this many sessions cached, the cache starts afresh.
const CACHE_MAX: usize = 50_000;

/// What the gate remembers of a session.
#[derive(Debug, Clone)]
struct Cached {
    /// The cache generation it was read in.
    generation: u64,
    /// Used until then at most.
    until: Timestamp,
    /// Who the session is.
    passport: Passport,
}

/// The gate's memory: sessions already looked up, valid for one generation. The
/// generation moves when this instance handles a change (any form sent to it) and when
/// the database's change counter moves (a change from another instance or the command
/// line, seen by [`Gate::refresh`] within a poll).
#[derive(Debug, Default)]
struct Cache {
    generation: AtomicU64,
    epoch: Mutex<Option<i64>>,
    entries: Mutex<HashMap<TokenHash, Cached>>,
}

/// The forward-auth gate.
#[derive(Debug, Clone)]
pub struct Gate {
    sessions: Sessions,
    epochs: Arc<dyn SessionStore>,
    accounts: Arc<dyn AccountStore>,
    groups: Arc<dyn GroupStore>,
    policy: Arc<AccessPolicy>,
    clock: Arc<dyn Clock>,
    cache: Arc<Cache>,
}

impl Gate {
    /// Wires the gate.
    pub fn new(ports: &Ports, sessions: Sessions, policy: AccessPolicy, clock: Arc<dyn Clock>) -> Self {
        Self {
            sessions,
            epochs: Arc::clone(&ports.sessions),
            accounts: Arc::clone(&ports.accounts),
            groups: Arc::clone(&ports.groups),
            policy: Arc::new(policy),
            clock,
            cache: Arc::new(Cache::default()),
        }
    }

    /// Whether the session the browser presents may see `target` (`None` when the proxy
    /// did not say: then only a policy without group rules lets anyone through).
    pub async fn check(&self, presented: Presented<'_>, target: Option<&Target>) -> Result<Verdict, StoreError> {
        let hash = match presented {
            Presented::Nothing => None,
            Presented::Session(token) => Some(token.hash()),
            Presented::Pass(pass) => self.sessions.verify_pass(pass),
        };
        let Some(hash) = hash else { return Ok(Verdict::NotSignedIn) };
        let Some(passport) = self.passport(&hash).await? else { return Ok(Verdict::NotSignedIn) };
        let allowed = match target {
            Some(target) => self.policy.allows(&target.normalised, &passport.groups),
            None => self.policy.allows_unnamed(),
        };
        if !allowed {
            return Ok(Verdict::Forbidden);
        }
        if !passport.second_factor && target.is_some_and(|t| self.policy.requires_second_factor(&t.normalised)) {
            return Ok(Verdict::SecondFactor);
        }
        Ok(Verdict::Pass(passport))
    }

    /// Whether `url` (a `next` already accepted) is behind a rule that asks for a second
    /// factor: the login page's question for a member signed in without one.
    pub fn asks_second_factor(&self, url: &str) -> bool {
        Target::parse(url).is_ok_and(|target| self.policy.requires_second_factor(&target.normalised))
    }

    /// Who the session is, from the cache or the database; `None` when it is not live
    /// or may not be used.
    async fn passport(&self, hash: &TokenHash) -> Result<Option<Passport>, StoreError> {
        let now = self.clock.now();
        // Read before the database: an entry filled from data older than a change is
        // stamped with the generation the change ends.
        let generation = self.cache.generation.load(Ordering::Acquire);
        {
            let entries = self.cache.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(cached) = entries.get(hash).filter(|c| c.generation == generation && now < c.until) {
                return Ok(Some(cached.passport.clone()));
            }
        }
        let Some(session) = self.sessions.resume_hash(hash).await? else { return Ok(None) };
        let Some(account) = self.accounts.find_account(session.account_id).await? else { return Ok(None) };
        if account.disabled_at.is_some() || session.must_change_password {
            return Ok(None);
        }
        let passport = Passport {
            identifier: account.identifier.to_string(),
            name: account.display_name.as_str().to_owned(),
            email: account.email.to_string(),
            groups: self.groups.account_groups(account.id).await?,
            second_factor: session.factors.has_second(),
        };
        let until = now.saturating_add(CACHE_FOR).unwrap_or(now).min(session.idle_expires_at).min(session.expires_at);
        let mut entries = self.cache.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CACHE_MAX {
            entries.clear();
        }
        entries.insert(hash.clone(), Cached { generation, until, passport: passport.clone() });
        Ok(Some(passport))
    }

    /// Forgets every cached session: something may have changed (a form was sent to
    /// this instance). The next check of each session reads the database.
    pub fn forget(&self) {
        self.cache.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.entries.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Reads the database's change counter and forgets the cache when it moved (a
    /// change from another instance or the command line). Called every few tens of
    /// milliseconds while serving.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let epoch = self.epochs.access_epoch().await?;
        let moved = {
            let mut seen = self.cache.epoch.lock().unwrap_or_else(PoisonError::into_inner);
            let moved = *seen != Some(epoch);
            *seen = Some(epoch);
            moved
        };
        if moved {
            self.forget();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(name: &str) -> GroupName {
        GroupName::parse(name).unwrap()
    }

    fn policy() -> AccessPolicy {
        let rule = |url: &str, groups: &[&str]| {
            AccessRule::new(url, &groups.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
        };
        AccessPolicy::new(vec![
            rule("https://docs.example.org/", &["adherents"]),
            rule("https://docs.example.org/bureau/", &["bureau"]),
            rule("https://docs.example.org/public/", &[]),
        ])
    }

    fn allows(target: &str, groups: &[&str]) -> bool {
        let groups: Vec<GroupName> = groups.iter().map(|n| g(n)).collect();
        policy().allows(&normalise(target).unwrap_or_default(), &groups)
    }

    fn target(raw: &str) -> Result<String, BadTarget> {
        Target::parse(raw).map(|t| t.normalised)
    }

    #[test]
    fn the_longest_prefix_decides() {
        assert!(allows("https://docs.example.org/cours/1", &["adherents"]));
        assert!(!allows("https://docs.example.org/cours/1", &[]));
        assert!(allows("https://docs.example.org/public/guide", &[]));
        assert!(!allows("https://docs.example.org/bureau/pv.pdf", &["adherents"]));
        assert!(allows("https://docs.example.org/bureau/pv.pdf", &["bureau"]));
        assert!(!allows("https://forum.example.org/", &["adherents"]), "a site no rule names, with group rules");
        assert!(!allows("https://docs.example.org:8443/", &["adherents", "bureau"]), "another port is another site");
        assert!(allows("https://docs.example.org/autre", &[]) == allows("https://docs.example.org/", &[]));
        assert!(!allows("https://docs.example.org/bureau", &["adherents"]), "the folder without its slash");
        assert!(allows("https://docs.example.org/bureaux", &["adherents"]), "another folder");
    }

    #[test]
    fn an_unnamed_url_passes_only_where_no_rule_asks_for_a_group() {
        assert!(!policy().allows_unnamed());
        assert!(AccessPolicy::default().allows_unnamed());
        let open = AccessRule::new("https://docs.example.org/", &[]).unwrap();
        assert!(AccessPolicy::new(vec![open]).allows_unnamed());
    }

    #[test]
    fn paths_are_compared_as_the_proxy_serves_them() {
        for sneaky in [
            "https://docs.example.org/public/../bureau/pv.pdf",
            "https://docs.example.org/public/%2e%2e/bureau/pv.pdf",
            "https://docs.example.org/public%2F..%2Fbureau/pv.pdf",
            "https://docs.example.org//bureau/pv.pdf",
            "https://DOCS.example.org:443/bureau/pv.pdf",
            "https://docs.example.org/./bureau/pv.pdf?public/",
        ] {
            assert!(!allows(sneaky, &["adherents"]), "{sneaky}");
        }
        assert_eq!(
            normalise("HTTPS://Docs.Example.org:443/a//b/../c/?x#y").as_deref(),
            Some("https://docs.example.org/a/c/")
        );
        assert_eq!(normalise("javascript:alert(1)"), None);
        for odd in [
            "https://docs.example.org./bureau/pv.pdf",
            "https://docs.example.org:8443/bureau/pv.pdf",
            "http://docs.example.org/bureau/pv.pdf",
            "https://docs.example.org/bureau;x/pv.pdf",
            "https://docs.example.org/bureau%3Bx/pv.pdf",
            "https://docs.example.org/bureau%5C..%5Cpublic/",
        ] {
            assert!(!allows(odd, &["adherents"]), "{odd}");
        }
        assert_eq!(normalise("https://docs.example.org./a").as_deref(), Some("https://docs.example.org/a"));
    }

    #[test]
    fn what_no_rule_covers_is_refused_once_a_rule_asks_for_a_group() {
        let rule = |url: &str, groups: &[&str]| {
            AccessRule::new(url, &groups.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
        };
        let policy = AccessPolicy::new(vec![rule("https://docs.example.org/bureau/", &["bureau"])]);
        let judge = |url: &str| policy.allows(&normalise(url).unwrap_or_default(), &[g("adherents")]);
        assert!(!judge("https://docs.example.org/"), "the site's root, which no rule names");
        assert!(!judge("https://docs.example.org/cours/1"));
        let open = AccessPolicy::new(vec![
            rule("https://docs.example.org/", &[]),
            rule("https://docs.example.org/bureau/", &["bureau"]),
        ]);
        assert!(open.allows(&normalise("https://docs.example.org/cours/1").unwrap_or_default(), &[]));
    }

    #[test]
    fn targets_are_parsed_as_strictly_as_the_proxy_serves_them() {
        assert_eq!(target("https://docs.example.org/a?b#"), Err(BadTarget::Path));
        assert_eq!(target("https://Docs.Example.org:443/a//b?c").as_deref(), Ok("https://docs.example.org/a/b"));
        assert_eq!(target("https://docs.example.org/a/../b"), Err(BadTarget::Path));
        assert_eq!(target("http://[::1]:8080/x").as_deref(), Ok("http://[::1]:8080/x"));
        assert_eq!(target("http://127.0.0.1:8080/x").as_deref(), Ok("http://127.0.0.1:8080/x"));
        assert_eq!(target("https://docs.example.org./x").as_deref(), Ok("https://docs.example.org/x"));
        for (raw, why) in [
            ("https://docs.example.org?/bureau/pv.pdf", BadTarget::Authority),
            ("https://docs.example.org#/bureau/pv.pdf", BadTarget::Authority),
            ("https://docs.example.org?:8080/bureau/", BadTarget::Authority),
            ("https://marie@docs.example.org/bureau/", BadTarget::Authority),
            ("https://docs.example.org x/bureau/", BadTarget::Authority),
            ("https://docs.example.org:/bureau/", BadTarget::Authority),
            ("https://docs.example.org:0/bureau/", BadTarget::Authority),
            ("https://docs.example.org:65536/bureau/", BadTarget::Authority),
            ("https://docs.example.org:80:80/bureau/", BadTarget::Authority),
            ("https://docs..example.org/bureau/", BadTarget::Authority),
            ("https://docs_example.org/bureau/", BadTarget::Authority),
            ("https://docs.example.org%2f/bureau/", BadTarget::Authority),
            ("https:///bureau/", BadTarget::Authority),
            ("https://[::1/bureau/", BadTarget::Authority),
            ("https://docs.example.org", BadTarget::Path),
            ("https://docs.example.org/public/#/../bureau/", BadTarget::Path),
            ("https://docs.example.org/public/ x", BadTarget::Path),
            ("https://docs.example.org/bureau/é", BadTarget::Path),
            ("https://docs.example.org/bureau;x/", BadTarget::Path),
            ("ftp://docs.example.org/", BadTarget::Scheme),
            ("docs.example.org/bureau/", BadTarget::Scheme),
            ("javascript:alert(1)", BadTarget::Scheme),
        ] {
            assert_eq!(target(raw), Err(why), "{raw}");
        }
        assert_eq!(Target::forwarded("https", "docs.example.org?", "/bureau/"), Err(BadTarget::Authority));
        assert_eq!(Target::forwarded("https", "docs.example.org", "bureau/"), Err(BadTarget::Path));
        assert_eq!(Target::forwarded("gopher", "docs.example.org", "/"), Err(BadTarget::Scheme));
        assert!(
            Target::forwarded("wss", "docs.example.org", "/chat")
                .is_ok_and(|t| t.normalised == "https://docs.example.org/chat")
        );
        for tricky in [
            "/bureau/..%2Fcours/pv.pdf",
            "/bureau/%2e%2e/cours/",
            "/bureau/../cours/",
            "/cours/./x",
            "/a%2Fb",
            "/a%5cb",
            "/bureau/.%2E/cours/",
        ] {
            assert_eq!(Target::forwarded("https", "docs.example.org", tricky), Err(BadTarget::Path), "{tricky}");
        }
        assert!(
            Target::forwarded("https", "docs.example.org", "/cours/?next=/../bureau/").is_ok(),
            "the query is not the path"
        );
        let (a, b) = (
            Target::parse("https://docs.example.org:443/a//b"),
            Target::forwarded("HTTPS", "DOCS.example.org", "/a/b"),
        );
        assert!(a.is_ok_and(|a| b.is_ok_and(|b| a.same_as(&b))));
    }

    #[test]
    fn a_path_in_another_case_passes_only_where_its_lower_case_would() {
        assert!(!allows("https://docs.example.org/BUREAU/pv.pdf", &["adherents"]));
        assert!(!allows("https://docs.example.org/Bureau/pv.pdf", &["adherents"]));
        assert!(allows("https://docs.example.org/BUREAU/pv.pdf", &["adherents", "bureau"]));
        assert!(allows("https://docs.example.org/Cours/1", &["adherents"]));
    }

    #[test]
    fn without_group_rules_every_site_is_open_to_members() {
        let open = AccessRule::new("https://docs.example.org/", &[]).unwrap();
        let policy = AccessPolicy::new(vec![open]);
        let target = normalise("https://forum.example.org/x").unwrap_or_default();
        assert!(policy.allows(&target, &[]));
        assert!(AccessPolicy::default().allows(&target, &[]));
    }

    #[test]
    fn a_name_with_accents_is_also_sent_in_ascii() {
        let passport = Passport {
            identifier: "marie".into(),
            name: "Éloïse d'Aubé-Ça".into(),
            email: "e@x".into(),
            groups: vec![],
            second_factor: false,
        };
        assert_eq!(passport.name_encoded(), "UTF-8''%C3%89lo%C3%AFse%20d%27Aub%C3%A9-%C3%87a");
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(AccessRule::new("docs.example.org/", &[]).is_err());
        assert!(AccessRule::new("https://docs.example.org/", &["a b".to_owned()]).is_err());
    }
}
