//! Managing accounts: what the command line (and later the staff console) does.

use std::sync::Arc;

use secrecy::SecretString;

use crate::account::{
    Account, DisplayName, DisplayNameError, EmailAddress, EmailError, Identifier, IdentifierError, NewAccount, Role,
};
use crate::audit::{Actor, AuditEvent, AuditKind, NewAuditEvent, RequestContext};
use crate::clock::Clock;
use crate::hashing::{HashError, PasswordHasher};
use crate::mail::{MailKind, NewMail};
use crate::password::{NewPassword, PasswordError, PasswordPolicy};
use crate::ports::{AccountFilter, Conflict, Reach, Store, StoreError};

/// A request to create an account, as typed.
#[derive(Debug)]
pub struct AddMember {
    /// Login identifier.
    pub identifier: String,
    /// Email address.
    pub email: String,
    /// Display name (may be empty).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Initial password; `None` leaves the account without one until it is set.
    pub password: Option<SecretString>,
    /// Mail the member an invitation code to set their password.
    pub invite: bool,
}

/// Why an account could not be created. The messages are shown to the operator.
#[derive(Debug, thiserror::Error)]
pub enum AddMemberError {
    /// Bad identifier.
    #[error("identifiant refusé")]
    Identifier(#[from] IdentifierError),
    /// Bad email.
    #[error("adresse refusée")]
    Email(#[from] EmailError),
    /// Bad name.
    #[error("nom refusé")]
    Name(#[from] DisplayNameError),
    /// Weak password.
    #[error("mot de passe refusé")]
    Password(#[from] PasswordError),
    /// Identifier or email already used.
    #[error("{}", match .0 { Conflict::Identifier => "cet identifiant est déjà pris", Conflict::Email => "cette adresse est déjà celle d'un autre compte" })]
    Taken(Conflict),
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
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
    #[error("aucun compte n'a l'identifiant « {0} »")]
    Unknown(String),
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
}

/// Account management.
#[derive(Debug, Clone)]
pub struct Members {
    store: Arc<dyn Store>,
    hasher: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
    policy: PasswordPolicy,
}

impl Members {
    /// Wires the use cases.
    pub fn new(
        store: Arc<dyn Store>,
        hasher: Arc<dyn PasswordHasher>,
        clock: Arc<dyn Clock>,
        policy: PasswordPolicy,
    ) -> Self {
        Self { store, hasher, clock, policy }
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
        let display_name = DisplayName::parse(&request.name)?;
        let password_hash = match request.password {
            Some(raw) => {
                let personal = [identifier.as_str(), email.as_str(), display_name.as_str()];
                let password = NewPassword::parse(raw, self.policy, &personal)?;
                Some(self.hasher.hash(password.into_secret()).await?)
            }
            None => None,
        };
        let then_mail = request.invite.then_some(MailKind::Invitation);
        let new = NewAccount { identifier, email, display_name, role: request.role, password_hash };
        let event = NewAuditEvent {
            at: self.clock.now(),
            account_id: None,
            kind: AuditKind::AccountCreated,
            actor,
            context,
            detail: Some(format!("rôle {}", request.role)),
        };
        Ok(self.store.create_account(&new, event, then_mail).await?)
    }

    /// The account with this identifier.
    pub async fn find(&self, identifier: &str) -> Result<Account, MemberError> {
        let unknown = || MemberError::Unknown(identifier.trim().to_owned());
        let parsed = Identifier::parse(identifier).map_err(|_| unknown())?;
        self.store.find_account_by_identifier(&parsed).await?.ok_or_else(unknown)
    }

    /// The account with this id. `Ok(None)` when there is none.
    pub async fn find_by_id(&self, id: crate::account::AccountId) -> Result<Option<Account>, StoreError> {
        self.store.find_account(id).await
    }

    /// The account with its recent events.
    pub async fn status(&self, identifier: &str, events: u32) -> Result<MemberStatus, MemberError> {
        let account = self.find(identifier).await?;
        let recent_events = self.store.account_events(account.id, events).await?;
        Ok(MemberStatus { account, recent_events })
    }

    /// Every account, or only those locked now.
    pub async fn list(&self, locked_only: bool) -> Result<Vec<Account>, StoreError> {
        let filter = AccountFilter { locked_at: locked_only.then(|| self.clock.now()) };
        self.store.list_accounts(filter).await
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
        Ok(self.store.unlock_account(account.id, event, Reach::Anyone).await?)
    }

    /// Mails the account its identifier and a temporary password, on the operator's
    /// word (the command line: whoever runs it holds the database already).
    pub async fn issue_temporary_password(&self, identifier: &str) -> Result<Account, MemberError> {
        let account = self.find(identifier).await?;
        let mail = NewMail {
            kind: MailKind::TemporaryPassword,
            account_id: Some(account.id),
            recipient: account.email.clone(),
            subject: None,
        };
        let event = NewAuditEvent {
            at: self.clock.now(),
            account_id: Some(account.id),
            kind: AuditKind::TemporaryPasswordIssued,
            actor: Actor::Operator,
            context: RequestContext::default(),
            detail: None,
        };
        self.store.queue_staff_mail(&mail, event, Reach::Anyone).await?;
        Ok(account)
    }

    /// Whether any account exists yet.
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.store.count_accounts().await? == 0)
    }

    /// The password policy in force.
    pub fn password_policy(&self) -> PasswordPolicy {
        self.policy
    }
}
