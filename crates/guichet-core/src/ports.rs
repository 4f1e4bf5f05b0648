//! The storage contract. One implementation per backend lives in `guichet-store`;
//! one shared test suite holds both to what these comments promise.
//!
//! Every method takes "now" from the caller, never from the database's clock, so that
//! a moved test clock moves everything.

use async_trait::async_trait;
use jiff::Timestamp;

use crate::account::{Account, AccountId, DisplayName, EmailAddress, Identifier, NewAccount};
use crate::audit::{AuditEvent, NewAuditEvent, RequestContext};
use crate::lockout::LockoutPolicy;
use crate::password::PasswordHash;
use crate::session::{NewSession, Session};
use crate::token::TokenHash;

/// Which unique value was already taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The identifier.
    Identifier,
    /// The email address.
    Email,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value is already taken.
    #[error("{} already exists", match .0 { Conflict::Identifier => "an account with this identifier", Conflict::Email => "an account with this email address" })]
    Conflict(Conflict),
    /// The database failed or could not be reached.
    #[error("database error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What a failed login did to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Counted; `failures` within the window so far.
    Counted {
        /// Failures in the window, this one included.
        failures: u32,
    },
    /// This failure reached the threshold: the account is now locked.
    Locked {
        /// Until when.
        until: Timestamp,
    },
    /// The account was already locked when the failure arrived: not counted.
    AlreadyLocked,
}

/// Filters for listing accounts.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountFilter {
    /// Only accounts locked at `now`.
    pub locked_at: Option<Timestamp>,
}

/// Accounts, their passwords and their lockout state.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates an account and records `account_created`.
    /// `Err(StoreError::Conflict(…))` when the identifier or email is taken.
    async fn create_account(&self, new: &NewAccount, actor_event: NewAuditEvent) -> Result<Account, StoreError>;

    /// `Ok(None)` when no account has this identifier.
    async fn find_account_by_identifier(&self, identifier: &Identifier) -> Result<Option<Account>, StoreError>;

    /// `Ok(None)` when no account has this email address.
    async fn find_account_by_email(&self, email: &EmailAddress) -> Result<Option<Account>, StoreError>;

    /// `Ok(None)` when the id is unknown.
    async fn find_account(&self, id: AccountId) -> Result<Option<Account>, StoreError>;

    /// All accounts matching the filter, by identifier.
    async fn list_accounts(&self, filter: AccountFilter) -> Result<Vec<Account>, StoreError>;

    /// How many accounts exist.
    async fn count_accounts(&self) -> Result<u64, StoreError>;

    /// Records a wrong password, atomically with respect to every other login on the
    /// same account (also from other instances): the failure is audited, counted within
    /// `policy.window` since the last success or unlock, and locks the account when the
    /// count reaches `policy.threshold`. A failure arriving while the account is locked
    /// is audited as refused and not counted.
    async fn record_login_failure(
        &self,
        account: AccountId,
        policy: &LockoutPolicy,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<FailureOutcome, StoreError>;

    /// Records a successful login, clears the failure count and sets the last login,
    /// atomically — unless the account is locked at `now` (another request may have
    /// locked it while this password was checked): then nothing changes and the answer
    /// is `Ok(false)`.
    async fn record_login_success(
        &self,
        account: AccountId,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Records a login refused without a password check (locked account).
    async fn record_refused_login(
        &self,
        account: AccountId,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Lifts a lock and clears the failure count; audits `account_unlocked` when the
    /// account was locked. `Ok(false)` when it was not locked.
    async fn unlock_account(&self, account: AccountId, event: NewAuditEvent) -> Result<bool, StoreError>;

    /// Replaces the password hash (a rehash with new parameters: no audit event).
    async fn replace_password_hash(
        &self,
        account: AccountId,
        hash: &PasswordHash,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Changes the display name.
    async fn set_display_name(&self, account: AccountId, name: &DisplayName, now: Timestamp) -> Result<(), StoreError>;
}

/// Server-side sessions, keyed by the hash of the cookie's token.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    async fn create_session(&self, session: &NewSession) -> Result<(), StoreError>;

    /// The session, when it exists and has expired neither by idleness nor by age at
    /// `now`. `Ok(None)` otherwise.
    async fn find_session(&self, token: &TokenHash, now: Timestamp) -> Result<Option<Session>, StoreError>;

    /// Pushes back the idle expiry.
    async fn touch_session(
        &self,
        token: &TokenHash,
        now: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Ends one session. Ending a session that is gone is not an error.
    async fn delete_session(&self, token: &TokenHash) -> Result<(), StoreError>;

    /// Ends every session of an account but `keep`; returns how many ended.
    async fn delete_account_sessions(&self, account: AccountId, keep: Option<&TokenHash>) -> Result<u64, StoreError>;

    /// Removes sessions expired at `now`; returns how many.
    async fn purge_expired_sessions(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// The audit trail.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event.
    async fn record_event(&self, event: NewAuditEvent) -> Result<(), StoreError>;

    /// The account's most recent events, newest first.
    async fn account_events(&self, account: AccountId, limit: u32) -> Result<Vec<AuditEvent>, StoreError>;
}

/// Failed logins counted per address (see [`crate::lockout::throttle_key`]).
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Counts a failure for `key` at `now`.
    async fn record_address_failure(&self, key: &str, now: Timestamp) -> Result<(), StoreError>;

    /// Failures for `key` since `since`, and the time of the oldest of them.
    async fn address_failures_since(&self, key: &str, since: Timestamp)
    -> Result<(u64, Option<Timestamp>), StoreError>;

    /// Forgets failures older than `before`.
    async fn purge_address_failures(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// Whether storage answers.
#[async_trait]
pub trait Health: Send + Sync {
    /// `Ok(())` when the database answers a trivial query.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Everything guichet stores, behind one object.
pub trait Store: AccountStore + SessionStore + AuditStore + ThrottleStore + Health + std::fmt::Debug {}

impl<T: AccountStore + SessionStore + AuditStore + ThrottleStore + Health + std::fmt::Debug> Store for T {}
