//! What the RGPD's rights and retention periods need of storage.

use async_trait::async_trait;
use jiff::Timestamp;

use super::StoreError;
use crate::account::AccountId;
use crate::personal_data::PersonalData;
use crate::retention::{Cutoffs, Swept};

/// Retention rounds, exports and the erasures' lookups.
#[async_trait]
pub trait PrivacyStore: Send + Sync + std::fmt::Debug {
    /// Removes what the cutoffs say is past its period (audit lines, failed attempts and
    /// their counts, the mail log, closed requests) and cuts old network addresses; with
    /// `apply` false, only counts what it would do. Accounts are not touched here: the
    /// unused ones go through the erasure.
    async fn sweep(&self, cutoffs: &Cutoffs, apply: bool) -> Result<Swept, StoreError>;

    /// Members' accounts never signed in to, created and last changed before `before`,
    /// with no erasure asked for.
    async fn unused_accounts(&self, before: Timestamp) -> Result<Vec<AccountId>, StoreError>;

    /// Accounts whose asked erasure is due at `now`.
    async fn erasures_due(&self, now: Timestamp) -> Result<Vec<AccountId>, StoreError>;

    /// Everything held about the account, table by table (secrets left out: hashes of
    /// passwords, codes and tokens, sealed TOTP secrets, key material). `None` when
    /// there is no such account.
    async fn personal_data(&self, account: AccountId, now: Timestamp) -> Result<Option<PersonalData>, StoreError>;
}
