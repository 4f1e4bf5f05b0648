//! The postman: takes due messages from the outbox, makes their codes, sends them, and
//! records how it went — retrying temporary failures with growing delays for at least
//! `give_up_after`, giving up at once on permanent ones.
//!
//! Requests never wait on the mail server: they queue, the postman sends.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::Notify;

use crate::account::{Account, AccountId};
use crate::clock::Clock;
use crate::mail::{MailContent, MailKind, MailOutcome, MailSender, OutgoingMail, QueuedMail};
use crate::ports::{Store, StoreError};
use crate::recovery::{CodePurpose, RecoveryCode, StoredCode};
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
}

impl Default for MailPolicy {
    fn default() -> Self {
        Self {
            reset_code_ttl: SignedDuration::from_hours(1),
            invitation_ttl: SignedDuration::from_hours(7 * 24),
            per_account_per_hour: 3,
            give_up_after: SignedDuration::from_hours(48),
        }
    }
}

/// How long a claimed message is held before another sender may take it.
const LEASE: SignedDuration = SignedDuration::from_mins(2);
/// Messages claimed at a time.
const BATCH: u32 = 10;

/// Sends what the outbox holds.
#[derive(Debug, Clone)]
pub struct Postman {
    store: Arc<dyn Store>,
    sender: Arc<dyn MailSender>,
    clock: Arc<dyn Clock>,
    policy: MailPolicy,
    signal: Arc<Notify>,
}

/// The delay before retry number `attempts + 1`: 30 s, doubling, at most an hour.
pub fn backoff(attempts: u32) -> SignedDuration {
    let doublings = attempts.saturating_sub(1).min(7);
    SignedDuration::from_secs(30 * (1_i64 << doublings)).min(SignedDuration::from_hours(1))
}

impl Postman {
    /// Wires the postman.
    pub fn new(store: Arc<dyn Store>, sender: Arc<dyn MailSender>, clock: Arc<dyn Clock>, policy: MailPolicy) -> Self {
        Self { store, sender, clock, policy, signal: Arc::new(Notify::new()) }
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
            let batch = self.store.claim_due_mail(now, lease_until, BATCH).await?;
            if batch.is_empty() {
                return Ok(handled);
            }
            for mail in batch {
                let (account, outcome) = self.deliver(&mail).await?;
                match &outcome {
                    MailOutcome::Sent { .. } => {
                        tracing::info!(mail = mail.id.get(), kind = mail.kind.as_str(), "mail sent")
                    }
                    MailOutcome::Retry { error, .. } => {
                        tracing::warn!(mail = mail.id.get(), attempts = mail.attempts, %error, "mail delayed, will retry");
                    }
                    MailOutcome::Failed { error } => tracing::error!(mail = mail.id.get(), %error, "mail given up"),
                    MailOutcome::Skipped { reason } => tracing::info!(mail = mail.id.get(), reason, "mail not sent"),
                }
                self.store.finish_mail(mail.id, account, &outcome, self.clock.now()).await?;
                handled += 1;
            }
        }
    }

    /// Sends one message; returns the account it was for (when there is one) and how it went.
    async fn deliver(&self, mail: &QueuedMail) -> Result<(Option<AccountId>, MailOutcome), StoreError> {
        let now = self.clock.now();
        let account = match mail.account_id {
            Some(id) => self.store.find_account(id).await?,
            None => self.store.find_account_by_email(&mail.recipient).await?,
        };
        let Some(account) = account else {
            return Ok((None, MailOutcome::Skipped { reason: "aucun compte avec cette adresse".into() }));
        };
        if matches!(mail.kind, MailKind::ForgotIdentifier | MailKind::PasswordReset) {
            let hour_ago = now.saturating_sub(SignedDuration::from_hours(1)).unwrap_or(now);
            if self.store.count_sent_mail(account.id, mail.kind, hour_ago).await? >= self.policy.per_account_per_hour {
                return Ok((Some(account.id), MailOutcome::Skipped { reason: "trop de demandes dans l'heure".into() }));
            }
        }
        let Some((content, code)) = self.content(mail, &account, now).await? else {
            return Ok((Some(account.id), MailOutcome::Skipped { reason: "le compte n'est plus suspendu".into() }));
        };
        let outgoing =
            OutgoingMail { to: account.email.clone(), name: account.display_name.as_str().to_owned(), content };
        match self.sender.send(&outgoing).await {
            Ok(answer) => Ok((Some(account.id), MailOutcome::Sent { answer })),
            Err(error) => {
                if let Some(hash) = code {
                    // Nobody will ever see this code: forget it.
                    self.store.delete_code(&hash).await?;
                }
                let too_long = now.duration_since(mail.created_at) >= self.policy.give_up_after;
                let outcome = if error.permanent || too_long {
                    MailOutcome::Failed { error: error.message }
                } else {
                    let next_attempt_at = now.saturating_add(backoff(mail.attempts)).unwrap_or(now);
                    MailOutcome::Retry { error: error.message, next_attempt_at }
                };
                Ok((Some(account.id), outcome))
            }
        }
    }

    /// What the message says, with a fresh code stored for those that carry one.
    /// `None` when there is nothing to say any more (a lock lifted before the notice left).
    async fn content(
        &self,
        mail: &QueuedMail,
        account: &Account,
        now: Timestamp,
    ) -> Result<Option<(MailContent, Option<TokenHash>)>, StoreError> {
        let content = match mail.kind {
            MailKind::ForgotIdentifier => MailContent::ForgotIdentifier { identifier: account.identifier.to_string() },
            MailKind::PasswordReset => {
                let (code, expires_at) = self.new_code(account, CodePurpose::Reset, now).await?;
                let hash = code.hash();
                return Ok(Some((MailContent::PasswordReset { code, expires_at }, Some(hash))));
            }
            MailKind::Invitation => {
                let (code, expires_at) = self.new_code(account, CodePurpose::Invitation, now).await?;
                let hash = code.hash();
                let identifier = account.identifier.to_string();
                return Ok(Some((MailContent::Invitation { identifier, code, expires_at }, Some(hash))));
            }
            MailKind::AccountLocked => match account.locked_until {
                Some(until) if until > now => MailContent::AccountLocked { until },
                _ => return Ok(None),
            },
            MailKind::PasswordChanged => MailContent::PasswordChanged { at: mail.created_at },
        };
        Ok(Some((content, None)))
    }

    /// Makes and stores a code for `account`; its lifetime starts now.
    pub async fn new_code(
        &self,
        account: &Account,
        purpose: CodePurpose,
        now: Timestamp,
    ) -> Result<(RecoveryCode, Timestamp), StoreError> {
        let ttl = match purpose {
            CodePurpose::Reset => self.policy.reset_code_ttl,
            CodePurpose::Invitation => self.policy.invitation_ttl,
        };
        let code = RecoveryCode::generate();
        let expires_at = now.saturating_add(ttl).unwrap_or(now);
        let stored = StoredCode { account_id: account.id, purpose, created_at: now, expires_at, used_at: None };
        self.store.insert_code(&code.hash(), &stored).await?;
        Ok((code, expires_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_an_hour() {
        let secs: Vec<i64> = (1..=10).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
    }
}
