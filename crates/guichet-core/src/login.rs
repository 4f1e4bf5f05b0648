//! The login use case: throttle by address, refuse locked accounts without looking at
//! the password, verify, count failures, lock — and answer every failure the same way,
//! in the same time.

use std::sync::Arc;

use jiff::SignedDuration;
use secrecy::SecretString;

use crate::account::{Account, Identifier};
use crate::audit::{Actor, AuditKind, NewAuditEvent, RequestContext};
use crate::clock::Clock;
use crate::hashing::{HashError, PasswordHasher, Verification};
use crate::lockout::{AddressThrottlePolicy, LockoutPolicy, throttle_key};
use crate::password::PasswordHash;
use crate::ports::{FailureOutcome, Store, StoreError};
use crate::token::PlainToken;

/// Why a login did not go through.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown identifier, wrong password, locked or password-less account: one answer
    /// for all, so that nobody learns which.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many failures from this address: slow down.
    #[error("too many failed logins from this address")]
    Throttled {
        /// When to try again.
        retry_after: SignedDuration,
    },
    /// The hashing queue is full: the server is flooded with logins.
    #[error("too many logins at once")]
    Busy,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed.
    #[error(transparent)]
    Hash(HashError),
}

impl From<HashError> for LoginError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy => Self::Busy,
            other => Self::Hash(other),
        }
    }
}

/// Checks identifiers and passwords.
#[derive(Debug, Clone)]
pub struct Authenticator {
    store: Arc<dyn Store>,
    hasher: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
    lockout: LockoutPolicy,
    throttle: AddressThrottlePolicy,
    /// Verified against when there is no real hash to check, so that every failure
    /// costs one hash.
    dummy_hash: PasswordHash,
}

impl Authenticator {
    /// Wires the use case; hashes a random password once for the dummy hash.
    pub async fn new(
        store: Arc<dyn Store>,
        hasher: Arc<dyn PasswordHasher>,
        clock: Arc<dyn Clock>,
        lockout: LockoutPolicy,
        throttle: AddressThrottlePolicy,
    ) -> Result<Self, HashError> {
        let dummy_hash = hasher.hash(SecretString::from(PlainToken::generate().expose().to_owned())).await?;
        Ok(Self { store, hasher, clock, lockout, throttle, dummy_hash })
    }

    /// The lockout policy in force.
    pub fn lockout_policy(&self) -> LockoutPolicy {
        self.lockout
    }

    /// Logs in. On success, returns the account as it was before this login.
    pub async fn login(
        &self,
        identifier: &str,
        password: SecretString,
        context: &RequestContext,
    ) -> Result<Account, LoginError> {
        let password = crate::password::normalised(&password);
        let throttle_key = context.address.map(throttle_key);
        if let Some(key) = &throttle_key {
            self.check_address(key).await?;
        }
        let result = self.attempt(identifier, password, context).await;
        if let (Err(LoginError::InvalidCredentials), Some(key)) = (&result, &throttle_key) {
            self.store.record_address_failure(key, self.clock.now()).await?;
        }
        result
    }

    async fn check_address(&self, key: &str) -> Result<(), LoginError> {
        let now = self.clock.now();
        let since = now.saturating_sub(self.throttle.window).unwrap_or(now);
        let (failures, oldest) = self.store.address_failures_since(key, since).await?;
        if failures < u64::from(self.throttle.max_failures) {
            return Ok(());
        }
        let frees_at = oldest.unwrap_or(now).saturating_add(self.throttle.window).unwrap_or(now);
        let retry_after = frees_at.duration_since(now).max(SignedDuration::from_secs(1));
        tracing::warn!(address = key, failures, "address throttled after many failed logins");
        Err(LoginError::Throttled { retry_after })
    }

    async fn attempt(
        &self,
        identifier: &str,
        password: SecretString,
        context: &RequestContext,
    ) -> Result<Account, LoginError> {
        let account = match Identifier::parse(identifier) {
            Ok(identifier) => self.store.find_account_by_identifier(&identifier).await?,
            Err(_) => None,
        };
        let now = self.clock.now();
        let Some(account) = account else {
            self.spend_one_hash(password).await?;
            self.store
                .record_event(NewAuditEvent {
                    at: now,
                    account_id: None,
                    kind: AuditKind::LoginFailed,
                    actor: Actor::Member,
                    context: context.clone(),
                    detail: Some("identifiant inconnu".into()),
                })
                .await?;
            return Err(LoginError::InvalidCredentials);
        };
        let hash = match &account.password_hash {
            Some(hash) if account.may_log_in_at(now) => hash.clone(),
            _ => {
                self.spend_one_hash(password).await?;
                self.store.record_refused_login(account.id, context, now).await?;
                return Err(LoginError::InvalidCredentials);
            }
        };
        match self.hasher.verify(password, hash.clone()).await? {
            Verification::Mismatch => {
                let outcome =
                    self.store.record_login_failure(account.id, &self.lockout, context, self.clock.now()).await?;
                if let FailureOutcome::Locked { until } = outcome {
                    tracing::info!(account = account.id.get(), %until, "account locked after repeated failures");
                }
                Err(LoginError::InvalidCredentials)
            }
            Verification::Match { upgraded } => {
                if !self.store.record_login_success(account.id, &hash, context, self.clock.now()).await? {
                    // Locked by a concurrent failure while this password was being checked.
                    return Err(LoginError::InvalidCredentials);
                }
                if let Some(new_hash) = upgraded {
                    self.store.replace_password_hash(account.id, &hash, &new_hash, self.clock.now()).await?;
                }
                Ok(account)
            }
        }
    }

    /// Costs what a real check costs, and throws the answer away.
    async fn spend_one_hash(&self, password: SecretString) -> Result<(), LoginError> {
        let _ = self.hasher.verify(password, self.dummy_hash.clone()).await?;
        Ok(())
    }
}
