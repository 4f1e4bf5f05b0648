//! The assistance desk's requests, notes and call slots.

use async_trait::async_trait;
use jiff::Timestamp;

use super::StoreError;
use crate::account::EmailAddress;
use crate::desk::{
    AssistanceRequest, CallSlot, CallSlotId, Confirmation, NewNote, NewRequest, RequestChange, RequestId, RequestNote,
};
use crate::token::TokenHash;

/// The assistance desk's requests and call slots.
#[async_trait]
pub trait DeskStore: Send + Sync + std::fmt::Debug {
    /// Stores a request with a fresh reference, queues its receipt to the writer and,
    /// with `notify`, a notice to the desk's mailbox, in one transaction.
    async fn create_request(
        &self,
        request: &NewRequest,
        notify: Option<&EmailAddress>,
        now: Timestamp,
    ) -> Result<AssistanceRequest, StoreError>;

    /// A message to `request.account_id` could not be delivered: adds `request.message`
    /// as a note to the account's most recent open request and reopens it (`new`), or
    /// stores `request` as a new one (no receipt: the mail does not reach them) with a
    /// notice to `notify`, in one transaction.
    async fn report_undelivered(
        &self,
        request: &NewRequest,
        notify: Option<&EmailAddress>,
        now: Timestamp,
    ) -> Result<RequestId, StoreError>;

    /// Requests, newest first; only those not closed with `open_only`.
    async fn list_requests(&self, open_only: bool, limit: u32) -> Result<Vec<AssistanceRequest>, StoreError>;

    /// `Ok(None)` when the id is unknown.
    async fn find_request(&self, id: RequestId) -> Result<Option<AssistanceRequest>, StoreError>;

    /// Applies a change and adds the note that says so, in one transaction.
    async fn update_request(
        &self,
        id: RequestId,
        change: RequestChange,
        note: &NewNote,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Adds a note.
    async fn add_note(&self, id: RequestId, note: &NewNote, now: Timestamp) -> Result<(), StoreError>;

    /// The request's notes, oldest first.
    async fn request_notes(&self, id: RequestId) -> Result<Vec<RequestNote>, StoreError>;

    /// Stores proposed slots (withdrawing the earlier ones not taken up) to call `phone`
    /// (stored as the request's number), marks the request as waiting for the member,
    /// audits the proposal on the linked account, queues the proposal to the request's
    /// address and adds `note` (its author is the staff member proposing), in one
    /// transaction.
    async fn propose_slots(
        &self,
        id: RequestId,
        slots: &[(Timestamp, Timestamp)],
        phone: &str,
        note: &NewNote,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// The request's slots, by start.
    async fn request_slots(&self, id: RequestId) -> Result<Vec<CallSlot>, StoreError>;

    /// Gives a slot the hash of its link's token (when the proposal is sent).
    async fn set_slot_token(&self, slot: CallSlotId, hash: &TokenHash) -> Result<(), StoreError>;

    /// The slot behind a link's token, with its request.
    async fn find_slot(&self, hash: &TokenHash) -> Result<Option<(CallSlot, AssistanceRequest)>, StoreError>;

    /// `Ok(None)` when the slot id is unknown.
    async fn find_slot_by_id(&self, slot: CallSlotId) -> Result<Option<CallSlot>, StoreError>;

    /// Confirms a slot, atomically: the first confirmation of a proposal wins, withdraws
    /// the other slots and queues the confirmation (and, with `notify`, a notice to the
    /// desk's mailbox) and leaves `note` on the request (no author: guichet's own); a
    /// second confirmation of the same slot changes nothing. `Ok(None)` for an unknown
    /// token.
    async fn confirm_slot(
        &self,
        hash: &TokenHash,
        notify: Option<&EmailAddress>,
        note: &str,
        now: Timestamp,
    ) -> Result<Option<Confirmation>, StoreError>;

    /// Confirmed calls ending after `now`, soonest first, with their requests.
    async fn upcoming_calls(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(CallSlot, AssistanceRequest)>, StoreError>;
}
