//! The cookies guichet sets, read and written by hand (the format is small and a crate
//! would add little): the session, for visitors without one the CSRF nonce, a one-time
//! notice, and the device cookie.

use axum::http::header::COOKIE;
use axum::http::{HeaderMap, HeaderValue};

/// Which cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cookie {
    /// The session token.
    Session,
    /// An anonymous visitor's CSRF token.
    Csrf,
    /// A one-time notice for the next page ("your password was changed").
    Notice,
    /// The marks of the accounts that logged in from this browser (`guichet_core::device`).
    Device,
}

impl Cookie {
    /// The name; `__Host-` prefixed when cookies are `Secure`, which also pins them to
    /// this host and path `/`.
    pub fn name(self, secure: bool) -> &'static str {
        match (self, secure) {
            (Self::Session, true) => "__Host-guichet_session",
            (Self::Session, false) => "guichet_session",
            (Self::Csrf, true) => "__Host-guichet_csrf",
            (Self::Csrf, false) => "guichet_csrf",
            (Self::Notice, true) => "__Host-guichet_notice",
            (Self::Notice, false) => "guichet_notice",
            (Self::Device, true) => "__Host-guichet_device",
            (Self::Device, false) => "guichet_device",
        }
    }

    /// The cookie's value in the request, if present.
    pub fn read(self, headers: &HeaderMap, secure: bool) -> Option<String> {
        let name = self.name(secure);
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_owned())
    }

    /// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, path `/`, a browser-session
    /// cookie (the server decides when it expires).
    pub fn set(self, value: &str, secure: bool) -> HeaderValue {
        let secure_flag = if secure { "; Secure" } else { "" };
        let header = format!("{}={value}; Path=/; HttpOnly; SameSite=Lax{secure_flag}", self.name(secure));
        HeaderValue::from_str(&header).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// A `Set-Cookie` value like [`Cookie::set`], kept by the browser for `max_age`
    /// seconds, across restarts.
    pub fn set_lasting(self, value: &str, secure: bool, max_age: i64) -> HeaderValue {
        let secure_flag = if secure { "; Secure" } else { "" };
        let header =
            format!("{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure_flag}", self.name(secure));
        HeaderValue::from_str(&header).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// A `Set-Cookie` value that removes the cookie.
    pub fn clear(self, secure: bool) -> HeaderValue {
        let secure_flag = if secure { "; Secure" } else { "" };
        let header = format!("{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure_flag}", self.name(secure));
        HeaderValue::from_str(&header).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("a=1; guichet_session=abc; b=2"));
        assert_eq!(Cookie::Session.read(&headers, false), Some("abc".into()));
        assert_eq!(Cookie::Csrf.read(&headers, false), None);
        assert_eq!(Cookie::Session.read(&headers, true), None);
    }

    #[test]
    fn set_cookie_has_the_flags() {
        let value = Cookie::Session.set("abc", true);
        assert_eq!(value, "__Host-guichet_session=abc; Path=/; HttpOnly; SameSite=Lax; Secure");
    }
}
