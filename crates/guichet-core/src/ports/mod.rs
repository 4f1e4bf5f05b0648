//! The storage contract, one trait per capability. One implementation per backend lives
//! in `guichet-store`; one shared test suite holds both to what these comments promise.
//! Each service of the core holds only the traits it uses ([`Ports`] hands them out).
//!
//! Every method takes "now" from the caller, never from the database's clock, so that
//! a moved test clock moves everything.

mod accounts;
mod desk;
mod groups;
mod guards;
mod mail;
#[cfg(test)]
pub(crate) mod memory;
mod oidc;
mod passkeys;
mod privacy;
mod sessions;
mod upstream;
mod work;

use std::sync::Arc;

use jiff::Timestamp;

pub use crate::account::AccountState;
pub use accounts::{AccountQuery, AccountStore, Page, Proof};
pub use desk::DeskStore;
pub use groups::GroupStore;
pub use guards::{AuditStore, DeviceStore, Health, KeyStore, Schema, ThrottleStore};
pub use mail::{OutboxStore, RecoveryStore};
pub use oidc::{CodeUse, OidcStore};
pub use passkeys::{CeremonyPurpose, PasskeyStore, StoredCeremony, StoredKey};
pub use privacy::PrivacyStore;
pub use sessions::SessionStore;
pub use upstream::{RequestPurpose, StoredRequest, UpstreamLink, UpstreamStore};
pub use work::{EventId, HeldAccount, HeldOidcCode, Secours, StoredTotp, Transactions, Work};

/// Which unique value was already taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The identifier.
    Identifier,
    /// The email address.
    Email,
    /// A group's name.
    Group,
    /// An OpenID Connect client's id.
    Client,
    /// An RPPS number.
    Rpps,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value is already taken.
    #[error("{} already exists", match .0 {
        Conflict::Identifier => "an account with this identifier",
        Conflict::Email => "an account with this email address",
        Conflict::Group => "a group with this name",
        Conflict::Client => "a client with this id",
        Conflict::Rpps => "an account with this RPPS number",
    })]
    Conflict(Conflict),
    /// The target no longer is what the caller decided on (a member became staff while
    /// an assistance action was on its way): nothing changed.
    #[error("the account changed meanwhile")]
    Changed,
    /// The database cannot take this now: its disk is full, it is locked past the wait,
    /// it cannot be reached. Nothing was written; trying again later may work.
    #[error("the database is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database failed.
    #[error("database error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Which accounts a staff write may land on, checked in its transaction: the core
/// decided with the account as it read it, and the write makes sure it is still so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Any account (administrators, the operator).
    Anyone,
    /// Only an account whose role is `member` (assistance staff):
    /// `Err(StoreError::Changed)` otherwise.
    MembersOnly,
}

impl Reach {
    /// Whether a staff write may land on an account with this role.
    pub fn admits(self, role: crate::account::Role) -> bool {
        self == Self::Anyone || role == crate::account::Role::Member
    }
}

/// How a change guarded by the last-administrator rule ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarded {
    /// Done.
    Done,
    /// Refused: it would leave no active administrator. Nothing changed.
    LastAdministrator,
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

/// Every port, each as its own trait object, made from one storage that implements them
/// all. Services take from it what they use, and nothing else.
#[derive(Debug, Clone)]
pub struct Ports {
    /// The directory of accounts.
    pub accounts: Arc<dyn AccountStore>,
    /// Units of work.
    pub transactions: Arc<dyn Transactions>,
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// The audit trail.
    pub audit: Arc<dyn AuditStore>,
    /// The outbox.
    pub outbox: Arc<dyn OutboxStore>,
    /// Recovery codes.
    pub recovery: Arc<dyn RecoveryStore>,
    /// The assistance desk.
    pub desk: Arc<dyn DeskStore>,
    /// Groups.
    pub groups: Arc<dyn GroupStore>,
    /// OpenID Connect clients, codes and grants.
    pub oidc: Arc<dyn OidcStore>,
    /// Security keys and passkeys.
    pub passkeys: Arc<dyn PasskeyStore>,
    /// Retention, exports, erasures.
    pub privacy: Arc<dyn PrivacyStore>,
    /// Upstream identity providers' links and requests.
    pub upstream: Arc<dyn UpstreamStore>,
    /// Counts per address.
    pub throttle: Arc<dyn ThrottleStore>,
    /// Counts per device mark.
    pub devices: Arc<dyn DeviceStore>,
    /// The server key.
    pub keys: Arc<dyn KeyStore>,
    /// Whether the database answers.
    pub health: Arc<dyn Health>,
}

impl Ports {
    /// Hands out one storage as every port.
    pub fn of<S>(store: Arc<S>) -> Self
    where
        S: AccountStore
            + Transactions
            + SessionStore
            + AuditStore
            + OutboxStore
            + RecoveryStore
            + DeskStore
            + GroupStore
            + OidcStore
            + PasskeyStore
            + PrivacyStore
            + UpstreamStore
            + ThrottleStore
            + DeviceStore
            + KeyStore
            + Health
            + 'static,
    {
        Self {
            accounts: store.clone(),
            transactions: store.clone(),
            sessions: store.clone(),
            audit: store.clone(),
            outbox: store.clone(),
            recovery: store.clone(),
            desk: store.clone(),
            groups: store.clone(),
            oidc: store.clone(),
            passkeys: store.clone(),
            privacy: store.clone(),
            upstream: store.clone(),
            throttle: store.clone(),
            devices: store.clone(),
            keys: store.clone(),
            health: store,
        }
    }
}
