//! Accounts and the values they are made of, parsed once at the edge
//! (`Identifier::parse`, `EmailAddress::parse`…) so that the rest of the code never
//! holds an unchecked string.

use jiff::Timestamp;

use crate::password::PasswordHash;

/// An account's database id. Never a bare integer between layers (a URL's `{id}` is
/// read as one directly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(transparent)]
pub struct AccountId(i64);

impl AccountId {
    /// Wraps an id read from storage.
    pub const fn from_stored(id: i64) -> Self {
        Self(id)
    }

    /// The raw id, for storage.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Why a text is not a valid identifier. The messages are shown to people, in French.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    /// Nothing typed.
    #[error("{}", crate::catalogue::IDENTIFIER_ERROR_EMPTY)]
    Empty,
    /// Too short or too long.
    #[error("{}", crate::catalogue::identifier_error_length(.min, .max))]
    Length {
        /// Shortest allowed.
        min: usize,
        /// Longest allowed.
        max: usize,
    },
    /// A character outside the allowed set.
    #[error("{}", crate::catalogue::IDENTIFIER_ERROR_CHARACTERS)]
    Characters,
}

/// A member's login identifier: trimmed, lower-case (so comparisons ignore case),
/// 2 to 64 characters among `a-z 0-9 . _ -`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identifier(String);

impl Identifier {
    /// Shortest identifier.
    pub const MIN: usize = 2;
    /// Longest identifier.
    pub const MAX: usize = 64;

    /// Parses what someone typed.
    pub fn parse(raw: &str) -> Result<Self, IdentifierError> {
        let value = raw.trim().to_lowercase();
        if value.is_empty() {
            return Err(IdentifierError::Empty);
        }
        let count = value.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&count) {
            return Err(IdentifierError::Length { min: Self::MIN, max: Self::MAX });
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
        let starts_well = value.starts_with(|c: char| c.is_ascii_alphanumeric());
        if !starts_well || !value.chars().all(allowed) {
            return Err(IdentifierError::Characters);
        }
        Ok(Self(value))
    }

    /// Rebuilds an identifier read back from storage, where it was stored parsed.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    /// The canonical (lower-case) form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Identifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0)
    }
}

/// Why a text is not a usable email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", crate::catalogue::EMAIL_ERROR)]
pub struct EmailError;

/// An email address: trimmed, lower-case, one `@`, a dotted domain, no spaces or
/// control characters, at most 254 characters. Deliberately lenient on the local part:
/// the mail server is the judge, we only refuse what cannot be an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses what someone typed.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let value = raw.trim().to_lowercase();
        let (local, domain) = value.rsplit_once('@').ok_or(EmailError)?;
        let plain = |s: &str| {
            !s.is_empty()
                && !s.chars().any(|c| {
                    c.is_whitespace()
                        || c.is_control()
                        || matches!(c, '<' | '>' | ',' | ';' | '"' | '\\' | '(' | ')' | '[' | ']')
                })
        };
        let domain_ok = plain(domain)
            && !domain.contains('@')
            && domain.contains('.')
            && domain.split('.').all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
        if value.len() > 254 || local.len() > 64 || !plain(local) || local.contains('@') || !domain_ok {
            return Err(EmailError);
        }
        Ok(Self(value))
    }

    /// Rebuilds an address read back from storage.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address partly hidden, enough for its owner to recognise it and for nobody
    /// else to learn it: `ma***@ch***.fr` for `marie.durand@chu-lyon.fr`.
    pub fn masked(&self) -> String {
        let start = |s: &str| s.chars().take(if s.chars().count() > 3 { 2 } else { 1 }).collect::<String>();
        let (local, domain) = self.0.rsplit_once('@').unwrap_or((&self.0, ""));
        let first = domain.split('.').next().unwrap_or_default();
        let tld = domain.rsplit('.').next().unwrap_or_default();
        format!("{}***@{}***.{tld}", start(local), start(first))
    }
}

impl std::fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0)
    }
}

/// Why a display name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", crate::catalogue::DISPLAY_NAME_ERROR)]
pub struct DisplayNameError;

/// Why an RPPS number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an RPPS number is 11 digits")]
pub struct RppsError;

/// A health professional's RPPS number (Répertoire partagé des professionnels de santé),
/// 11 digits: the national identifier an upstream login (Pro Santé Connect) is matched
/// by. Spaces are dropped; the national identifier as Pro Santé Connect writes it (`8`
/// then the RPPS) is read as the same number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rpps(String);

impl Rpps {
    /// Parses what was typed or imported.
    pub fn parse(raw: &str) -> Result<Self, RppsError> {
        let digits: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
        let digits = match digits.len() {
            12 if digits.starts_with('8') => digits[1..].to_owned(),
            _ => digits,
        };
        if digits.len() == 11 && digits.chars().all(|c| c.is_ascii_digit()) { Ok(Self(digits)) } else { Err(RppsError) }
    }

    /// A value read back from storage.
    pub fn from_stored(stored: String) -> Self {
        Self(stored)
    }

    /// The 11 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Rpps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name shown on pages and in emails. May be empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisplayName(String);

impl DisplayName {
    /// Parses what someone typed: trimmed, inner whitespace collapsed.
    pub fn parse(raw: &str) -> Result<Self, DisplayNameError> {
        let value = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        if value.chars().count() > 120 || value.chars().any(char::is_control) {
            return Err(DisplayNameError);
        }
        Ok(Self(value))
    }

    /// Rebuilds a name read back from storage.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A member's given and family names, kept apart for the applications (OpenID Connect's
/// `given_name` and `family_name`). Either may be empty; when either is given, the
/// display name is their join.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameParts {
    /// Given name ("Marie").
    pub given: DisplayName,
    /// Family name ("Durand").
    pub family: DisplayName,
}

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// One part cannot be a name.
    #[error(transparent)]
    Part(#[from] DisplayNameError),
    /// A display name that is not the join of the given parts.
    #[error("{}", crate::catalogue::NAME_NOT_JOIN)]
    NotTheirJoin,
}

impl NameParts {
    /// Parses the parts as typed.
    pub fn parse(given: &str, family: &str) -> Result<Self, DisplayNameError> {
        Ok(Self { given: DisplayName::parse(given)?, family: DisplayName::parse(family)? })
    }

    /// Whether neither part is known.
    pub fn is_empty(&self) -> bool {
        self.given.as_str().is_empty() && self.family.as_str().is_empty()
    }

    /// "given family".
    pub fn joined(&self) -> DisplayName {
        DisplayName(format!("{} {}", self.given.as_str(), self.family.as_str()).trim().to_owned())
    }

    /// The display name and the parts from what was typed: the parts' join when any is
    /// given (a display name given too must be that join), the display name otherwise.
    pub fn with_display(name: &str, given: &str, family: &str) -> Result<(DisplayName, Self), NameError> {
        let name = DisplayName::parse(name)?;
        let parts = Self::parse(given, family)?;
        if parts.is_empty() {
            return Ok((name, parts));
        }
        let joined = parts.joined();
        if !name.as_str().is_empty() && name != joined {
            return Err(NameError::NotTheirJoin);
        }
        Ok((joined, parts))
    }
}

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Role {
    /// A member of the association.
    #[default]
    Member,
    /// Assistance desk staff.
    Assistance,
    /// Administrators: the desk, plus managing staff.
    Admin,
}

/// An unknown role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", crate::catalogue::role_error(.0))]
pub struct RoleError(pub String);

impl Role {
    /// The stored and command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Assistance => "assistance",
            Self::Admin => "admin",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(raw: &str) -> Result<Self, RoleError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "member" => Ok(Self::Member),
            "assistance" => Ok(Self::Assistance),
            "admin" => Ok(Self::Admin),
            other => Err(RoleError(other.to_owned())),
        }
    }

    /// The French name shown to people.
    pub fn label_fr(self) -> &'static str {
        crate::catalogue::role(self)
    }

    /// Staff roles reach the console.
    pub fn is_staff(self) -> bool {
        matches!(self, Self::Assistance | Self::Admin)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// An account as stored.
#[derive(Debug, Clone)]
pub struct Account {
    /// Database id.
    pub id: AccountId,
    /// Login identifier.
    pub identifier: Identifier,
    /// Where its mail goes.
    pub email: EmailAddress,
    /// Shown on pages.
    pub display_name: DisplayName,
    /// The given and family names, when known.
    pub names: NameParts,
    /// What it may do.
    pub role: Role,
    /// Argon2id PHC string; `None` until a password is set (invitation pending).
    pub password_hash: Option<PasswordHash>,
    /// A staff-issued temporary password waiting to be used (its hash, see
    /// [`crate::codes::TemporaryPassword`]), beside the password, which keeps working.
    pub temporary_password_hash: Option<crate::token::TokenHash>,
    /// Refused at login until this instant.
    pub locked_until: Option<Timestamp>,
    /// Disabled by staff: refused at login until re-enabled.
    pub disabled_at: Option<Timestamp>,
    /// The temporary password stops working at this instant.
    pub temporary_password_until: Option<Timestamp>,
    /// The member's second ("secours") address, confirmed: recovery, lock and
    /// password-changed mail goes there too.
    pub recovery_email: Option<EmailAddress>,
    /// A secours address waiting for its confirmation code.
    pub recovery_email_pending: Option<EmailAddress>,
    /// A new own address the member proposed, waiting for the code mailed to it.
    pub email_pending: Option<EmailAddress>,
    /// When the account is to be erased: asked for, and cancellable until then.
    pub erase_at: Option<Timestamp>,
    /// Its holder's RPPS number, when known.
    pub rpps: Option<Rpps>,
    /// When the account was created.
    pub created_at: Timestamp,
    /// Last change to the account row.
    pub updated_at: Timestamp,
    /// Last successful login.
    pub last_login_at: Option<Timestamp>,
    /// Device cookie marks issued before this instant no longer count (the password
    /// changed since).
    pub devices_trusted_after: Timestamp,
}

#[cfg(test)]
impl Account {
    /// An account for the core's unit tests: `a{id}`, `a{id}@example.org`, no password.
    pub(crate) fn sample(id: i64, role: Role) -> Self {
        let now = Timestamp::UNIX_EPOCH;
        Self {
            id: AccountId::from_stored(id),
            identifier: Identifier::from_stored(format!("a{id}")),
            email: EmailAddress::from_stored(format!("a{id}@example.org")),
            display_name: DisplayName::default(),
            names: NameParts::default(),
            role,
            password_hash: None,
            temporary_password_hash: None,
            locked_until: None,
            disabled_at: None,
            temporary_password_until: None,
            recovery_email: None,
            recovery_email_pending: None,
            email_pending: None,
            erase_at: None,
            rpps: None,
            created_at: now,
            updated_at: now,
            last_login_at: None,
            devices_trusted_after: now,
        }
    }
}

/// An account's state, as the console shows and filters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    /// Neither disabled nor suspended, and signed in at least once.
    Active,
    /// Suspended after failed logins, now.
    Locked,
    /// Disabled by staff.
    Disabled,
    /// Neither disabled nor suspended, and never signed in (an invitation not taken up,
    /// for one).
    NeverSignedIn,
}

impl AccountState {
    /// Every state, in the order the console offers them.
    pub const ALL: [Self; 4] = [Self::Active, Self::Locked, Self::Disabled, Self::NeverSignedIn];

    /// Its name in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Locked => "locked",
            Self::Disabled => "disabled",
            Self::NeverSignedIn => "never",
        }
    }

    /// The state named so in a URL.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == raw)
    }
}

impl Account {
    /// Its state at `now`: disabled first, then suspended, then never signed in.
    pub fn state_at(&self, now: Timestamp) -> AccountState {
        if self.disabled_at.is_some() {
            AccountState::Disabled
        } else if self.is_locked_at(now) {
            AccountState::Locked
        } else if self.last_login_at.is_none() {
            AccountState::NeverSignedIn
        } else {
            AccountState::Active
        }
    }

    /// Until when its temporary password works, when it has one.
    pub fn pending_temporary_until(&self) -> Option<Timestamp> {
        self.temporary_password_until.filter(|_| self.temporary_password_hash.is_some())
    }

    /// Whether the account is locked at `now`.
    pub fn is_locked_at(&self, now: Timestamp) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }

    /// Whether a login with a right password may go through at `now`: not locked, not
    /// disabled, a password set.
    pub fn may_log_in_at(&self, now: Timestamp) -> bool {
        !self.is_locked_at(now) && self.may_log_in_despite_lock()
    }

    /// The same, for a browser holding a device cookie for the account: the lock aside.
    /// A password with an expiry but no temporary password beside it was written by a
    /// version before 0.8 (a temporary password then replaced the password): never taken
    /// for an ordinary one.
    pub fn may_log_in_despite_lock(&self) -> bool {
        let old_style_temporary = self.temporary_password_until.is_some() && self.temporary_password_hash.is_none();
        self.disabled_at.is_none() && self.password_hash.is_some() && !old_style_temporary
    }

    /// The temporary password's hash, when one is pending at `now` and the account is
    /// not disabled. A lock does not stop it: a hundred random bits are not guessed, and
    /// the lock protects the member's own password from guesses.
    pub fn temporary_password_at(&self, now: Timestamp) -> Option<&crate::token::TokenHash> {
        let live = self.disabled_at.is_none() && self.temporary_password_until.is_some_and(|until| until > now);
        self.temporary_password_hash.as_ref().filter(|_| live)
    }

    /// Every address the account's recovery mail goes to: its own, then the secours one.
    pub fn mail_addresses(&self) -> impl Iterator<Item = &EmailAddress> {
        std::iter::once(&self.email).chain(self.recovery_email.as_ref())
    }

    /// The name to greet with: the display name, or the identifier when there is none.
    pub fn greeting_name(&self) -> &str {
        if self.display_name.as_str().is_empty() { self.identifier.as_str() } else { self.display_name.as_str() }
    }
}

/// What it takes to create an account.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Login identifier.
    pub identifier: Identifier,
    /// Email address.
    pub email: EmailAddress,
    /// Display name.
    pub display_name: DisplayName,
    /// Given and family names.
    pub names: NameParts,
    /// Role.
    pub role: Role,
    /// Initial password hash, if any.
    pub password_hash: Option<PasswordHash>,
    /// Its holder's RPPS number, if known.
    pub rpps: Option<Rpps>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpps_numbers_are_eleven_digits_and_the_national_identifier_is_the_same() {
        assert_eq!(Rpps::parse("10 0012 3456 7").map(|r| r.0), Ok("10001234567".to_owned()));
        assert_eq!(Rpps::parse("810001234567").map(|r| r.0), Ok("10001234567".to_owned()));
        assert_eq!(Rpps::parse("1000123456"), Err(RppsError));
        assert_eq!(Rpps::parse("1000123456x"), Err(RppsError));
        assert_eq!(Rpps::parse("910001234567"), Err(RppsError));
    }

    #[test]
    fn identifiers_are_trimmed_and_lower_cased() {
        assert_eq!(Identifier::parse("  Marie.Durand ").map(|i| i.0), Ok("marie.durand".to_owned()));
    }

    #[test]
    fn identifiers_refuse_odd_characters_and_lengths() {
        assert_eq!(Identifier::parse("   "), Err(IdentifierError::Empty));
        assert_eq!(Identifier::parse("a"), Err(IdentifierError::Length { min: 2, max: 64 }));
        assert_eq!(Identifier::parse(&"a".repeat(65)), Err(IdentifierError::Length { min: 2, max: 64 }));
        for bad in ["marie durand", "élodie", ".marie", "marie@x.fr", "a;drop", "mé"] {
            assert_eq!(Identifier::parse(bad), Err(IdentifierError::Characters), "{bad}");
        }
    }

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            EmailAddress::parse(" Marie.Durand@CHU-Lyon.fr ").map(|e| e.0),
            Ok("marie.durand@chu-lyon.fr".to_owned())
        );
        for bad in
            ["", "marie", "marie@", "@chu.fr", "marie@chu", "ma rie@chu.fr", "marie@chu..fr", "a@b@c.fr", "m<x>@chu.fr"]
        {
            assert_eq!(EmailAddress::parse(bad), Err(EmailError), "{bad}");
        }
    }

    #[test]
    fn masked_addresses_keep_only_their_first_letters_and_top_level_domain() {
        let masked = |raw: &str| EmailAddress::parse(raw).map(|e| e.masked()).unwrap_or_default();
        assert_eq!(masked("marie.durand@chu-lyon.fr"), "ma***@ch***.fr");
        assert_eq!(masked("jo@a.example.org"), "j***@a***.org");
        assert_eq!(masked("x@ab.fr"), "x***@a***.fr");
    }

    #[test]
    fn display_names_collapse_whitespace() {
        assert_eq!(DisplayName::parse("  Dr  Marie\tDurand ").map(|n| n.0), Ok("Dr Marie Durand".to_owned()));
        assert!(DisplayName::parse(&"x".repeat(121)).is_err());
    }

    #[test]
    fn roles_round_trip() {
        for role in [Role::Member, Role::Assistance, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert!(Role::parse("root").is_err());
    }
}
