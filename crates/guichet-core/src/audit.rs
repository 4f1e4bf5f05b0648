//! The audit trail: who did what to which account, when, and from where.

use std::net::IpAddr;

use jiff::Timestamp;

use crate::account::AccountId;

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
}

impl AuditKind {
    /// Every kind, for parsing.
    pub const ALL: [Self; 25] = [
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
        Self::TemporaryPasswordShown,
        Self::CurrentPasswordMistyped,
        Self::RecoveryEmailConfirmed,
        Self::RecoveryEmailRemoved,
    ];

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
            Self::TemporaryPasswordShown => "temporary_password_shown",
            Self::CurrentPasswordMistyped => "current_password_mistyped",
            Self::RecoveryEmailConfirmed => "recovery_email_confirmed",
            Self::RecoveryEmailRemoved => "recovery_email_removed",
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

    /// A short French label for people.
    pub fn label_fr(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "connexion réussie",
            Self::LoginFailed => "mot de passe erroné",
            Self::LoginRefusedLocked => "connexion refusée (compte suspendu, désactivé ou sans mot de passe valable)",
            Self::LoginFailedOnDevice => "mot de passe erroné, depuis un appareil habituel du membre",
            Self::AccountLocked => "compte suspendu",
            Self::AccountUnlocked => "compte réactivé",
            Self::AccountCreated => "compte créé",
            Self::PasswordChanged => "mot de passe changé",
            Self::LoggedOut => "déconnexion",
            Self::TemporaryPasswordIssued => "mot de passe temporaire envoyé",
            Self::ResetCodeSent => "code de nouveau mot de passe envoyé",
            Self::IdentifierSent => "identifiant envoyé",
            Self::AccountDisabled => "compte désactivé",
            Self::AccountEnabled => "compte réactivé par l'assistance",
            Self::DetailsChanged => "coordonnées modifiées",
            Self::RoleChanged => "rôle modifié",
            Self::OtherSessionsEnded => "autres sessions fermées",
            Self::CallProposed => "rendez-vous téléphonique proposé",
            Self::CallConfirmed => "rendez-vous téléphonique confirmé",
            Self::GroupJoined => "ajouté à un groupe",
            Self::GroupLeft => "retiré d'un groupe",
            Self::TemporaryPasswordShown => "mot de passe temporaire remis par l'assistance",
            Self::CurrentPasswordMistyped => "mot de passe actuel mal saisi dans Mon espace",
            Self::RecoveryEmailConfirmed => "adresse de secours confirmée",
            Self::RecoveryEmailRemoved => "adresse de secours retirée",
        }
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
    /// A short free text (never a secret).
    pub detail: Option<String>,
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
    /// A short free text.
    pub detail: Option<String>,
}
