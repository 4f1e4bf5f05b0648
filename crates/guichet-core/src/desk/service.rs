//! The desk's use cases — writing in, staff changes and notes, call slots — and the
//! read models its pages show. Staff actions on *accounts* live in [`crate::console`],
//! where authority is decided.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::{
    AssistanceRequest, CallSlot, CallSlotId, Confirmation, DeskRules, NewNote, NewRequest, RequestChange, RequestId,
    RequestNote, RequestOrigin, SlotState, Wants,
};
use crate::account::{Account, AccountId, EmailAddress, Identifier, Role};
use crate::audit::RequestContext;
use crate::catalogue;
use crate::clock::Clock;
use crate::console::{Denied, StaffActor};
use crate::keys::ServerKey;
use crate::lockout::ThrottleKey;
use crate::mail::{MailLogEntry, MailState};
use crate::ports::{AccountStore, DeskStore, OutboxStore, Ports, Reach, StoreError, ThrottleStore};
use crate::token::PlainToken;

/// The longest message or note, in characters.
pub const NOTE_MAX_CHARS: usize = 5000;

/// Why a request could not be linked to an account.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No account has this identifier.
    #[error("{}", crate::catalogue::LINK_ERROR_UNKNOWN)]
    Unknown,
    /// The actor may not link to this account.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a visitor typed on `/assistance`, as typed.
#[derive(Debug, Clone, Copy, Default)]
pub struct WrittenIn<'a> {
    /// Their name.
    pub name: &'a str,
    /// Where to answer.
    pub email: &'a str,
    /// The identifier they think they have (optional).
    pub identifier: &'a str,
    /// A phone number (optional, unless they want a call).
    pub phone: &'a str,
    /// What is wrong.
    pub message: &'a str,
    /// `credentials`, `call`, or nothing.
    pub wants: &'a str,
}

/// A form field at fault, and what to do about it (in French).
pub type FieldError = (&'static str, &'static str);

/// Why an assistance request, a note or a proposal was refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Fields of the assistance form are missing or wrong: every one at once.
    #[error("{}", .0.first().map_or("", |(_, message)| *message))]
    Form(Vec<FieldError>),
    /// A field is missing or wrong; the message says what to do, in French.
    #[error("{message}")]
    Invalid {
        /// The form field at fault.
        field: &'static str,
        /// What to do about it.
        message: &'static str,
    },
    /// The request is linked to an account the actor may not act on.
    #[error(transparent)]
    Denied(Denied),
    /// Too many requests for this address, or for the desk as a whole, this hour.
    #[error("{}", crate::catalogue::REQUEST_ERROR_TOO_MANY)]
    TooMany,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A request as its page shows it.
#[derive(Debug, Clone)]
pub struct RequestFile {
    /// The request.
    pub request: AssistanceRequest,
    /// The account it is linked to.
    pub account: Option<Account>,
    /// Who is on it.
    pub assignee: Option<Identifier>,
    /// Its notes, oldest first, with their authors (`None`: guichet itself).
    pub notes: Vec<(RequestNote, Option<Identifier>)>,
    /// Its call slots, by start, with where each stands now.
    pub slots: Vec<FiledSlot>,
    /// The request's address refused guichet's latest message (the message given up,
    /// with the server's answer): mail to it will most likely not arrive.
    pub refused: Option<MailLogEntry>,
}

/// A call slot on its request's page.
#[derive(Debug, Clone)]
pub struct FiledSlot {
    /// The slot.
    pub slot: CallSlot,
    /// Where it stands now.
    pub state: SlotState,
    /// Its link's token, for the desk to pass on by another way than mail: while the slot
    /// is open, and when the link can be shown.
    pub link: Option<PlainToken>,
}

/// How long a refused message counts: after a month without news, the address gets
/// the benefit of the doubt again.
pub(crate) const REFUSALS_COUNT_FOR: SignedDuration = SignedDuration::from_hours(30 * 24);

/// The message that shows an address refuses guichet's mail, if one does: the latest
/// message that was sent or given up was given up, less than a month ago.
pub fn refusal(latest_first: &[MailLogEntry], now: Timestamp) -> Option<&MailLogEntry> {
    let since = now.saturating_sub(REFUSALS_COUNT_FOR).unwrap_or(now);
    latest_first
        .iter()
        .find(|m| matches!(m.state, MailState::Sent | MailState::Failed))
        .filter(|m| m.state == MailState::Failed && m.created_at >= since)
}

/// A call slot as the member's link shows it.
#[derive(Debug, Clone)]
pub struct SlotView {
    /// The slot.
    pub slot: CallSlot,
    /// Where it stands now.
    pub state: SlotState,
    /// The request's reference.
    pub reference: String,
    /// The number the desk will call (the member typed it, or the desk did): repeated
    /// so that a wrong digit is seen before the call. Only a holder of the link sees it.
    pub phone: String,
    /// Whether the member's confirmation is mailed to them: not while their address
    /// refuses guichet's mail.
    pub mailed: bool,
}

/// The assistance desk.
#[derive(Debug, Clone)]
pub struct Desk {
    desk: Arc<dyn DeskStore>,
    rules: DeskRules,
    accounts: Arc<dyn AccountStore>,
    throttle: Arc<dyn ThrottleStore>,
    outbox: Arc<dyn OutboxStore>,
    clock: Arc<dyn Clock>,
    /// Derives the slots' links.
    key: ServerKey,
    /// The desk's mailbox, told of new requests and confirmed calls.
    desk_address: Option<EmailAddress>,
    /// Requests per email address and hour.
    pub requests_per_hour: u64,
    /// Requests per network address and hour: generous, so that a hospital's members
    /// behind one address get through, and still a cap on one sender.
    pub requests_per_hour_per_network: u64,
    /// Requests per hour for the whole desk: what a flood can add to its queue.
    pub requests_per_hour_overall: u64,
}

fn invalid(field: &'static str, message: &'static str) -> RequestError {
    RequestError::Invalid { field, message }
}

impl Desk {
    /// Wires the use cases; `desk_address` (`GUICHET_ASSISTANCE_EMAIL`) hears of new
    /// requests and confirmed calls; `key` derives the slots' links.
    pub fn new(ports: &Ports, clock: Arc<dyn Clock>, desk_address: Option<EmailAddress>, key: ServerKey) -> Self {
        Self {
            desk: Arc::clone(&ports.desk),
            rules: DeskRules::of(ports),
            accounts: Arc::clone(&ports.accounts),
            throttle: Arc::clone(&ports.throttle),
            outbox: Arc::clone(&ports.outbox),
            clock,
            key,
            desk_address,
            requests_per_hour: 5,
            requests_per_hour_per_network: 30,
            requests_per_hour_overall: 200,
        }
    }

    /// The phone number as typed, checked: digits, spaces and `+ - . ( )`, 30 at most.
    fn phone(typed: &str) -> Result<String, RequestError> {
        let phone = typed.trim();
        // Any space (a number copied from a page has no-break ones) is a space.
        let allowed = |c: char| c.is_ascii_digit() || c.is_whitespace() || "+-.()".contains(c);
        if phone.chars().count() > 30 || !phone.chars().all(allowed) {
            return Err(invalid("phone", catalogue::desk::PHONE_CHARACTERS));
        }
        Ok(phone.chars().map(|c| if c.is_whitespace() { ' ' } else { c }).collect())
    }

    /// Checks what was typed on `/assistance`: every field at fault, at once.
    fn check(typed: &WrittenIn<'_>) -> Result<(String, EmailAddress, String, Option<Wants>, String), RequestError> {
        let mut errors: Vec<FieldError> = Vec::new();
        let name = typed.name.split_whitespace().collect::<Vec<_>>().join(" ");
        if name.is_empty() || name.chars().count() > 120 {
            errors.push(("name", catalogue::desk::NAME_MISSING));
        }
        let email = EmailAddress::parse(typed.email);
        if email.is_err() {
            errors.push(("email", catalogue::desk::EMAIL_INVALID));
        }
        let wants = match typed.wants.trim() {
            "" => None,
            other => Wants::parse(other).or_else(|| {
                errors.push(("wants", catalogue::desk::WANTS_UNKNOWN));
                None
            }),
        };
        let phone = match Self::phone(typed.phone) {
            Ok(phone) if wants == Some(Wants::Call) && phone.chars().filter(char::is_ascii_digit).count() < 4 => {
                errors.push(("phone", catalogue::desk::PHONE_FOR_CALL));
                phone
            }
            Ok(phone) => phone,
            Err(_) => {
                errors.push(("phone", catalogue::desk::PHONE_CHARACTERS));
                String::new()
            }
        };
        let message = typed.message.trim();
        if message.is_empty() || message.chars().count() > NOTE_MAX_CHARS {
            errors.push(("message", catalogue::desk::MESSAGE_MISSING));
        }
        match email {
            Ok(email) if errors.is_empty() => Ok((name, email, phone, wants, message.to_owned())),
            _ => Err(RequestError::Form(errors)),
        }
    }

    /// Records an assistance request written on `/assistance`, and queues its receipt.
    pub async fn write_in(
        &self,
        typed: &WrittenIn<'_>,
        context: &RequestContext,
    ) -> Result<AssistanceRequest, RequestError> {
        let (name, email, phone, wants, message) = Self::check(typed)?;
        let identifier: String = typed.identifier.trim().chars().take(Identifier::MAX).collect();
        let now = self.clock.now();
        let address = context.address.map(crate::lockout::throttle_key);
        // Counted before anything is written, atomically: twenty at once get five. By the
        // address typed, by network address (generously: the members of a hospital behind
        // one address get through, one sender cannot use up the desk's allowance), and for
        // the whole desk.
        let mut limits = vec![(ThrottleKey::AssistanceRequests(format!("email:{email}")), self.requests_per_hour)];
        if let Some(address) = &address {
            limits.push((ThrottleKey::AssistanceRequests(address.clone()), self.requests_per_hour_per_network));
        }
        limits.push((ThrottleKey::AssistanceRequests("all".to_owned()), self.requests_per_hour_overall));
        let mut counted = Vec::new();
        for (key, limit) in limits {
            let (written, _) = self.throttle.count(&key, SignedDuration::from_hours(1), now).await?;
            counted.push(key);
            if written > limit {
                metrics::counter!("guichet_throttled_total", "what" => "assistance").increment(1);
                for key in &counted {
                    self.throttle.uncount(key, now).await?;
                }
                return Err(RequestError::TooMany);
            }
        }
        let account = match self.accounts.find_account_by_email(&email).await? {
            Some(account) => Some(account),
            None => match Identifier::parse(&identifier) {
                Ok(parsed) => self.accounts.find_account_by_identifier(&parsed).await?,
                Err(_) => None,
            },
        };
        // What anyone types must not write into a staff account's history: staff requests
        // are linked by an administrator, by hand.
        let account = account.filter(|a| a.role == Role::Member);
        let from_account_address = account.as_ref().is_some_and(|a| a.mail_addresses().any(|known| *known == email));
        let account_id = account.map(|a| a.id);
        let origin = RequestOrigin::Member;
        let request = NewRequest {
            name,
            email,
            identifier,
            phone,
            message,
            wants,
            address,
            account_id,
            origin,
            from_account_address,
        };
        Ok(self.rules.create_request(&request, self.desk_address.as_ref(), now).await?)
    }

    /// Changes a request's state, assignee or linked account, with a note saying so, in
    /// one transaction.
    pub async fn change_request(
        &self,
        id: RequestId,
        change: RequestChange,
        staff: &Account,
    ) -> Result<(), StoreError> {
        let body = catalogue::desk::change_note(change);
        let note = NewNote { author_id: Some(staff.id), body };
        self.rules.update_request(id, change, &note, self.clock.now()).await
    }

    /// Adds a staff note to a request.
    pub async fn add_note(&self, id: RequestId, staff: &Account, body: &str) -> Result<(), RequestError> {
        let body = body.trim();
        if body.is_empty() || body.chars().count() > NOTE_MAX_CHARS {
            return Err(invalid("body", catalogue::desk::NOTE_MISSING));
        }
        let note = NewNote { author_id: Some(staff.id), body: body.to_owned() };
        Ok(self.desk.add_note(id, &note, self.clock.now()).await?)
    }

    /// Links a request to the account with this identifier. Assistance staff link to
    /// members' accounts only.
    pub async fn link_request(
        &self,
        id: RequestId,
        identifier: &str,
        actor: &StaffActor,
        staff: &Account,
    ) -> Result<(), LinkError> {
        let Ok(identifier) = Identifier::parse(identifier) else { return Err(LinkError::Unknown) };
        let account = self.accounts.find_account_by_identifier(&identifier).await?.ok_or(LinkError::Unknown)?;
        if !actor.is_admin() && account.role != Role::Member {
            return Err(LinkError::Denied(Denied::StaffTarget));
        }
        Ok(self.change_request(id, RequestChange::Account(Some(account.id)), staff).await?)
    }

    /// Proposes one to three slots to call `phone` (the request's number, or the one
    /// staff agreed with the member); with `mail_member` the member is mailed one link
    /// per slot, otherwise the desk passes them on (the request's page shows them).
    pub async fn propose_slots(
        &self,
        id: RequestId,
        slots: &[(Timestamp, Timestamp)],
        phone: &str,
        mail_member: bool,
        actor: &StaffActor,
        staff: &Account,
    ) -> Result<(), RequestError> {
        let phone = Self::phone(phone)?;
        if phone.chars().filter(char::is_ascii_digit).count() < 4 {
            return Err(invalid("phone", catalogue::desk::PHONE_MISSING));
        }
        if slots.is_empty() || slots.len() > 3 {
            return Err(invalid("slot", catalogue::desk::SLOT_COUNT));
        }
        let now = self.clock.now();
        if slots.iter().any(|(start, end)| *start <= now || end <= start) {
            return Err(invalid("slot", catalogue::desk::SLOT_TIMES));
        }
        let body = catalogue::desk::proposal_note(slots.len(), &phone, mail_member);
        let note = NewNote { author_id: Some(staff.id), body };
        let reach = actor.reach();
        match self.rules.propose_slots(id, slots, &phone, &note, mail_member, &self.key, reach, now).await {
            Err(StoreError::Changed) if reach == Reach::MembersOnly => Err(RequestError::Denied(Denied::StaffTarget)),
            done => Ok(done?),
        }
    }

    /// Confirms a slot the member agreed to by phone, on their behalf (no message to
    /// them). Assistance staff do so on requests of members only (the call is written
    /// into the linked account's history). `Ok(None)` when the slot is not one of the
    /// request's.
    pub async fn confirm_for_member(
        &self,
        id: RequestId,
        slot: CallSlotId,
        actor: &StaffActor,
        staff: &Account,
    ) -> Result<Option<Confirmation>, LinkError> {
        let note = catalogue::desk::CALL_AGREED_BY_PHONE;
        let (notify, reach) = (self.desk_address.as_ref(), actor.reach());
        // The reach is decided in the unit, with the linked account held.
        match self.rules.confirm_for_member(id, slot, staff.id, reach, notify, note, self.clock.now()).await {
            Err(StoreError::Changed) if reach == Reach::MembersOnly => Err(LinkError::Denied(Denied::StaffTarget)),
            done => Ok(done?),
        }
    }

    /// Confirms a slot from its link's token (the POST behind the button). `Ok(None)`
    /// for an unknown link.
    pub async fn confirm_slot(&self, token: &str) -> Result<Option<(Confirmation, SlotView)>, StoreError> {
        let Some(token) = PlainToken::from_presented(token) else { return Ok(None) };
        let notify = self.desk_address.as_ref();
        let note = catalogue::desk::CALL_CONFIRMED;
        let now = self.clock.now();
        // A member whose address refuses guichet's mail (the desk passed the link on)
        // is not mailed the confirmation: the page they are on says it all.
        let mail_member = match self.desk.find_slot(&token.hash()).await? {
            Some((_, request)) => !self.refuses_mail(&request.email, now).await?,
            None => return Ok(None),
        };
        let confirmed = self.rules.confirm_slot(&token.hash(), notify, note, mail_member, now).await?;
        let Some(confirmation) = confirmed else {
            return Ok(None);
        };
        let slot = match &confirmation {
            Confirmation::Confirmed(slot) | Confirmation::AlreadyConfirmed(slot) | Confirmation::Unavailable(slot) => {
                slot.clone()
            }
        };
        let request = self.desk.find_request(slot.request_id).await?;
        let (reference, phone) = request.map(|r| (r.reference, r.phone)).unwrap_or_default();
        let state = slot.state_at(self.clock.now());
        Ok(Some((confirmation, SlotView { state, slot, reference, phone, mailed: mail_member })))
    }

    /// The slot behind a link, as the member sees it. `Ok(None)` for an unknown link.
    pub async fn slot_by_link(&self, token: &str) -> Result<Option<SlotView>, StoreError> {
        let Some(token) = PlainToken::from_presented(token) else { return Ok(None) };
        let Some((slot, request)) = self.desk.find_slot(&token.hash()).await? else { return Ok(None) };
        let now = self.clock.now();
        let mailed = !self.refuses_mail(&request.email, now).await?;
        Ok(Some(SlotView {
            state: slot.state_at(now),
            slot,
            reference: request.reference,
            phone: request.phone,
            mailed,
        }))
    }

    /// Whether `address` refuses guichet's mail now ([`refusal`]).
    async fn refuses_mail(&self, address: &EmailAddress, now: Timestamp) -> Result<bool, StoreError> {
        Ok(refusal(&self.outbox.mail_to(address, 20).await?, now).is_some())
    }

    /// Requests, newest first: only those not closed with `open_only`.
    pub async fn queue(&self, open_only: bool, limit: u32) -> Result<Vec<AssistanceRequest>, StoreError> {
        self.desk.list_requests(open_only, limit).await
    }

    /// The requests linked to an account, newest first.
    pub async fn requests_of(&self, account: AccountId, limit: u32) -> Result<Vec<AssistanceRequest>, StoreError> {
        self.desk.account_requests(account, limit).await
    }

    /// A request with what its page shows. `Ok(None)` when the id is unknown.
    pub async fn file(&self, id: RequestId) -> Result<Option<RequestFile>, StoreError> {
        let Some(request) = self.desk.find_request(id).await? else { return Ok(None) };
        let account = match request.account_id {
            Some(id) => self.accounts.find_account(id).await?,
            None => None,
        };
        let assignee = match request.assignee_id {
            Some(id) => self.accounts.find_account(id).await?.map(|a| a.identifier),
            None => None,
        };
        let mut notes = Vec::new();
        for note in self.desk.request_notes(request.id).await? {
            let author = match note.author_id {
                Some(id) => self.accounts.find_account(id).await?.map(|a| a.identifier),
                None => None,
            };
            notes.push((note, author));
        }
        let now = self.clock.now();
        let mut slots = Vec::new();
        for slot in self.desk.request_slots(request.id).await? {
            let state = slot.state_at(now);
            // Only a link that works: a slot proposed before links were derived keeps the
            // random one it was mailed with, which cannot be shown again.
            let derived = slot.link_token(&self.key);
            let works = state == SlotState::Open
                && self.desk.find_slot(&derived.hash()).await?.is_some_and(|(found, _)| found.id == slot.id);
            slots.push(FiledSlot { state, link: works.then_some(derived), slot });
        }
        let refused = refusal(&self.outbox.mail_to(&request.email, 20).await?, now).cloned();
        Ok(Some(RequestFile { request, account, assignee, notes, slots, refused }))
    }

    /// Confirmed calls still to come, soonest first, with their requests.
    pub async fn upcoming_calls(&self, limit: u32) -> Result<Vec<(CallSlot, AssistanceRequest)>, StoreError> {
        self.desk.upcoming_calls(self.clock.now(), limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{MailId, MailKind};

    fn entry(state: MailState, days_ago: i64, now: Timestamp) -> MailLogEntry {
        MailLogEntry {
            id: MailId::from_stored(1),
            kind: MailKind::PasswordReset,
            recipient: EmailAddress::from_stored("marie@chu.example.fr".into()),
            created_at: now - SignedDuration::from_hours(24 * days_ago),
            state,
            attempts: 1,
            last_answer: None,
        }
    }

    #[test]
    fn an_address_refuses_mail_while_its_latest_finished_message_was_given_up_this_month() {
        let now: Timestamp = "2026-03-02T09:00:00Z".parse().unwrap();
        let failed = entry(MailState::Failed, 3, now);
        let pending = entry(MailState::Pending, 0, now);
        assert!(refusal(&[pending.clone(), failed.clone()], now).is_some(), "a message still waiting says nothing");
        assert!(refusal(&[entry(MailState::Sent, 1, now), failed.clone()], now).is_none(), "delivered since");
        assert!(refusal(&[entry(MailState::Failed, 40, now)], now).is_none(), "too long ago");
        assert!(refusal(&[pending], now).is_none());
        assert!(refusal(&[entry(MailState::Skipped, 0, now), failed], now).is_some(), "not sent on purpose: no news");
        assert!(refusal(&[entry(MailState::Failed, 30, now)], now).is_some(), "a month ago still counts");
        assert!(refusal(&[entry(MailState::Failed, 31, now)], now).is_none());
    }
}
