//! Accounts: who they are (the directory). Their passwords and locks, and what staff
//! change on them, are the core's rules over units of work (`work.rs`).

use async_trait::async_trait;

use super::{AccountFilter, StoreError};
use crate::account::{Account, AccountId, EmailAddress, Identifier};
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

    /// How many accounts exist.
    async fn count_accounts(&self) -> Result<u64, StoreError>;

    /// Accounts whose identifier, email or name contains `query` (case-insensitive),
    /// by identifier.
    async fn search_accounts(&self, query: &str, limit: u32) -> Result<Vec<Account>, StoreError>;
}

/// What a successful login checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// The password, with this hash.
    Password(PasswordHash),
    /// The temporary password, with this hash.
    Temporary(TokenHash),
}
