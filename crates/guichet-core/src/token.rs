//! Random tokens (session ids, CSRF tokens): the plain value goes to the browser once,
//! only its SHA-256 is stored, and lookups compare hashes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

/// Fills `N` bytes from the operating system's CSPRNG.
///
/// # Panics
/// When the operating system cannot provide randomness, which leaves no safe way on.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    #[expect(clippy::expect_used, reason = "without an OS random source no token is safe")]
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// A secret token as handed to its owner: 256 random bits, base64url.
/// Its `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainToken(String);

impl PlainToken {
    /// A fresh random token.
    pub fn generate() -> Self {
        Self(URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
    }

    /// A token derived from a MAC (as unguessable as a random one to whoever lacks the
    /// key), in the same form as a random one.
    pub fn from_mac(mac: &[u8; 32]) -> Self {
        Self(URL_SAFE_NO_PAD.encode(mac))
    }

    /// Takes a token presented by a client. Returns `None` when it cannot be one of ours
    /// (wrong length or alphabet), so that garbage never reaches the database.
    pub fn from_presented(value: &str) -> Option<Self> {
        let ok = value.len() == 43 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(value.to_owned()))
    }

    /// The value to send to the client, once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored and compared.
    pub fn hash(&self) -> TokenHash {
        TokenHash(hex(&Sha256::digest(self.0.as_bytes())))
    }
}

impl std::fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlainToken(…)")
    }
}

/// The SHA-256 of a token, hex-encoded: safe to store and to log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    /// Rebuilds a hash read back from storage.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_accepted_back_and_differ() {
        let a = PlainToken::generate();
        let b = PlainToken::generate();
        assert_ne!(a, b);
        assert_eq!(PlainToken::from_presented(a.expose()), Some(a.clone()));
        assert_eq!(a.hash(), PlainToken::from_presented(a.expose()).map(|t| t.hash()).unwrap_or_else(|| b.hash()));
    }

    #[test]
    fn garbage_is_not_a_token() {
        assert!(PlainToken::from_presented("").is_none());
        assert!(PlainToken::from_presented("' OR 1=1 --").is_none());
        assert!(PlainToken::from_presented(&"a".repeat(44)).is_none());
    }

    #[test]
    fn debug_hides_the_token() {
        let t = PlainToken::generate();
        assert!(!format!("{t:?}").contains(t.expose()));
    }
}
