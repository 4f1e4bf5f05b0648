//! "Mon espace": what members do to their own account — change their password, end
//! their other sessions, add a secours address — and what they see of it (recent
//! logins, failed attempts).

use std::sync::Arc;

use secrecy::SecretString;

use crate::account::{Account, AccountId, EmailAddress, EmailError};
use crate::audit::{Activity, Actor, AuditDetail, AuditKind, NewAuditEvent, RequestContext};
use crate::clock::Clock;
use crate::codes::{CodeError, RecoveryCode};
use crate::credentials::Credentials;
use crate::hashing::{HashError, PasswordHasher, Verification};
use crate::lockout::LockoutPolicy;
use crate::lockout::ThrottleKey;
use crate::password::{NewPassword, PasswordError, PasswordPolicy};
use crate::ports::{AuditStore, Ports, SessionStore, StoreError, ThrottleStore};
use crate::session::{OpenSession, Session};
use crate::token::TokenHash;

/// Why a password change did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The current password is wrong: a typo, most likely.
    #[error("{}", crate::catalogue::CHANGE_ERROR_WRONG_CURRENT)]
    WrongCurrent,
    /// The current password was wrong too often in this session: it has ended.
    #[error("{}", crate::catalogue::CHANGE_ERROR_TOO_MANY_WRONG)]
    TooManyWrong,
    /// The temporary password this session was opened with was replaced or expired.
    #[error("{}", crate::catalogue::CHANGE_ERROR_TEMPORARY_GONE)]
    TemporaryGone,
    /// The new one does not meet the policy.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// How long after a login a session may change the secours address without the
/// password being typed again.
pub const REAUTHENTICATE_AFTER: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// Why a secours address was refused.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryEmailError {
    /// Not an address.
    #[error(transparent)]
    Invalid(#[from] EmailError),
    /// The account's own address.
    #[error("{}", crate::catalogue::RECOVERY_EMAIL_ERROR_SAME_AS_PRIMARY)]
    SameAsPrimary,
    /// Too many proposals from this account this hour.
    #[error("{}", crate::catalogue::RECOVERY_EMAIL_ERROR_TOO_MANY)]
    TooMany,
    /// The session is not recent and the current password was not given, or is wrong.
    #[error("{}", crate::catalogue::RECOVERY_EMAIL_ERROR_REAUTHENTICATE)]
    Reauthenticate,
    /// Hashing failed (or its queue is full).
    #[error(transparent)]
    Hash(#[from] HashError),
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RecoveryEmailError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// Secours addresses one account may propose per hour: each mails a code to an address
/// of the member's choosing.
pub const PROPOSALS_PER_HOUR: u64 = 5;

/// What became of a secours address request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryEmailChange {
    /// A code is on its way to the address.
    Proposed(EmailAddress),
    /// The secours address was removed.
    Removed,
    /// There was none to remove.
    Unchanged,
}

/// The member typed their current password again ([`MySpace::confirm_password`]): only
/// that makes one, and what weakens the account asks for it.
#[derive(Debug)]
pub struct PasswordConfirmed {
    account: AccountId,
}

impl PasswordConfirmed {
    /// Whose password it was.
    pub fn account(&self) -> AccountId {
        self.account
    }
}

/// Why a new own address was refused.
#[derive(Debug, thiserror::Error)]
pub enum EmailChangeError {
    /// Not an address.
    #[error(transparent)]
    Invalid(#[from] EmailError),
    /// It is the account's address already.
    #[error("{}", crate::catalogue::EMAIL_CHANGE_ERROR_SAME)]
    Same,
    /// Too many proposals from this account this hour.
    #[error("{}", crate::catalogue::RECOVERY_EMAIL_ERROR_TOO_MANY)]
    TooMany,
    /// The password typed with it is wrong (recorded as a typo), or it was wrong too
    /// often in this session (which ended).
    #[error(transparent)]
    Password(ChangeError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A member's own account.
#[derive(Debug, Clone)]
pub struct MySpace {
    own_address: crate::own_address::OwnAddressRules,
    secours: crate::secours::SecoursRules,
    throttle: Arc<dyn ThrottleStore>,
    credentials: Credentials,
    sessions: Arc<dyn SessionStore>,
    audit: Arc<dyn AuditStore>,
    outbox: Arc<dyn crate::ports::OutboxStore>,
    hasher: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
    policy: PasswordPolicy,
    lockout: LockoutPolicy,
}

impl MySpace {
    /// Wires the use cases.
    pub fn new(
        ports: &Ports,
        hasher: Arc<dyn PasswordHasher>,
        clock: Arc<dyn Clock>,
        policy: PasswordPolicy,
        lockout: LockoutPolicy,
    ) -> Self {
        Self {
            own_address: crate::own_address::OwnAddressRules::of(ports),
            secours: crate::secours::SecoursRules::of(ports),
            throttle: Arc::clone(&ports.throttle),
            credentials: Credentials::of(ports),
            sessions: Arc::clone(&ports.sessions),
            audit: Arc::clone(&ports.audit),
            outbox: Arc::clone(&ports.outbox),
            hasher,
            clock,
            policy,
            lockout,
        }
    }

    /// The member's recent activity: the logins, and what failed since the one before
    /// this session (what happened while they were away).
    pub async fn activity(&self, account: AccountId) -> Result<Activity, StoreError> {
        Ok(Activity::new(self.audit.account_events(account, 100).await?))
    }

    /// When the account's own address refuses guichet's mail now (the desk's rule), the
    /// message that shows it: Mon espace then asks for a secours address.
    pub async fn mail_refused(&self, account: &Account) -> Result<Option<jiff::Timestamp>, StoreError> {
        let latest = self.outbox.mail_to(&account.email, 20).await?;
        Ok(crate::desk::refusal(&latest, self.clock.now()).map(|m| m.created_at))
    }

    /// Changes a member's own password. In an ordinary session `current` must be right;
    /// a wrong one is the member's typo, recorded as such and not counted toward the lock,
    /// but too many in one session end it (a stolen session does not become a free
    /// password-guessing oracle). In a session opened with a temporary password it is not
    /// asked, and the temporary password must still be pending: choosing the new password
    /// is what uses it up. The member's other sessions end and a notice is mailed.
    pub async fn change_password(
        &self,
        account: &Account,
        session: &Session,
        current: SecretString,
        new_password: SecretString,
        confirmation: &SecretString,
        context: &RequestContext,
    ) -> Result<(), ChangeError> {
        let forced = session.must_change_password;
        if !forced {
            self.confirm_password(account, session, current, context).await?;
        }
        let personal = [account.identifier.as_str(), account.email.as_str(), account.display_name.as_str()];
        let password = NewPassword::parse_confirmed(new_password, confirmation, self.policy, &personal)?;
        let hash = self.hasher.hash(password.into_secret()).await?;
        let now = self.clock.now();
        if !self.credentials.change_password(account.id, &hash, &session.token_hash, forced, context, now).await? {
            return Err(ChangeError::TemporaryGone);
        }
        Ok(())
    }

    /// Checks the member's current password, typed again in this session before a change
    /// that weakens the account (removing its second factor). A wrong one is handled as
    /// in a password change: recorded as a typo, and too many end the session.
    pub async fn confirm_password(
        &self,
        account: &Account,
        session: &Session,
        current: SecretString,
        context: &RequestContext,
    ) -> Result<PasswordConfirmed, ChangeError> {
        let hash = account.password_hash.clone().ok_or(ChangeError::WrongCurrent)?;
        if let Verification::Mismatch = self.hasher.verify(crate::password::normalised(&current), hash).await? {
            return Err(self.mistyped(account, session, context).await?);
        }
        Ok(PasswordConfirmed { account: account.id })
    }

    /// Records a mistyped current password; past the lock's threshold in this session,
    /// ends the session.
    async fn mistyped(
        &self,
        account: &Account,
        session: &Session,
        context: &RequestContext,
    ) -> Result<ChangeError, ChangeError> {
        let event = NewAuditEvent {
            at: self.clock.now(),
            account_id: Some(account.id),
            kind: AuditKind::CurrentPasswordMistyped,
            actor: Actor::Member,
            context: context.clone(),
            detail: None,
        };
        self.audit.record_event(event).await?;
        let events = self.audit.account_events(account.id, 100).await?;
        let in_session = events
            .iter()
            .filter(|e| e.kind == AuditKind::CurrentPasswordMistyped && e.at >= session.created_at)
            .count();
        if in_session >= usize::try_from(self.lockout.threshold).unwrap_or(usize::MAX) {
            self.sessions.delete_session(&session.token_hash, self.clock.now(), None).await?;
            return Ok(ChangeError::TooManyWrong);
        }
        Ok(ChangeError::WrongCurrent)
    }

    /// Whether the session logged in recently enough to change who can recover the
    /// account without typing the password again (ASVS 7.5.1).
    pub fn recently_authenticated(&self, session: &Session) -> bool {
        self.clock.now().duration_since(session.created_at) <= REAUTHENTICATE_AFTER
    }

    /// Adds, replaces (`typed` is an address) or removes (`typed` is empty) the member's
    /// secours address. A new one only counts once confirmed with the code mailed to it.
    /// It changes who can recover the account: past [`REAUTHENTICATE_AFTER`] since the
    /// session's login, the current password is asked again (a wrong one is handled as in
    /// a password change).
    pub async fn set_recovery_email(
        &self,
        account: &Account,
        session: &Session,
        typed: &str,
        current: Option<SecretString>,
        context: &RequestContext,
    ) -> Result<RecoveryEmailChange, RecoveryEmailError> {
        if !self.recently_authenticated(session) {
            let (Some(current), Some(hash)) = (current, account.password_hash.clone()) else {
                return Err(RecoveryEmailError::Reauthenticate);
            };
            if let Verification::Mismatch = self.hasher.verify(crate::password::normalised(&current), hash).await? {
                // Recorded as a typo; too many end the session (the next page asks to log in).
                return match self.mistyped(account, session, context).await {
                    Ok(_) => Err(RecoveryEmailError::Reauthenticate),
                    Err(ChangeError::Store(error)) => Err(error.into()),
                    Err(ChangeError::Hash(error)) => Err(error.into()),
                    Err(_) => Err(RecoveryEmailError::Reauthenticate),
                };
            }
        }
        let now = self.clock.now();
        if typed.trim().is_empty() {
            let event = NewAuditEvent {
                at: now,
                account_id: Some(account.id),
                kind: AuditKind::RecoveryEmailRemoved,
                actor: Actor::Member,
                context: context.clone(),
                detail: None,
            };
            let removed = self.secours.remove_recovery_email(account.id, event).await?;
            return Ok(if removed { RecoveryEmailChange::Removed } else { RecoveryEmailChange::Unchanged });
        }
        let email = EmailAddress::parse(typed)?;
        if email == account.email {
            return Err(RecoveryEmailError::SameAsPrimary);
        }
        if !self.may_propose(format!("secours:{}", account.id.get()), now).await? {
            return Err(RecoveryEmailError::TooMany);
        }
        self.secours.propose_recovery_email(account.id, &email, now).await?;
        Ok(RecoveryEmailChange::Proposed(email))
    }

    /// Confirms the proposed secours address with the code mailed to it.
    pub async fn confirm_recovery_email(
        &self,
        account: &Account,
        typed_code: &str,
        context: &RequestContext,
    ) -> Result<Result<EmailAddress, CodeError>, StoreError> {
        let Some(code) = RecoveryCode::parse(typed_code) else { return Ok(Err(CodeError::Invalid)) };
        let event = NewAuditEvent {
            at: self.clock.now(),
            account_id: Some(account.id),
            kind: AuditKind::RecoveryEmailConfirmed,
            actor: Actor::Member,
            context: context.clone(),
            detail: account.recovery_email_pending.as_ref().map(|address| AuditDetail::Address(address.masked())),
        };
        self.secours.confirm_recovery_email(account.id, &code.hash(), event).await
    }

    /// Proposes a new address for the member's own account: the password is asked (it
    /// changes who receives the recovery mail), and a code is mailed to the new address;
    /// the account keeps its address until that code is typed (see
    /// [`MySpace::confirm_email`]).
    pub async fn propose_email(
        &self,
        account: &Account,
        session: &Session,
        typed: &str,
        password: SecretString,
        context: &RequestContext,
    ) -> Result<EmailAddress, EmailChangeError> {
        let email = EmailAddress::parse(typed)?;
        self.confirm_password(account, session, password, context).await.map_err(|error| match error {
            ChangeError::Store(error) => EmailChangeError::Store(error),
            other => EmailChangeError::Password(other),
        })?;
        if email == account.email {
            return Err(EmailChangeError::Same);
        }
        let now = self.clock.now();
        if !self.may_propose(format!("email:{}", account.id.get()), now).await? {
            return Err(EmailChangeError::TooMany);
        }
        self.own_address.propose(account.id, &email, now).await?;
        Ok(email)
    }

    /// Confirms the proposed own address with the code mailed to it: it becomes the
    /// account's address, and the old one is told.
    pub async fn confirm_email(
        &self,
        account: &Account,
        typed_code: &str,
        context: &RequestContext,
    ) -> Result<Result<EmailAddress, CodeError>, StoreError> {
        let Some(code) = RecoveryCode::parse(typed_code) else { return Ok(Err(CodeError::Invalid)) };
        self.own_address.confirm(account.id, &code.hash(), context, self.clock.now()).await
    }

    /// Corrects the member's name. `Ok(false)` when nothing changed.
    pub async fn rename(
        &self,
        account: &Account,
        names: &crate::account::NameParts,
        context: &RequestContext,
    ) -> Result<bool, StoreError> {
        self.own_address.rename(account.id, names, context, self.clock.now()).await
    }

    /// Counts a proposal of an address (`what` names the account and the kind) and says
    /// whether it is within [`PROPOSALS_PER_HOUR`]; one past it is not counted.
    async fn may_propose(&self, what: String, now: jiff::Timestamp) -> Result<bool, StoreError> {
        let key = ThrottleKey::ForgotRequests(what);
        let (proposed, _) = self.throttle.count(&key, jiff::SignedDuration::from_hours(1), now).await?;
        if proposed > PROPOSALS_PER_HOUR {
            self.throttle.uncount(&key, now).await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// The member's live sessions, newest first.
    pub async fn sessions(&self, account: AccountId) -> Result<Vec<OpenSession>, StoreError> {
        self.sessions.account_sessions(account, self.clock.now()).await
    }

    /// Ends the one of the member's other sessions that `is_target` picks (by its token's
    /// hash: the page names sessions by a handle derived from it), with what it opened
    /// (its applications are told), and records it. `Ok(false)` when none of the
    /// account's live sessions is picked, or only `current` (that one ends with "Se
    /// déconnecter").
    pub async fn end_session(
        &self,
        account: AccountId,
        current: &Session,
        is_target: impl Fn(&TokenHash) -> bool,
        context: &RequestContext,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let theirs = self.sessions.account_sessions(account, now).await?;
        let target = theirs.iter().map(|open| &open.session.token_hash).find(|hash| is_target(hash));
        let Some(target) = target.filter(|hash| **hash != current.token_hash) else {
            return Ok(false);
        };
        let event = NewAuditEvent {
            at: now,
            account_id: Some(account),
            kind: AuditKind::OtherSessionsEnded,
            actor: Actor::Member,
            context: context.clone(),
            detail: Some(crate::audit::AuditDetail::Sessions(1)),
        };
        self.sessions.delete_session(target, now, Some(event)).await?;
        Ok(true)
    }

    /// Ends every session of the member but this one, and records it, in one transaction.
    pub async fn end_other_sessions(
        &self,
        account: AccountId,
        session: &Session,
        context: &RequestContext,
    ) -> Result<u64, StoreError> {
        let event = NewAuditEvent {
            at: self.clock.now(),
            account_id: Some(account),
            kind: AuditKind::OtherSessionsEnded,
            actor: Actor::Member,
            context: context.clone(),
            detail: None,
        };
        let now = event.at;
        self.sessions.delete_account_sessions(account, Some(&session.token_hash), now, Some(event)).await
    }

    /// The policy in force for new passwords.
    pub fn password_policy(&self) -> PasswordPolicy {
        self.policy
    }
}
