//! Passwords: the policy a new password must meet (NIST SP 800-63B: length, no
//! composition rules, never truncated) and the stored hash.

use secrecy::{ExposeSecret as _, SecretString};

/// An Argon2id hash in PHC string form (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
/// Not a secret in itself, but it is never logged either.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string read from storage or produced by the hasher.
    pub fn from_phc(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string.
    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(…)")
    }
}

/// What a new password must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode scalar values).
    pub min_length: usize,
}

impl PasswordPolicy {
    /// Most characters accepted. Long enough for any passphrase, short enough that
    /// nobody can make the server hash megabytes.
    pub const MAX_LENGTH: usize = 256;
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self { min_length: 12 }
    }
}

/// Why a new password was refused; the message tells the person, in French.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Shorter than the minimum.
    #[error("{}", crate::catalogue::password_error_too_short(.0))]
    TooShort(usize),
    /// Longer than the maximum.
    #[error("{}", crate::catalogue::password_error_too_long(.0))]
    TooLong(usize),
    /// Contains the identifier or the email address.
    #[error("{}", crate::catalogue::PASSWORD_ERROR_CONTAINS_PERSONAL_DATA)]
    ContainsPersonalData,
    /// One of the most common passwords.
    #[error("{}", crate::catalogue::PASSWORD_ERROR_COMMON)]
    Common,
    /// The two entries differ.
    #[error("{}", crate::catalogue::PASSWORD_ERROR_MISMATCH)]
    Mismatch,
}

/// The form a password is hashed and checked in (NFKC, as NIST SP 800-63B advises): the
/// same accented password typed on two systems that compose accents differently is
/// the same password.
pub fn normalised(raw: &SecretString) -> SecretString {
    use unicode_normalization::UnicodeNormalization as _;
    SecretString::from(raw.expose_secret().nfkc().collect::<String>())
}

/// A password that met the policy. Its `Debug` never prints it.
#[derive(Debug)]
pub struct NewPassword(SecretString);

impl NewPassword {
    /// Checks a chosen password against the policy and against the account's own data
    /// (`personal`: identifier, email…; parts shorter than 4 characters are ignored).
    pub fn parse(raw: SecretString, policy: PasswordPolicy, personal: &[&str]) -> Result<Self, PasswordError> {
        let raw = normalised(&raw);
        let value = raw.expose_secret();
        let length = value.chars().count();
        if length < policy.min_length {
            return Err(PasswordError::TooShort(policy.min_length));
        }
        if length > PasswordPolicy::MAX_LENGTH {
            return Err(PasswordError::TooLong(PasswordPolicy::MAX_LENGTH));
        }
        let lowered = value.to_lowercase();
        let mentions = |part: &str| {
            let part = part.trim().to_lowercase();
            part.chars().count() >= 4 && lowered.contains(&part)
        };
        let local_part = |p: &str| p.split_once('@').map(|(local, _)| local.to_owned());
        if personal.iter().any(|p| mentions(p) || local_part(p).is_some_and(|l| mentions(&l))) {
            return Err(PasswordError::ContainsPersonalData);
        }
        if crate::password::common::is_common(&lowered) {
            return Err(PasswordError::Common);
        }
        Ok(Self(raw))
    }

    /// Checks that the confirmation matches, then the policy.
    pub fn parse_confirmed(
        raw: SecretString,
        confirmation: &SecretString,
        policy: PasswordPolicy,
        personal: &[&str],
    ) -> Result<Self, PasswordError> {
        if raw.expose_secret() != confirmation.expose_secret() {
            return Err(PasswordError::Mismatch);
        }
        Self::parse(raw, policy, personal)
    }

    /// The secret, to hand to the hasher.
    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

pub mod common {
    //! The list of common passwords shipped in the binary.

    use std::sync::LazyLock;

    /// Sorted by bytes, one per line (see `data/README.md`).
    static LIST: LazyLock<Vec<&'static str>> =
        LazyLock::new(|| include_str!("../data/common-passwords.txt").lines().collect());

    /// Whether the (lower-cased) password is on the list.
    pub fn is_common(lowered: &str) -> bool {
        LIST.binary_search(&lowered).is_ok()
    }

    /// How many passwords the list holds.
    pub fn len() -> usize {
        LIST.len()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_list_is_large_and_sorted() {
            assert!(super::len() >= 10_000);
            assert!(super::LIST.windows(2).all(|w| w[0] < w[1]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn short_and_overlong_passwords_are_refused() {
        let policy = PasswordPolicy { min_length: 12 };
        assert_eq!(NewPassword::parse(secret("court"), policy, &[]).err(), Some(PasswordError::TooShort(12)));
        assert_eq!(NewPassword::parse(secret(&"x".repeat(257)), policy, &[]).err(), Some(PasswordError::TooLong(256)));
        assert!(NewPassword::parse(secret(&"pâte à crêpe ".repeat(19)), policy, &[]).is_ok());
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let policy = PasswordPolicy { min_length: 12 };
        assert!(NewPassword::parse(secret("éééééééééééé"), policy, &[]).is_ok());
    }

    #[test]
    fn composed_and_decomposed_accents_are_one_password() {
        let composed = secret("pâte à crêpe du matin");
        let decomposed = secret("pa\u{302}te a\u{300} cre\u{302}pe du matin");
        let policy = PasswordPolicy::default();
        let a = NewPassword::parse(composed, policy, &[]).map(|p| p.into_secret().expose_secret().to_owned());
        let b = NewPassword::parse(decomposed, policy, &[]).map(|p| p.into_secret().expose_secret().to_owned());
        assert_eq!(a, b);
    }

    #[test]
    fn personal_data_is_refused() {
        let policy = PasswordPolicy { min_length: 8 };
        let personal = ["marie.durand", "marie.d@chu-lyon.fr"];
        assert_eq!(
            NewPassword::parse(secret("xxMarie.Durand!!"), policy, &personal).err(),
            Some(PasswordError::ContainsPersonalData)
        );
        assert_eq!(
            NewPassword::parse(secret("marie.d is here"), policy, &personal).err(),
            Some(PasswordError::ContainsPersonalData)
        );
        assert!(NewPassword::parse(secret("cheval agrafe pile"), policy, &personal).is_ok());
    }

    #[test]
    fn confirmation_must_match() {
        let policy = PasswordPolicy::default();
        let err =
            NewPassword::parse_confirmed(secret("cheval agrafe pile"), &secret("cheval agrafe pilE"), policy, &[]);
        assert_eq!(err.err(), Some(PasswordError::Mismatch));
    }

    #[test]
    fn common_passwords_are_refused() {
        let policy = PasswordPolicy { min_length: 8 };
        assert_eq!(NewPassword::parse(secret("Password123"), policy, &[]).err(), Some(PasswordError::Common));
        assert_eq!(NewPassword::parse(secret("azertyuiop"), policy, &[]).err(), Some(PasswordError::Common));
    }
}
