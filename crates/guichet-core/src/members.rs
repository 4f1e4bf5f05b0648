//! Managing accounts: what the command line (and later the staff console) does.

use std::sync::Arc;

use secrecy::SecretString;

use crate::account::{
    Account, AccountId, DisplayNameError, EmailAddress, EmailError, Identifier, IdentifierError, NameError, NameParts,
    NewAccount, Role,
};
use crate::account_changes::AccountChanges;
use crate::audit::{Actor, AuditDetail, AuditEvent, AuditKind, NewAuditEvent, Origin, RequestContext};
use crate::clock::Clock;
use crate::credentials::Credentials;
use crate::hashing::{HashError, PasswordHasher};
use crate::mail::{MailKind, MailSubject, NewMail};
use crate::password::{NewPassword, PasswordError, PasswordPolicy};
use crate::ports::{
    AccountFilter, AccountStore, AuditStore, Conflict, Guarded, Health, OutboxStore, Ports, Reach, RecoveryStore,
    StoreError,
};

/// A request to create an account, as typed.
#[derive(Debug)]
pub struct AddMember {
    /// Login identifier.
    pub identifier: String,
    /// Email address.
    pub email: String,
    /// Display name (may be empty; with a given or family name, their join).
    pub name: String,
    /// Given name (may be empty).
    pub given_name: String,
    /// Family name (may be empty).
    pub family_name: String,
    /// Role.
    pub role: Role,
    /// Initial password; `None` leaves the account without one until it is set.
    pub password: Option<SecretString>,
    /// Mail the member an invitation code to set their password.
    pub invite: bool,
    /// The RPPS number (empty: none).
    pub rpps: String,
}

/// Why an instance is not ready to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// Migrations of this binary are not applied.
    #[error("the database schema is behind: run guichet migrate")]
    Behind,
    /// A newer guichet migrated the database.
    #[error("the database is newer than this binary: upgrade guichet")]
    Ahead,
    /// The database does not answer.
    #[error("the database does not answer")]
    NoAnswer,
    /// The database does not commit a write (a full disk, a read-only standby).
    #[error("the database refuses writes")]
    NoWrites,
}

/// Why an account could not be created. The messages are shown to the operator.
#[derive(Debug, thiserror::Error)]
pub enum AddMemberError {
    /// Bad identifier.
    #[error("{}", crate::catalogue::ADD_MEMBER_ERROR_IDENTIFIER)]
    Identifier(#[from] IdentifierError),
    /// Bad email.
    #[error("{}", crate::catalogue::ADD_MEMBER_ERROR_EMAIL)]
    Email(#[from] EmailError),
    /// Bad name.
    #[error("{}", crate::catalogue::ADD_MEMBER_ERROR_NAME)]
    Name(#[from] NameError),
    /// Weak password.
    #[error("{}", crate::catalogue::ADD_MEMBER_ERROR_PASSWORD)]
    Password(#[from] PasswordError),
    /// Not an RPPS number.
    #[error("{}", crate::catalogue::ADD_MEMBER_ERROR_RPPS)]
    Rpps(#[from] crate::account::RppsError),
    /// Identifier or email already used.
    #[error("{}", crate::catalogue::taken(*.0))]
    Taken(Conflict),
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl From<DisplayNameError> for AddMemberError {
    fn from(error: DisplayNameError) -> Self {
        Self::Name(NameError::Part(error))
    }
}

impl From<StoreError> for AddMemberError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(conflict) => Self::Taken(conflict),
            other => Self::Store(other),
        }
    }
}

/// Why an action on an existing account failed.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// No account has this identifier.
    #[error("{}", crate::catalogue::unknown_identifier(.0))]
    Unknown(String),
    /// It is the last active administrator.
    #[error("{}", crate::catalogue::LAST_ADMINISTRATOR)]
    LastAdministrator,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An account with what staff need to know about it.
#[derive(Debug, Clone)]
pub struct MemberStatus {
    /// The account.
    pub account: Account,
    /// Its most recent audit events, newest first.
    pub recent_events: Vec<AuditEvent>,
    /// Recovery codes still usable.
    pub pending_codes: u64,
}

/// Account management.
#[derive(Debug, Clone)]
pub struct Members {
    accounts: Arc<dyn AccountStore>,
    credentials: Credentials,
    account_changes: AccountChanges,
    audit: Arc<dyn AuditStore>,
    outbox: Arc<dyn OutboxStore>,
    health: Arc<dyn Health>,
    recovery: Arc<dyn RecoveryStore>,
    hasher: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
    policy: PasswordPolicy,
}

impl Members {
    /// Wires the use cases.
    pub fn new(ports: &Ports, hasher: Arc<dyn PasswordHasher>, clock: Arc<dyn Clock>, policy: PasswordPolicy) -> Self {
        Self {
            accounts: Arc::clone(&ports.accounts),
            credentials: Credentials::of(ports),
            account_changes: AccountChanges::of(ports),
            audit: Arc::clone(&ports.audit),
            outbox: Arc::clone(&ports.outbox),
            health: Arc::clone(&ports.health),
            recovery: Arc::clone(&ports.recovery),
            hasher,
            clock,
            policy,
        }
    }

    /// Creates an account.
    pub async fn add(
        &self,
        request: AddMember,
        actor: Actor,
        context: RequestContext,
    ) -> Result<Account, AddMemberError> {
        let identifier = Identifier::parse(&request.identifier)?;
        let email = EmailAddress::parse(&request.email)?;
        let (display_name, names) = NameParts::with_display(&request.name, &request.given_name, &request.family_name)?;
        let password_hash = match request.password {
            Some(raw) => {
                let personal = [identifier.as_str(), email.as_str(), display_name.as_str()];
                let password = NewPassword::parse(raw, self.policy, &personal)?;
                Some(self.hasher.hash(password.into_secret()).await?)
            }
            None => None,
        };
        let then_mail = request.invite.then_some(MailKind::Invitation);
        let rpps = match request.rpps.trim() {
            "" => None,
            typed => Some(crate::account::Rpps::parse(typed)?),
        };
        let new = NewAccount { identifier, email, display_name, names, role: request.role, password_hash, rpps };
        let event = NewAuditEvent {
            at: self.clock.now(),
            account_id: None,
            kind: AuditKind::AccountCreated,
            actor,
            context,
            detail: Some(AuditDetail::Created(request.role, Origin::Created)),
        };
        Ok(self.account_changes.create_account(&new, event, then_mail).await?)
    }

    /// The account with this identifier.
    pub async fn find(&self, identifier: &str) -> Result<Account, MemberError> {
        let unknown = || MemberError::Unknown(identifier.trim().to_owned());
        let parsed = Identifier::parse(identifier).map_err(|_| unknown())?;
        self.accounts.find_account_by_identifier(&parsed).await?.ok_or_else(unknown)
    }

    /// The account with this id. `Ok(None)` when there is none.
    pub async fn find_by_id(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        self.accounts.find_account(id).await
    }

    /// The account with its recent events.
    pub async fn status(&self, identifier: &str, events: u32) -> Result<MemberStatus, MemberError> {
        let account = self.find(identifier).await?;
        let recent_events = self.audit.account_events(account.id, events).await?;
        let pending_codes = self.recovery.pending_codes(account.id, self.clock.now()).await?;
        Ok(MemberStatus { account, recent_events, pending_codes })
    }

    /// Every account, or only those locked now.
    pub async fn list(&self, locked_only: bool) -> Result<Vec<Account>, StoreError> {
        let filter = AccountFilter { locked_at: locked_only.then(|| self.clock.now()) };
        self.accounts.list_accounts(filter).await
    }

    /// Disables (ending its sessions) or re-enables an account, on the operator's word;
    /// the last active administrator stays.
    pub async fn set_disabled(&self, identifier: &str, disabled: bool) -> Result<(), MemberError> {
        let account = self.find(identifier).await?;
        let event = NewAuditEvent {
            at: self.clock.now(),
            account_id: Some(account.id),
            kind: if disabled { AuditKind::AccountDisabled } else { AuditKind::AccountEnabled },
            actor: Actor::Operator,
            context: RequestContext::default(),
            detail: None,
        };
        match self.account_changes.set_disabled(account.id, disabled, event, Reach::Anyone).await? {
            Guarded::Done => Ok(()),
            Guarded::LastAdministrator => Err(MemberError::LastAdministrator),
        }
    }

    /// Lifts a lock now. `Ok(false)` when the account was not locked.
    pub async fn unlock(&self, identifier: &str, actor: Actor, context: RequestContext) -> Result<bool, MemberError> {
        let account = self.find(identifier).await?;
        let event = NewAuditEvent {
            at: self.clock.now(),
            account_id: Some(account.id),
            kind: AuditKind::AccountUnlocked,
            actor,
            context,
            detail: None,
        };
        Ok(self.credentials.unlock_account(account.id, event, Reach::Anyone).await?)
    }

    /// Mails the account its identifier and a temporary password, on the operator's
    /// word (the command line: whoever runs it holds the database already).
    pub async fn issue_temporary_password(&self, identifier: &str) -> Result<Account, MemberError> {
        let account = self.find(identifier).await?;
        let mail = NewMail {
            kind: MailKind::TemporaryPassword,
            account_id: Some(account.id),
            recipient: account.email.clone(),
            subject: MailSubject::None,
        };
        let event = NewAuditEvent {
            at: self.clock.now(),
            account_id: Some(account.id),
            kind: AuditKind::TemporaryPasswordIssued,
            actor: Actor::Operator,
            context: RequestContext::default(),
            detail: None,
        };
        self.account_changes.queue_staff_mail(&mail, event, Reach::Anyone).await?;
        Ok(account)
    }

    /// The account's messages, newest first.
    pub async fn mail_log(&self, account: AccountId, limit: u32) -> Result<Vec<crate::mail::MailLogEntry>, StoreError> {
        self.outbox.account_mail(account, limit).await
    }

    /// `Ok(())` when the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.health.ping().await
    }

    /// Whether this instance can do its work: the schema is the one it knows, and the
    /// database commits a write. `Err` says why not, for the operator.
    pub async fn readiness(&self) -> Result<(), NotReady> {
        match self.health.schema().await {
            Ok(crate::ports::Schema::Current) => {}
            Ok(crate::ports::Schema::Behind) => return Err(NotReady::Behind),
            Ok(crate::ports::Schema::Ahead) => return Err(NotReady::Ahead),
            Err(_) => return Err(NotReady::NoAnswer),
        }
        self.health.write_probe(self.clock.now()).await.map_err(|_| NotReady::NoWrites)
    }

    /// How the database's schema compares with this binary's.
    pub async fn schema(&self) -> Result<crate::ports::Schema, StoreError> {
        self.health.schema().await
    }

    /// Whether any account exists yet.
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.accounts.count_accounts().await? == 0)
    }

    /// The password policy in force.
    pub fn password_policy(&self) -> PasswordPolicy {
        self.policy
    }
}
