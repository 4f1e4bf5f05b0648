//! What guards the door besides passwords: the audit trail, counts per address and per
//! device mark, the server's key, and whether the database answers.

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

use super::StoreError;
use crate::account::AccountId;
use crate::audit::{AuditEvent, AuditKind, NewAuditEvent};
use crate::keys::ServerKey;
use crate::lockout::ThrottleKey;
use secrecy::SecretString;

/// The audit trail.
#[async_trait]
pub trait AuditStore: Send + Sync + std::fmt::Debug {
    /// Appends an event.
    async fn record_event(&self, event: NewAuditEvent) -> Result<(), StoreError>;

    /// The account's most recent events, newest first.
    async fn account_events(&self, account: AccountId, limit: u32) -> Result<Vec<AuditEvent>, StoreError>;

    /// Events of `kinds` per day since `since` (days are UTC, as Unix day numbers).
    async fn daily_counts(
        &self,
        kinds: &[AuditKind],
        since: Timestamp,
    ) -> Result<Vec<(i64, AuditKind, u64)>, StoreError>;
}

/// Counts per address (failed logins, "forgot" and assistance requests), in a sliding
/// window.
#[async_trait]
pub trait ThrottleStore: Send + Sync + std::fmt::Debug {
    /// Counts one for `key` at `now` and returns the count within `window` before `now`,
    /// this one included, with the time of the oldest counted. Atomic with respect to
    /// every other count of the same key (also from other instances): of N concurrent
    /// calls, the answers are N consecutive counts.
    async fn count(
        &self,
        key: &ThrottleKey,
        window: SignedDuration,
        now: Timestamp,
    ) -> Result<(u64, Option<Timestamp>), StoreError>;

    /// The count within `window` before `now`, counting nothing.
    async fn peek(&self, key: &ThrottleKey, window: SignedDuration, now: Timestamp) -> Result<u64, StoreError>;

    /// Takes back one made by [`ThrottleStore::count`] at `at` (a login that succeeded
    /// after all, or an attempt refused without being tried).
    async fn uncount(&self, key: &ThrottleKey, at: Timestamp) -> Result<(), StoreError>;

    /// Forgets counts older than `before`.
    async fn purge_counts(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// Failed logins counted per device cookie mark (see [`crate::device`]).
#[async_trait]
pub trait DeviceStore: Send + Sync + std::fmt::Debug {
    /// Counts an attempt with the mark `device` (its nonce) for `account` at `now`,
    /// atomically, and returns the attempts in its current window, this one included. A
    /// window opens at the first attempt counted after the previous one closed, and lasts
    /// `window`.
    async fn count_device_attempt(
        &self,
        device: &str,
        account: AccountId,
        window: SignedDuration,
        now: Timestamp,
    ) -> Result<u32, StoreError>;

    /// Forgets the mark's attempts (it just logged in).
    async fn clear_device_attempts(&self, device: &str) -> Result<(), StoreError>;

    /// Forgets windows opened before `before`.
    async fn purge_device_attempts(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// The server's secrets, shared by every instance.
#[async_trait]
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// The key named `name`: the one stored, or `candidate` when none is yet (it is then
    /// stored). Instances starting at once all end up with the first one stored.
    async fn server_key(&self, name: &str, candidate: &ServerKey, now: Timestamp) -> Result<ServerKey, StoreError>;

    /// The secret named `name` (a signing key's PEM), if one is stored.
    async fn find_secret(&self, name: &str) -> Result<Option<SecretString>, StoreError>;

    /// The secret named `name`: the one stored, or `candidate` when none is yet (it is
    /// then stored). Instances racing all end up with the first one stored.
    async fn keep_secret(
        &self,
        name: &str,
        candidate: &SecretString,
        now: Timestamp,
    ) -> Result<SecretString, StoreError>;

    /// Every secret named `name` or `name-…`, with its name and when it was stored,
    /// oldest first.
    async fn secrets_named(&self, name: &str) -> Result<Vec<(String, SecretString, Timestamp)>, StoreError>;
}

/// Whether storage answers.
#[async_trait]
pub trait Health: Send + Sync + std::fmt::Debug {
    /// `Ok(())` when the database answers a trivial query.
    async fn ping(&self) -> Result<(), StoreError>;

    /// `Ok(())` when the database commits a small write (at `now`): a full disk or a
    /// read-only database answers `Err`.
    async fn write_probe(&self, now: Timestamp) -> Result<(), StoreError>;

    /// How the database's schema compares with this binary's migrations.
    async fn schema(&self) -> Result<Schema, StoreError>;
}

/// The database's schema against this binary's migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Every migration of this binary applied, none other.
    Current,
    /// Migrations of this binary are not applied yet (`guichet migrate`).
    Behind,
    /// The database holds migrations this binary does not know: a newer guichet
    /// migrated it.
    Ahead,
}
