//! What the console shows: a member's file, search results, the dashboard's figures.
//! Read models, ready for a page; nothing here changes anything.

use jiff::{SignedDuration, Timestamp};

use super::{Console, ConsoleAction, ConsoleError, StaffActor};
use crate::account::{Account, AccountId};
use crate::audit::{Activity, AuditKind};
use crate::groups::GroupName;
use crate::mail::MailLogEntry;
use crate::ports::{AccountFilter, StoreError};

/// An account as the console shows it.
#[derive(Debug, Clone)]
pub struct MemberFile {
    /// The account.
    pub account: Account,
    /// Whether it is locked now.
    pub locked: bool,
    /// Its recent activity (audit events, newest first).
    pub activity: Activity,
    /// Its messages, newest first.
    pub mail: Vec<MailLogEntry>,
    /// Recovery codes still usable.
    pub pending_codes: u64,
    /// What the viewing staff member may do to it.
    pub allowed: Vec<ConsoleAction>,
    /// Its groups.
    pub groups: Vec<GroupName>,
    /// Every group there is (what it could join).
    pub all_groups: Vec<GroupName>,
}

/// Failed logins and lockouts on one day (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyCounts {
    /// The day's first instant.
    pub day: Timestamp,
    /// Failed logins.
    pub failures: u64,
    /// Lockouts.
    pub locks: u64,
}

const DAY: SignedDuration = SignedDuration::from_hours(24);
const DAY_MS: i64 = 86_400_000;

impl Console {
    /// Accounts whose identifier, email or name contains `query` (every staff member may
    /// search; what they may then do is decided per account).
    pub async fn search(&self, query: &str) -> Result<Vec<Account>, StoreError> {
        let query: String = query.trim().chars().take(100).collect();
        if query.is_empty() {
            return Ok(Vec::new());
        }
        self.accounts.search_accounts(&query, 50).await
    }

    /// An account's file, with what `actor` may do to it.
    pub async fn member_file(&self, actor: &StaffActor, id: AccountId) -> Result<MemberFile, ConsoleError> {
        let account = self.accounts.find_account(id).await?.ok_or(ConsoleError::NotFound)?;
        let now = self.clock.now();
        Ok(MemberFile {
            locked: account.is_locked_at(now),
            activity: Activity::new(self.audit.account_events(account.id, 100).await?),
            mail: self.outbox.account_mail(account.id, 30).await?,
            pending_codes: self.recovery.pending_codes(account.id, now).await?,
            allowed: ConsoleAction::ALL.into_iter().filter(|action| actor.may(*action, &account)).collect(),
            groups: self.groups.account_groups(account.id).await?,
            all_groups: self.groups.list_groups().await?.into_iter().map(|g| g.name).collect(),
            account,
        })
    }

    /// Accounts locked now.
    pub async fn locked_accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.accounts.list_accounts(AccountFilter { locked_at: Some(self.clock.now()) }).await
    }

    /// Failed logins and lockouts per day over the last `days` days, oldest first,
    /// today included.
    pub async fn daily_counts(&self, days: i64) -> Result<Vec<DailyCounts>, StoreError> {
        let now = self.clock.now();
        let today = now.as_millisecond().div_euclid(DAY_MS);
        let since = now.saturating_sub(DAY * i32::try_from(days).unwrap_or(30)).unwrap_or(now);
        let counts = self.audit.daily_counts(&[AuditKind::LoginFailed, AuditKind::AccountLocked], since).await?;
        let on = |kind: AuditKind, day: i64| {
            counts.iter().filter(|(d, k, _)| *d == day && *k == kind).map(|(_, _, n)| *n).sum::<u64>()
        };
        Ok((today - days + 1..=today)
            .map(|day| DailyCounts {
                day: Timestamp::from_millisecond(day * DAY_MS).unwrap_or(now),
                failures: on(AuditKind::LoginFailed, day),
                locks: on(AuditKind::AccountLocked, day),
            })
            .collect())
    }
}
