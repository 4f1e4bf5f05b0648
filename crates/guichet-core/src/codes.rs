//! One-time codes for choosing a password: "forgot password" and invitations.
//!
//! A code is 120 random bits written in Crockford's base32 (no I, L, O or U to confuse),
//! shown in six groups of four. Only its SHA-256 is stored. Opening the emailed link
//! never uses it up; only setting the password does, once, atomically.

use sha2::{Digest as _, Sha256};

use crate::account::AccountId;
use crate::token::{TokenHash, hex, random_bytes};
use jiff::Timestamp;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const LENGTH: usize = 24;

/// A recovery or invitation code, as mailed. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl RecoveryCode {
    /// A fresh code from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let bytes = random_bytes::<15>();
        let mut bits: u128 = 0;
        for byte in bytes {
            bits = (bits << 8) | u128::from(byte);
        }
        let code = (0..LENGTH)
            .rev()
            .map(|i| char::from(ALPHABET[usize::try_from((bits >> (i * 5)) & 0x1f).unwrap_or_default()]))
            .collect();
        Self(code)
    }

    /// Reads what a member typed or pasted: case, spaces, dashes and dots do not
    /// matter, and `O`, `I`, `L` are read as `0`, `1`, `1`. `None` when it cannot be a code.
    pub fn parse(typed: &str) -> Option<Self> {
        canonical(typed, LENGTH).map(Self)
    }

    /// Six groups of four, for reading and typing: `ABCD-EFGH-…`.
    pub fn grouped(&self) -> String {
        grouped(&self.0)
    }

    /// What is stored and compared.
    pub fn hash(&self) -> TokenHash {
        TokenHash::from_stored(hex(&Sha256::digest(self.0.as_bytes())))
    }
}

/// The canonical form of a typed code of `length` characters (see [`RecoveryCode::parse`]).
fn canonical(typed: &str, length: usize) -> Option<String> {
    let mut code = String::with_capacity(length);
    for c in typed.chars() {
        let c = match c.to_ascii_uppercase() {
            ' ' | '-' | '.' | '\t' | '\n' | '\r' | '\u{a0}' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
            _ => return None,
        };
        code.push(c);
        if code.len() > length {
            return None;
        }
    }
    (code.len() == length).then_some(code)
}

/// Groups of four joined by dashes.
fn grouped(code: &str) -> String {
    code.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
}

/// A staff-issued temporary password: 100 random bits in twenty Crockford base32
/// characters (no I, L, O or U), shown in five groups of four, and typed like a code
/// (case, spaces and dashes do not matter; `O`, `I`, `L` read as `0`, `1`, `1`). It sits
/// beside the member's password, which keeps working, until the member chooses a new
/// one. Its entropy makes a slow hash needless: only its SHA-256 is stored, and checking
/// it costs nothing an attacker could use. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct TemporaryPassword(String);

impl TemporaryPassword {
    const LENGTH: usize = 20;

    /// A fresh one from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self(RecoveryCode::generate().0[..Self::LENGTH].to_owned())
    }

    /// Reads what was typed in the password field; `None` when it cannot be one.
    pub fn parse(typed: &str) -> Option<Self> {
        canonical(typed, Self::LENGTH).map(Self)
    }

    /// Five groups of four: `ABCD-EFGH-JKMN-PQRS-TVWX`.
    pub fn grouped(&self) -> String {
        grouped(&self.0)
    }

    /// What is stored and compared.
    pub fn hash(&self) -> TokenHash {
        TokenHash::from_stored(hex(&Sha256::digest(self.0.as_bytes())))
    }

    /// Whether it is the one stored as `stored`, in constant time.
    pub fn matches(&self, stored: &TokenHash) -> bool {
        use subtle::ConstantTimeEq as _;
        self.hash().as_str().as_bytes().ct_eq(stored.as_str().as_bytes()).into()
    }

    /// How to read it out on the phone, group by group, in French: « A comme Anatole,
    /// sept, … ».
    pub fn spelled_fr(&self) -> Vec<String> {
        self.0
            .as_bytes()
            .chunks(4)
            .map(|group| group.iter().map(|&c| crate::catalogue::spelled(char::from(c))).collect::<Vec<_>>().join(", "))
            .collect()
    }
}

/// A backup code for the second factor (« code de récupération »): 120 random bits in
/// 24 Crockford base32 characters, shown in six groups of four, typed like a code. Ten
/// are made at once and shown once; each works once, in place of a TOTP code. Only its
/// SHA-256 is stored: at 120 bits a slow hash is needless (ASVS 6.5.2 asks one below
/// 112). `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct BackupCode(String);

impl BackupCode {
    const LENGTH: usize = LENGTH;

    /// A fresh one from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self(RecoveryCode::generate().0)
    }

    /// Reads what was typed; `None` when it cannot be one.
    pub fn parse(typed: &str) -> Option<Self> {
        canonical(typed, Self::LENGTH).map(Self)
    }

    /// Six groups of four: `ABCD-EFGH-…`.
    pub fn grouped(&self) -> String {
        grouped(&self.0)
    }

    /// What is stored and compared.
    pub fn hash(&self) -> TokenHash {
        TokenHash::from_stored(hex(&Sha256::digest(self.0.as_bytes())))
    }
}

impl std::fmt::Debug for BackupCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupCode(…)")
    }
}

impl std::fmt::Debug for TemporaryPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TemporaryPassword(…)")
    }
}

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode(…)")
    }
}

/// What a code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    /// "Forgot password".
    Reset,
    /// An invitation to set a first password.
    Invitation,
}

impl CodePurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reset => "reset",
            Self::Invitation => "invitation",
        }
    }

    /// Parses a stored name.
    pub fn parse(stored: &str) -> Option<Self> {
        match stored {
            "reset" => Some(Self::Reset),
            "invitation" => Some(Self::Invitation),
            _ => None,
        }
    }
}

/// A stored code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    /// Whose.
    pub account_id: AccountId,
    /// What for.
    pub purpose: CodePurpose,
    /// When it was made (sent).
    pub created_at: Timestamp,
    /// No longer valid from this instant.
    pub expires_at: Timestamp,
    /// When it was used, if it was, or voided.
    pub used_at: Option<Timestamp>,
    /// When it was voided rather than used: another code served, or the account's
    /// address changed.
    pub voided_at: Option<Timestamp>,
}

/// Why a code cannot be used; each says so in French.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Unknown: mistyped, or never issued.
    #[error("{}", crate::catalogue::CODE_ERROR_INVALID)]
    Invalid,
    /// Already used (or another code of the account was used since).
    #[error("{}", crate::catalogue::CODE_ERROR_USED)]
    Used,
    /// Past its lifetime.
    #[error("{}", crate::catalogue::CODE_ERROR_EXPIRED)]
    Expired,
    /// Voided before it was used: another code served, or the address changed.
    #[error("{}", crate::catalogue::CODE_ERROR_VOIDED)]
    Voided,
}

impl StoredCode {
    /// Whether it can be used at `now`, and if not, why.
    pub fn usable_at(&self, now: Timestamp) -> Result<(), CodeError> {
        if self.voided_at.is_some() {
            Err(CodeError::Voided)
        } else if self.used_at.is_some() {
            Err(CodeError::Used)
        } else if self.expires_at <= now {
            Err(CodeError::Expired)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_120_bits_in_24_unambiguous_characters() {
        let code = RecoveryCode::generate();
        assert_eq!(code.0.len(), 24);
        assert!(code.0.bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(code, RecoveryCode::generate());
        assert_eq!(code.grouped().len(), 29);
    }

    #[test]
    fn typed_codes_are_normalised() {
        let code = RecoveryCode::generate();
        let sloppy = format!("  {}  ", code.grouped().to_lowercase().replace('-', " "));
        assert_eq!(RecoveryCode::parse(&sloppy), Some(code.clone()));
        assert_eq!(RecoveryCode::parse(&code.grouped()), Some(code));
        let confusable = RecoveryCode::parse("OIL0-1234-5678-9ABC-DEFG-HJKM").map(|c| c.0);
        assert_eq!(confusable.as_deref(), Some("0110123456789ABCDEFGHJKM"));
    }

    #[test]
    fn garbage_is_not_a_code() {
        for bad in ["", "ABCD", "UUUU-UUUU-UUUU-UUUU-UUUU-UUUU", "é", &"A".repeat(25), "' OR 1=1 --"] {
            assert_eq!(RecoveryCode::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn temporary_passwords_are_typed_like_codes_and_checked_by_hash() {
        let password = TemporaryPassword::generate();
        assert_eq!(password.grouped().len(), 24);
        assert!(password.0.bytes().all(|b| ALPHABET.contains(&b)));
        let sloppy = password.grouped().to_lowercase().replace('-', " ");
        let typed = TemporaryPassword::parse(&sloppy).unwrap_or_else(|| panic!("{sloppy}"));
        assert!(typed.matches(&password.hash()));
        assert!(!TemporaryPassword::generate().matches(&password.hash()));
        assert_eq!(TemporaryPassword::parse("une phrase de passe ordinaire"), None);
        assert_eq!(password.spelled_fr().len(), 5);
        assert!(!format!("{password:?}").contains(&password.0));
    }

    #[test]
    fn debug_hides_the_code() {
        let code = RecoveryCode::generate();
        assert!(!format!("{code:?}").contains(&code.0));
    }

    #[test]
    fn used_wins_over_expired() {
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let code = StoredCode {
            account_id: AccountId::from_stored(1),
            purpose: CodePurpose::Reset,
            created_at: t,
            expires_at: t,
            used_at: Some(t),
            voided_at: None,
        };
        assert_eq!(code.usable_at(t), Err(CodeError::Used));
        assert_eq!(StoredCode { used_at: None, ..code.clone() }.usable_at(t), Err(CodeError::Expired));
        assert_eq!(StoredCode { voided_at: Some(t), ..code.clone() }.usable_at(t), Err(CodeError::Voided));
    }
}
