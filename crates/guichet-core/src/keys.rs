//! The server's secret key: 256 random bits made on the first start and kept in the
//! database, so that every instance holds the same one. What guichet signs (device
//! cookies) and what it derives (CSRF tokens) uses HMAC-SHA256 under this key, each use
//! with a purpose label of its own so that a value made for one can never pass for another.

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// What a MAC is for: mixed into every MAC so that uses never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The form token of a signed-in session, derived from the session's token.
    SessionCsrf,
    /// The form token of a visitor without a session, derived from their anonymous cookie.
    AnonymousCsrf,
    /// A device cookie's signature.
    DeviceCookie,
    /// An account's OpenID Connect subject (`sub`): stable, opaque, never reused.
    OidcSubject,
    /// A session's OpenID Connect `sid`, derived from its token's hash.
    OidcSession,
    /// A session's name in its member's list of sessions.
    SessionHandle,
    /// A session's pass for forward auth on sub-domains (the shared cookie).
    GatePass,
    /// A call slot's link: derived, so that the desk can show it again at any time.
    SlotLink,
    /// The key that seals TOTP secrets in storage (ChaCha20-Poly1305).
    TotpSeal,
    /// The signature of a login waiting for its second step (its cookie).
    SecondStep,
    /// An account's WebAuthn user handle.
    WebauthnUser,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::SessionCsrf => b"guichet/csrf/session/v1",
            Self::AnonymousCsrf => b"guichet/csrf/anonymous/v1",
            Self::DeviceCookie => b"guichet/device-cookie/v1",
            Self::OidcSubject => b"guichet/oidc/subject/v1",
            Self::OidcSession => b"guichet/oidc/sid/v1",
            Self::SessionHandle => b"guichet/session/handle/v1",
            Self::GatePass => b"guichet/gate-pass/v1",
            Self::SlotLink => b"guichet/desk/slot-link/v1",
            Self::TotpSeal => b"guichet/totp/seal/v1",
            Self::SecondStep => b"guichet/login/second-step/v1",
            Self::WebauthnUser => b"guichet/webauthn/user-handle/v1",
        }
    }
}

/// The server's key. `Debug` does not print it.
#[derive(Clone)]
pub struct ServerKey([u8; 32]);

impl ServerKey {
    /// The length of a key, in bytes.
    pub const LEN: usize = 32;

    /// A fresh random key.
    pub fn generate() -> Self {
        Self(crate::token::random_bytes::<32>())
    }

    /// Rebuilds a key from its bytes; `None` unless there are exactly [`Self::LEN`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The key's bytes, for storage only.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn hmac(&self, purpose: Purpose, data: &[u8]) -> Hmac<Sha256> {
        #[expect(clippy::expect_used, reason = "HMAC takes a key of any length")]
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(purpose.label());
        mac.update(&[0]);
        mac.update(data);
        mac
    }

    /// HMAC-SHA256 of `data` for `purpose`.
    pub fn mac(&self, purpose: Purpose, data: &[u8]) -> [u8; 32] {
        self.hmac(purpose, data).finalize().into_bytes().into()
    }

    /// Whether `tag` is the MAC of `data` for `purpose`, or its first bytes (at least 16);
    /// compared in constant time.
    pub fn verify(&self, purpose: Purpose, data: &[u8], tag: &[u8]) -> bool {
        tag.len() >= 16 && self.hmac(purpose, data).verify_truncated_left(tag).is_ok()
    }
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mac_verifies_for_its_purpose_and_data_only() {
        let key = ServerKey::generate();
        let tag = key.mac(Purpose::DeviceCookie, b"42.abc");
        assert!(key.verify(Purpose::DeviceCookie, b"42.abc", &tag));
        assert!(key.verify(Purpose::DeviceCookie, b"42.abc", &tag[..16]));
        assert!(!key.verify(Purpose::DeviceCookie, b"42.abc", &tag[..15]), "too short to trust");
        assert!(!key.verify(Purpose::DeviceCookie, b"43.abc", &tag));
        assert!(!key.verify(Purpose::SessionCsrf, b"42.abc", &tag));
        assert!(!ServerKey::generate().verify(Purpose::DeviceCookie, b"42.abc", &tag));
    }

    #[test]
    fn debug_hides_the_key() {
        let key = ServerKey::from_bytes(&[7; 32]).unwrap_or_else(ServerKey::generate);
        assert_eq!(format!("{key:?}"), "ServerKey(…)");
        assert!(ServerKey::from_bytes(&[1; 31]).is_none());
    }
}
