//! The audit trail: who did what to which account, when, and from where.

use std::net::IpAddr;

use jiff::Timestamp;

use crate::account::{AccountId, EmailAddress, Role};
use crate::groups::GroupName;

/// Where a request came from, as far as the server can tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The client's address (after trusted proxies), `None` from the command line.
    pub address: Option<IpAddr>,
    /// The browser's `User-Agent`, cut to 200 characters.
    pub user_agent: Option<String>,
}

impl RequestContext {
    /// The longest user agent kept.
    pub const USER_AGENT_MAX: usize = 200;

    /// Builds a context, trimming the user agent.
    pub fn new(address: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        let user_agent = user_agent
            .map(|ua| ua.chars().filter(|c| !c.is_control()).take(Self::USER_AGENT_MAX).collect::<String>())
            .filter(|ua| !ua.is_empty());
        Self { address, user_agent }
    }
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The account's owner, or whoever typed its identifier.
    Member,
    /// A staff account, through the console.
    Staff(AccountId),
    /// The operator, through the command line.
    Operator,
    /// guichet itself (an expired lock, a background job).
    System,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditKind {
    /// A login succeeded.
    LoginSucceeded,
    /// A wrong password was given for an existing account.
    LoginFailed,
    /// A login was refused because the account is locked (the password was not checked).
    LoginRefusedLocked,
    /// A wrong password from a browser holding a device cookie for the account (not
    /// counted toward the account's lock).
    LoginFailedOnDevice,
    /// The account locked after too many failures.
    AccountLocked,
    /// A lock was lifted by hand.
    AccountUnlocked,
    /// The account was created.
    AccountCreated,
    /// The password changed.
    PasswordChanged,
    /// The member logged out.
    LoggedOut,
    /// Staff had a temporary password mailed.
    TemporaryPasswordIssued,
    /// Staff had a reset code mailed.
    ResetCodeSent,
    /// Staff had the identifier mailed.
    IdentifierSent,
    /// Staff disabled the account.
    AccountDisabled,
    /// Staff re-enabled the account.
    AccountEnabled,
    /// Email or name changed.
    DetailsChanged,
    /// Role changed.
    RoleChanged,
    /// The member ended their other sessions.
    OtherSessionsEnded,
    /// Staff proposed phone-call slots.
    CallProposed,
    /// The member confirmed a phone-call slot.
    CallConfirmed,
    /// The account joined a group (detail: which).
    GroupJoined,
    /// The account left a group (detail: which).
    GroupLeft,
    /// Staff made a group (no account; detail: which).
    GroupCreated,
    /// Staff were shown a temporary password for the account, once, to hand over
    /// themselves (phone, the desk's own mailbox).
    TemporaryPasswordShown,
    /// A wrong current password typed in "Mon espace": the member's typo, not counted
    /// toward the lock (too many end the session instead).
    CurrentPasswordMistyped,
    /// The member confirmed a secours address (detail: the address, partly hidden).
    RecoveryEmailConfirmed,
    /// The member removed their secours address.
    RecoveryEmailRemoved,
    /// The password was right; the login waits for the second factor.
    PasswordAccepted,
    /// A second factor was confirmed (its first code).
    SecondFactorAdded,
    /// The second factor was removed: by the member, or reset by staff.
    SecondFactorRemoved,
    /// New backup codes replaced the old ones.
    BackupCodesRenewed,
    /// The account's erasure was asked for (by the member, or staff for them).
    ErasureRequested,
    /// The asked erasure was called off before it was done.
    ErasureCancelled,
    /// The account was erased: the line keeps a pseudonym in its place.
    AccountErased,
    /// Staff produced the member's data (the right of access, through the desk).
    DataExported,
    /// An upstream identity (Pro Santé Connect…) was linked to the account.
    UpstreamLinked,
    /// An upstream identity was unlinked from the account.
    UpstreamUnlinked,
}

impl AuditKind {
    /// Every kind, for parsing.
    pub const ALL: [Self; 36] = [
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::LoginRefusedLocked,
        Self::LoginFailedOnDevice,
        Self::AccountLocked,
        Self::AccountUnlocked,
        Self::AccountCreated,
        Self::PasswordChanged,
        Self::LoggedOut,
        Self::TemporaryPasswordIssued,
        Self::ResetCodeSent,
        Self::IdentifierSent,
        Self::AccountDisabled,
        Self::AccountEnabled,
        Self::DetailsChanged,
        Self::RoleChanged,
        Self::OtherSessionsEnded,
        Self::CallProposed,
        Self::CallConfirmed,
        Self::GroupJoined,
        Self::GroupLeft,
        Self::GroupCreated,
        Self::TemporaryPasswordShown,
        Self::CurrentPasswordMistyped,
        Self::RecoveryEmailConfirmed,
        Self::RecoveryEmailRemoved,
        Self::PasswordAccepted,
        Self::SecondFactorAdded,
        Self::SecondFactorRemoved,
        Self::BackupCodesRenewed,
        Self::ErasureRequested,
        Self::ErasureCancelled,
        Self::AccountErased,
        Self::DataExported,
        Self::UpstreamLinked,
        Self::UpstreamUnlinked,
    ];

    /// What only serves to count failed attempts: kept as long as
    /// [`crate::retention::Retention::failed_attempts`], not as long as other lines.
    pub const FAILED_ATTEMPTS: [Self; 4] =
        [Self::LoginFailed, Self::LoginRefusedLocked, Self::LoginFailedOnDevice, Self::CurrentPasswordMistyped];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::LoginRefusedLocked => "login_refused_locked",
            Self::LoginFailedOnDevice => "login_failed_on_device",
            Self::AccountLocked => "account_locked",
            Self::AccountUnlocked => "account_unlocked",
            Self::AccountCreated => "account_created",
            Self::PasswordChanged => "password_changed",
            Self::LoggedOut => "logged_out",
            Self::TemporaryPasswordIssued => "temporary_password_issued",
            Self::ResetCodeSent => "reset_code_sent",
            Self::IdentifierSent => "identifier_sent",
            Self::AccountDisabled => "account_disabled",
            Self::AccountEnabled => "account_enabled",
            Self::DetailsChanged => "details_changed",
            Self::RoleChanged => "role_changed",
            Self::OtherSessionsEnded => "other_sessions_ended",
            Self::CallProposed => "call_proposed",
            Self::CallConfirmed => "call_confirmed",
            Self::GroupJoined => "group_joined",
            Self::GroupLeft => "group_left",
            Self::GroupCreated => "group_created",
            Self::TemporaryPasswordShown => "temporary_password_shown",
            Self::CurrentPasswordMistyped => "current_password_mistyped",
            Self::RecoveryEmailConfirmed => "recovery_email_confirmed",
            Self::RecoveryEmailRemoved => "recovery_email_removed",
            Self::PasswordAccepted => "password_accepted",
            Self::SecondFactorAdded => "second_factor_added",
            Self::SecondFactorRemoved => "second_factor_removed",
            Self::BackupCodesRenewed => "backup_codes_renewed",
            Self::ErasureRequested => "erasure_requested",
            Self::ErasureCancelled => "erasure_cancelled",
            Self::AccountErased => "account_erased",
            Self::DataExported => "data_exported",
            Self::UpstreamLinked => "upstream_linked",
            Self::UpstreamUnlinked => "upstream_unlinked",
        }
    }

    /// Parses a stored name.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == stored)
    }

    /// A login that did not go through, whatever the reason: what members and staff
    /// see listed as "failed attempts".
    pub fn is_failed_login(self) -> bool {
        matches!(self, Self::LoginFailed | Self::LoginRefusedLocked | Self::LoginFailedOnDevice)
    }
}

/// An account's recent activity, read from its audit events (newest first): one
/// definition of "logins" and "failed attempts since a login" for every page.
#[derive(Debug, Clone)]
pub struct Activity {
    events: Vec<AuditEvent>,
}

impl Activity {
    /// From the account's events, newest first.
    pub fn new(events: Vec<AuditEvent>) -> Self {
        Self { events }
    }

    /// Every event, newest first.
    pub fn events(&self) -> &[AuditEvent] {
        &self.events
    }

    /// Successful logins, newest first.
    pub fn logins(&self) -> impl Iterator<Item = &AuditEvent> {
        self.events.iter().filter(|e| e.kind == AuditKind::LoginSucceeded)
    }

    /// Failed attempts (newest first) since the last fresh start — a successful login, or
    /// a staff unlock: what staff see.
    pub fn failures_since_last_login(&self) -> Vec<&AuditEvent> {
        let start = self
            .events
            .iter()
            .find(|e| matches!(e.kind, AuditKind::LoginSucceeded | AuditKind::AccountUnlocked))
            .map(|e| e.id);
        self.failures_after(start)
    }

    /// Failed attempts (newest first) since the member's login *before* the one that
    /// opened their session at `signed_in_at`: what happened while they were away, a
    /// lock and its unlock included, and since. Logins from elsewhere after this
    /// session opened do not hide them.
    pub fn failures_while_away(&self, signed_in_at: Timestamp) -> Vec<&AuditEvent> {
        let mut logins = self.logins().skip_while(|e| e.at > signed_in_at);
        let _this_one = logins.next();
        self.failures_after(logins.next().map(|e| e.id))
    }

    fn failures_after(&self, start: Option<i64>) -> Vec<&AuditEvent> {
        self.events.iter().filter(|e| e.kind.is_failed_login() && start.is_none_or(|id| e.id > id)).collect()
    }
}

/// How a member came to choose a new password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordChoice {
    /// In "Mon espace", with the current one.
    InMySpace,
    /// At the first login with a temporary password.
    AfterTemporary,
    /// With a code received by email.
    WithCode,
}

impl PasswordChoice {
    fn as_str(self) -> &'static str {
        match self {
            Self::InMySpace => "my_space",
            Self::AfterTemporary => "after_temporary",
            Self::WithCode => "with_code",
        }
    }
}

/// How an account came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Created by staff or the operator.
    Created,
    /// Brought by `member import`, without a password.
    Imported,
    /// Brought by `member import` with the old site's password hash.
    ImportedWithPassword,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Imported => "imported",
            Self::ImportedWithPassword => "imported_with_password",
        }
    }
}

/// What `member import --update` changed on an existing account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportChanges {
    /// The address, before and after.
    pub email: Option<(EmailAddress, EmailAddress)>,
    /// The name.
    pub name: bool,
    /// The password (the old site's hash replaced it).
    pub password: bool,
    /// The groups.
    pub groups: bool,
    /// The RPPS number.
    pub rpps: bool,
}

impl ImportChanges {
    /// Whether anything changed.
    pub fn any(&self) -> bool {
        self.email.is_some() || self.name || self.password || self.groups || self.rpps
    }

    fn to_stored(&self) -> String {
        let email = self.email.as_ref().map(|(from, to)| format!("email={from}>{to}"));
        let flags = [(self.name, "name"), (self.password, "password"), (self.groups, "groups"), (self.rpps, "rpps")];
        email
            .into_iter()
            .chain(flags.into_iter().filter(|(set, _)| *set).map(|(_, name)| name.to_owned()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn parse(stored: &str) -> Option<Self> {
        let mut changes = Self::default();
        for token in stored.split(' ') {
            match token {
                "name" => changes.name = true,
                "password" => changes.password = true,
                "groups" => changes.groups = true,
                "rpps" => changes.rpps = true,
                _ => {
                    let (from, to) = token.strip_prefix("email=")?.split_once('>')?;
                    changes.email =
                        Some((EmailAddress::from_stored(from.to_owned()), EmailAddress::from_stored(to.to_owned())));
                }
            }
        }
        changes.any().then_some(changes)
    }
}

/// What an event holds beyond its kind: facts, never sentences. The pages and the
/// command line word them, each in its own language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditDetail {
    /// `account_locked`: the failures that locked it.
    Failures(u32),
    /// `password_changed`: how.
    Password(PasswordChoice),
    /// `login_failed` with no account: the identifier matched none.
    UnknownIdentifier,
    /// `account_created`: with which role, and how.
    Created(Role, Origin),
    /// `details_changed`: the address, before and after.
    Email(EmailAddress, EmailAddress),
    /// `role_changed`: before and after.
    Role(Role, Role),
    /// `group_joined`, `group_left`: which group.
    Group(GroupName),
    /// `recovery_email_confirmed`: the address, partly hidden.
    Address(String),
    /// `other_sessions_ended`: how many ended.
    Sessions(u64),
    /// `details_changed` by `member import --update`: what changed.
    Import(ImportChanges),
    /// `login_failed` at the second step: a wrong (or used) code.
    WrongCode,
    /// `login_succeeded` with a second factor: which.
    SecondFactor(crate::second_factor::SecondFactor),
    /// `second_factor_removed` by staff: how they checked who asked.
    Verified(String),
    /// `login_succeeded`, `upstream_linked`, `upstream_unlinked`: through which upstream
    /// provider, by the name it is shown under.
    Upstream(String),
    /// Written by an earlier version as free text: shown as it was.
    Text(String),
}

impl AuditDetail {
    /// The stored form: `name` or `name:value`, stable across versions.
    pub fn to_stored(&self) -> String {
        match self {
            Self::Failures(n) => format!("failures:{n}"),
            Self::Password(how) => format!("password:{}", how.as_str()),
            Self::UnknownIdentifier => "unknown_identifier".to_owned(),
            Self::Created(role, origin) => format!("created:{} {}", role.as_str(), origin.as_str()),
            Self::Email(from, to) => format!("email:{from} {to}"),
            Self::Role(from, to) => format!("role:{} {}", from.as_str(), to.as_str()),
            Self::Group(name) => format!("group:{name}"),
            Self::Address(masked) => format!("address:{masked}"),
            Self::Sessions(n) => format!("sessions:{n}"),
            Self::Import(changes) => format!("import:{}", changes.to_stored()),
            Self::WrongCode => "wrong_code".to_owned(),
            Self::SecondFactor(factor) => format!("second_factor:{}", factor.as_str()),
            Self::Verified(how) => format!("verified:{how}"),
            Self::Upstream(name) => format!("upstream:{name}"),
            Self::Text(text) => text.clone(),
        }
    }

    /// Reads a stored form back; what it does not recognise is [`Self::Text`].
    pub fn from_stored(stored: &str) -> Self {
        Self::parse(stored).unwrap_or_else(|| Self::Text(stored.to_owned()))
    }

    fn parse(stored: &str) -> Option<Self> {
        let (name, value) = stored.split_once(':').unwrap_or((stored, ""));
        let pair = || value.split_once(' ');
        Some(match name {
            "failures" => Self::Failures(value.parse().ok()?),
            "password" => Self::Password(
                [PasswordChoice::InMySpace, PasswordChoice::AfterTemporary, PasswordChoice::WithCode]
                    .into_iter()
                    .find(|how| how.as_str() == value)?,
            ),
            "unknown_identifier" if value.is_empty() => Self::UnknownIdentifier,
            "created" => {
                let (role, origin) = pair()?;
                let origin = [Origin::Created, Origin::Imported, Origin::ImportedWithPassword]
                    .into_iter()
                    .find(|o| o.as_str() == origin)?;
                Self::Created(Role::parse(role).ok()?, origin)
            }
            "email" => {
                let (from, to) = pair()?;
                Self::Email(EmailAddress::from_stored(from.to_owned()), EmailAddress::from_stored(to.to_owned()))
            }
            "role" => {
                let (from, to) = pair()?;
                Self::Role(Role::parse(from).ok()?, Role::parse(to).ok()?)
            }
            "group" => Self::Group(GroupName::parse(value).ok()?),
            "address" if !value.is_empty() => Self::Address(value.to_owned()),
            "sessions" => Self::Sessions(value.parse().ok()?),
            "import" => Self::Import(ImportChanges::parse(value)?),
            "wrong_code" if value.is_empty() => Self::WrongCode,
            "second_factor" => Self::SecondFactor(crate::second_factor::SecondFactor::parse(value)?),
            "verified" if !value.is_empty() => Self::Verified(value.to_owned()),
            "upstream" if !value.is_empty() => Self::Upstream(value.to_owned()),
            _ => return None,
        })
    }
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    /// When.
    pub at: Timestamp,
    /// Which account, if any.
    pub account_id: Option<AccountId>,
    /// What.
    pub kind: AuditKind,
    /// Who.
    pub actor: Actor,
    /// From where.
    pub context: RequestContext,
    /// The facts beyond the kind (never a secret).
    pub detail: Option<AuditDetail>,
}

/// A recorded event.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// Storage order.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// Which account, if any.
    pub account_id: Option<AccountId>,
    /// What.
    pub kind: AuditKind,
    /// Who.
    pub actor: Actor,
    /// From where.
    pub context: RequestContext,
    /// The facts beyond the kind.
    pub detail: Option<AuditDetail>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_read_back_as_they_were_written() {
        let group = GroupName::parse("bureau").unwrap();
        let marie = EmailAddress::parse("marie@chu.example.fr").unwrap();
        let durand = EmailAddress::parse("marie.durand@gmail.example.com").unwrap();
        for detail in [
            AuditDetail::Failures(5),
            AuditDetail::Password(PasswordChoice::AfterTemporary),
            AuditDetail::UnknownIdentifier,
            AuditDetail::Created(Role::Assistance, Origin::ImportedWithPassword),
            AuditDetail::Email(marie, durand),
            AuditDetail::Role(Role::Member, Role::Admin),
            AuditDetail::Group(group),
            AuditDetail::Address(EmailAddress::parse("marie@gmail.example.com").unwrap().masked()),
            AuditDetail::Sessions(2),
            AuditDetail::Import(ImportChanges { email: None, name: true, password: false, groups: true, rpps: false }),
            AuditDetail::Import(ImportChanges {
                email: Some((EmailAddress::parse("a@b.fr").unwrap(), EmailAddress::parse("c@d.fr").unwrap())),
                ..ImportChanges::default()
            }),
        ] {
            assert_eq!(AuditDetail::from_stored(&detail.to_stored()), detail);
        }
    }

    #[test]
    fn what_an_earlier_version_wrote_is_kept_as_text() {
        for old in [
            "5 échecs",
            "dans Mon espace",
            "rôle member, importé",
            "failures:",
            "role:member",
            "import:",
            "import:nom",
            "",
        ] {
            assert_eq!(AuditDetail::from_stored(old), AuditDetail::Text(old.to_owned()));
        }
    }
}
