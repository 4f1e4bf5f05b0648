//! Passwords and locks: when a failure locks an account, what a success clears, what
//! choosing a password changes. Each rule is one unit of work ([`crate::ports::Work`]):
//! the account's row is held first, so that two concurrent failures cannot both count
//! four and neither lock, on one instance or several; then the rule decides on what it
//! read, and writes. The store only reads and writes the rows.

use std::sync::Arc;

use jiff::Timestamp;

use crate::account::{AccountId, EmailAddress};
use crate::account_changes::hold_within;
use crate::audit::{Actor, AuditDetail, AuditKind, NewAuditEvent, PasswordChoice, RequestContext};
use crate::codes::CodeError;
use crate::lockout::{LockoutPolicy, ThrottleKey};
use crate::mail::{MailKind, MailSubject, NewMail};
use crate::password::PasswordHash;
use crate::ports::{FailureOutcome, HeldAccount, Ports, Proof, Reach, StoreError, Transactions, Work};
use crate::token::TokenHash;

/// The rules of passwords and locks, over units of work.
/// When a temporary password is written (see [`Credentials::set_temporary_password`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provided<'a> {
    /// Whatever the account holds.
    Always,
    /// Only while this is still one of the account's addresses (it was just mailed there).
    StillAddress(&'a EmailAddress),
    /// Only while the account's temporary password is still the one staff saw (its end,
    /// `None` for none): a form sent twice makes nothing the second time.
    Replacing(Option<Timestamp>),
}

#[derive(Debug, Clone)]
pub struct Credentials {
    transactions: Arc<dyn Transactions>,
}

/// A line about `account`, by its member.
pub(crate) fn member_event(
    account: AccountId,
    kind: AuditKind,
    context: &RequestContext,
    at: Timestamp,
) -> NewAuditEvent {
    NewAuditEvent { at, account_id: Some(account), kind, actor: Actor::Member, context: context.clone(), detail: None }
}

/// Queues `kind` to the account's own address.
pub(crate) async fn notify(
    work: &mut dyn Work,
    held: &HeldAccount,
    kind: MailKind,
    now: Timestamp,
) -> Result<(), StoreError> {
    let account = &held.account;
    let mail =
        NewMail { kind, account_id: Some(account.id), recipient: account.email.clone(), subject: MailSubject::None };
    work.queue_mail(&mail, now).await.map(|_| ())
}

/// Sets a password the member chose: clears any temporary password, the lock and the
/// failures, and `keep`'s forced change; voids the device marks issued so far; ends
/// every session but `keep`; audits how it was chosen and queues the notice.
async fn set_chosen_password(
    work: &mut dyn Work,
    held: &HeldAccount,
    hash: &PasswordHash,
    keep: Option<&TokenHash>,
    how: PasswordChoice,
    context: &RequestContext,
    now: Timestamp,
) -> Result<(), StoreError> {
    let account = held.account.id;
    let mut event = member_event(account, AuditKind::PasswordChanged, context, now);
    event.detail = Some(AuditDetail::Password(how));
    let event = work.record(&event).await?;
    work.set_password(account, hash, now).await?;
    work.set_lock(account, None, event).await?;
    work.end_sessions(account, keep, now).await?;
    if let Some(keep) = keep {
        work.clear_forced_change(keep).await?;
    }
    notify(work, held, MailKind::PasswordChanged, now).await
}

/// Counts a failed login on the held account (a wrong password, or a wrong code at the
/// second step, said by `detail`): audited, counted within `policy.window` since the last
/// success, unlock or lock, and at `policy.threshold` the account locks and the notice is
/// queued. A failure arriving while the account is locked is audited as refused and not
/// counted.
pub(crate) async fn count_failure(
    work: &mut dyn Work,
    held: &HeldAccount,
    policy: &LockoutPolicy,
    detail: Option<AuditDetail>,
    context: &RequestContext,
    now: Timestamp,
) -> Result<FailureOutcome, StoreError> {
    let account = held.account.id;
    if held.account.is_locked_at(now) {
        work.record(&member_event(account, AuditKind::LoginRefusedLocked, context, now)).await?;
        return Ok(FailureOutcome::AlreadyLocked);
    }
    let mut failed = member_event(account, AuditKind::LoginFailed, context, now);
    failed.detail = detail;
    work.record(&failed).await?;
    let since = now.saturating_sub(policy.window).unwrap_or(now);
    let failures = work.count_events(account, AuditKind::LoginFailed, held.failures_cleared_after, since).await?;
    if failures < policy.threshold {
        return Ok(FailureOutcome::Counted { failures });
    }
    let until = now.saturating_add(policy.duration).unwrap_or(now);
    let mut locked = member_event(account, AuditKind::AccountLocked, context, now);
    locked.actor = Actor::System;
    locked.detail = Some(AuditDetail::Failures(failures));
    let lock = work.record(&locked).await?;
    // The failures that caused the lock are spent: once it ends, counting starts
    // afresh, so one more typo does not lock the account again at once.
    work.set_lock(account, Some(until), lock).await?;
    notify(work, held, MailKind::AccountLocked, now).await?;
    Ok(FailureOutcome::Locked { until })
}

/// What a right password leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Nothing: the account is locked, disabled, or changed while it was checked.
    No,
    /// The login is recorded: the session may open.
    In,
    /// The account has a second factor: the login waits for it, nothing recorded but
    /// the password's acceptance (its failures still count toward the lock).
    SecondStep,
}

impl Credentials {
    /// Over the store's units of work.
    pub fn of(ports: &Ports) -> Self {
        Self::new(Arc::clone(&ports.transactions))
    }

    /// Over these units of work.
    pub fn new(transactions: Arc<dyn Transactions>) -> Self {
        Self { transactions }
    }

    /// Records a wrong password: audited, counted within `policy.window` since the last
    /// success, unlock or lock, and at `policy.threshold` the account locks and the
    /// notice is queued. A failure arriving while the account is locked is audited as
    /// refused and not counted.
    pub async fn record_login_failure(
        &self,
        account: AccountId,
        policy: &LockoutPolicy,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<FailureOutcome, StoreError> {
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(account).await? else { return Ok(FailureOutcome::AlreadyLocked) };
        let outcome = count_failure(work.as_mut(), &held, policy, None, context, now).await?;
        work.commit().await?;
        Ok(outcome)
    }

    /// Records a successful login: sets the last login, gives back the address's
    /// `counted` attempts and clears the failures — unless, at `now`, the account is
    /// locked (and not `despite_lock`) or disabled, or what was `verified` no longer
    /// holds (a reset replaced the password, the temporary password expired or was
    /// replaced, while this one was checked): then nothing changes, [`Admitted::No`]. An
    /// account with a second factor waits for it ([`Admitted::SecondStep`]): the
    /// address's attempts are given back, the failures stay, the login is not recorded
    /// yet. A
    /// temporary password is not used up (choosing a password does that). A login
    /// `despite_lock` leaves a running lock, with its failures: the stranger who caused
    /// it stays locked out. With `rehash`, the stored hash is replaced.
    #[expect(clippy::too_many_arguments, reason = "one login's facts, each needed")]
    pub async fn record_login_success(
        &self,
        account: AccountId,
        verified: &Proof,
        rehash: Option<&PasswordHash>,
        despite_lock: bool,
        counted: &[(ThrottleKey, Timestamp)],
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<Admitted, StoreError> {
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(account).await? else { return Ok(Admitted::No) };
        let row = &held.account;
        let still_holds = match verified {
            Proof::Password(hash) => row.password_hash.as_ref().is_some_and(|stored| stored.as_phc() == hash.as_phc()),
            Proof::Temporary(hash) => row.temporary_password_at(now) == Some(hash),
        };
        let locked = row.is_locked_at(now);
        if !still_holds || row.disabled_at.is_some() || (locked && !despite_lock) {
            return Ok(Admitted::No);
        }
        for (key, at) in counted {
            work.uncount(key, *at).await?;
        }
        if crate::second_factor::holds_second(work.as_mut(), account).await? {
            work.record(&member_event(account, AuditKind::PasswordAccepted, context, now)).await?;
            work.commit().await?;
            return Ok(Admitted::SecondStep);
        }
        work.set_logged_in(account, now, rehash).await?;
        let event = work.record(&member_event(account, AuditKind::LoginSucceeded, context, now)).await?;
        // A lock still running (a login from the member's usual browser) stays, with the
        // failures behind it: the stranger who caused it is still locked out.
        if !locked {
            work.set_lock(account, None, event).await?;
        }
        work.commit().await?;
        Ok(Admitted::In)
    }

    /// Lifts a lock and forgets the failures; audits `event` when the account was
    /// locked at `event.at`. `Ok(false)` when it was not locked; `Err(Changed)` when the
    /// account is gone or out of `reach`.
    pub async fn unlock_account(
        &self,
        account: AccountId,
        event: NewAuditEvent,
        reach: Reach,
    ) -> Result<bool, StoreError> {
        let mut work = self.transactions.begin().await?;
        let held = hold_within(work.as_mut(), account, reach).await?;
        let was_locked = held.account.is_locked_at(event.at);
        let watermark = if was_locked { work.record(&event).await? } else { work.last_event(account).await? };
        work.set_lock(account, None, watermark).await?;
        work.commit().await?;
        Ok(was_locked)
    }

    /// Gives the account a temporary password (by its hash) that stops working at
    /// `expires_at`, beside its password; it replaces any earlier one, and ends the
    /// sessions opened with that one, provided `provided` holds on the account as held
    /// (`Ok(false)` otherwise). With `event` (staff were shown it) the event is recorded
    /// too. `Ok(false)` when the account is gone or out of `reach`.
    pub async fn set_temporary_password(
        &self,
        account: AccountId,
        hash: &TokenHash,
        expires_at: Timestamp,
        provided: Provided<'_>,
        event: Option<NewAuditEvent>,
        reach: Reach,
    ) -> Result<bool, StoreError> {
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(account).await?.filter(|held| reach.admits(held.account.role)) else {
            return Ok(false);
        };
        let row = &held.account;
        let holds = match provided {
            Provided::Always => true,
            Provided::StillAddress(to) => row.mail_addresses().any(|address| address == to),
            Provided::Replacing(seen) => row.pending_temporary_until() == seen,
        };
        if !holds {
            return Ok(false);
        }
        work.set_temporary_password(account, hash, expires_at).await?;
        // A session opened with the one it replaces must not choose the password with it.
        work.end_forced_sessions(account).await?;
        if let Some(event) = &event {
            work.record(event).await?;
        }
        work.commit().await?;
        Ok(true)
    }

    /// Sets a password the member chose in session `keep` (see [`set_chosen_password`]).
    /// A `forced` change (after a temporary password, no current password asked) needs
    /// the temporary password still pending at `now`: `Ok(false)` and nothing changed
    /// when it is not.
    pub async fn change_password(
        &self,
        account: AccountId,
        hash: &PasswordHash,
        keep: &TokenHash,
        forced: bool,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(account).await? else { return Ok(false) };
        let row = &held.account;
        if forced && row.temporary_password_at(now).is_none() {
            return Ok(false);
        }
        let how = if forced { PasswordChoice::AfterTemporary } else { PasswordChoice::InMySpace };
        set_chosen_password(work.as_mut(), &held, hash, Some(keep), how, context, now).await?;
        work.commit().await?;
        Ok(true)
    }

    /// Redeems a reset code: of concurrent redeemers one alone succeeds; the account's
    /// other codes are used up with it, and the password is set as
    /// [`set_chosen_password`] does. Says why a code cannot be used.
    pub async fn redeem_code(
        &self,
        hash: &TokenHash,
        new_hash: &PasswordHash,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<Result<AccountId, CodeError>, StoreError> {
        let mut work = self.transactions.begin().await?;
        // The account is held before its code, as every unit that changes an account
        // holds it first: two codes of one account redeemed at once cannot deadlock.
        let Some(code) = work.find_code(hash).await? else { return Ok(Err(CodeError::Invalid)) };
        let Some(held) = work.hold_account(code.account_id).await? else { return Ok(Err(CodeError::Invalid)) };
        let Some(code) = work.hold_code(hash).await? else { return Ok(Err(CodeError::Invalid)) };
        if let Err(why) = code.usable_at(now) {
            return Ok(Err(why));
        }
        work.use_code(hash, now).await?;
        work.use_up_codes(code.account_id, now).await?;
        set_chosen_password(work.as_mut(), &held, new_hash, None, PasswordChoice::WithCode, context, now).await?;
        work.commit().await?;
        Ok(Ok(code.account_id))
    }
}

#[cfg(test)]
mod tests {
    //! The rules on their own, over rows kept in memory.

    use jiff::SignedDuration;
    use tokio::sync::Mutex;

    use super::*;
    use crate::account::{Account, Role};
    use crate::codes::{CodePurpose, StoredCode};
    use crate::ports::memory::{Memory, Rows};

    fn t0() -> Timestamp {
        "2026-03-02T09:00:00Z".parse().unwrap()
    }

    fn minutes(n: i64) -> SignedDuration {
        SignedDuration::from_mins(n)
    }

    fn hash(n: u8) -> PasswordHash {
        PasswordHash::from_phc(format!("$argon2id$v=19$m=64,t=1,p=1$c2FsdA${n}"))
    }

    const MARIE: AccountId = AccountId::from_stored(1);

    async fn with_marie(role: Role) -> (Credentials, Arc<Mutex<Rows>>) {
        let memory = Memory::default();
        let rows = Arc::clone(&memory.0);
        let account = Account {
            email: EmailAddress::from_stored("marie@chu.example.fr".into()),
            password_hash: Some(hash(1)),
            ..Account::sample(MARIE.get(), role)
        };
        rows.lock()
            .await
            .accounts
            .insert(MARIE, HeldAccount { account, failures_cleared_after: 0, secours_code: None, email_code: None });
        (Credentials::new(Arc::new(memory)), rows)
    }

    async fn fail(credentials: &Credentials, at: Timestamp) -> FailureOutcome {
        let context = RequestContext::default();
        credentials.record_login_failure(MARIE, &LockoutPolicy::default(), &context, at).await.unwrap()
    }

    async fn succeed(credentials: &Credentials, despite_lock: bool, at: Timestamp) -> bool {
        let context = RequestContext::default();
        let proof = Proof::Password(hash(1));
        credentials.record_login_success(MARIE, &proof, None, despite_lock, &[], &context, at).await.unwrap()
            == Admitted::In
    }

    #[tokio::test]
    async fn the_fifth_failure_locks_for_an_hour_and_tells_the_member() {
        let (credentials, rows) = with_marie(Role::Member).await;
        for n in 1..=4 {
            assert_eq!(fail(&credentials, t0() + minutes(n)).await, FailureOutcome::Counted { failures: n as u32 });
        }
        let until = t0() + minutes(5) + minutes(60);
        assert_eq!(fail(&credentials, t0() + minutes(5)).await, FailureOutcome::Locked { until });
        let rows = rows.lock().await;
        let locked = rows.events.iter().find(|(_, e)| e.kind == AuditKind::AccountLocked).unwrap();
        assert_eq!((locked.1.actor, &locked.1.detail), (Actor::System, &Some(AuditDetail::Failures(5))));
        assert_eq!(rows.mail.iter().map(|m| m.kind).collect::<Vec<_>>(), [MailKind::AccountLocked]);
    }

    #[tokio::test]
    async fn failures_past_the_window_and_before_a_success_do_not_count() {
        let (credentials, _) = with_marie(Role::Member).await;
        for n in 0..4 {
            fail(&credentials, t0() + minutes(n)).await;
        }
        assert_eq!(fail(&credentials, t0() + minutes(20)).await, FailureOutcome::Counted { failures: 1 }, "window");
        assert!(succeed(&credentials, false, t0() + minutes(21)).await);
        assert_eq!(fail(&credentials, t0() + minutes(22)).await, FailureOutcome::Counted { failures: 1 }, "success");
    }

    #[tokio::test]
    async fn a_locked_account_refuses_without_counting_and_restarts_afresh() {
        let (credentials, rows) = with_marie(Role::Member).await;
        for _ in 0..5 {
            fail(&credentials, t0()).await;
        }
        assert_eq!(fail(&credentials, t0() + minutes(1)).await, FailureOutcome::AlreadyLocked);
        assert!(!succeed(&credentials, false, t0() + minutes(2)).await, "no login while locked");
        assert!(succeed(&credentials, true, t0() + minutes(2)).await, "from the member's usual browser");
        assert!(rows.lock().await.accounts[&MARIE].account.is_locked_at(t0() + minutes(3)), "the lock stays");
        assert_eq!(fail(&credentials, t0() + minutes(61)).await, FailureOutcome::Counted { failures: 1 });
        let refused = rows.lock().await.events.iter().filter(|(_, e)| e.kind == AuditKind::LoginRefusedLocked).count();
        assert_eq!(refused, 1);
    }

    #[tokio::test]
    async fn a_success_needs_what_was_checked_to_still_hold() {
        let (credentials, rows) = with_marie(Role::Member).await;
        let context = RequestContext::default();
        let stale = Proof::Password(hash(2));
        assert!(
            credentials.record_login_success(MARIE, &stale, None, false, &[], &context, t0()).await.unwrap()
                != Admitted::In
        );
        rows.lock().await.accounts.get_mut(&MARIE).unwrap().account.disabled_at = Some(t0());
        assert!(!succeed(&credentials, true, t0()).await, "disabled");
        assert!(rows.lock().await.events.is_empty(), "nothing recorded");
    }

    #[tokio::test]
    async fn unlocking_reaches_members_only_for_assistance_and_forgets_failures() {
        let (credentials, rows) = with_marie(Role::Assistance).await;
        for _ in 0..5 {
            fail(&credentials, t0()).await;
        }
        let event = NewAuditEvent {
            at: t0() + minutes(1),
            account_id: Some(MARIE),
            kind: AuditKind::AccountUnlocked,
            actor: Actor::Operator,
            context: RequestContext::default(),
            detail: None,
        };
        let refused = credentials.unlock_account(MARIE, event.clone(), Reach::MembersOnly).await;
        assert!(matches!(refused, Err(StoreError::Changed)), "{refused:?}");
        assert!(credentials.unlock_account(MARIE, event.clone(), Reach::Anyone).await.unwrap());
        assert!(!rows.lock().await.accounts[&MARIE].account.is_locked_at(t0() + minutes(1)));
        assert_eq!(fail(&credentials, t0() + minutes(2)).await, FailureOutcome::Counted { failures: 1 });
        assert!(!credentials.unlock_account(MARIE, event, Reach::Anyone).await.unwrap(), "was not locked");
    }

    #[tokio::test]
    async fn a_temporary_password_goes_only_where_the_account_still_is() {
        let (credentials, rows) = with_marie(Role::Member).await;
        let temporary = crate::token::PlainToken::generate().hash();
        let elsewhere = EmailAddress::from_stored("old@chu.example.fr".into());
        let later = t0() + minutes(60);
        let set = credentials.set_temporary_password(
            MARIE,
            &temporary,
            later,
            Provided::StillAddress(&elsewhere),
            None,
            Reach::Anyone,
        );
        assert!(!set.await.unwrap(), "the address changed meanwhile");
        let here = EmailAddress::from_stored("marie@chu.example.fr".into());
        rows.lock().await.sessions.push((MARIE, "forced".into(), true));
        let set = credentials.set_temporary_password(
            MARIE,
            &temporary,
            later,
            Provided::StillAddress(&here),
            None,
            Reach::Anyone,
        );
        assert!(set.await.unwrap());
        let rows = rows.lock().await;
        assert_eq!(rows.accounts[&MARIE].account.temporary_password_hash.as_ref(), Some(&temporary));
        assert!(rows.sessions.is_empty(), "the session opened with the one it replaces ends");
    }

    #[tokio::test]
    async fn a_forced_change_needs_the_temporary_password_pending() {
        let (credentials, rows) = with_marie(Role::Member).await;
        let keep = crate::token::PlainToken::generate().hash();
        let context = RequestContext::default();
        assert!(!credentials.change_password(MARIE, &hash(3), &keep, true, &context, t0()).await.unwrap());
        let temporary = crate::token::PlainToken::generate().hash();
        credentials
            .set_temporary_password(MARIE, &temporary, t0() + minutes(60), Provided::Always, None, Reach::Anyone)
            .await
            .unwrap();
        rows.lock().await.sessions.extend([(MARIE, keep.as_str().to_owned(), true), (MARIE, "other".into(), false)]);
        assert!(credentials.change_password(MARIE, &hash(3), &keep, true, &context, t0()).await.unwrap());
        let rows = rows.lock().await;
        let marie = &rows.accounts[&MARIE].account;
        assert_eq!((marie.password_hash.clone(), marie.temporary_password_hash.as_ref()), (Some(hash(3)), None));
        assert_eq!(rows.sessions, [(MARIE, keep.as_str().to_owned(), false)], "this session stays, and may go on");
        let changed = rows.events.iter().find(|(_, e)| e.kind == AuditKind::PasswordChanged).unwrap();
        assert_eq!(changed.1.detail, Some(AuditDetail::Password(PasswordChoice::AfterTemporary)));
        assert_eq!(rows.mail.last().map(|m| m.kind), Some(MailKind::PasswordChanged));
    }

    #[tokio::test]
    async fn a_code_works_once_uses_up_its_siblings_and_lifts_the_lock() {
        let (credentials, rows) = with_marie(Role::Member).await;
        for _ in 0..5 {
            fail(&credentials, t0()).await;
        }
        let (one, two) = (crate::token::PlainToken::generate().hash(), crate::token::PlainToken::generate().hash());
        let code = |expires_at| StoredCode {
            account_id: MARIE,
            purpose: CodePurpose::Reset,
            created_at: t0(),
            expires_at,
            used_at: None,
            voided_at: None,
        };
        rows.lock().await.codes.extend([
            (one.as_str().to_owned(), code(t0() + minutes(60))),
            (two.as_str().to_owned(), code(t0() + minutes(60))),
        ]);
        let context = RequestContext::default();
        let at = t0() + minutes(61);
        assert_eq!(credentials.redeem_code(&one, &hash(4), &context, at).await.unwrap(), Err(CodeError::Expired));
        let at = t0() + minutes(1);
        assert_eq!(credentials.redeem_code(&one, &hash(4), &context, at).await.unwrap(), Ok(MARIE));
        assert_eq!(credentials.redeem_code(&one, &hash(5), &context, at).await.unwrap(), Err(CodeError::Used));
        assert_eq!(
            credentials.redeem_code(&two, &hash(5), &context, at).await.unwrap(),
            Err(CodeError::Voided),
            "the other code was voided, not used"
        );
        let unknown = crate::token::PlainToken::generate().hash();
        assert_eq!(credentials.redeem_code(&unknown, &hash(5), &context, at).await.unwrap(), Err(CodeError::Invalid));
        let marie = rows.lock().await.accounts[&MARIE].account.clone();
        assert_eq!((marie.password_hash, marie.locked_until), (Some(hash(4)), None));
    }

    #[tokio::test]
    async fn a_unit_dropped_before_its_commit_leaves_nothing() {
        let (credentials, rows) = with_marie(Role::Member).await;
        let mut work = credentials.transactions.begin().await.unwrap();
        work.record(&member_event(MARIE, AuditKind::LoginFailed, &RequestContext::default(), t0())).await.unwrap();
        drop(work);
        assert!(rows.lock().await.events.is_empty());
    }
}
