//! "Forgot identifier" and "forgot password": the requests (which only queue a message,
//! the same way whether or not the address is known) and the reset itself.

use std::sync::Arc;

use secrecy::SecretString;

use crate::account::{AccountId, EmailAddress, EmailError};
use crate::audit::RequestContext;
use crate::clock::Clock;
use crate::codes::{CodeError, RecoveryCode, StoredCode};
use crate::credentials::Credentials;
use crate::hashing::{HashError, PasswordHasher};
use crate::lockout::ThrottleKey;
use crate::mail::{MailKind, MailSubject, NewMail};
use crate::password::{NewPassword, PasswordError, PasswordPolicy};
use crate::ports::{AccountStore, OutboxStore, Ports, RecoveryStore, StoreError, ThrottleStore};

/// Why a request could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The address typed cannot be an address (said the same for known and unknown ones).
    #[error(transparent)]
    Email(#[from] EmailError),
    /// Too many requests from this address within the hour.
    #[error("too many requests from this address")]
    TooMany,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// "Forgot" requests one address may make per hour: a hospital's members asking now
/// and then stay far below; a robot filling the outbox does not.
pub const REQUESTS_PER_ADDRESS_PER_HOUR: u64 = 50;

/// Why a reset did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// The code is invalid, used or expired.
    #[error(transparent)]
    Code(#[from] CodeError),
    /// The new password does not meet the policy.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The account was disabled by the desk: a new password would not open it.
    #[error("{}", crate::catalogue::RESET_ERROR_DISABLED)]
    Disabled,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed (or its queue is full).
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// Self-service recovery.
#[derive(Debug, Clone)]
pub struct Recovery {
    accounts: Arc<dyn AccountStore>,
    outbox: Arc<dyn OutboxStore>,
    recovery: Arc<dyn RecoveryStore>,
    credentials: Credentials,
    throttle: Arc<dyn ThrottleStore>,
    hasher: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
    policy: PasswordPolicy,
}

impl Recovery {
    /// Wires the use cases.
    pub fn new(ports: &Ports, hasher: Arc<dyn PasswordHasher>, clock: Arc<dyn Clock>, policy: PasswordPolicy) -> Self {
        Self {
            accounts: Arc::clone(&ports.accounts),
            outbox: Arc::clone(&ports.outbox),
            recovery: Arc::clone(&ports.recovery),
            credentials: Credentials::of(ports),
            throttle: Arc::clone(&ports.throttle),
            hasher,
            clock,
            policy,
        }
    }

    /// Queues "your identifier" to `typed`. The address is matched to an account only
    /// when the message is sent, so this does the same work for every address.
    pub async fn request_identifier(&self, typed: &str, context: &RequestContext) -> Result<(), RequestError> {
        self.request(MailKind::ForgotIdentifier, typed, context).await
    }

    /// Queues a reset code to `typed`, the same way.
    pub async fn request_reset(&self, typed: &str, context: &RequestContext) -> Result<(), RequestError> {
        self.request(MailKind::PasswordReset, typed, context).await
    }

    /// Counts a request from the address; `Err(TooMany)` past the hourly allowance.
    pub async fn count_request(&self, context: &RequestContext) -> Result<(), RequestError> {
        let Some(address) = context.address else { return Ok(()) };
        let key = ThrottleKey::ForgotRequests(crate::lockout::throttle_key(address));
        let now = self.clock.now();
        let (requests, _) = self.throttle.count(&key, jiff::SignedDuration::from_hours(1), now).await?;
        if requests > REQUESTS_PER_ADDRESS_PER_HOUR {
            metrics::counter!("guichet_throttled_total", "what" => "forgot").increment(1);
            self.throttle.uncount(&key, now).await?;
            return Err(RequestError::TooMany);
        }
        Ok(())
    }

    async fn request(&self, kind: MailKind, typed: &str, context: &RequestContext) -> Result<(), RequestError> {
        let recipient = EmailAddress::parse(typed)?;
        self.count_request(context).await?;
        self.outbox
            .enqueue_mail(&NewMail { kind, account_id: None, recipient, subject: MailSubject::None }, self.clock.now())
            .await?;
        Ok(())
    }

    /// Queues a new code for the account an expired (or still valid) code belonged to:
    /// the "send me a new code" button of the code form. Nothing for an unknown code, nor
    /// for a used one: a code seen once (in an old mail, a shared screen) must not let
    /// anyone keep mailing the account.
    pub async fn request_reset_from_code(&self, typed: &str) -> Result<(), StoreError> {
        let Some(code) = RecoveryCode::parse(typed) else { return Ok(()) };
        let Some(stored) = self.recovery.find_code(&code.hash()).await? else { return Ok(()) };
        if stored.used_at.is_some() {
            return Ok(());
        }
        let Some(account) = self.accounts.find_account(stored.account_id).await? else { return Ok(()) };
        let mail = NewMail {
            kind: MailKind::PasswordReset,
            account_id: Some(account.id),
            recipient: account.email,
            subject: MailSubject::None,
        };
        self.outbox.enqueue_mail(&mail, self.clock.now()).await?;
        Ok(())
    }

    /// The code behind what was typed, if it can be used now.
    pub async fn check(&self, typed: &str) -> Result<StoredCode, ResetError> {
        let code = RecoveryCode::parse(typed).ok_or(CodeError::Invalid)?;
        let stored = self.recovery.find_code(&code.hash()).await?.ok_or(CodeError::Invalid)?;
        stored.usable_at(self.clock.now())?;
        Ok(stored)
    }

    /// Sets a new password with a code: checks the code, the password against the
    /// policy, hashes it, then uses the code — once, whatever races it.
    pub async fn reset(
        &self,
        typed_code: &str,
        new_password: SecretString,
        confirmation: &SecretString,
        context: &RequestContext,
    ) -> Result<AccountId, ResetError> {
        let stored = self.check(typed_code).await?;
        let account = self.accounts.find_account(stored.account_id).await?.ok_or(CodeError::Invalid)?;
        if account.disabled_at.is_some() {
            return Err(ResetError::Disabled);
        }
        let personal = [account.identifier.as_str(), account.email.as_str(), account.display_name.as_str()];
        let password = NewPassword::parse_confirmed(new_password, confirmation, self.policy, &personal)?;
        let hash = self.hasher.hash(password.into_secret()).await?;
        let code = RecoveryCode::parse(typed_code).ok_or(CodeError::Invalid)?;
        Ok(self.credentials.redeem_code(&code.hash(), &hash, context, self.clock.now()).await??)
    }

    /// The password policy in force.
    pub fn password_policy(&self) -> PasswordPolicy {
        self.policy
    }
}
