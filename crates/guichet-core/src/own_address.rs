//! A member changes their own address (the RGPD's right to rectification), one unit of
//! work each, the account's row held first: the new address waits for the code mailed
//! to it (none leaves for an address that is another account's, without saying so);
//! once confirmed it replaces the old one, what was mailed to the old one stops working,
//! and the old one is told.

use std::sync::Arc;

use jiff::Timestamp;
use subtle::ConstantTimeEq as _;

use crate::account::{AccountId, DisplayName, EmailAddress, NameParts};
use crate::account_changes::revoke_handed_out;
use crate::audit::{AuditDetail, AuditKind, RequestContext};
use crate::codes::CodeError;
use crate::credentials::member_event;
use crate::mail::{MailKind, MailSubject, NewMail};
use crate::ports::{Conflict, Ports, Secours, StoreError, Transactions};
use crate::secours::another_owns;
use crate::token::TokenHash;

/// The rules of a member's change of address, over units of work.
#[derive(Debug, Clone)]
pub struct OwnAddressRules {
    transactions: Arc<dyn Transactions>,
}

impl OwnAddressRules {
    /// Over the store's units of work.
    pub fn of(ports: &Ports) -> Self {
        Self { transactions: Arc::clone(&ports.transactions) }
    }

    /// Proposes `email` as the account's address: it waits for its code (an earlier
    /// proposal is dropped) and the message carrying the code is queued to it — unless
    /// it is another account's address (own or secours): then the proposal is stored all
    /// the same, and no code leaves (the member does not learn whose it is).
    pub async fn propose(&self, account: AccountId, email: &EmailAddress, now: Timestamp) -> Result<(), StoreError> {
        let mut work = self.transactions.begin().await?;
        work.hold_account(account).await?.ok_or(StoreError::Changed)?;
        let taken = another_owns(work.as_mut(), account, email).await?;
        work.set_email_change(account, Some(email), None).await?;
        if !taken {
            let mail = NewMail {
                kind: MailKind::EmailChangeConfirmation,
                account_id: Some(account),
                recipient: email.clone(),
                subject: MailSubject::None,
            };
            work.queue_mail(&mail, now).await?;
        }
        work.commit().await
    }

    /// Stores the hash of the code about to be mailed to `sent_to`, while that is still
    /// the proposed address: `Ok(false)` and nothing stored otherwise.
    pub async fn set_code(
        &self,
        account: AccountId,
        hash: &TokenHash,
        expires_at: Timestamp,
        sent_to: &EmailAddress,
    ) -> Result<bool, StoreError> {
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(account).await? else { return Ok(false) };
        if held.account.email_pending.as_ref() != Some(sent_to) {
            return Ok(false);
        }
        work.set_email_change(account, Some(sent_to), Some((hash, expires_at))).await?;
        work.commit().await?;
        Ok(true)
    }

    /// Confirms the proposed address with its code's hash: it becomes the account's
    /// address (and stops being its secours address, if it was), what was mailed to the
    /// old one stops working, the change is audited and the old address told.
    /// `Ok(Err(why))` and nothing changed when the code is not the proposal's, or
    /// expired; `Err(Conflict(Email))` when the address became another account's.
    pub async fn confirm(
        &self,
        account: AccountId,
        hash: &TokenHash,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<Result<EmailAddress, CodeError>, StoreError> {
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(account).await? else { return Ok(Err(CodeError::Invalid)) };
        let (Some(pending), Some((stored, until))) = (&held.account.email_pending, &held.email_code) else {
            return Ok(Err(CodeError::Invalid));
        };
        if !bool::from(stored.as_str().as_bytes().ct_eq(hash.as_str().as_bytes())) {
            return Ok(Err(CodeError::Invalid));
        }
        if *until <= now {
            return Ok(Err(CodeError::Expired));
        }
        if another_owns(work.as_mut(), account, pending).await? {
            return Err(StoreError::Conflict(Conflict::Email));
        }
        let old = held.account.email.clone();
        if held.account.recovery_email.as_ref() == Some(pending) {
            work.set_secours(account, &Secours::default(), now).await?;
        }
        let account_row = &held.account;
        work.set_details(account, pending, &account_row.display_name, &account_row.names, now).await?;
        work.set_email_change(account, None, None).await?;
        revoke_handed_out(work.as_mut(), account, now).await?;
        let mut event = member_event(account, AuditKind::DetailsChanged, context, now);
        event.detail = Some(AuditDetail::Email(old.clone(), pending.clone()));
        work.record(&event).await?;
        let notice = NewMail {
            kind: MailKind::EmailChanged,
            account_id: Some(account),
            recipient: old,
            subject: MailSubject::None,
        };
        work.queue_mail(&notice, now).await?;
        work.commit().await?;
        Ok(Ok(pending.clone()))
    }

    /// Corrects the account's name (given and family; the display name is their join),
    /// audited. `Ok(false)` when nothing changed.
    pub async fn rename(
        &self,
        account: AccountId,
        names: &NameParts,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut work = self.transactions.begin().await?;
        let held = work.hold_account(account).await?.ok_or(StoreError::Changed)?;
        let display: DisplayName = names.joined();
        if held.account.names == *names && held.account.display_name == display {
            return Ok(false);
        }
        work.set_details(account, &held.account.email, &display, names, now).await?;
        work.record(&member_event(account, AuditKind::DetailsChanged, context, now)).await?;
        work.commit().await?;
        Ok(true)
    }
}
