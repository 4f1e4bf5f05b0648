//! Accounts: who they are (the directory). Their passwords and locks, and what staff
//! change on them, are the core's rules over units of work (`work.rs`).

use async_trait::async_trait;

use super::{AccountFilter, StoreError};
use jiff::Timestamp;

use crate::account::{Account, AccountId, AccountState, EmailAddress, Identifier, Role};
use crate::groups::GroupName;
use crate::password::PasswordHash;
use crate::token::TokenHash;

/// The directory of accounts: finding them (the core creates them, in a unit of work).
#[async_trait]
pub trait AccountStore: Send + Sync + std::fmt::Debug {
    /// `Ok(None)` when no account has this identifier.
    async fn find_account_by_identifier(&self, identifier: &Identifier) -> Result<Option<Account>, StoreError>;

    /// `Ok(None)` when no account has this email address.
    async fn find_account_by_email(&self, email: &EmailAddress) -> Result<Option<Account>, StoreError>;

    /// The account whose address, or else whose confirmed secours address, is `email`.
    async fn find_account_by_any_address(&self, email: &EmailAddress) -> Result<Option<Account>, StoreError>;

    /// `Ok(None)` when the id is unknown.
    async fn find_account(&self, id: AccountId) -> Result<Option<Account>, StoreError>;

    /// All accounts matching the filter, by identifier.
    async fn list_accounts(&self, filter: AccountFilter) -> Result<Vec<Account>, StoreError>;

    /// The account's second factors (a missing account has none).
    async fn second_factors(&self, account: AccountId) -> Result<crate::second_factor::FactorStatus, StoreError>;

    /// How many accounts exist.
    async fn count_accounts(&self) -> Result<u64, StoreError>;

    /// One page of the accounts `query` selects at `now`, by identifier, with how many
    /// it selects in all.
    async fn browse_accounts(
        &self,
        query: &AccountQuery,
        now: Timestamp,
        page: Page,
    ) -> Result<(Vec<Account>, u64), StoreError>;
}

/// Which accounts the console lists; every part left empty selects everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountQuery {
    /// Contained in the identifier, the address or the name, case aside (`%` and `_`
    /// are matched literally).
    pub text: String,
    /// Only this role.
    pub role: Option<Role>,
    /// Only accounts in this state.
    pub state: Option<AccountState>,
    /// Only this group's members.
    pub group: Option<GroupName>,
    /// Only accounts whose address refused guichet's mail since then: the latest message
    /// to it that was sent or given up was given up (the desk's refusal rule).
    pub refused_since: Option<Timestamp>,
}

/// A page of a list: `offset` rows skipped, at most `limit` shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows skipped.
    pub offset: u64,
    /// Rows shown at most.
    pub limit: u32,
}

/// What a successful login checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// The password, with this hash.
    Password(PasswordHash),
    /// The temporary password, with this hash.
    Temporary(TokenHash),
}
