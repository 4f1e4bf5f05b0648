//! Accounts: who they are (the directory), their passwords and locks (credentials),
//! and what administrators change on them.

use async_trait::async_trait;
use jiff::Timestamp;

use super::{AccountFilter, Guarded, Reach, StoreError};
use crate::account::{Account, AccountId, DisplayName, EmailAddress, Identifier, NewAccount, Role};
use crate::audit::NewAuditEvent;
use crate::mail::MailKind;
use crate::password::PasswordHash;
use crate::token::TokenHash;

/// The directory of accounts: creating and finding them.
#[async_trait]
pub trait AccountStore: Send + Sync + std::fmt::Debug {
    /// Creates an account, records `account_created` and, with `then_mail`, queues that
    /// message to the account in the same transaction.
    /// `Err(StoreError::Conflict(…))` when the identifier or email is taken.
    async fn create_account(
        &self,
        new: &NewAccount,
        event: NewAuditEvent,
        then_mail: Option<MailKind>,
    ) -> Result<Account, StoreError>;

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

    /// Imports a batch of rows in one transaction, by the operator; one outcome per row,
    /// in order. A new identifier is created (audited; invited when asked and the row has
    /// no password hash) unless its email is another account's, own or secours. An
    /// existing one is rejected, or with `options.update` gets the row's email, name and
    /// groups (and its password hash with `options.update_passwords`), audited, and is
    /// `Unchanged` when it already had them. Missing groups reject the row, or are created
    /// with `options.create_groups`.
    async fn import_accounts(
        &self,
        rows: &[crate::import::ImportRow],
        options: crate::import::ImportOptions,
        now: Timestamp,
    ) -> Result<Vec<crate::import::ImportOutcome>, StoreError>;
}

/// What a successful login checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// The password, with this hash.
    Password(PasswordHash),
    /// The temporary password, with this hash.
    Temporary(TokenHash),
}

/// What administrators and assistance staff change on an account (authority is
/// decided in the core; each write checks its [`Reach`] again).
#[async_trait]
pub trait AccountAdminStore: Send + Sync + std::fmt::Debug {
    /// Disables (ending every session) or re-enables an account, with its audit line —
    /// unless it would disable the last active administrator: `Ok(LastAdministrator)`
    /// and nothing changes. The check and the change are one transaction that holds the
    /// active administrators' rows, so two administrators disabling each other at once
    /// cannot both succeed.
    async fn set_disabled(
        &self,
        account: AccountId,
        disabled: bool,
        event: NewAuditEvent,
        reach: Reach,
    ) -> Result<Guarded, StoreError>;

    /// Changes email and name, with the audit line. When the email changes, in the same
    /// transaction: the account's unused codes are used up, a temporary password still
    /// pending is revoked (the account keeps no password until the member chooses one),
    /// the device cookie marks given so far stop counting, and an `EmailChanged` notice is
    /// queued to the *old* address. `Err(Conflict(Email))` when the new address is taken.
    async fn change_details(
        &self,
        account: AccountId,
        email: &EmailAddress,
        name: &DisplayName,
        event: NewAuditEvent,
        reach: Reach,
    ) -> Result<(), StoreError>;

    /// Changes the role, with the same guard as [`StaffStore::set_disabled`]: demoting the
    /// last active administrator answers `Ok(LastAdministrator)` and changes nothing. A
    /// member who becomes staff starts afresh, in the same transaction: sessions ended,
    /// unused codes used up, a pending temporary password revoked, device marks voided —
    /// nothing handed out while they were a member carries staff rights.
    async fn set_role(&self, account: AccountId, role: Role, event: NewAuditEvent) -> Result<Guarded, StoreError>;
}
