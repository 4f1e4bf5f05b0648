//! The postman: takes due messages from the outbox, makes their codes, sends them, and
//! records how it went — retrying temporary failures with growing delays for at least
//! `give_up_after`, giving up at once on permanent ones.
//!
//! Requests never wait on the mail server: they queue, the postman sends.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::Notify;

use crate::account::{Account, AccountId, EmailAddress};
use crate::catalogue;
use crate::clock::Clock;
use crate::codes::{CodePurpose, RecoveryCode, StoredCode, TemporaryPassword};
use crate::credentials::{Credentials, Provided};
use crate::desk::{NewRequest, SlotState};
use crate::keys::ServerKey;
use crate::mail::{MailContent, MailKind, MailOutcome, MailSender, MailSubject, OutgoingMail, QueuedMail, SlotLink};
use crate::ports::{AccountStore, DeskStore, OutboxStore, Ports, Reach, RecoveryStore, StoreError};
use crate::token::TokenHash;

/// How the postman works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailPolicy {
    /// Lifetime of a "forgot password" code, from when it is sent.
    pub reset_code_ttl: SignedDuration,
    /// Lifetime of an invitation code.
    pub invitation_ttl: SignedDuration,
    /// "Forgot" messages of one kind sent to one account per hour, at most.
    pub per_account_per_hour: u64,
    /// Temporary failures are retried for this long, then the message is given up.
    pub give_up_after: SignedDuration,
    /// Lifetime of a staff-issued temporary password, from when it is sent.
    pub temporary_password_ttl: SignedDuration,
}

impl Default for MailPolicy {
    fn default() -> Self {
        Self {
            reset_code_ttl: SignedDuration::from_hours(1),
            invitation_ttl: SignedDuration::from_hours(7 * 24),
            per_account_per_hour: 3,
            give_up_after: SignedDuration::from_hours(48),
            temporary_password_ttl: SignedDuration::from_hours(72),
        }
    }
}

/// The secret a message carries, and what becomes of it.
enum Secret {
    None,
    /// A stored code, forgotten if the message cannot be sent.
    Code(TokenHash),
    /// A temporary password's hash and expiry, set once the message has left.
    TemporaryPassword(TokenHash, Timestamp),
}

/// How long a claimed message is held before another sender may take it.
const LEASE: SignedDuration = SignedDuration::from_mins(2);
/// Messages claimed at a time.
const BATCH: u32 = 10;

/// Sends what the outbox holds.
#[derive(Debug, Clone)]
pub struct Postman {
    accounts: Arc<dyn AccountStore>,
    credentials: Credentials,
    outbox: Arc<dyn OutboxStore>,
    recovery: Arc<dyn RecoveryStore>,
    secours: crate::secours::SecoursRules,
    own_address: crate::own_address::OwnAddressRules,
    desk: Arc<dyn DeskStore>,
    desk_rules: crate::desk::DeskRules,
    sender: Arc<dyn MailSender>,
    clock: Arc<dyn Clock>,
    policy: MailPolicy,
    /// The desk's mailbox (`GUICHET_ASSISTANCE_EMAIL`): told of undelivered messages.
    desk_address: Option<EmailAddress>,
    /// Derives the call slots' links.
    key: ServerKey,
    signal: Arc<Notify>,
    /// Set when the process stops: the postman finishes the message it is sending and
    /// gives the rest of its claim back.
    stopping: Arc<std::sync::atomic::AtomicBool>,
    /// Set when the mail server could not be reached: the next message that goes
    /// through brings every waiting one forward.
    outage: Arc<std::sync::atomic::AtomicBool>,
}

/// The delay before retry number `attempts + 1`: 30 s, doubling, at most ten minutes,
/// so that a member never waits long after an outage ends (and as soon as one message
/// goes through, every waiting one goes at once: see [`Postman::deliver_due`]).
pub fn backoff(attempts: u32) -> SignedDuration {
    let doublings = attempts.saturating_sub(1).min(5);
    SignedDuration::from_secs(30 * (1_i64 << doublings)).min(SignedDuration::from_mins(10))
}

impl Postman {
    /// Wires the postman; `desk_address` hears of new requests it opens; `key` derives
    /// the call slots' links.
    pub fn new(
        ports: &Ports,
        sender: Arc<dyn MailSender>,
        clock: Arc<dyn Clock>,
        policy: MailPolicy,
        desk_address: Option<EmailAddress>,
        key: ServerKey,
    ) -> Self {
        Self {
            accounts: Arc::clone(&ports.accounts),
            credentials: Credentials::of(ports),
            outbox: Arc::clone(&ports.outbox),
            recovery: Arc::clone(&ports.recovery),
            secours: crate::secours::SecoursRules::of(ports),
            own_address: crate::own_address::OwnAddressRules::of(ports),
            desk: Arc::clone(&ports.desk),
            desk_rules: crate::desk::DeskRules::of(ports),
            sender,
            clock,
            policy,
            desk_address,
            key,
            signal: ports.outbox.mail_queued(),
            stopping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            outage: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// Asks the postman to stop: the message being sent is finished and recorded, the
    /// rest of the claim is given back for another sender.
    pub fn stop(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        self.signal.notify_one();
    }

    /// Whether [`Self::stop`] was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Asks the sending loop to look at the outbox now rather than at its next round.
    pub fn wake(&self) {
        self.signal.notify_one();
    }

    /// What the sending loop waits on between rounds.
    pub fn signal(&self) -> Arc<Notify> {
        Arc::clone(&self.signal)
    }

    /// The policy in force.
    pub fn policy(&self) -> MailPolicy {
        self.policy
    }

    /// Sends every message due now, once each; returns how many were handled.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let lease_until = now.saturating_add(LEASE).unwrap_or(now);
        let mut handled = 0;
        loop {
            if self.is_stopping() {
                return Ok(handled);
            }
            let batch = self.outbox.claim_due_mail(now, lease_until, BATCH).await?;
            if batch.is_empty() {
                let (pending, oldest) = self.outbox.backlog().await?;
                metrics::gauge!("guichet_outbox_pending").set(pending as f64);
                let age = oldest.map_or(0.0, |at| self.clock.now().duration_since(at).as_secs_f64().max(0.0));
                metrics::gauge!("guichet_outbox_oldest_pending_seconds").set(age);
                return Ok(handled);
            }
            for (n, mail) in batch.iter().enumerate() {
                if self.is_stopping() {
                    let rest: Vec<_> = batch[n..].iter().map(|m| m.id).collect();
                    self.outbox.release_mail(&rest, lease_until).await?;
                    return Ok(handled);
                }
                // The lease is renewed right before sending, and only if still ours: a
                // message another sender took meanwhile (a slow batch) is not sent twice.
                let now = self.clock.now();
                let renewed = now.saturating_add(LEASE).unwrap_or(now);
                if !self.outbox.renew_lease(mail.id, lease_until, renewed).await? {
                    continue;
                }
                let (account, outcome) = self.deliver(mail).await?;
                let result = match &outcome {
                    MailOutcome::Sent { .. } => "sent",
                    MailOutcome::Retry { .. } => "retry",
                    MailOutcome::Failed { .. } => "failed",
                    MailOutcome::Skipped { .. } => "skipped",
                };
                metrics::counter!("guichet_mail_total", "result" => result).increment(1);
                match &outcome {
                    MailOutcome::Sent { .. } => {
                        tracing::info!(mail = mail.id.get(), kind = mail.kind.as_str(), "mail sent");
                    }
                    MailOutcome::Retry { error, .. } => {
                        tracing::warn!(mail = mail.id.get(), attempts = mail.attempts, %error, "mail delayed, will retry");
                    }
                    MailOutcome::Failed { error } => tracing::error!(mail = mail.id.get(), %error, "mail given up"),
                    MailOutcome::Skipped { reason } => tracing::info!(mail = mail.id.get(), reason, "mail not sent"),
                }
                self.outbox.finish_mail(mail.id, account, &outcome.record(self.clock.now())).await?;
                if let MailOutcome::Failed { error } = &outcome {
                    self.report_undelivered(mail, account, error).await?;
                }
                handled += 1;
                // The server takes mail again after it could not be reached: what waits
                // for a retry goes now, in the order it was queued (the next claim takes
                // the oldest first). A message refused for itself (a full mailbox, 4xx)
                // keeps its own delay.
                if matches!(outcome, MailOutcome::Sent { .. })
                    && self.outage.swap(false, std::sync::atomic::Ordering::AcqRel)
                {
                    match self.outbox.retry_waiting_mail(self.clock.now()).await {
                        Ok(waiting) if waiting > 0 => {
                            tracing::info!(waiting, "the mail server takes mail again: the waiting messages go now");
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!(?error, "could not bring the waiting messages forward"),
                    }
                }
            }
        }
    }

    /// Sends one message; returns the account it was for (when there is one) and how it went.
    async fn deliver(&self, mail: &QueuedMail) -> Result<(Option<AccountId>, MailOutcome), StoreError> {
        if matches!(
            mail.kind,
            MailKind::AssistanceReceived
                | MailKind::CallProposal
                | MailKind::CallConfirmed
                | MailKind::DeskNewRequest
                | MailKind::DeskCallConfirmed
        ) {
            return self.deliver_desk_mail(mail).await;
        }
        let now = self.clock.now();
        let account = match mail.account_id {
            Some(id) => self.accounts.find_account(id).await?,
            // Typed on a "forgot" form: the account's own address, or its secours one.
            None => self.accounts.find_account_by_any_address(&mail.recipient).await?,
        };
        let Some(account) = account else {
            return Ok((None, MailOutcome::Skipped { reason: catalogue::postman::NO_ACCOUNT.into() }));
        };
        let skipped = |reason: &str| Ok((Some(account.id), MailOutcome::Skipped { reason: reason.to_owned() }));
        // Where it goes: the account's address as it is now, but for a copy to the secours
        // address, a code confirming one, and an address-change notice (to the old one).
        let to = if mail.copy_of.is_some() {
            if account.recovery_email.as_ref() != Some(&mail.recipient) {
                return skipped(catalogue::postman::SECOURS_CHANGED);
            }
            mail.recipient.clone()
        } else if matches!(
            mail.kind,
            MailKind::EmailChanged | MailKind::RecoveryEmailConfirmation | MailKind::EmailChangeConfirmation
        ) {
            mail.recipient.clone()
        } else {
            account.email.clone()
        };
        if matches!(mail.kind, MailKind::ForgotIdentifier | MailKind::PasswordReset) && mail.copy_of.is_none() {
            let hour_ago = now.saturating_sub(SignedDuration::from_hours(1)).unwrap_or(now);
            if self.outbox.count_sent_mail(account.id, mail.kind, hour_ago).await? >= self.policy.per_account_per_hour {
                return skipped(catalogue::postman::TOO_MANY);
            }
        }
        if matches!(mail.kind, MailKind::ForgotIdentifier | MailKind::PasswordReset) && account.disabled_at.is_some() {
            return skipped(catalogue::postman::DISABLED);
        }
        let Some((content, code)) = self.content(mail, &account, &to, now).await? else {
            return skipped(catalogue::postman::NOTHING_TO_SAY);
        };
        if mail.copy_of.is_none()
            && mail.kind.goes_to_secours_too()
            && let Some(secours) = &account.recovery_email
        {
            // Queued before the original leaves, once: a crash after the send does not lose it.
            self.outbox.queue_copy(mail.id, account.id, mail.kind, secours, now).await?;
        }
        let outgoing = OutgoingMail { to, name: account.display_name.as_str().to_owned(), content };
        match self.sender.send(&outgoing).await {
            Ok(answer) => {
                if let Secret::TemporaryPassword(hash, expires_at) = code {
                    // Set only once it left: an undelivered one must not become valid, nor
                    // one sent to an address that was replaced meanwhile.
                    let set = self
                        .credentials
                        .set_temporary_password(
                            account.id,
                            &hash,
                            expires_at,
                            Provided::StillAddress(&outgoing.to),
                            None,
                            Reach::Anyone,
                        )
                        .await?;
                    if !set {
                        tracing::warn!(
                            account = account.id.get(),
                            "address changed while sending: temporary password not set"
                        );
                    }
                }
                Ok((Some(account.id), MailOutcome::Sent { answer }))
            }
            Err(error) => {
                if let Secret::Code(hash) = code {
                    // Nobody will ever see this code: forget it.
                    self.recovery.delete_code(&hash).await?;
                }
                Ok((Some(account.id), self.after_failure(mail, error, now)))
            }
        }
    }

    /// A message to a member given up for good: the desk hears of it, so that someone
    /// calls the member instead of the member waiting for a message that will never come.
    /// For an account, a request linked to it (a note on its open one, if it has one);
    /// for a receipt or a proposal to someone without an account, a note on their request.
    async fn report_undelivered(
        &self,
        mail: &QueuedMail,
        account: Option<AccountId>,
        error: &str,
    ) -> Result<(), StoreError> {
        if !mail.kind.reaches_a_member() {
            return Ok(());
        }
        let account = match account {
            Some(id) => self.accounts.find_account(id).await?,
            None => None,
        };
        // The secours address is shown masked, as everywhere in the console.
        let to = match &account {
            Some(account) if account.email != mail.recipient => mail.recipient.masked(),
            _ => mail.recipient.to_string(),
        };
        let body = catalogue::postman::undelivered(mail.kind.label_fr(), &to, &error);
        let now = self.clock.now();
        if let Some(account) = account {
            let request = NewRequest {
                wants: None,
                name: account.greeting_name().to_owned(),
                email: account.email.clone(),
                identifier: account.identifier.to_string(),
                phone: String::new(),
                message: body,
                address: None,
                account_id: Some(account.id),
                origin: crate::desk::RequestOrigin::Undelivered,
                from_account_address: true,
            };
            self.desk_rules.report_undelivered(&request, self.desk_address.as_ref(), now).await?;
        } else if let MailSubject::Request(id) = mail.subject {
            let note = crate::desk::NewNote { author_id: None, body };
            self.desk.add_note(id, &note, now).await?;
        }
        Ok(())
    }

    fn after_failure(&self, mail: &QueuedMail, error: crate::mail::SendError, now: Timestamp) -> MailOutcome {
        let too_long = now.duration_since(mail.created_at) >= self.policy.give_up_after;
        if error.unreachable {
            self.outage.store(true, std::sync::atomic::Ordering::Release);
        }
        if error.permanent || too_long {
            MailOutcome::Failed { error: error.message }
        } else {
            let next_attempt_at = now.saturating_add(backoff(mail.attempts)).unwrap_or(now);
            MailOutcome::Retry { error: error.message, next_attempt_at }
        }
    }

    /// Receipts and call slots: addressed to whoever wrote in, account or not.
    async fn deliver_desk_mail(&self, mail: &QueuedMail) -> Result<(Option<AccountId>, MailOutcome), StoreError> {
        let now = self.clock.now();
        let skipped = |reason: &str| Ok((None, MailOutcome::Skipped { reason: reason.to_owned() }));
        let (request, content) = match mail.subject {
            MailSubject::Slot(slot) => {
                let Some(slot) = self.desk.find_slot_by_id(slot).await? else {
                    return skipped(catalogue::postman::SLOT_GONE);
                };
                let Some(request) = self.desk.find_request(slot.request_id).await? else {
                    return skipped(catalogue::postman::REQUEST_GONE);
                };
                let content = if mail.kind == MailKind::DeskCallConfirmed {
                    MailContent::DeskCallConfirmed {
                        reference: request.reference.clone(),
                        request: request.id,
                        starts_at: slot.starts_at,
                        ends_at: slot.ends_at,
                        phone: request.phone.clone(),
                    }
                } else {
                    MailContent::CallConfirmed {
                        reference: request.reference.clone(),
                        starts_at: slot.starts_at,
                        ends_at: slot.ends_at,
                        phone: request.phone.clone(),
                        written_at: now,
                    }
                };
                (request, content)
            }
            MailSubject::None => return skipped(catalogue::postman::NO_REQUEST),
            MailSubject::Request(id) => {
                let Some(request) = self.desk.find_request(id).await? else {
                    return skipped(catalogue::postman::REQUEST_GONE);
                };
                if mail.kind == MailKind::DeskNewRequest {
                    let content = MailContent::DeskNewRequest {
                        reference: request.reference.clone(),
                        request: request.id,
                        name: request.name.clone(),
                        phone: request.phone.clone(),
                    };
                    (request, content)
                } else if mail.kind == MailKind::AssistanceReceived {
                    let content = MailContent::AssistanceReceived { reference: request.reference.clone() };
                    (request, content)
                } else {
                    let mut slots = Vec::new();
                    for slot in self.desk.request_slots(request.id).await? {
                        if slot.state_at(now) == SlotState::Open {
                            // The link the request's page shows too (a slot proposed
                            // before links were derived gets its hash now).
                            let token = slot.link_token(&self.key);
                            self.desk.set_slot_token(slot.id, &token.hash()).await?;
                            slots.push(SlotLink { starts_at: slot.starts_at, ends_at: slot.ends_at, token });
                        }
                    }
                    if slots.is_empty() {
                        return skipped(catalogue::postman::NO_SLOT_LEFT);
                    }
                    (request.clone(), MailContent::CallProposal { reference: request.reference, slots })
                }
            }
        };
        // The address and the name were typed by whoever wrote in, unverified: the name
        // appears neither in the greeting nor in `To:`, so that nobody can make guichet
        // carry a text of their choice to an address of their choice.
        let outgoing = OutgoingMail { to: mail.recipient.clone(), name: String::new(), content };
        Ok(match self.sender.send(&outgoing).await {
            Ok(answer) => (request.account_id, MailOutcome::Sent { answer }),
            Err(error) => (request.account_id, self.after_failure(mail, error, now)),
        })
    }

    /// What the message says, with the secret it carries made now (a code is stored
    /// at once; a temporary password once it has left).
    /// `None` when there is nothing to say any more (a lock lifted before the notice left).
    async fn content(
        &self,
        mail: &QueuedMail,
        account: &Account,
        to: &EmailAddress,
        now: Timestamp,
    ) -> Result<Option<(MailContent, Secret)>, StoreError> {
        let content = match mail.kind {
            MailKind::ForgotIdentifier => MailContent::ForgotIdentifier { identifier: account.identifier.to_string() },
            MailKind::PasswordReset => {
                let Some((code, expires_at)) = self.new_code(account, CodePurpose::Reset, to, now).await? else {
                    return Ok(None);
                };
                let hash = code.hash();
                let identifier = account.identifier.to_string();
                return Ok(Some((MailContent::PasswordReset { identifier, code, expires_at }, Secret::Code(hash))));
            }
            MailKind::Invitation => {
                let Some((code, expires_at)) = self.new_code(account, CodePurpose::Invitation, to, now).await? else {
                    return Ok(None);
                };
                let hash = code.hash();
                let identifier = account.identifier.to_string();
                return Ok(Some((MailContent::Invitation { identifier, code, expires_at }, Secret::Code(hash))));
            }
            MailKind::TemporaryPassword => {
                let password = TemporaryPassword::generate();
                let hash = password.hash();
                let expires_at = now.saturating_add(self.policy.temporary_password_ttl).unwrap_or(now);
                let identifier = account.identifier.to_string();
                let content = MailContent::TemporaryPassword { identifier, password, expires_at };
                return Ok(Some((content, Secret::TemporaryPassword(hash, expires_at))));
            }
            MailKind::AccountLocked => match account.locked_until {
                Some(until) if until > now => MailContent::AccountLocked { until },
                _ => return Ok(None),
            },
            MailKind::PasswordChanged => MailContent::PasswordChanged { at: mail.created_at },
            MailKind::EmailChanged => {
                MailContent::EmailChanged { new_address: account.email.masked(), at: mail.created_at }
            }
            MailKind::RecoveryEmailConfirmation => {
                let code = RecoveryCode::generate();
                let expires_at = now.saturating_add(self.policy.reset_code_ttl).unwrap_or(now);
                if !self.secours.set_recovery_email_code(account.id, &code.hash(), expires_at, to).await? {
                    return Ok(None);
                }
                MailContent::RecoveryEmailConfirmation { code, expires_at }
            }
            MailKind::RecoveryEmailChanged => MailContent::RecoveryEmailChanged {
                added: account.recovery_email.as_ref().map(EmailAddress::masked),
                at: mail.created_at,
            },
            MailKind::SecondFactorChanged => MailContent::SecondFactorChanged { at: mail.created_at },
            MailKind::EmailChangeConfirmation => {
                let code = RecoveryCode::generate();
                let expires_at = now.saturating_add(self.policy.reset_code_ttl).unwrap_or(now);
                if !self.own_address.set_code(account.id, &code.hash(), expires_at, to).await? {
                    return Ok(None);
                }
                MailContent::EmailChangeConfirmation { code, expires_at }
            }
            // Called off meanwhile: nothing to say.
            MailKind::UpstreamLinked => MailContent::UpstreamLinked { at: mail.created_at },
            MailKind::ErasureScheduled => match account.erase_at {
                Some(at) => MailContent::ErasureScheduled { at },
                None => return Ok(None),
            },
            MailKind::AssistanceReceived
            | MailKind::CallProposal
            | MailKind::CallConfirmed
            | MailKind::DeskNewRequest
            | MailKind::DeskCallConfirmed
            | MailKind::Test => {
                return Ok(None);
            }
        };
        Ok(Some((content, Secret::None)))
    }

    /// Uses up the account's earlier codes, then makes a new one (see [`Postman::new_code`]):
    /// the first administrator's link, printed at each start, where only the newest works.
    pub async fn replace_codes(
        &self,
        account: &Account,
        purpose: CodePurpose,
        now: Timestamp,
    ) -> Result<Option<(RecoveryCode, Timestamp)>, StoreError> {
        self.recovery.revoke_codes(account.id, now).await?;
        self.new_code(account, purpose, &account.email, now).await
    }

    /// Makes and stores a code for `account`, to be mailed to `to` (one of its addresses
    /// as read); its lifetime starts now. `Ok(None)` when that address changed meanwhile.
    pub async fn new_code(
        &self,
        account: &Account,
        purpose: CodePurpose,
        to: &EmailAddress,
        now: Timestamp,
    ) -> Result<Option<(RecoveryCode, Timestamp)>, StoreError> {
        let ttl = match purpose {
            CodePurpose::Reset => self.policy.reset_code_ttl,
            CodePurpose::Invitation => self.policy.invitation_ttl,
        };
        let code = RecoveryCode::generate();
        let expires_at = now.saturating_add(ttl).unwrap_or(now);
        let stored =
            StoredCode { account_id: account.id, purpose, created_at: now, expires_at, used_at: None, voided_at: None };
        Ok(self.recovery.insert_code(&code.hash(), &stored, to).await?.then_some((code, expires_at)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_ten_minutes() {
        let secs: Vec<i64> = (1..=10).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 600, 600, 600, 600, 600]);
    }
}
