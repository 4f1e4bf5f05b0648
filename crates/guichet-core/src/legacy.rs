//! Password hashes brought over from the association's old site by `member import`, so
//! that members log in the day after the move with the password they already have.
//!
//! Each format is checked once, at the first successful login, and replaced by Argon2id
//! in the same transaction (see [`crate::hashing`]): nothing of the old hash remains. A
//! check against a legacy hash always costs one Argon2id on top (the rehash, or the same
//! work thrown away), so that a cheap format is never a fast oracle; the lock and the
//! throttles apply as to any login. Imported costs are bounded, so that a file cannot
//! plant a hash that takes minutes to check.
//!
//! Accepted, by their prefix: Argon2 PHC strings of any parameters; bcrypt `$2a$`, `$2b$`,
//! `$2y$` (Joomla 3+, Laravel); WordPress 6.8+ `$wp$2y$…`; phpass portable `$P$` / `$H$`
//! (WordPress before 6.8, phpBB); Drupal 7 `$S$`; Django `pbkdf2_sha256$…`; Joomla 1.5 to
//! 2.5 `md5hex:salt`. phpass and Drupal's `$S$` are written here (they are short); the
//! rest uses RustCrypto and the `bcrypt` crate.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use md5::Md5;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq as _;

use crate::password::PasswordHash;

/// Why an imported hash was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegacyError {
    /// No known format starts like this.
    #[error(
        "unknown password hash format (accepted: Argon2, bcrypt $2a$/$2b$/$2y$, WordPress $wp$ and $P$, phpBB $H$, Drupal 7 $S$, Django pbkdf2_sha256$, Joomla md5:salt)"
    )]
    Unknown,
    /// A known prefix, but the rest is malformed.
    #[error("malformed {0} password hash")]
    Malformed(&'static str),
    /// Its cost is beyond what guichet checks at a login.
    #[error("{0} password hash too costly to check (at most {1})")]
    TooCostly(&'static str, &'static str),
}

/// The phpass alphabet, also Drupal's.
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Highest accepted costs: above the defaults these sites ever used, below what would
/// let one login stall a hashing thread.
const PHPASS_MAX_LOG2: u32 = 18;
const DRUPAL_MAX_LOG2: u32 = 20;
const BCRYPT_MAX_COST: u32 = 14;
const PBKDF2_MAX_ITERATIONS: u32 = 2_000_000;
const ARGON2_MAX_MEMORY_KIB: u32 = 262_144;
const ARGON2_MAX_ITERATIONS: u32 = 16;

/// A legacy hash, parsed.
#[derive(Clone, PartialEq, Eq)]
pub enum LegacyHash {
    /// `$2a$`, `$2b$`, `$2y$`.
    Bcrypt(String),
    /// WordPress 6.8+: bcrypt over the base64 of HMAC-SHA384 keyed `wp-sha384`; the
    /// bcrypt part (`$2y$…`).
    WordPress(String),
    /// phpass portable (`$P$`, `$H$`): iterated MD5.
    Phpass {
        /// log2 of the iterations.
        log2: u32,
        /// The 8-character salt.
        salt: String,
        /// The encoded hash (22 characters).
        hash: String,
    },
    /// Drupal 7 (`$S$`): iterated SHA-512.
    Drupal7 {
        /// log2 of the iterations.
        log2: u32,
        /// The 8-character salt.
        salt: String,
        /// The encoded hash (43 characters).
        hash: String,
    },
    /// Django `pbkdf2_sha256$iterations$salt$base64`.
    Django {
        /// Iterations.
        iterations: u32,
        /// Salt as written.
        salt: String,
        /// The derived key.
        hash: Vec<u8>,
    },
    /// Joomla 1.5 to 2.5: `md5(password + salt)` in hex, `:`, the salt.
    JoomlaMd5 {
        /// The digest.
        hash: [u8; 16],
        /// The salt.
        salt: String,
    },
}

impl std::fmt::Debug for LegacyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LegacyHash({})", self.name())
    }
}

impl LegacyHash {
    /// Whether a check costs much more than one of guichet's own Argon2id hashes (tens of
    /// milliseconds): bcrypt above cost 12, PBKDF2 above 1,200,000 iterations, iterated
    /// SHA-512 above 2^18 rounds.
    pub fn is_costly(&self) -> bool {
        match self {
            Self::Bcrypt(hash) | Self::WordPress(hash) => hash.get(4..6).and_then(|c| c.parse::<u32>().ok()) > Some(12),
            Self::Django { iterations, .. } => *iterations > 1_200_000,
            Self::Drupal7 { log2, .. } => *log2 > 18,
            Self::Phpass { .. } | Self::JoomlaMd5 { .. } => false,
        }
    }

    /// Parses a stored legacy hash; `Ok(None)` for an Argon2 PHC string (not legacy).
    pub fn parse(stored: &str) -> Result<Option<Self>, LegacyError> {
        let stored = stored.trim();
        if stored.starts_with("$argon2") {
            return Ok(None);
        }
        let parsed = if let Some(inner) = stored.strip_prefix("$wp") {
            Self::WordPress(bcrypt_part(inner, "WordPress")?.to_owned())
        } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| stored.starts_with(p)) {
            Self::Bcrypt(bcrypt_part(stored, "bcrypt")?.to_owned())
        } else if stored.starts_with("$P$") || stored.starts_with("$H$") {
            let (log2, salt, hash) = crypt_parts(stored, "phpass", 22, PHPASS_MAX_LOG2)?;
            Self::Phpass { log2, salt, hash }
        } else if stored.starts_with("$S$") {
            let (log2, salt, hash) = crypt_parts(stored, "Drupal 7", 43, DRUPAL_MAX_LOG2)?;
            Self::Drupal7 { log2, salt, hash }
        } else if let Some(rest) = stored.strip_prefix("pbkdf2_sha256$") {
            django(rest)?
        } else if let Some((hex, salt)) = stored.split_once(':') {
            let mut hash = [0u8; 16];
            let digits = hex.as_bytes();
            if digits.len() != 32 || salt.is_empty() || salt.len() > 64 || salt.contains(':') {
                return Err(LegacyError::Malformed("Joomla"));
            }
            for (i, byte) in hash.iter_mut().enumerate() {
                let pair =
                    std::str::from_utf8(&digits[2 * i..2 * i + 2]).map_err(|_| LegacyError::Malformed("Joomla"))?;
                *byte = u8::from_str_radix(pair, 16).map_err(|_| LegacyError::Malformed("Joomla"))?;
            }
            Self::JoomlaMd5 { hash, salt: salt.to_owned() }
        } else {
            return Err(LegacyError::Unknown);
        };
        Ok(Some(parsed))
    }

    /// The format's name, for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Bcrypt(_) => "bcrypt",
            Self::WordPress(_) => "WordPress",
            Self::Phpass { .. } => "phpass",
            Self::Drupal7 { .. } => "Drupal 7",
            Self::Django { .. } => "Django",
            Self::JoomlaMd5 { .. } => "Joomla",
        }
    }

    /// Whether `password` is the one hashed. Blocks for the format's cost: call it on a
    /// hashing thread.
    pub fn verify(&self, password: &str) -> bool {
        match self {
            Self::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Self::WordPress(hash) => {
                let Ok(mut mac) = Hmac::<Sha384>::new_from_slice(b"wp-sha384") else { return false };
                mac.update(password.as_bytes());
                let prehashed = STANDARD.encode(mac.finalize().into_bytes());
                bcrypt::verify(prehashed, hash).unwrap_or(false)
            }
            Self::Phpass { log2, salt, hash } => {
                let digest = stretch::<Md5>(salt, password, *log2);
                let encoded = encode64(&digest);
                bool::from(encoded.as_bytes().ct_eq(hash.as_bytes()))
            }
            Self::Drupal7 { log2, salt, hash } => {
                let digest = stretch::<Sha512>(salt, password, *log2);
                let encoded = encode64(&digest);
                let encoded = encoded.get(..hash.len()).unwrap_or_default();
                bool::from(encoded.as_bytes().ct_eq(hash.as_bytes()))
            }
            Self::Django { iterations, salt, hash } => {
                let mut derived = vec![0u8; hash.len()];
                pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt.as_bytes(), *iterations, &mut derived);
                bool::from(derived.ct_eq(hash))
            }
            Self::JoomlaMd5 { hash, salt } => {
                let digest = Md5::new().chain_update(password.as_bytes()).chain_update(salt.as_bytes()).finalize();
                bool::from(digest.as_slice().ct_eq(hash))
            }
        }
    }
}

/// Checks a hash from an import file: an Argon2 PHC string (of bounded cost) or a legacy
/// format guichet can check. Returns it as it will be stored.
pub fn accept_imported(raw: &str) -> Result<PasswordHash, LegacyError> {
    let raw = raw.trim();
    if LegacyHash::parse(raw)?.is_none() {
        let parsed = argon2::password_hash::PasswordHash::new(raw).map_err(|_| LegacyError::Malformed("Argon2"))?;
        let params = argon2::Params::try_from(&parsed).map_err(|_| LegacyError::Malformed("Argon2"))?;
        if argon2::Algorithm::new(parsed.algorithm.as_str()).is_err() || parsed.hash.is_none() {
            return Err(LegacyError::Malformed("Argon2"));
        }
        if params.m_cost() > ARGON2_MAX_MEMORY_KIB || params.t_cost() > ARGON2_MAX_ITERATIONS {
            return Err(LegacyError::TooCostly("Argon2", "m=262144, t=16"));
        }
    }
    Ok(PasswordHash::from_phc(raw.to_owned()))
}

/// The `$2y$NN$…` part of a bcrypt hash, checked.
fn bcrypt_part<'a>(hash: &'a str, format: &'static str) -> Result<&'a str, LegacyError> {
    let ok_prefix = ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p));
    let cost: Option<u32> = hash.get(4..6).and_then(|c| c.parse().ok());
    let rest_ok = hash.len() == 60
        && hash.as_bytes().get(6) == Some(&b'$')
        && hash[7..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    match cost {
        Some(cost) if ok_prefix && rest_ok && (4..=31).contains(&cost) => {
            if cost > BCRYPT_MAX_COST {
                Err(LegacyError::TooCostly(format, "cost 14"))
            } else {
                Ok(hash)
            }
        }
        _ => Err(LegacyError::Malformed(format)),
    }
}

/// phpass-style `$X$` + cost character + 8-character salt + `hash_len` characters.
fn crypt_parts(
    stored: &str,
    format: &'static str,
    hash_len: usize,
    max_log2: u32,
) -> Result<(u32, String, String), LegacyError> {
    let bytes = stored.as_bytes();
    if bytes.len() != 12 + hash_len || !bytes.iter().skip(3).all(|b| ITOA64.contains(b)) {
        return Err(LegacyError::Malformed(format));
    }
    let log2 = ITOA64.iter().position(|c| *c == bytes[3]).and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
    if log2 < 7 {
        return Err(LegacyError::Malformed(format));
    }
    if log2 > max_log2 {
        return Err(LegacyError::TooCostly(
            format,
            if max_log2 == PHPASS_MAX_LOG2 { "2^18 rounds" } else { "2^20 rounds" },
        ));
    }
    Ok((log2, stored[4..12].to_owned(), stored[12..].to_owned()))
}

/// Django's `iterations$salt$base64`.
fn django(rest: &str) -> Result<LegacyHash, LegacyError> {
    let malformed = || LegacyError::Malformed("Django");
    let mut parts = rest.splitn(3, '$');
    let iterations: u32 = parts.next().and_then(|i| i.parse().ok()).ok_or_else(malformed)?;
    let salt = parts.next().filter(|s| !s.is_empty() && !s.contains('$')).ok_or_else(malformed)?.to_owned();
    let hash = parts.next().and_then(|h| STANDARD.decode(h).ok()).filter(|h| h.len() == 32).ok_or_else(malformed)?;
    if iterations == 0 {
        return Err(malformed());
    }
    if iterations > PBKDF2_MAX_ITERATIONS {
        return Err(LegacyError::TooCostly("Django", "2,000,000 iterations"));
    }
    Ok(LegacyHash::Django { iterations, salt, hash })
}

/// phpass's stretching: `h = H(salt . password)`, then `2^log2` times `h = H(h . password)`.
fn stretch<D: sha2::Digest>(salt: &str, password: &str, log2: u32) -> Vec<u8> {
    let mut hash = D::new().chain_update(salt.as_bytes()).chain_update(password.as_bytes()).finalize().to_vec();
    for _ in 0..(1_u64 << log2) {
        hash = D::new().chain_update(&hash).chain_update(password.as_bytes()).finalize().to_vec();
    }
    hash
}

/// phpass's own base64: little-endian groups of three bytes, `./0-9A-Za-z`.
fn encode64(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    let sextet = |v: u32| char::from(ITOA64[usize::try_from(v & 0x3f).unwrap_or(0)]);
    for chunk in input.chunks(3) {
        let value = chunk.iter().enumerate().fold(0_u32, |v, (i, b)| v | (u32::from(*b) << (8 * i)));
        out.push(sextet(value));
        out.push(sextet(value >> 6));
        if chunk.len() > 1 {
            out.push(sextet(value >> 12));
        }
        if chunk.len() > 2 {
            out.push(sextet(value >> 18));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifies(stored: &str, right: &str, wrong: &str) {
        let hash =
            LegacyHash::parse(stored).unwrap_or_else(|e| panic!("{stored}: {e}")).unwrap_or_else(|| panic!("legacy"));
        assert!(hash.verify(right), "{} should verify {stored}", right);
        assert!(!hash.verify(wrong), "{wrong} should not verify {stored}");
    }

    // Vectors from other implementations' own tests, not computed here: phpass's test.php
    // and passlib (phpass), Drupal 7 password.inc ports (Drupal), Django's test_hashers,
    // Openwall's crypt_blowfish (bcrypt), a WordPress 6.8 hasher's test, and AuthMe's
    // Joomla test.

    #[test]
    fn phpass_portable_hashes_verify() {
        verifies("$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0", "test12345", "test12346");
        verifies("$H$9aaaaaSXBjgypwqm.JsMssPLiS8YQ00", "test1", "test2");
        verifies("$P$912345678LIjjb6PhecupozNBmDndU0", "thisisalongertestPW", "thisisalongertestPw");
    }

    #[test]
    fn drupal_7_hashes_verify() {
        verifies("$S$DI7p94K2RG7Nq2OJp2/T55TfjT/K8UYdDVSUELOgCNbNoHU2sdtq", "password", "wrongpass");
        verifies(
            "$S$5FIcboyzv1ZD/OZDb4w/4HSlnsPlwbr/PWLWrHPWrJp8eXOQQaWJ",
            "DifficultPassword123",
            "difficultPassword123",
        );
    }

    #[test]
    fn django_pbkdf2_hashes_verify() {
        verifies("pbkdf2_sha256$10000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=", "lètmein", "lètmeinz");
    }

    #[test]
    fn bcrypt_hashes_verify() {
        verifies("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U", "U*U*");
        verifies("$2a$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a", "U*U*U", "U*U");
    }

    #[test]
    fn wordpress_6_8_hashes_verify() {
        verifies("$wp$2y$10$y6/UfA/WhvVLZK6RxBSJE./L6YpJN8ChGg15a0Pqry/bTGsDuMR1q", "Na101918!", "wrong_password");
    }

    #[test]
    fn joomla_salted_md5_verifies() {
        // AuthMe's Joomla vectors.
        verifies("b18c99813cd96df3a706652f47177490:377c4aaf92c5ed57711306909e6065ca", "password", "Password");
        verifies("c5af71da91a8841d95937ba24a5b7fdb:07068e5850930b794526a614438cafc7", "PassWord1", "password1");
        verifies("dce946c6864d2223caeed9d80f356bcc:0c55fa3eca8c42557a989700ac1c4b8e", "âË_3(íù*", "aE_3(iu*");
    }

    #[test]
    fn unknown_malformed_and_too_costly_hashes_are_refused() {
        for (raw, expected) in [
            ("5f4dcc3b5aa765d61d8327deb882cf99", LegacyError::Unknown),
            ("plaintext", LegacyError::Unknown),
            ("$1$saltsalt$abcdefghijklmnopqrstuv", LegacyError::Unknown),
            ("$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r", LegacyError::Malformed("phpass")),
            ("$2y$10$short", LegacyError::Malformed("bcrypt")),
            ("pbkdf2_sha256$x$salt$abc", LegacyError::Malformed("Django")),
            ("zz:salt", LegacyError::Malformed("Joomla")),
            (
                "$2y$20$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
                LegacyError::TooCostly("bcrypt", "cost 14"),
            ),
            (
                "$S$UI7p94K2RG7Nq2OJp2/T55TfjT/K8UYdDVSUELOgCNbNoHU2sdtq",
                LegacyError::TooCostly("Drupal 7", "2^20 rounds"),
            ),
        ] {
            assert_eq!(accept_imported(raw).err(), Some(expected), "{raw}");
        }
        let argon = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(accept_imported(argon).is_ok());
        let costly = "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert_eq!(accept_imported(costly).err(), Some(LegacyError::TooCostly("Argon2", "m=262144, t=16")));
    }

    #[test]
    fn debug_names_the_format_only() {
        let hash = LegacyHash::parse("$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0").ok().flatten();
        assert_eq!(format!("{hash:?}"), "Some(LegacyHash(phpass))");
    }
}
