//! Mail: the outbox and its log, and the recovery codes it carries.

use async_trait::async_trait;
use jiff::Timestamp;

use super::StoreError;
use crate::account::{AccountId, EmailAddress};
use crate::codes::StoredCode;
use crate::mail::{MailId, MailKind, MailLogEntry, MailRecord, NewMail, QueuedMail};
use crate::token::TokenHash;

/// The outbox: messages queued in the same transaction as what caused them, sent by a
/// background postman.
#[async_trait]
pub trait OutboxStore: Send + Sync + std::fmt::Debug {
    /// Told after every commit that put a message in the outbox, whichever write it was:
    /// the postman waits on it, so a member's code leaves at once and no caller has to
    /// remember to wake it.
    fn mail_queued(&self) -> std::sync::Arc<tokio::sync::Notify>;

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

    /// Extends the lease of a claimed message right before it is sent — only if it is
    /// still held under `held_until` (the lease this sender took): `Ok(false)` when another
    /// sender took it after that lease ran out, and then it must not be sent here.
    async fn renew_lease(&self, id: MailId, held_until: Timestamp, until: Timestamp) -> Result<bool, StoreError>;

    /// Gives claimed messages back unsent (the sender is stopping): due at once for any
    /// sender, their attempt not counted. Only those still held under `held_until`.
    async fn release_mail(&self, ids: &[MailId], held_until: Timestamp) -> Result<(), StoreError>;

    /// Writes how a claimed message's attempt ended, as `record` says (and its line in
    /// the sending log, when it has one), binds it to `account` when the postman matched
    /// one, and releases it.
    async fn finish_mail(
        &self,
        id: MailId,
        account: Option<AccountId>,
        record: &MailRecord<'_>,
    ) -> Result<(), StoreError>;

    /// Queues the copy of message `original` to the account's secours address `to`, due
    /// now — once: a second call for the same original changes nothing.
    async fn queue_copy(
        &self,
        original: MailId,
        account: AccountId,
        kind: MailKind,
        to: &EmailAddress,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Messages of `kind` sent to the account (or given up: a dead address is no reason
    /// to try more often) since `since`; copies to the secours address not counted.
    async fn count_sent_mail(&self, account: AccountId, kind: MailKind, since: Timestamp) -> Result<u64, StoreError>;

    /// Messages still waiting to leave (pending), and when the oldest was queued.
    async fn backlog(&self) -> Result<(u64, Option<Timestamp>), StoreError>;

    /// Makes every pending message waiting for a later retry due at `now` (the mail
    /// server answers again, or the operator says so); returns how many.
    async fn retry_waiting_mail(&self, now: Timestamp) -> Result<u64, StoreError>;

    /// The account's messages, newest first.
    async fn account_mail(&self, account: AccountId, limit: u32) -> Result<Vec<MailLogEntry>, StoreError>;

    /// The latest messages queued to `recipient`, newest first (whichever account they
    /// were for, or none).
    async fn mail_to(&self, recipient: &EmailAddress, limit: u32) -> Result<Vec<MailLogEntry>, StoreError>;

    /// Forgets finished messages queued before `before`.
    async fn purge_finished_mail(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// Recovery and invitation codes, stored by hash.
#[async_trait]
pub trait RecoveryStore: Send + Sync + std::fmt::Debug {
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

    /// Uses up every code of the account still unused (a new one replaces them).
    async fn revoke_codes(&self, account: AccountId, now: Timestamp) -> Result<(), StoreError>;

    /// Codes of the account still usable at `now`.
    async fn pending_codes(&self, account: AccountId, now: Timestamp) -> Result<u64, StoreError>;
}
