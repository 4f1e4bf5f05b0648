//! "Mon espace": what members do to their own account — change their password, end
//! their other sessions — and what they see of it (recent logins, failed attempts).

use std::sync::Arc;

use secrecy::SecretString;

use crate::account::{Account, AccountId};
use crate::audit::{Activity, Actor, AuditKind, NewAuditEvent, RequestContext};
use crate::clock::Clock;
use crate::hashing::{HashError, PasswordHasher, Verification};
use crate::lockout::LockoutPolicy;
use crate::password::{NewPassword, PasswordError, PasswordPolicy};
use crate::ports::{AuditStore, CredentialStore, Ports, SessionStore, StoreError};
use crate::session::Session;

/// Why a password change did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The current password is wrong.
    #[error("le mot de passe actuel n'est pas le bon")]
    WrongCurrent,
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

/// A member's own account.
#[derive(Debug, Clone)]
pub struct MySpace {
    credentials: Arc<dyn CredentialStore>,
    sessions: Arc<dyn SessionStore>,
    audit: Arc<dyn AuditStore>,
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
            credentials: Arc::clone(&ports.credentials),
            sessions: Arc::clone(&ports.sessions),
            audit: Arc::clone(&ports.audit),
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

    /// Changes a member's own password. With `current` (an ordinary change) it must be
    /// right — a wrong one counts as a failed login; without (a forced change after a
    /// temporary password) it is not asked. The member's other sessions end and a
    /// notice is mailed.
    pub async fn change_password(
        &self,
        account: &Account,
        session: &Session,
        current: Option<SecretString>,
        new_password: SecretString,
        confirmation: &SecretString,
        context: &RequestContext,
    ) -> Result<(), ChangeError> {
        if let Some(current) = current {
            let hash = account.password_hash.clone().ok_or(ChangeError::WrongCurrent)?;
            if let Verification::Mismatch = self.hasher.verify(crate::password::normalised(&current), hash).await? {
                self.credentials.record_login_failure(account.id, &self.lockout, context, self.clock.now()).await?;
                return Err(ChangeError::WrongCurrent);
            }
        }
        let personal = [account.identifier.as_str(), account.email.as_str(), account.display_name.as_str()];
        let password = NewPassword::parse_confirmed(new_password, confirmation, self.policy, &personal)?;
        let hash = self.hasher.hash(password.into_secret()).await?;
        self.credentials.change_password(account.id, &hash, &session.token_hash, context, self.clock.now()).await?;
        Ok(())
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
        self.sessions.delete_account_sessions(account, Some(&session.token_hash), Some(event)).await
    }

    /// The policy in force for new passwords.
    pub fn password_policy(&self) -> PasswordPolicy {
        self.policy
    }
}
