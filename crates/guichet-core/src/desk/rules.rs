//! The desk's rules, each one unit of work ([`crate::ports::Work`]): what writing in
//! queues, where an undelivered message lands, what a proposal withdraws, which of two
//! racing confirmations wins. The request's row is held first, so that the steps of two
//! concurrent changes of one request cannot interleave.

use std::sync::Arc;

use jiff::Timestamp;

use super::SlotState;
use super::{
    AssistanceRequest, CallSlot, CallSlotId, Confirmation, NewNote, NewRequest, RequestChange, RequestId,
    RequestOrigin, RequestState,
};
use crate::account::{AccountId, EmailAddress};
use crate::audit::{Actor, AuditKind, NewAuditEvent, RequestContext};
use crate::catalogue;
use crate::keys::ServerKey;
use crate::mail::{MailKind, MailSubject, NewMail};
use crate::ports::{Ports, Reach, StoreError, Transactions, Work};
use crate::token::TokenHash;

/// The desk's rules, over units of work.
#[derive(Debug, Clone)]
pub struct DeskRules {
    transactions: Arc<dyn Transactions>,
}

/// The audit line of a call step on the request's account.
fn call_event(account: AccountId, kind: AuditKind, actor: Actor, at: Timestamp) -> NewAuditEvent {
    NewAuditEvent { at, account_id: Some(account), kind, actor, context: RequestContext::default(), detail: None }
}

/// Queues a notice about `subject` to the desk's mailbox, when there is one.
async fn tell_the_desk(
    work: &mut dyn Work,
    desk: Option<&EmailAddress>,
    subject: MailSubject,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(desk) = desk else { return Ok(()) };
    let kind =
        if matches!(subject, MailSubject::Slot(_)) { MailKind::DeskCallConfirmed } else { MailKind::DeskNewRequest };
    work.queue_mail(&NewMail { kind, account_id: None, recipient: desk.clone(), subject }, now).await.map(|_| ())
}

/// Withdraws the request's slots still waiting for an answer, but `except`.
async fn withdraw_waiting_slots(
    work: &mut dyn Work,
    request: RequestId,
    except: Option<&CallSlot>,
    now: Timestamp,
) -> Result<(), StoreError> {
    for slot in work.request_slots(request).await? {
        if slot.confirmed_at.is_none() && slot.withdrawn_at.is_none() && except.is_none_or(|e| e.id != slot.id) {
            work.save_slot(&CallSlot { withdrawn_at: Some(now), ..slot }).await?;
        }
    }
    Ok(())
}

/// Holds the account the held `request` is linked to, if any: `Err(Changed)` when it is
/// out of `reach` (a staff action that writes into a staff account's history, by
/// assistance staff). The request's row is held first, then the account's.
async fn hold_linked_within(work: &mut dyn Work, request: &AssistanceRequest, reach: Reach) -> Result<(), StoreError> {
    if let Some(account) = request.account_id {
        crate::account_changes::hold_within(work, account, reach).await?;
    }
    Ok(())
}

/// Confirms a slot of the held `request` if it is still open: the other slots are
/// withdrawn, the confirmation is audited as `actor`'s on the linked account, mailed to
/// the request's address with `mail_member`, told to the desk's mailbox with `notify`,
/// and noted.
#[expect(clippy::too_many_arguments, reason = "a confirmation is all of these, and the time")]
async fn confirm(
    work: &mut dyn Work,
    request: &AssistanceRequest,
    slot: CallSlot,
    actor: Actor,
    mail_member: bool,
    notify: Option<&EmailAddress>,
    note: &NewNote,
    now: Timestamp,
) -> Result<Confirmation, StoreError> {
    match slot.state_at(now) {
        SlotState::Confirmed => return Ok(Confirmation::AlreadyConfirmed(slot)),
        SlotState::Withdrawn | SlotState::Past => return Ok(Confirmation::Unavailable(slot)),
        SlotState::Open => {}
    }
    let confirmed = CallSlot { confirmed_at: Some(now), ..slot };
    work.save_slot(&confirmed).await?;
    withdraw_waiting_slots(work, request.id, Some(&confirmed), now).await?;
    if let Some(account) = request.account_id {
        work.record(&call_event(account, AuditKind::CallConfirmed, actor, now)).await?;
    }
    if mail_member {
        let mail = NewMail {
            kind: MailKind::CallConfirmed,
            account_id: request.account_id,
            recipient: request.email.clone(),
            subject: MailSubject::Slot(confirmed.id),
        };
        work.queue_mail(&mail, now).await?;
    }
    tell_the_desk(work, notify, MailSubject::Slot(confirmed.id), now).await?;
    work.insert_note(request.id, note, now).await?;
    Ok(Confirmation::Confirmed(confirmed))
}

impl DeskRules {
    /// Over the store's units of work.
    pub fn of(ports: &Ports) -> Self {
        Self::new(Arc::clone(&ports.transactions))
    }

    /// Over these units of work.
    pub fn new(transactions: Arc<dyn Transactions>) -> Self {
        Self { transactions }
    }

    /// Stores a request written in and queues its receipt (and, with `notify`, a notice
    /// to the desk's mailbox).
    pub async fn create_request(
        &self,
        request: &NewRequest,
        notify: Option<&EmailAddress>,
        now: Timestamp,
    ) -> Result<AssistanceRequest, StoreError> {
        let mut work = self.transactions.begin().await?;
        // A request guichet opened for this account's undelivered mail gives way to the
        // member's own, written from one of the account's addresses: closed into it, each
        // naming the other. Written from elsewhere (anyone can type an identifier), both
        // stay open and name each other, for staff to judge.
        let opened_by_guichet = match request.account_id {
            Some(account) => {
                work.hold_open_request_of(account).await?.filter(|r| r.origin == RequestOrigin::Undelivered)
            }
            None => None,
        };
        let created = work.insert_request(request, now).await?;
        if let Some(earlier) = opened_by_guichet {
            let (on_earlier, on_created) = if request.from_account_address {
                let closed = AssistanceRequest { state: RequestState::Closed, ..earlier.clone() };
                work.save_request(&closed, now).await?;
                (catalogue::desk::continued_in(&created.reference), catalogue::desk::continues(&earlier.reference))
            } else {
                (catalogue::desk::named_in(&created.reference), catalogue::desk::names(&earlier.reference))
            };
            work.insert_note(earlier.id, &NewNote { author_id: None, body: on_earlier }, now).await?;
            work.insert_note(created.id, &NewNote { author_id: None, body: on_created }, now).await?;
        }
        let receipt = NewMail {
            kind: MailKind::AssistanceReceived,
            account_id: created.account_id,
            recipient: created.email.clone(),
            subject: MailSubject::Request(created.id),
        };
        work.queue_mail(&receipt, now).await?;
        tell_the_desk(work.as_mut(), notify, MailSubject::Request(created.id), now).await?;
        work.commit().await?;
        Ok(created)
    }

    /// A message given up for good, reported by guichet: for an account with a request
    /// still open, a note on its newest one, which becomes `new` again; otherwise a new
    /// request (and, with `notify`, a notice to the desk's mailbox). No receipt: the
    /// member cannot be reached, that is the point.
    pub async fn report_undelivered(
        &self,
        request: &NewRequest,
        notify: Option<&EmailAddress>,
        now: Timestamp,
    ) -> Result<RequestId, StoreError> {
        let mut work = self.transactions.begin().await?;
        let open = match request.account_id {
            Some(account) => work.hold_open_request_of(account).await?.filter(|r| r.state != RequestState::Closed),
            None => None,
        };
        let id = match open {
            Some(open) => {
                work.save_request(&AssistanceRequest { state: RequestState::New, ..open.clone() }, now).await?;
                work.insert_note(open.id, &NewNote { author_id: None, body: request.message.clone() }, now).await?;
                open.id
            }
            None => {
                let created = work.insert_request(request, now).await?;
                tell_the_desk(work.as_mut(), notify, MailSubject::Request(created.id), now).await?;
                created.id
            }
        };
        work.commit().await?;
        Ok(id)
    }

    /// Changes a request's state, assignee or linked account, with `note` saying so.
    /// `Err(Changed)` for an unknown request.
    pub async fn update_request(
        &self,
        id: RequestId,
        change: RequestChange,
        note: &NewNote,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut work = self.transactions.begin().await?;
        let request = work.hold_request(id).await?.ok_or(StoreError::Changed)?;
        let changed = match change {
            RequestChange::State(state) => AssistanceRequest { state, ..request },
            RequestChange::Assignee(assignee_id) => AssistanceRequest { assignee_id, ..request },
            RequestChange::Account(account_id) => AssistanceRequest { account_id, ..request },
        };
        work.save_request(&changed, now).await?;
        work.insert_note(id, note, now).await?;
        work.commit().await
    }

    /// Proposes slots to call `phone`: the request waits for the member, slots of an
    /// earlier proposal not taken up are withdrawn, each slot's link works at once (its
    /// token derived from `key`), the proposal is audited on the linked account and, with
    /// `mail_member`, queued to the request's address; `note` says so.
    #[expect(clippy::too_many_arguments, reason = "a proposal is all of these, and the time")]
    pub async fn propose_slots(
        &self,
        id: RequestId,
        slots: &[(Timestamp, Timestamp)],
        phone: &str,
        note: &NewNote,
        mail_member: bool,
        key: &ServerKey,
        reach: Reach,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let staff = note.author_id;
        let mut work = self.transactions.begin().await?;
        let request = work.hold_request(id).await?.ok_or(StoreError::Changed)?;
        hold_linked_within(work.as_mut(), &request, reach).await?;
        let request = AssistanceRequest { state: RequestState::Waiting, phone: phone.to_owned(), ..request };
        work.save_request(&request, now).await?;
        withdraw_waiting_slots(work.as_mut(), id, None, now).await?;
        for (starts_at, ends_at) in slots {
            let slot_id = work.insert_slot(id, (*starts_at, *ends_at), staff, now).await?;
            let slot = CallSlot {
                id: slot_id,
                request_id: id,
                starts_at: *starts_at,
                ends_at: *ends_at,
                confirmed_at: None,
                withdrawn_at: None,
            };
            work.set_slot_token(slot_id, &slot.link_token(key).hash()).await?;
        }
        if let Some(account) = request.account_id {
            let actor = staff.map_or(Actor::System, Actor::Staff);
            work.record(&call_event(account, AuditKind::CallProposed, actor, now)).await?;
        }
        if mail_member {
            let mail = NewMail {
                kind: MailKind::CallProposal,
                account_id: request.account_id,
                recipient: request.email.clone(),
                subject: MailSubject::Request(id),
            };
            work.queue_mail(&mail, now).await?;
        }
        work.insert_note(id, note, now).await?;
        work.commit().await
    }

    /// Confirms a slot the member agreed to by phone, on their behalf: as when they
    /// follow the link (the first confirmation wins, the other slots are withdrawn, the
    /// desk's mailbox is told), but audited as `staff`'s act and mailed to nobody else:
    /// the member already knows, and their mail may not get through. `Ok(None)` when the
    /// slot is not one of the request's.
    #[expect(clippy::too_many_arguments, reason = "who confirms, on what, within which reach, and the time")]
    pub async fn confirm_for_member(
        &self,
        request: RequestId,
        slot: CallSlotId,
        staff: AccountId,
        reach: Reach,
        notify: Option<&EmailAddress>,
        note: &str,
        now: Timestamp,
    ) -> Result<Option<Confirmation>, StoreError> {
        let mut work = self.transactions.begin().await?;
        let Some(request) = work.hold_request(request).await? else { return Ok(None) };
        hold_linked_within(work.as_mut(), &request, reach).await?;
        let slots = work.request_slots(request.id).await?;
        let Some(slot) = slots.into_iter().find(|s| s.id == slot) else { return Ok(None) };
        let note = NewNote { author_id: Some(staff), body: note.to_owned() };
        let confirmation =
            confirm(work.as_mut(), &request, slot, Actor::Staff(staff), false, notify, &note, now).await?;
        work.commit().await?;
        Ok(Some(confirmation))
    }

    /// Confirms the slot behind a link: the first confirmation of a proposal wins and
    /// withdraws the other slots, is audited on the linked account, queued to the
    /// request's address with `mail_member` (and, with `notify`, to the desk's mailbox)
    /// and noted with `note`; a second confirmation of the same slot changes nothing.
    /// `Ok(None)` for an unknown link.
    pub async fn confirm_slot(
        &self,
        hash: &TokenHash,
        notify: Option<&EmailAddress>,
        note: &str,
        mail_member: bool,
        now: Timestamp,
    ) -> Result<Option<Confirmation>, StoreError> {
        let mut work = self.transactions.begin().await?;
        let Some(slot) = work.find_slot(hash).await? else { return Ok(None) };
        // The request's row serialises confirmations of one proposal; the slot is read
        // again once it is held.
        let Some(request) = work.hold_request(slot.request_id).await? else { return Ok(None) };
        let Some(slot) = work.find_slot(hash).await? else { return Ok(None) };
        let note = NewNote { author_id: None, body: note.to_owned() };
        let confirmation =
            confirm(work.as_mut(), &request, slot, Actor::Member, mail_member, notify, &note, now).await?;
        work.commit().await?;
        Ok(Some(confirmation))
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::ports::memory::Memory;

    fn t0() -> Timestamp {
        "2026-03-02T09:00:00Z".parse().unwrap()
    }

    fn hours(n: i64) -> SignedDuration {
        SignedDuration::from_hours(n)
    }

    fn written(account: Option<AccountId>, message: &str) -> NewRequest {
        NewRequest {
            wants: None,
            name: "Marie Durand".into(),
            email: EmailAddress::from_stored("marie@chu.example.fr".into()),
            identifier: "marie".into(),
            phone: "04 91 00 00 00".into(),
            message: message.into(),
            address: None,
            account_id: account,
            origin: RequestOrigin::Member,
            from_account_address: false,
        }
    }

    fn desk() -> EmailAddress {
        EmailAddress::from_stored("assistance@reseau.example.fr".into())
    }

    /// Rows in memory holding marie (1, a member) and chef (2, an administrator).
    async fn memory() -> Memory {
        let memory = Memory::default();
        for (id, role) in [(1, crate::account::Role::Member), (2, crate::account::Role::Admin)] {
            let account = crate::account::Account::sample(id, role);
            let held =
                crate::ports::HeldAccount { account, failures_cleared_after: 0, secours_code: None, email_code: None };
            memory.0.lock().await.accounts.insert(AccountId::from_stored(id), held);
        }
        memory
    }

    fn key() -> ServerKey {
        ServerKey::from_bytes(&[7; 32]).unwrap()
    }

    fn note(body: &str) -> NewNote {
        NewNote { author_id: Some(AccountId::from_stored(9)), body: body.into() }
    }

    #[tokio::test]
    async fn writing_in_queues_the_receipt_and_tells_the_desk() {
        let memory = Memory::default();
        let rows = std::sync::Arc::clone(&memory.0);
        let rules = DeskRules::new(Arc::new(memory));
        let (request, desk) = (written(None, "Je n'arrive pas à me connecter"), desk());
        let created = rules.create_request(&request, Some(&desk), t0()).await.unwrap();
        let rows = rows.lock().await;
        let kinds: Vec<_> = rows.mail.iter().map(|m| (m.kind, m.subject)).collect();
        let subject = MailSubject::Request(created.id);
        assert_eq!(kinds, [(MailKind::AssistanceReceived, subject), (MailKind::DeskNewRequest, subject)]);
    }

    #[tokio::test]
    async fn an_undelivered_message_lands_on_the_open_request_or_opens_one() {
        let memory = Memory::default();
        let rows = std::sync::Arc::clone(&memory.0);
        let rules = DeskRules::new(Arc::new(memory));
        let marie = Some(AccountId::from_stored(1));
        let first = rules.report_undelivered(&written(marie, "rebond"), Some(&desk()), t0()).await.unwrap();
        rules.update_request(first, RequestChange::State(RequestState::Waiting), &note("attente"), t0()).await.unwrap();
        let second = rules.report_undelivered(&written(marie, "second rebond"), Some(&desk()), t0()).await.unwrap();
        assert_eq!(second, first, "a note on the request still open");
        rules.update_request(first, RequestChange::State(RequestState::Closed), &note("close"), t0()).await.unwrap();
        let third = rules.report_undelivered(&written(marie, "troisième"), None, t0()).await.unwrap();
        assert_ne!(third, first, "a closed request is not reopened");
        let rows = rows.lock().await;
        assert_eq!(rows.requests[0].state, RequestState::Closed);
        assert!(rows.notes.iter().any(|(id, n)| *id == first && n.body == "second rebond" && n.author_id.is_none()));
        let told = rows.mail.iter().filter(|m| m.kind == MailKind::DeskNewRequest).count();
        assert_eq!(told, 1, "the desk hears of new requests only, and only with an address");
    }

    #[tokio::test]
    async fn the_first_confirmation_wins_and_withdraws_the_rest() {
        let memory = memory().await;
        let rows = std::sync::Arc::clone(&memory.0);
        let rules = DeskRules::new(Arc::new(memory));
        let marie = AccountId::from_stored(1);
        let request = rules.create_request(&written(Some(marie), "appelez-moi"), None, t0()).await.unwrap();
        let earlier = [(t0() + hours(24), t0() + hours(25))];
        rules
            .propose_slots(request.id, &earlier, "04 91 00 00 00", &note("un"), true, &key(), Reach::Anyone, t0())
            .await
            .unwrap();
        let slots = [(t0() + hours(48), t0() + hours(49)), (t0() + hours(50), t0() + hours(51))];
        rules
            .propose_slots(request.id, &slots, "04 91 00 00 01", &note("deux"), true, &key(), Reach::Anyone, t0())
            .await
            .unwrap();
        let links: Vec<TokenHash> = rows.lock().await.slots.iter().map(|(s, _)| s.link_token(&key()).hash()).collect();
        let token = |n: usize| links.get(n - 1).cloned().unwrap_or_else(|| TokenHash::from_stored("inconnu".into()));
        let at = t0() + hours(1);
        let unavailable = rules.confirm_slot(&token(1), None, "confirmé", true, at).await.unwrap();
        assert!(matches!(unavailable, Some(Confirmation::Unavailable(_))), "the earlier proposal gave way");
        let confirmed = rules.confirm_slot(&token(2), Some(&desk()), "confirmé", true, at).await.unwrap();
        assert!(matches!(confirmed, Some(Confirmation::Confirmed(_))), "{confirmed:?}");
        let again = rules.confirm_slot(&token(2), Some(&desk()), "confirmé", true, at).await.unwrap();
        assert!(matches!(again, Some(Confirmation::AlreadyConfirmed(_))), "{again:?}");
        let other = rules.confirm_slot(&token(3), None, "confirmé", true, at).await.unwrap();
        assert!(matches!(other, Some(Confirmation::Unavailable(_))), "{other:?}");
        assert!(rules.confirm_slot(&token(9), None, "confirmé", true, at).await.unwrap().is_none());
        let rows = rows.lock().await;
        assert_eq!(
            (rows.requests[0].state, rows.requests[0].phone.as_str()),
            (RequestState::Waiting, "04 91 00 00 01")
        );
        let confirmations = rows.mail.iter().filter(|m| m.kind == MailKind::CallConfirmed).count();
        let desk_told = rows.mail.iter().filter(|m| m.kind == MailKind::DeskCallConfirmed).count();
        assert_eq!((confirmations, desk_told), (1, 1), "once");
        let audited: Vec<_> = rows.events.iter().map(|(_, e)| e.kind).collect();
        assert_eq!(audited, [AuditKind::CallProposed, AuditKind::CallProposed, AuditKind::CallConfirmed]);
    }

    #[tokio::test]
    async fn a_call_agreed_by_phone_is_confirmed_by_the_desk_without_a_message() {
        let memory = memory().await;
        let rows = std::sync::Arc::clone(&memory.0);
        let rules = DeskRules::new(Arc::new(memory));
        let marie = AccountId::from_stored(1);
        let staff = AccountId::from_stored(9);
        let request = rules.create_request(&written(Some(marie), "appelez-moi"), None, t0()).await.unwrap();
        let slots = [(t0() + hours(24), t0() + hours(25)), (t0() + hours(26), t0() + hours(27))];
        rules
            .propose_slots(
                request.id,
                &slots,
                "04 91 00 00 00",
                &note("par téléphone"),
                false,
                &key(),
                Reach::Anyone,
                t0(),
            )
            .await
            .unwrap();
        let second = rows.lock().await.slots[1].0.id;
        let at = t0() + hours(1);
        let confirmed = rules
            .confirm_for_member(request.id, second, staff, Reach::Anyone, Some(&desk()), "convenu", at)
            .await
            .unwrap();
        assert!(matches!(confirmed, Some(Confirmation::Confirmed(ref s)) if s.id == second), "{confirmed:?}");
        let again = rules
            .confirm_for_member(request.id, second, staff, Reach::Anyone, Some(&desk()), "convenu", at)
            .await
            .unwrap();
        assert!(matches!(again, Some(Confirmation::AlreadyConfirmed(_))), "{again:?}");
        let other = rules.create_request(&written(None, "autre"), None, t0()).await.unwrap();
        let elsewhere = rules.confirm_for_member(other.id, second, staff, Reach::Anyone, None, "x", at).await.unwrap();
        assert!(elsewhere.is_none(), "a slot of another request");
        let rows = rows.lock().await;
        let to_member: Vec<MailKind> = rows
            .mail
            .iter()
            .filter(|m| m.recipient == request.email && m.kind != MailKind::AssistanceReceived)
            .map(|m| m.kind)
            .collect();
        assert_eq!(to_member, [], "nothing but the receipts of what they wrote");
        assert_eq!(rows.mail.iter().filter(|m| m.kind == MailKind::DeskCallConfirmed).count(), 1, "the desk is told");
        assert_eq!(rows.slots[0].0.state_at(at), SlotState::Withdrawn);
        let (_, confirmation) = rows.events.iter().find(|(_, e)| e.kind == AuditKind::CallConfirmed).unwrap();
        assert_eq!(confirmation.actor, Actor::Staff(staff), "audited as the desk's act");
    }

    #[tokio::test]
    async fn assistance_staff_propose_and_confirm_calls_for_members_only() {
        let memory = memory().await;
        let rules = DeskRules::new(Arc::new(memory));
        let chef = AccountId::from_stored(2);
        let staff = AccountId::from_stored(9);
        let request = rules.create_request(&written(Some(chef), "rebond"), None, t0()).await.unwrap();
        let slots = [(t0() + hours(24), t0() + hours(25))];
        let (phone, note) = ("04 91 00 00 00", note("créneau"));
        let proposed =
            rules.propose_slots(request.id, &slots, phone, &note, false, &key(), Reach::MembersOnly, t0()).await;
        assert!(matches!(proposed, Err(StoreError::Changed)), "{proposed:?}");
        rules.propose_slots(request.id, &slots, phone, &note, false, &key(), Reach::Anyone, t0()).await.unwrap();
        let slot = CallSlotId::from_stored(1);
        let at = t0() + hours(1);
        let refused = rules.confirm_for_member(request.id, slot, staff, Reach::MembersOnly, None, "convenu", at).await;
        assert!(matches!(refused, Err(StoreError::Changed)), "{refused:?}");
        let confirmed = rules.confirm_for_member(request.id, slot, staff, Reach::Anyone, None, "convenu", at).await;
        assert!(matches!(confirmed, Ok(Some(Confirmation::Confirmed(_)))), "{confirmed:?}");
    }
}
