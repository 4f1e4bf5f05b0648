//! The unit of work: the core opens a transaction, reads the rows it needs (holding
//! those it will change), decides, writes through small typed row operations, and
//! commits. The rules (when an account locks, what a code redemption changes) live in
//! the core and are tested there without SQL; the store only reads and writes rows,
//! and its contract suite holds each operation to what it says here on both databases.
//!
//! On SQLite a unit takes the write lock as it begins, so what it reads is what every
//! unit before it left. On PostgreSQL only a held row is: what a rule decides on, it
//! reads from a hold (or reads again once it holds). So that no two units take the same
//! rows in opposite orders (and deadlock): a unit that may change an administrator holds
//! the active administrators first; a unit that holds several accounts holds them in
//! the order of their ids; every unit holds an account's row before other rows of
//! that account; and a desk unit holds the request's row, then its linked account's.
//!
//! Dropping a unit without [`Work::commit`] rolls it back.

use async_trait::async_trait;
use jiff::Timestamp;

use crate::account::{Account, AccountId, DisplayName, EmailAddress, Identifier, NameParts, NewAccount, Role};
use crate::audit::{AuditKind, NewAuditEvent};
use crate::codes::StoredCode;
use crate::desk::{AssistanceRequest, CallSlot, CallSlotId, NewNote, NewRequest, RequestId};
use crate::groups::{GroupId, GroupName};
use crate::lockout::ThrottleKey;
use crate::mail::{MailId, NewMail};
use crate::oidc::{ClientId, IssuedCode, NewGrant, NewRefreshToken, SessionLink};
use crate::password::PasswordHash;
use crate::token::TokenHash;

use super::StoreError;

/// An audit event's place in storage order.
pub type EventId = i64;

/// Opens units of work.
#[async_trait]
pub trait Transactions: Send + Sync + std::fmt::Debug {
    /// Begins a unit: what it writes commits together, or not at all.
    async fn begin(&self) -> Result<Box<dyn Work>, StoreError>;
}

/// An account's row as a unit holds it.
#[derive(Debug, Clone)]
pub struct HeldAccount {
    /// The row.
    pub account: Account,
    /// Failed logins recorded up to this event no longer count toward a lock.
    pub failures_cleared_after: EventId,
    /// The hash of the code mailed to the proposed secours address, and until when it
    /// works.
    pub secours_code: Option<(TokenHash, Timestamp)>,
    /// The hash of the code mailed to the proposed new own address, and until when it
    /// works.
    pub email_code: Option<(TokenHash, Timestamp)>,
}

/// The account's secours address, its proposal and the proposal's code, as written
/// together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secours {
    /// The confirmed address.
    pub confirmed: Option<EmailAddress>,
    /// The address waiting for its code.
    pub pending: Option<EmailAddress>,
    /// The hash of the code mailed to it, and until when it works.
    pub code: Option<(TokenHash, Timestamp)>,
}

/// An account's TOTP secret as stored.
#[derive(Clone)]
pub struct StoredTotp {
    /// The secret, sealed (see [`crate::second_factor`]).
    pub sealed: String,
    /// When its first code confirmed it; `None` while enrolment waits.
    pub confirmed_at: Option<Timestamp>,
    /// The last time step a code was accepted for (0: none yet).
    pub last_step: i64,
}

impl std::fmt::Debug for StoredTotp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTotp")
            .field("confirmed_at", &self.confirmed_at)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

/// An authorization code's row as a unit holds it.
#[derive(Debug, Clone)]
pub struct HeldOidcCode {
    /// The code as issued.
    pub code: IssuedCode,
    /// When it was first presented.
    pub used_at: Option<Timestamp>,
    /// When it was first presented again.
    pub reused_at: Option<Timestamp>,
}

/// The row operations of a unit of work. Every write lands in the unit; a commit that
/// queued mail tells the postman (see [`super::OutboxStore::mail_queued`]).
#[async_trait]
pub trait Work: Send {
    /// Holds the account's row until the unit ends, and reads it: a concurrent unit
    /// holding the same account waits for this one (across instances too), then reads
    /// what this one wrote. `None` when there is no such account.
    async fn hold_account(&mut self, account: AccountId) -> Result<Option<HeldAccount>, StoreError>;

    /// Reads a recovery code's row, without holding it. `None` for an unknown code.
    async fn find_code(&mut self, hash: &TokenHash) -> Result<Option<StoredCode>, StoreError>;

    /// Holds a recovery code's row until the unit ends, and reads it (as
    /// [`Self::hold_account`]). `None` for an unknown code.
    async fn hold_code(&mut self, hash: &TokenHash) -> Result<Option<StoredCode>, StoreError>;

    /// Events of `kind` on `account` stored after `after` and at or after `since`.
    async fn count_events(
        &mut self,
        account: AccountId,
        kind: AuditKind,
        after: EventId,
        since: Timestamp,
    ) -> Result<u32, StoreError>;

    /// The account's latest event (0 when it has none).
    async fn last_event(&mut self, account: AccountId) -> Result<EventId, StoreError>;

    /// Records an event.
    async fn record(&mut self, event: &NewAuditEvent) -> Result<EventId, StoreError>;

    /// Queues a message.
    async fn queue_mail(&mut self, mail: &NewMail, now: Timestamp) -> Result<MailId, StoreError>;

    /// Sets the account's lock (`None`: none) and forgets failures up to `cleared_after`.
    async fn set_lock(
        &mut self,
        account: AccountId,
        until: Option<Timestamp>,
        cleared_after: EventId,
    ) -> Result<(), StoreError>;

    /// Notes a login at `at`, replacing the password's hash with `rehash` if given.
    async fn set_logged_in(
        &mut self,
        account: AccountId,
        at: Timestamp,
        rehash: Option<&PasswordHash>,
    ) -> Result<(), StoreError>;

    /// Sets the password the member chose: the temporary password goes, and device
    /// marks issued before `at` are no longer trusted.
    async fn set_password(&mut self, account: AccountId, hash: &PasswordHash, at: Timestamp) -> Result<(), StoreError>;

    /// Gives the account a temporary password, valid until `expires_at`.
    async fn set_temporary_password(
        &mut self,
        account: AccountId,
        hash: &TokenHash,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Stores a new account: `Err(Conflict(..))` when its identifier or address is taken.
    async fn insert_account(&mut self, new: &NewAccount, at: Timestamp) -> Result<Account, StoreError>;

    /// Reads the accounts with these identifiers (those that exist); with `hold`, holds
    /// their rows until the unit ends, in the order of their ids.
    async fn accounts_named(&mut self, identifiers: &[Identifier], hold: bool) -> Result<Vec<Account>, StoreError>;

    /// Which of these RPPS numbers are an account's, and whose.
    async fn rpps_owners(
        &mut self,
        numbers: &[crate::account::Rpps],
    ) -> Result<Vec<(crate::account::Rpps, AccountId)>, StoreError>;

    /// Which of these addresses are an account's, own or secours, and whose.
    async fn address_owners(
        &mut self,
        addresses: &[EmailAddress],
    ) -> Result<Vec<(EmailAddress, AccountId)>, StoreError>;

    /// The ids of the groups with these names (those that exist).
    async fn groups_named(&mut self, names: &[GroupName]) -> Result<Vec<(GroupName, GroupId)>, StoreError>;

    /// Stores a new group, with no description.
    async fn insert_group(&mut self, name: &GroupName, description: &str, at: Timestamp)
    -> Result<GroupId, StoreError>;

    /// The memberships of these accounts.
    async fn memberships_of(&mut self, accounts: &[AccountId]) -> Result<Vec<(GroupId, AccountId)>, StoreError>;

    /// Stores new accounts in bulk, returning their ids in order: `Err(Conflict(..))`
    /// when an identifier or address is taken.
    async fn insert_accounts(&mut self, new: &[NewAccount], at: Timestamp) -> Result<Vec<AccountId>, StoreError>;

    /// Records events in bulk.
    async fn record_all(&mut self, events: &[NewAuditEvent]) -> Result<(), StoreError>;

    /// Puts accounts in groups in bulk (a membership that exists stays as it is).
    async fn join_all(&mut self, memberships: &[(GroupId, AccountId)]) -> Result<(), StoreError>;

    /// Puts the account in the group (`member`) or takes it out: whether that changed
    /// anything.
    async fn set_member(&mut self, group: GroupId, account: AccountId, member: bool) -> Result<bool, StoreError>;

    /// Holds the rows of every active administrator until the unit ends, in the order
    /// of their ids, and lists them: two units that each take one away cannot both see
    /// the other still there.
    async fn hold_active_administrators(&mut self) -> Result<Vec<AccountId>, StoreError>;

    /// The account whose own address `email` is, if one's is.
    async fn email_owner(&mut self, email: &EmailAddress) -> Result<Option<AccountId>, StoreError>;

    /// Writes the account's secours address, proposal and code: `Err(Conflict(Email))`
    /// when the confirmed address is another account's.
    async fn set_secours(&mut self, account: AccountId, secours: &Secours, at: Timestamp) -> Result<(), StoreError>;

    /// The account whose secours address `email` is, if one's is.
    async fn secours_owner(&mut self, email: &EmailAddress) -> Result<Option<AccountId>, StoreError>;

    /// Disables the account (`Some(when)`) or enables it again (`None`).
    async fn set_disabled(
        &mut self,
        account: AccountId,
        disabled_at: Option<Timestamp>,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Sets the account's address and name: `Err(Conflict(Email))` when the address
    /// is another account's.
    async fn set_details(
        &mut self,
        account: AccountId,
        email: &EmailAddress,
        name: &DisplayName,
        names: &NameParts,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Sets the account's role.
    async fn set_role(&mut self, account: AccountId, role: Role, at: Timestamp) -> Result<(), StoreError>;

    /// The pending temporary password goes, and device marks issued before `at` no
    /// longer count.
    async fn revoke_temporary_password(&mut self, account: AccountId, at: Timestamp) -> Result<(), StoreError>;

    /// Ends the account's sessions but `keep` at `now`, and its offline refresh tokens,
    /// queueing the back-channel logouts their applications are owed; returns how many
    /// sessions ended.
    async fn end_sessions(
        &mut self,
        account: AccountId,
        keep: Option<&TokenHash>,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Ends the account's sessions opened with a temporary password (they never signed
    /// in to an application: such a session gets no authorization code).
    async fn end_forced_sessions(&mut self, account: AccountId) -> Result<u64, StoreError>;

    /// The session no longer has to choose a password.
    async fn clear_forced_change(&mut self, session: &TokenHash) -> Result<(), StoreError>;

    /// Gives back one count of `key` made at `at`.
    async fn uncount(&mut self, key: &ThrottleKey, at: Timestamp) -> Result<(), StoreError>;

    /// Marks a code used at `at`.
    async fn use_code(&mut self, hash: &TokenHash, at: Timestamp) -> Result<(), StoreError>;

    /// Marks every unused code of the account used at `at`.
    async fn use_up_codes(&mut self, account: AccountId, at: Timestamp) -> Result<(), StoreError>;

    /// Holds an assistance request's row until the unit ends, and reads it.
    async fn hold_request(&mut self, id: RequestId) -> Result<Option<AssistanceRequest>, StoreError>;

    /// Holds the newest request linked to `account` that is not closed, if there is one.
    async fn hold_open_request_of(&mut self, account: AccountId) -> Result<Option<AssistanceRequest>, StoreError>;

    /// Stores a new request (state `new`) under a fresh reference.
    async fn insert_request(&mut self, request: &NewRequest, now: Timestamp) -> Result<AssistanceRequest, StoreError>;

    /// Writes a request's state, phone, account and assignee as given, updated at `at`.
    async fn save_request(&mut self, request: &AssistanceRequest, at: Timestamp) -> Result<(), StoreError>;

    /// Adds a note to a request.
    async fn insert_note(&mut self, request: RequestId, note: &NewNote, at: Timestamp) -> Result<(), StoreError>;

    /// The slot behind a link's token.
    async fn find_slot(&mut self, hash: &TokenHash) -> Result<Option<CallSlot>, StoreError>;

    /// A request's slots.
    async fn request_slots(&mut self, request: RequestId) -> Result<Vec<CallSlot>, StoreError>;

    /// Stores a slot proposed by `proposed_by` (`None`: guichet).
    async fn insert_slot(
        &mut self,
        request: RequestId,
        span: (Timestamp, Timestamp),
        proposed_by: Option<AccountId>,
        at: Timestamp,
    ) -> Result<CallSlotId, StoreError>;

    /// Sets the hash of the token of the slot's link.
    async fn set_slot_token(&mut self, slot: CallSlotId, hash: &TokenHash) -> Result<(), StoreError>;

    /// Writes a slot's confirmation and withdrawal as given.
    async fn save_slot(&mut self, slot: &CallSlot) -> Result<(), StoreError>;

    /// Holds an authorization code issued to `client` until the unit ends, and reads it.
    async fn hold_oidc_code(&mut self, code: &TokenHash, client: &ClientId)
    -> Result<Option<HeldOidcCode>, StoreError>;

    /// Marks the code used at `at`.
    async fn set_oidc_code_used(&mut self, code: &TokenHash, at: Timestamp) -> Result<(), StoreError>;

    /// Marks the code presented again at `at`.
    async fn set_oidc_code_reused(&mut self, code: &TokenHash, at: Timestamp) -> Result<(), StoreError>;

    /// Revokes at `at` what the code `family` issued: the access tokens not revoked yet,
    /// and every refresh token of the family (forgotten).
    async fn revoke_family(&mut self, family: &TokenHash, at: Timestamp) -> Result<(), StoreError>;

    /// Revokes one access token at `at`.
    async fn revoke_grant(&mut self, jti: &str, at: Timestamp) -> Result<(), StoreError>;

    /// Stores a grant, revoked from `revoked_at` if given.
    async fn insert_grant(&mut self, grant: &NewGrant, revoked_at: Option<Timestamp>) -> Result<(), StoreError>;

    /// Records that the link's session signed in to its client. `false` (nothing
    /// written) when the session has ended.
    async fn link_session(&mut self, link: &SessionLink) -> Result<bool, StoreError>;

    /// Stores a refresh token. `false` (nothing written) when the session it is bound
    /// to has ended.
    async fn insert_refresh_token(&mut self, token: &NewRefreshToken) -> Result<bool, StoreError>;

    /// Holds `client`'s refresh token until the unit ends, and reads it with when it
    /// was used. `None` for no such token (or a revoked one) or another client's.
    async fn hold_refresh_token(
        &mut self,
        token: &TokenHash,
        client: &ClientId,
    ) -> Result<Option<(NewRefreshToken, Option<Timestamp>)>, StoreError>;

    /// Marks a refresh token used at `at`.
    async fn set_refresh_token_used(&mut self, token: &TokenHash, at: Timestamp) -> Result<(), StoreError>;

    /// The account's TOTP secret, if it has one (read once the account is held).
    async fn totp(&mut self, account: AccountId) -> Result<Option<StoredTotp>, StoreError>;

    /// Writes an unconfirmed TOTP secret for the account, in place of any other.
    async fn put_totp(&mut self, account: AccountId, sealed: &str, at: Timestamp) -> Result<(), StoreError>;

    /// Confirms the account's TOTP at `at`, its first code's `step` used.
    async fn confirm_totp(&mut self, account: AccountId, step: i64, at: Timestamp) -> Result<(), StoreError>;

    /// Records `step` as the last one a code of the account was accepted for.
    async fn set_totp_step(&mut self, account: AccountId, step: i64) -> Result<(), StoreError>;

    /// Replaces the account's backup codes with these (by hash).
    async fn replace_backup_codes(
        &mut self,
        account: AccountId,
        hashes: &[TokenHash],
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Uses the account's unused backup code with this hash at `at`; `Ok(false)` when it
    /// has none such.
    async fn use_backup_code(
        &mut self,
        account: AccountId,
        hash: &TokenHash,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Removes the account's TOTP secret, backup codes and keys; returns how many keys.
    async fn remove_second_factors(&mut self, account: AccountId) -> Result<u64, StoreError>;

    /// Adds a key; `Ok(false)` when its credential id is registered already (to anyone).
    async fn insert_key(&mut self, key: &super::StoredKey) -> Result<bool, StoreError>;

    /// Writes back a key after a use at `at` (its counter), provided it is still the
    /// account's and unchanged since `key` was read; `Ok(false)` otherwise.
    async fn used_key(&mut self, key: &super::StoredKey, passkey: &str, at: Timestamp) -> Result<bool, StoreError>;

    /// How many keys the account has.
    async fn count_keys(&mut self, account: AccountId) -> Result<u64, StoreError>;

    /// Removes one of the account's keys; `Ok(false)` when it has none with this id.
    async fn remove_key(&mut self, account: AccountId, credential_id: &str) -> Result<bool, StoreError>;

    /// Sets the account's RPPS number (`None`: none); `Err(Conflict(Rpps))` when it is
    /// another account's.
    async fn set_rpps(&mut self, account: AccountId, rpps: Option<&crate::account::Rpps>) -> Result<(), StoreError>;

    /// Links the provider's `subject` to the account, and forgets that its member had
    /// removed a link of that provider; `false` (nothing written) when that identity is
    /// linked already, to this account or another.
    async fn link_upstream(
        &mut self,
        upstream: &str,
        subject: &str,
        account: AccountId,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Records that the link opened a session; `false` when it is not (or no longer) the
    /// account's.
    async fn used_upstream_link(
        &mut self,
        upstream: &str,
        subject: &str,
        account: AccountId,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Removes one of the account's links, and remembers that its member removed a link of
    /// that provider (see [`Self::upstream_link_removed`]); `false` when it had no such
    /// link.
    async fn unlink_upstream(
        &mut self,
        account: AccountId,
        upstream: &str,
        subject: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Ends the sessions `upstream` opened for `subject` on the account but `keep`, telling
    /// the applications they signed in to; how many.
    async fn end_link_sessions(
        &mut self,
        account: AccountId,
        upstream: &str,
        subject: &str,
        keep: Option<&TokenHash>,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Whether the account's member removed a link of `upstream` since its last link.
    async fn upstream_link_removed(&mut self, upstream: &str, account: AccountId) -> Result<bool, StoreError>;

    /// Sets when the account is to be erased (`None`: not).
    async fn set_erase_at(&mut self, account: AccountId, at: Option<Timestamp>) -> Result<(), StoreError>;

    /// Writes the new own address the member proposed and its code's hash (`None`s: no
    /// proposal).
    async fn set_email_change(
        &mut self,
        account: AccountId,
        pending: Option<&EmailAddress>,
        code: Option<(&TokenHash, Timestamp)>,
    ) -> Result<(), StoreError>;

    /// Removes the account (held) and its identity from every table: its assistance
    /// requests (those linked to it, and those written from one of its addresses or
    /// under its identifier) with their notes and slots, the mail log to its addresses,
    /// and every row that belongs to it; its audit lines stay, without their account,
    /// address, browser or detail, under `pseudonym`. Sessions must have been ended in
    /// the unit before (their applications' logouts queued).
    async fn erase_account(&mut self, account: &Account, pseudonym: &str) -> Result<(), StoreError>;

    /// Commits.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}
