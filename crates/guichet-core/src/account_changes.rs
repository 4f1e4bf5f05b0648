//! What staff and the operator change on an account — disabling it, its address and
//! name, its role — and what each change takes away with it. Each is one unit of work
//! ([`crate::ports::Work`]) that holds the account first and decides on what it read:
//! the target must still be within the actor's reach, and the last active
//! administrator stays (the active administrators' rows are held, so that two
//! administrators disabling each other at once cannot both succeed).

use std::sync::Arc;

use jiff::Timestamp;

use crate::account::{Account, AccountId, DisplayName, EmailAddress, NameParts, NewAccount, Role};
use crate::audit::NewAuditEvent;
use crate::mail::{MailKind, MailSubject, NewMail};
use crate::ports::{Conflict, Guarded, HeldAccount, Ports, Reach, StoreError, Transactions, Work};

/// Changes to accounts, over units of work.
#[derive(Debug, Clone)]
pub struct AccountChanges {
    transactions: Arc<dyn Transactions>,
}

/// Holds the account, `Err(Changed)` when it is gone or out of `reach` (it became staff
/// while an assistance action was on its way).
pub(crate) async fn hold_within(
    work: &mut dyn Work,
    account: AccountId,
    reach: Reach,
) -> Result<HeldAccount, StoreError> {
    let held = work.hold_account(account).await?.ok_or(StoreError::Changed)?;
    if !reach.admits(held.account.role) {
        return Err(StoreError::Changed);
    }
    Ok(held)
}

/// Holds the active administrators (before the target: two changes that may each take
/// an administrator away take the same rows in the same order, and cannot deadlock)
/// and tells whether taking `account` out of them would leave none.
async fn last_administrator(work: &mut dyn Work, account: AccountId) -> Result<bool, StoreError> {
    let admins = work.hold_active_administrators().await?;
    Ok(admins.contains(&account) && admins.len() <= 1)
}

/// Voids what was handed out to the account's address or holder: unused codes used up,
/// a pending temporary password revoked with the sessions it opened, device marks no
/// longer counted.
pub(crate) async fn revoke_handed_out(
    work: &mut dyn Work,
    account: AccountId,
    at: Timestamp,
) -> Result<(), StoreError> {
    work.use_up_codes(account, at).await?;
    work.end_forced_sessions(account).await?;
    work.revoke_temporary_password(account, at).await
}

/// Stores a new account in `work` with its audit line (`event`, given the account) and,
/// with `then_mail`, that message queued to it: `Err(Conflict(..))` when its identifier
/// or address is taken, its address also as another account's secours address. Every
/// account made one at a time goes through here (`member add` and the first
/// administrator, the console); `member import` writes its batches in bulk.
pub(crate) async fn create_in(
    work: &mut dyn Work,
    new: &NewAccount,
    mut event: NewAuditEvent,
    then_mail: Option<MailKind>,
) -> Result<Account, StoreError> {
    let account = work.insert_account(new, event.at).await?;
    if work.secours_owner(&new.email).await?.is_some_and(|owner| owner != account.id) {
        return Err(StoreError::Conflict(Conflict::Email));
    }
    event.account_id = Some(account.id);
    work.record(&event).await?;
    if let Some(kind) = then_mail {
        let mail = NewMail {
            kind,
            account_id: Some(account.id),
            recipient: account.email.clone(),
            subject: MailSubject::None,
        };
        work.queue_mail(&mail, event.at).await?;
    }
    Ok(account)
}

impl AccountChanges {
    /// Over the store's units of work.
    pub fn of(ports: &Ports) -> Self {
        Self::new(Arc::clone(&ports.transactions))
    }

    /// Over these units of work.
    pub fn new(transactions: Arc<dyn Transactions>) -> Self {
        Self { transactions }
    }

    /// Creates an account, audited with `event` (its `account_id` set to the new one)
    /// and, with `then_mail`, queues that message to it. `Err(Conflict(..))` when the
    /// identifier or the address is taken, as an account's own or secours address.
    pub async fn create_account(
        &self,
        new: &NewAccount,
        event: NewAuditEvent,
        then_mail: Option<MailKind>,
    ) -> Result<Account, StoreError> {
        let mut work = self.transactions.begin().await?;
        let account = create_in(work.as_mut(), new, event, then_mail).await?;
        work.commit().await?;
        Ok(account)
    }

    /// Queues a message staff had sent to an account (within `reach`, when it is to
    /// one), audited with `event`.
    pub async fn queue_staff_mail(&self, mail: &NewMail, event: NewAuditEvent, reach: Reach) -> Result<(), StoreError> {
        let mut work = self.transactions.begin().await?;
        if let Some(account) = mail.account_id {
            hold_within(work.as_mut(), account, reach).await?;
        }
        work.queue_mail(mail, event.at).await?;
        work.record(&event).await?;
        work.commit().await
    }

    /// Disables the account (ending its sessions) or enables it again, audited with
    /// `event`; `Ok(LastAdministrator)` and nothing changed when it would disable the
    /// last active administrator.
    pub async fn set_disabled(
        &self,
        account: AccountId,
        disabled: bool,
        event: NewAuditEvent,
        reach: Reach,
    ) -> Result<Guarded, StoreError> {
        let mut work = self.transactions.begin().await?;
        let last = disabled && last_administrator(work.as_mut(), account).await?;
        hold_within(work.as_mut(), account, reach).await?;
        if last {
            return Ok(Guarded::LastAdministrator);
        }
        work.set_disabled(account, disabled.then_some(event.at), event.at).await?;
        if disabled {
            work.end_sessions(account, None, event.at).await?;
        }
        work.record(&event).await?;
        work.commit().await?;
        Ok(Guarded::Done)
    }

    /// Changes the address and name, audited with `event`. A new address voids what was
    /// handed out to the old one (codes, a temporary password, device marks) and the
    /// old one is told. `rpps`, when given, replaces the RPPS number (`Some(None)`
    /// removes it). `Err(Conflict(Email))` when the address is another account's, as its
    /// own or as its secours address; `Err(Conflict(Rpps))` when the number is.
    pub async fn change_details(
        &self,
        account: AccountId,
        email: &EmailAddress,
        (name, names): (&DisplayName, &NameParts),
        rpps: Option<Option<&crate::account::Rpps>>,
        event: NewAuditEvent,
        reach: Reach,
    ) -> Result<(), StoreError> {
        let mut work = self.transactions.begin().await?;
        let held = hold_within(work.as_mut(), account, reach).await?;
        if work.secours_owner(email).await?.is_some_and(|owner| owner != account) {
            return Err(StoreError::Conflict(Conflict::Email));
        }
        work.set_details(account, email, name, names, event.at).await?;
        if let Some(rpps) = rpps {
            work.set_rpps(account, rpps).await?;
        }
        let old = held.account.email;
        if old != *email {
            // What was mailed to the old address must not work any more.
            revoke_handed_out(work.as_mut(), account, event.at).await?;
            let notice = NewMail {
                kind: MailKind::EmailChanged,
                account_id: Some(account),
                recipient: old,
                subject: MailSubject::None,
            };
            work.queue_mail(&notice, event.at).await?;
        }
        work.record(&event).await?;
        work.commit().await
    }

    /// Changes the role, audited with `event`; `Ok(LastAdministrator)` and nothing
    /// changed when it would demote the last active administrator. A member who becomes
    /// staff starts afresh: sessions ended and what was handed out voided, so that
    /// nothing given to a member carries staff rights.
    pub async fn set_role(&self, account: AccountId, role: Role, event: NewAuditEvent) -> Result<Guarded, StoreError> {
        let mut work = self.transactions.begin().await?;
        let last = role != Role::Admin && last_administrator(work.as_mut(), account).await?;
        let held = hold_within(work.as_mut(), account, Reach::Anyone).await?;
        if last {
            return Ok(Guarded::LastAdministrator);
        }
        if held.account.role == Role::Member && role.is_staff() {
            revoke_handed_out(work.as_mut(), account, event.at).await?;
            work.end_sessions(account, None, event.at).await?;
        }
        work.set_role(account, role, event.at).await?;
        work.record(&event).await?;
        work.commit().await?;
        Ok(Guarded::Done)
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::Mutex;

    use super::*;
    use crate::account::Account;
    use crate::audit::{Actor, AuditKind, RequestContext};
    use crate::mail::MailKind;
    use crate::ports::memory::{Memory, Rows};

    fn event(account: AccountId, kind: AuditKind) -> NewAuditEvent {
        NewAuditEvent {
            at: "2026-03-02T09:00:00Z".parse().unwrap(),
            account_id: Some(account),
            kind,
            actor: Actor::Operator,
            context: RequestContext::default(),
            detail: None,
        }
    }

    async fn with(accounts: &[(i64, Role)]) -> (AccountChanges, Arc<Mutex<Rows>>) {
        let memory = Memory::default();
        let rows = Arc::clone(&memory.0);
        for (id, role) in accounts {
            let account = Account::sample(*id, *role);
            rows.lock().await.accounts.insert(
                account.id,
                HeldAccount { account, failures_cleared_after: 0, secours_code: None, email_code: None },
            );
        }
        (AccountChanges::new(Arc::new(memory)), rows)
    }

    const ONE: AccountId = AccountId::from_stored(1);
    const TWO: AccountId = AccountId::from_stored(2);

    #[tokio::test]
    async fn the_last_active_administrator_stays() {
        let (changes, rows) = with(&[(1, Role::Admin), (2, Role::Admin)]).await;
        let disabled = changes.set_disabled(ONE, true, event(ONE, AuditKind::AccountDisabled), Reach::Anyone).await;
        assert_eq!(disabled.unwrap(), Guarded::Done);
        let again = changes.set_disabled(TWO, true, event(TWO, AuditKind::AccountDisabled), Reach::Anyone).await;
        assert_eq!(again.unwrap(), Guarded::LastAdministrator);
        let demoted = changes.set_role(TWO, Role::Assistance, event(TWO, AuditKind::RoleChanged)).await;
        assert_eq!(demoted.unwrap(), Guarded::LastAdministrator);
        assert_eq!(rows.lock().await.events.len(), 1, "only what was done is audited");
    }

    #[tokio::test]
    async fn assistance_reaches_members_only() {
        let (changes, _) = with(&[(1, Role::Assistance)]).await;
        let refused = changes.set_disabled(ONE, true, event(ONE, AuditKind::AccountDisabled), Reach::MembersOnly).await;
        assert!(matches!(refused, Err(StoreError::Changed)), "{refused:?}");
    }

    #[tokio::test]
    async fn a_new_address_voids_what_the_old_one_received_and_tells_it() {
        let (changes, rows) = with(&[(1, Role::Member), (2, Role::Member)]).await;
        let secours = EmailAddress::from_stored("a2.perso@example.org".into());
        rows.lock().await.accounts.get_mut(&TWO).unwrap().account.recovery_email = Some(secours.clone());
        let (name, names) = (DisplayName::default(), NameParts::default());
        let taken = changes.change_details(
            ONE,
            &secours,
            (&name, &names),
            None,
            event(ONE, AuditKind::DetailsChanged),
            Reach::Anyone,
        );
        assert!(matches!(taken.await, Err(StoreError::Conflict(Conflict::Email))), "another's secours address");
        let new = EmailAddress::from_stored("a1.new@example.org".into());
        rows.lock().await.sessions.push((ONE, "forced".into(), true));
        changes
            .change_details(ONE, &new, (&name, &names), None, event(ONE, AuditKind::DetailsChanged), Reach::Anyone)
            .await
            .unwrap();
        let rows = rows.lock().await;
        assert!(rows.sessions.is_empty(), "the session a temporary password opened ends");
        let notice = rows.mail.last().unwrap();
        assert_eq!((notice.kind, notice.recipient.as_str()), (MailKind::EmailChanged, "a1@example.org"));
    }

    #[tokio::test]
    async fn a_member_who_becomes_staff_starts_afresh() {
        let (changes, rows) = with(&[(1, Role::Member)]).await;
        rows.lock().await.sessions.push((ONE, "tab".into(), false));
        changes.set_role(ONE, Role::Assistance, event(ONE, AuditKind::RoleChanged)).await.unwrap();
        let rows = rows.lock().await;
        assert!(rows.sessions.is_empty());
        assert_eq!(rows.accounts[&ONE].account.role, Role::Assistance);
    }
}
