//! The cookies guichet sets, read and written by hand (the format is small and a crate
//! would add little): the session, for visitors without one the CSRF nonce, a one-time
//! notice, and the device cookie.
//!
//! Over https every cookie is `Secure` and host-only with the `__Host-` prefix. When
//! `GUICHET_COOKIE_DOMAIN` is set, one more cookie goes with the session: the *pass*
//! (`guichet_core::session::Sessions::pass`), with `Domain=` so that the protected sites
//! on sub-domains see it (forward auth), and the `__Secure-` prefix. The session cookie
//! itself never leaves guichet's host: a site on a sub-domain that sees the pass cannot
//! use guichet's pages as the member, nor plant a session of its own there.

use axum::http::header::COOKIE;
use axum::http::{HeaderMap, HeaderValue};

/// Which cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cookie {
    /// The session token.
    Session,
    /// An anonymous visitor's CSRF nonce.
    Csrf,
    /// A one-time notice for the next page ("your password was changed").
    Notice,
    /// The marks of the accounts that logged in from this browser (`guichet_core::device`).
    Device,
    /// The session's pass for forward auth, shared with sub-domains.
    Pass,
    /// A login whose password was right, waiting for its second factor (five minutes).
    SecondStep,
    /// An upstream login under way: its `state`, then the identity waiting for a
    /// password (minutes).
    Upstream,
}

impl Cookie {
    fn base_name(self) -> &'static str {
        match self {
            Self::Session => "guichet_session",
            Self::Csrf => "guichet_csrf",
            Self::Notice => "guichet_notice",
            Self::Device => "guichet_device",
            Self::Pass => "guichet_pass",
            Self::SecondStep => "guichet_second_step",
            Self::Upstream => "guichet_upstream",
        }
    }
}

/// How cookies are written: `Secure` or not, and the pass's domain if one is shared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cookies {
    /// `Secure` cookies (and the `__Host-` / `__Secure-` prefixes).
    pub secure: bool,
    /// The parent domain the pass cookie is shared with, if any.
    pub domain: Option<String>,
}

impl Cookies {
    fn shared(&self, cookie: Cookie) -> Option<&str> {
        (cookie == Cookie::Pass).then_some(self.domain.as_deref()).flatten()
    }

    /// Whether a pass cookie goes with the session (`GUICHET_COOKIE_DOMAIN` is set).
    pub fn shares_a_pass(&self) -> bool {
        self.domain.is_some()
    }

    /// The cookie's name, prefixed as its attributes require.
    pub fn name(&self, cookie: Cookie) -> String {
        let prefix = match (self.secure, self.shared(cookie).is_some()) {
            (false, _) => "",
            (true, false) => "__Host-",
            (true, true) => "__Secure-",
        };
        format!("{prefix}{}", cookie.base_name())
    }

    /// The cookie's value in the request, if present.
    pub fn read(&self, cookie: Cookie, headers: &HeaderMap) -> Option<String> {
        let name = self.name(cookie);
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_owned())
    }

    fn header(&self, cookie: Cookie, value: &str, extra: &str) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let domain = self.shared(cookie).map(|d| format!("; Domain={d}")).unwrap_or_default();
        let header = format!("{}={value}; Path=/; HttpOnly; SameSite=Lax{extra}{domain}{secure}", self.name(cookie));
        HeaderValue::from_str(&header).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, path `/`, a browser-session
    /// cookie (the server decides when it expires).
    pub fn set(&self, cookie: Cookie, value: &str) -> HeaderValue {
        self.header(cookie, value, "")
    }

    /// The same, kept by the browser for `max_age` seconds, across restarts.
    pub fn set_lasting(&self, cookie: Cookie, value: &str, max_age: i64) -> HeaderValue {
        self.header(cookie, value, &format!("; Max-Age={max_age}"))
    }

    /// A `Set-Cookie` value that removes the cookie.
    pub fn clear(&self, cookie: Cookie) -> HeaderValue {
        self.header(cookie, "", "; Max-Age=0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let plain = Cookies::default();
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("a=1; guichet_session=abc; b=2"));
        assert_eq!(plain.read(Cookie::Session, &headers), Some("abc".into()));
        assert_eq!(plain.read(Cookie::Csrf, &headers), None);
        let secure = Cookies { secure: true, domain: None };
        assert_eq!(secure.read(Cookie::Session, &headers), None);
    }

    #[test]
    fn set_cookie_has_the_flags() {
        let secure = Cookies { secure: true, domain: None };
        let value = secure.set(Cookie::Session, "abc");
        assert_eq!(value, "__Host-guichet_session=abc; Path=/; HttpOnly; SameSite=Lax; Secure");
    }

    #[test]
    fn only_the_pass_is_shared_with_its_domain_and_the_secure_prefix() {
        let shared = Cookies { secure: true, domain: Some("example.org".into()) };
        assert_eq!(
            shared.set(Cookie::Pass, "abc"),
            "__Secure-guichet_pass=abc; Path=/; HttpOnly; SameSite=Lax; Domain=example.org; Secure"
        );
        assert_eq!(shared.name(Cookie::Session), "__Host-guichet_session", "the session stays on guichet's host");
        assert_eq!(shared.name(Cookie::Csrf), "__Host-guichet_csrf");
    }
}
