//! The storage contract. One implementation per backend lives in `guichet-store`;
//! one shared test suite holds both to what these comments promise.
//!
//! Every method takes "now" from the caller, never from the database's clock, so that
//! a moved test clock moves everything.

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

use crate::account::{Account, AccountId, DisplayName, EmailAddress, Identifier, NewAccount, Role};
use crate::audit::{AuditEvent, AuditKind, NewAuditEvent, RequestContext};
use crate::desk::{AssistanceRequest, CallSlot, Confirmation, NewRequest, RequestChange, RequestId, RequestNote};
use crate::keys::ServerKey;
use crate::lockout::{LockoutPolicy, ThrottleKey};
use crate::mail::{MailId, MailKind, MailLogEntry, MailOutcome, NewMail, QueuedMail};
use crate::password::PasswordHash;
use crate::recovery::{CodeError, StoredCode};
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
    /// The target no longer is what the caller decided on (a member became staff while
    /// an assistance action was on its way): nothing changed.
    #[error("the account changed meanwhile")]
    Changed,
    /// The database failed or could not be reached.
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

/// Accounts, their passwords and their lockout state.
#[async_trait]
pub trait AccountStore: Send + Sync {
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

    /// `Ok(None)` when the id is unknown.
    async fn find_account(&self, id: AccountId) -> Result<Option<Account>, StoreError>;

    /// All accounts matching the filter, by identifier.
    async fn list_accounts(&self, filter: AccountFilter) -> Result<Vec<Account>, StoreError>;

    /// How many accounts exist.
    async fn count_accounts(&self) -> Result<u64, StoreError>;

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
    /// disabled, its temporary password expired, or its hash is no longer `verified`
    /// (another request may have locked it, or a reset replaced the password, while this
    /// one was checked): then nothing changes and the answer is `Ok(false)`. A temporary
    /// password is used up. A login `despite_lock` (from a device cookie) leaves a lock
    /// in place, with its failures: the stranger who caused it stays locked out. The
    /// `counted` attempts (see [`ThrottleStore::count`]) are taken back in the same
    /// transaction: a success is not a failure.
    async fn record_login_success(
        &self,
        account: AccountId,
        verified: &PasswordHash,
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

    /// Ends one session and, with `event` (a logout), records it in the same
    /// transaction. Ending a session that is gone is not an error.
    async fn delete_session(&self, token: &TokenHash, event: Option<NewAuditEvent>) -> Result<(), StoreError>;

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

/// Counts per address (failed logins, "forgot" and assistance requests), in a sliding
/// window.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
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

    /// Takes back one made by [`ThrottleStore::count`] at `at` (a login that succeeded
    /// after all, or an attempt refused without being tried).
    async fn uncount(&self, key: &ThrottleKey, at: Timestamp) -> Result<(), StoreError>;

    /// Forgets counts older than `before`.
    async fn purge_counts(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// Failed logins counted per device cookie mark (see [`crate::device`]).
#[async_trait]
pub trait DeviceStore: Send + Sync {
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

/// The outbox: messages queued in the same transaction as what caused them, sent by a
/// background postman.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Queues a message, due now.
    async fn enqueue_mail(&self, mail: &NewMail, now: Timestamp) -> Result<MailId, StoreError>;

    /// Claims up to `limit` messages due at `now` that nobody holds, holding them until
    /// `lease_until`; each claim counts an attempt. While a lease runs no other sender
    /// (another instance) can claim the message, so none is sent twice.
    async fn claim_due_mail(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, StoreError>;

    /// Records how a claimed message's attempt ended (and the attempt itself, unless it
    /// was skipped), binds it to `account` when the postman matched one, and releases it.
    async fn finish_mail(
        &self,
        id: MailId,
        account: Option<AccountId>,
        outcome: &MailOutcome,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Messages of `kind` sent to the account since `since`.
    async fn count_sent_mail(&self, account: AccountId, kind: MailKind, since: Timestamp) -> Result<u64, StoreError>;

    /// The account's messages, newest first.
    async fn account_mail(&self, account: AccountId, limit: u32) -> Result<Vec<MailLogEntry>, StoreError>;

    /// Forgets finished messages queued before `before`.
    async fn purge_finished_mail(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// Recovery and invitation codes, stored by hash.
#[async_trait]
pub trait RecoveryStore: Send + Sync {
    /// Stores a code's hash, if the account's address is still `sent_to` (the code is
    /// about to be mailed there): `Ok(false)` and nothing stored when it changed.
    async fn insert_code(
        &self,
        hash: &TokenHash,
        code: &StoredCode,
        sent_to: &EmailAddress,
    ) -> Result<bool, StoreError>;

    /// Forgets a code (one whose message could not be sent).
    async fn delete_code(&self, hash: &TokenHash) -> Result<(), StoreError>;

    /// `Ok(None)` when no code has this hash.
    async fn find_code(&self, hash: &TokenHash) -> Result<Option<StoredCode>, StoreError>;

    /// Uses the code and sets the new password, atomically. The code must be unused and
    /// unexpired at `now` — otherwise `Ok(Err(why))` and nothing changes; of any number
    /// of concurrent calls with one code, one alone succeeds. Then every other code of
    /// the account is used up, the password replaced, the must-change flag, lock and
    /// failure count cleared, every session of the account ended, `password_changed`
    /// audited and the "password changed" notice queued.
    async fn redeem_code(
        &self,
        hash: &TokenHash,
        new_hash: &PasswordHash,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<Result<AccountId, CodeError>, StoreError>;

    /// Uses up every code of the account still unused (a new one replaces them).
    async fn revoke_codes(&self, account: AccountId, now: Timestamp) -> Result<(), StoreError>;

    /// Codes of the account still usable at `now`.
    async fn pending_codes(&self, account: AccountId, now: Timestamp) -> Result<u64, StoreError>;
}

/// What staff change on accounts, and what members change on their own.
#[async_trait]
pub trait StaffStore: Send + Sync {
    /// Accounts whose identifier, email or name contains `query` (case-insensitive),
    /// by identifier.
    async fn search_accounts(&self, query: &str, limit: u32) -> Result<Vec<Account>, StoreError>;

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

    /// Replaces the password by a temporary one that stops working at `expires_at`,
    /// works for one login, and must be changed then; lifts any lock and ends every
    /// session — if the account's address is still `sent_to` (where the password was
    /// just mailed): `Ok(false)` and nothing changed when it is not.
    async fn set_temporary_password(
        &self,
        account: AccountId,
        hash: &PasswordHash,
        expires_at: Timestamp,
        sent_to: &EmailAddress,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Sets a password the member chose: clears the must-change flag and any temporary
    /// expiry, ends every session but `keep`, audits `password_changed` and queues the notice.
    async fn change_password(
        &self,
        account: AccountId,
        hash: &PasswordHash,
        keep: &TokenHash,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Queues a message to `mail.account_id` and records the staff action behind it, in
    /// one transaction.
    async fn queue_staff_mail(&self, mail: &NewMail, event: NewAuditEvent, reach: Reach) -> Result<(), StoreError>;

    /// Events of `kinds` per day since `since` (days are UTC, as Unix day numbers).
    async fn daily_counts(
        &self,
        kinds: &[AuditKind],
        since: Timestamp,
    ) -> Result<Vec<(i64, AuditKind, u64)>, StoreError>;
}

/// The assistance desk's requests and call slots.
#[async_trait]
pub trait DeskStore: Send + Sync {
    /// Stores a request with a fresh reference and queues its receipt to the writer.
    async fn create_request(&self, request: &NewRequest, now: Timestamp) -> Result<AssistanceRequest, StoreError>;

    /// Requests, newest first; only those not closed with `open_only`.
    async fn list_requests(&self, open_only: bool, limit: u32) -> Result<Vec<AssistanceRequest>, StoreError>;

    /// `Ok(None)` when the id is unknown.
    async fn find_request(&self, id: RequestId) -> Result<Option<AssistanceRequest>, StoreError>;

    /// Applies a change.
    async fn update_request(&self, id: RequestId, change: RequestChange, now: Timestamp) -> Result<(), StoreError>;

    /// Adds a note.
    async fn add_note(
        &self,
        id: RequestId,
        author: Option<AccountId>,
        body: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// The request's notes, oldest first.
    async fn request_notes(&self, id: RequestId) -> Result<Vec<RequestNote>, StoreError>;

    /// Stores proposed slots, marks the request as waiting for the member, and queues
    /// the proposal to the request's address.
    async fn propose_slots(
        &self,
        id: RequestId,
        slots: &[(Timestamp, Timestamp)],
        staff: AccountId,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// The request's slots, by start.
    async fn request_slots(&self, id: RequestId) -> Result<Vec<CallSlot>, StoreError>;

    /// Gives a slot the hash of its link's token (when the proposal is sent).
    async fn set_slot_token(&self, slot: i64, hash: &TokenHash) -> Result<(), StoreError>;

    /// The slot behind a link's token, with its request.
    async fn find_slot(&self, hash: &TokenHash) -> Result<Option<(CallSlot, AssistanceRequest)>, StoreError>;

    /// `Ok(None)` when the slot id is unknown.
    async fn find_slot_by_id(&self, slot: i64) -> Result<Option<CallSlot>, StoreError>;

    /// Confirms a slot, atomically: the first confirmation of a proposal wins, withdraws
    /// the other slots and queues the confirmation; a second confirmation of the same
    /// slot changes nothing. `Ok(None)` for an unknown token.
    async fn confirm_slot(&self, hash: &TokenHash, now: Timestamp) -> Result<Option<Confirmation>, StoreError>;

    /// Confirmed calls ending after `now`, soonest first, with their requests.
    async fn upcoming_calls(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(CallSlot, AssistanceRequest)>, StoreError>;
}

/// The server's secrets, shared by every instance.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// The key named `name`: the one stored, or `candidate` when none is yet (it is then
    /// stored). Instances starting at once all end up with the first one stored.
    async fn server_key(&self, name: &str, candidate: &ServerKey, now: Timestamp) -> Result<ServerKey, StoreError>;
}

/// Whether storage answers.
#[async_trait]
pub trait Health: Send + Sync {
    /// `Ok(())` when the database answers a trivial query.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Everything guichet stores, behind one object.
pub trait Store:
    AccountStore
    + SessionStore
    + AuditStore
    + ThrottleStore
    + OutboxStore
    + RecoveryStore
    + StaffStore
    + DeskStore
    + KeyStore
    + DeviceStore
    + Health
    + std::fmt::Debug
{
}

impl<T> Store for T where
    T: AccountStore
        + SessionStore
        + AuditStore
        + ThrottleStore
        + OutboxStore
        + RecoveryStore
        + StaffStore
        + DeskStore
        + KeyStore
        + DeviceStore
        + Health
        + std::fmt::Debug
{
}
