//! Where a browser may be sent back after login (`/login?next=URL`): a path on guichet,
//! or an `http(s)` URL on one of the hosts the operator listed. Everything else — other
//! hosts, `//host`, `/\host`, `javascript:`, look-alike hosts, credentials in the URL —
//! is refused, so that guichet's login page never becomes an open redirect.

use url::{Host, Url};

/// The longest `next` followed.
const MAX_LEN: usize = 2000;

/// The hosts a `next` URL may point to, besides guichet's own paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReturnHosts(Vec<String>);

/// A host in `GUICHET_RETURN_HOSTS` that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("« {0} » is not a host name")]
pub struct ReturnHostError(pub String);

impl std::fmt::Display for ReturnHosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() { f.write_str("(none)") } else { f.write_str(&self.0.join(", ")) }
    }
}

impl ReturnHosts {
    /// Parses a comma- or space-separated list of host names (guichet's own host may be
    /// among them, for absolute links back to it).
    pub fn parse(list: &str) -> Result<Self, ReturnHostError> {
        list.split([',', ' '])
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                let valid = !item.contains(['/', ':', '@']);
                valid
                    .then(|| Host::parse(&item.to_lowercase()).ok().map(|host| host.to_string()))
                    .flatten()
                    .ok_or_else(|| ReturnHostError(item.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Adds a host (guichet's own, from its public URL).
    pub fn with(mut self, host: &str) -> Self {
        if let Ok(host) = Host::parse(&host.to_lowercase()) {
            self.0.push(host.to_string());
        }
        self
    }

    /// What `raw` may send the browser to, as a `Location` value: `None` when it is not
    /// to be followed.
    pub fn accept(&self, raw: &str) -> Option<String> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > MAX_LEN || !raw.bytes().all(|b| b.is_ascii_graphic()) || raw.contains('\\') {
            return None;
        }
        if raw.starts_with('/') {
            // `//host` is another host to a browser; `/\host` too (refused above).
            return (!raw.starts_with("//")).then(|| raw.to_owned());
        }
        let url = Url::parse(raw).ok()?;
        let allowed = matches!(url.scheme(), "http" | "https")
            && url.username().is_empty()
            && url.password().is_none()
            && url.host_str().is_some_and(|host| self.0.iter().any(|h| h == host));
        allowed.then(|| url.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> ReturnHosts {
        ReturnHosts::parse("docs.example.org, forum.example.org").unwrap_or_default().with("membres.example.org")
    }

    #[test]
    fn paths_and_listed_hosts_are_followed() {
        let hosts = hosts();
        assert_eq!(hosts.accept("/me"), Some("/me".into()));
        assert_eq!(hosts.accept("/documents/2026?x=1#top"), Some("/documents/2026?x=1#top".into()));
        assert_eq!(hosts.accept("https://docs.example.org/a/b?c=d"), Some("https://docs.example.org/a/b?c=d".into()));
        assert_eq!(hosts.accept("http://FORUM.example.org:8443/t/1"), Some("http://forum.example.org:8443/t/1".into()));
        assert_eq!(hosts.accept("https://membres.example.org/me"), Some("https://membres.example.org/me".into()));
    }

    #[test]
    fn everything_else_is_refused() {
        let hosts = hosts();
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example/",
            "https://docs.example.org.evil.example/",
            "https://evil.example/docs.example.org",
            "https://docs.example.org@evil.example/",
            "https://user:pw@docs.example.org/",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,x",
            "ftp://docs.example.org/",
            "docs.example.org/path",
            "/ok\r\nSet-Cookie: x=1",
            "/é",
            "",
        ] {
            assert_eq!(hosts.accept(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bad_host_lists_are_refused() {
        assert!(ReturnHosts::parse("docs.example.org, https://x.example").is_err());
        assert!(ReturnHosts::parse("a@b").is_err());
        assert_eq!(ReturnHosts::parse(""), Ok(ReturnHosts::default()));
    }
}
