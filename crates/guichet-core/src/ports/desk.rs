//! The assistance desk's requests, notes and call slots.

use async_trait::async_trait;

use crate::account::AccountId;
use jiff::Timestamp;

use super::StoreError;
use crate::desk::{AssistanceRequest, CallSlot, CallSlotId, NewNote, RequestId, RequestNote};
use crate::token::TokenHash;

/// The assistance desk's requests and call slots, as rows: the rules that change them
/// are the core's ([`crate::desk::DeskRules`], over units of work).
#[async_trait]
pub trait DeskStore: Send + Sync + std::fmt::Debug {
    /// Requests, newest first; only those not closed with `open_only`.
    async fn list_requests(&self, open_only: bool, limit: u32) -> Result<Vec<AssistanceRequest>, StoreError>;

    /// The requests linked to an account, newest first.
    async fn account_requests(&self, account: AccountId, limit: u32) -> Result<Vec<AssistanceRequest>, StoreError>;

    /// `Ok(None)` when the id is unknown.
    async fn find_request(&self, id: RequestId) -> Result<Option<AssistanceRequest>, StoreError>;

    /// Adds a note.
    async fn add_note(&self, id: RequestId, note: &NewNote, now: Timestamp) -> Result<(), StoreError>;

    /// The request's notes, oldest first.
    async fn request_notes(&self, id: RequestId) -> Result<Vec<RequestNote>, StoreError>;

    /// The request's slots, by start.
    async fn request_slots(&self, id: RequestId) -> Result<Vec<CallSlot>, StoreError>;

    /// Gives a slot the hash of its link's token (when the proposal is sent).
    async fn set_slot_token(&self, slot: CallSlotId, hash: &TokenHash) -> Result<(), StoreError>;

    /// The slot behind a link's token, with its request.
    async fn find_slot(&self, hash: &TokenHash) -> Result<Option<(CallSlot, AssistanceRequest)>, StoreError>;

    /// `Ok(None)` when the slot id is unknown.
    async fn find_slot_by_id(&self, slot: CallSlotId) -> Result<Option<CallSlot>, StoreError>;

    /// Confirmed calls ending after `now`, soonest first, with their requests.
    async fn upcoming_calls(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(CallSlot, AssistanceRequest)>, StoreError>;
}
