//! The secours address's rules, one unit of work each, the account's row held first: a
//! proposal waits for the code mailed to it (and none leaves for an address that is
//! another account's, without saying so); a confirmation needs that code, unexpired;
//! each change uses up the codes mailed to the address it replaces and tells the
//! account's own address.

use std::sync::Arc;

use jiff::Timestamp;
use subtle::ConstantTimeEq as _;

use crate::account::{AccountId, EmailAddress};
use crate::audit::NewAuditEvent;
use crate::codes::CodeError;
use crate::mail::{MailKind, MailSubject, NewMail};
use crate::ports::{Conflict, HeldAccount, Ports, Secours, StoreError, Transactions, Work};
use crate::token::TokenHash;

/// The secours address's rules, over units of work.
#[derive(Debug, Clone)]
pub struct SecoursRules {
    transactions: Arc<dyn Transactions>,
}

fn secours_of(held: &HeldAccount) -> Secours {
    Secours {
        confirmed: held.account.recovery_email.clone(),
        pending: held.account.recovery_email_pending.clone(),
        code: held.secours_code.clone(),
    }
}

/// Whether `email` is another account's address, as its own or as its confirmed secours
/// address (read in `work`, the account held).
pub(crate) async fn another_owns(
    work: &mut dyn Work,
    account: AccountId,
    email: &EmailAddress,
) -> Result<bool, StoreError> {
    let another = |owner: Option<AccountId>| owner.is_some_and(|owner| owner != account);
    Ok(another(work.email_owner(email).await?) || another(work.secours_owner(email).await?))
}

/// Tells the account's own address that its secours address changed.
async fn notify(work: &mut dyn Work, held: &HeldAccount, at: Timestamp) -> Result<(), StoreError> {
    let account = &held.account;
    let mail = NewMail {
        kind: MailKind::RecoveryEmailChanged,
        account_id: Some(account.id),
        recipient: account.email.clone(),
        subject: MailSubject::None,
    };
    work.queue_mail(&mail, at).await.map(|_| ())
}

impl SecoursRules {
    /// Over the store's units of work.
    pub fn of(ports: &Ports) -> Self {
        Self::new(Arc::clone(&ports.transactions))
    }

    /// Over these units of work.
    pub fn new(transactions: Arc<dyn Transactions>) -> Self {
        Self { transactions }
    }

    /// Proposes `email`: it waits for its code (an earlier proposal and its code are
    /// dropped) and the message carrying the code is queued to it — unless it is an
    /// address of another account: then the proposal is stored all the same (the member
    /// proposing it does not learn whose it is) and no code leaves.
    pub async fn propose_recovery_email(
        &self,
        account: AccountId,
        email: &EmailAddress,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut work = self.transactions.begin().await?;
        let held = work.hold_account(account).await?.ok_or(StoreError::Changed)?;
        let taken = another_owns(work.as_mut(), account, email).await?;
        let proposed = Secours { pending: Some(email.clone()), code: None, ..secours_of(&held) };
        work.set_secours(account, &proposed, now).await?;
        if !taken {
            let mail = NewMail {
                kind: MailKind::RecoveryEmailConfirmation,
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
    pub async fn set_recovery_email_code(
        &self,
        account: AccountId,
        hash: &TokenHash,
        expires_at: Timestamp,
        sent_to: &EmailAddress,
    ) -> Result<bool, StoreError> {
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(account).await? else { return Ok(false) };
        if held.account.recovery_email_pending.as_ref() != Some(sent_to) {
            return Ok(false);
        }
        let with_code = Secours { code: Some((hash.clone(), expires_at)), ..secours_of(&held) };
        work.set_secours(account, &with_code, held.account.updated_at).await?;
        work.commit().await?;
        Ok(true)
    }

    /// Removes the secours address and any proposal, records `event` and tells the
    /// account's address. `Ok(false)` when there was none.
    pub async fn remove_recovery_email(&self, account: AccountId, event: NewAuditEvent) -> Result<bool, StoreError> {
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(account).await? else { return Ok(false) };
        if held.account.recovery_email.is_none() && held.account.recovery_email_pending.is_none() {
            return Ok(false);
        }
        work.set_secours(account, &Secours::default(), event.at).await?;
        // Codes already mailed there must not outlive the address.
        work.use_up_codes(account, event.at).await?;
        work.record(&event).await?;
        notify(work.as_mut(), &held, event.at).await?;
        work.commit().await?;
        Ok(true)
    }

    /// Confirms the proposed address with its code's hash: it becomes the secours
    /// address, `event` is recorded and the account's address told. `Ok(Err(why))` and
    /// nothing changed when the code is not the proposal's, or expired;
    /// `Err(Conflict(Email))` when the address became another account's meanwhile (its
    /// own, or its confirmed secours address).
    pub async fn confirm_recovery_email(
        &self,
        account: AccountId,
        hash: &TokenHash,
        event: NewAuditEvent,
    ) -> Result<Result<EmailAddress, CodeError>, StoreError> {
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(account).await? else { return Ok(Err(CodeError::Invalid)) };
        let (Some(pending), Some((stored, until))) = (&held.account.recovery_email_pending, &held.secours_code) else {
            return Ok(Err(CodeError::Invalid));
        };
        if !bool::from(stored.as_str().as_bytes().ct_eq(hash.as_str().as_bytes())) {
            return Ok(Err(CodeError::Invalid));
        }
        if *until <= event.at {
            return Ok(Err(CodeError::Expired));
        }
        // It may have become another account's own address since it was proposed.
        if work.email_owner(pending).await?.is_some_and(|owner| owner != account) {
            return Err(StoreError::Conflict(Conflict::Email));
        }
        let confirmed = Secours { confirmed: Some(pending.clone()), pending: None, code: None };
        work.set_secours(account, &confirmed, event.at).await?;
        // Codes mailed to the secours address this one replaces must not outlive it.
        work.use_up_codes(account, event.at).await?;
        work.record(&event).await?;
        notify(work.as_mut(), &held, event.at).await?;
        work.commit().await?;
        Ok(Ok(pending.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{Account, Role};
    use crate::audit::{Actor, AuditKind, RequestContext};
    use crate::ports::memory::Memory;
    use crate::token::PlainToken;

    #[tokio::test]
    async fn a_proposal_needs_its_code_and_another_accounts_address_gets_none() {
        let memory = Memory::default();
        let rows = Arc::clone(&memory.0);
        for id in [1, 2] {
            let account = Account::sample(id, Role::Member);
            let held = HeldAccount { account, failures_cleared_after: 0, secours_code: None, email_code: None };
            rows.lock().await.accounts.insert(held.account.id, held);
        }
        let rules = SecoursRules::new(Arc::new(memory));
        let (one, t0) = (AccountId::from_stored(1), "2026-03-02T09:00:00Z".parse::<Timestamp>().unwrap());
        let theirs = EmailAddress::from_stored("a2@example.org".into());
        rules.propose_recovery_email(one, &theirs, t0).await.unwrap();
        assert!(rows.lock().await.mail.is_empty(), "no code leaves for another account's address");
        let mine = EmailAddress::from_stored("a1.perso@example.org".into());
        rules.propose_recovery_email(one, &mine, t0).await.unwrap();
        let code = PlainToken::generate().hash();
        let later = t0 + jiff::SignedDuration::from_mins(60);
        assert!(!rules.set_recovery_email_code(one, &code, later, &theirs).await.unwrap(), "not the proposal");
        assert!(rules.set_recovery_email_code(one, &code, later, &mine).await.unwrap());
        let event = |at| NewAuditEvent {
            at,
            account_id: Some(one),
            kind: AuditKind::RecoveryEmailConfirmed,
            actor: Actor::Member,
            context: RequestContext::default(),
            detail: None,
        };
        let wrong = PlainToken::generate().hash();
        assert_eq!(rules.confirm_recovery_email(one, &wrong, event(t0)).await.unwrap(), Err(CodeError::Invalid));
        assert_eq!(rules.confirm_recovery_email(one, &code, event(later)).await.unwrap(), Err(CodeError::Expired));
        assert_eq!(rules.confirm_recovery_email(one, &code, event(t0)).await.unwrap(), Ok(mine.clone()));
        assert_eq!(rules.confirm_recovery_email(one, &code, event(t0)).await.unwrap(), Err(CodeError::Invalid));
        assert!(rules.remove_recovery_email(one, event(t0)).await.unwrap());
        assert!(!rules.remove_recovery_email(one, event(t0)).await.unwrap());
        let rows = rows.lock().await;
        let told = rows.mail.iter().filter(|m| m.kind == MailKind::RecoveryEmailChanged).count();
        assert_eq!(told, 2, "the account's address hears of each change");
    }
}
