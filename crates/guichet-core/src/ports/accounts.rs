//! Accounts: who they are (the directory), their passwords and locks (credentials),
//! and what administrators change on them.

use async_trait::async_trait;
use jiff::Timestamp;

use super::{AccountFilter, FailureOutcome, Guarded, Reach, StoreError};
use crate::account::{Account, AccountId, DisplayName, EmailAddress, Identifier, NewAccount, Role};
use crate::audit::{NewAuditEvent, RequestContext};
use crate::lockout::{LockoutPolicy, ThrottleKey};
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

/// Passwords and locks: every login's outcome, and every change of password.
#[async_trait]
pub trait CredentialStore: Send + Sync + std::fmt::Debug {
    /// Records a wrong password, atomically with respect to every other login on the
    /// same account (also from other instances): the failure is audited, counted within
    /// `policy.window` since the last success, unlock or lock, and locks the account when the
    /// count reaches `policy.threshold` — and then queues the lock notice to the account's
    /// address in the same transaction. A failure arriving while the account is locked
    /// is audited as refused and not counted.
    async fn record_login_failure(
        &self,
        account: AccountId,
        policy: &LockoutPolicy,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<FailureOutcome, StoreError>;

    /// Records a successful login, clears the failure count and sets the last login,
    /// atomically — unless, at `now`, the account is locked (and not `despite_lock`) or
    /// disabled, or what was `verified` no longer holds (another request may have locked
    /// it, a reset replaced the password, or the temporary password expired or was
    /// replaced, while this one was checked): then nothing changes and the answer is
    /// `Ok(false)`. A temporary password is *not* used up: only choosing a new password
    /// does that. A login `despite_lock` (from a device cookie, or with a temporary
    /// password) leaves a lock in place, with its failures: the stranger who caused it
    /// stays locked out. The `counted` attempts (see [`ThrottleStore::count`]) are taken
    /// back in the same transaction: a success is not a failure. With `rehash` (the
    /// password's hash made anew with the current parameters, or a legacy hash replaced by
    /// Argon2id) the stored hash is replaced in the same statement: nothing of the old one
    /// remains.
    #[expect(clippy::too_many_arguments, reason = "one atomic step: each argument is a condition or a part of it")]
    async fn record_login_success(
        &self,
        account: AccountId,
        verified: &Proof,
        rehash: Option<&PasswordHash>,
        despite_lock: bool,
        counted: &[(ThrottleKey, Timestamp)],
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Records a wrong password from a browser holding a device cookie for the account:
    /// audited (`login_failed_on_device`) but not counted toward the account's lock.
    async fn record_device_login_failure(
        &self,
        account: AccountId,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Records a login refused without a password check (locked account).
    async fn record_refused_login(
        &self,
        account: AccountId,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Lifts a lock and clears the failure count; audits `account_unlocked` when the
    /// account was locked. `Ok(false)` when it was not locked.
    async fn unlock_account(&self, account: AccountId, event: NewAuditEvent, reach: Reach) -> Result<bool, StoreError>;

    /// Replaces the password hash by a rehash of the same password with new parameters
    /// (no audit event) — only if it is still `old`.
    async fn replace_password_hash(
        &self,
        account: AccountId,
        old: &PasswordHash,
        new: &PasswordHash,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Gives the account a temporary password (by its hash) that stops working at
    /// `expires_at`, beside its password, which keeps working; it replaces any earlier
    /// temporary password. With `sent_to` (it was just mailed there) only if that is still
    /// one of the account's addresses: `Ok(false)` and nothing changed otherwise. With
    /// `event` (staff were shown it) the event is recorded in the same transaction, and
    /// the account must be within `reach`.
    async fn set_temporary_password(
        &self,
        account: AccountId,
        hash: &TokenHash,
        expires_at: Timestamp,
        sent_to: Option<&EmailAddress>,
        event: Option<NewAuditEvent>,
        reach: Reach,
    ) -> Result<bool, StoreError>;

    /// Sets a password the member chose: clears the temporary password, the session's
    /// forced change, the lock and failures; ends every session but `keep`, audits
    /// `password_changed` and queues the notice. A `forced` change (no current password
    /// asked, after a temporary one) needs the temporary password still pending at
    /// `now`: `Ok(false)` and nothing changed when it is not.
    async fn change_password(
        &self,
        account: AccountId,
        hash: &PasswordHash,
        keep: &TokenHash,
        forced: bool,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
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
