//! What the console shows: a member's file, search results, the dashboard's figures.
//! Read models, ready for a page; nothing here changes anything.

use jiff::{SignedDuration, Timestamp};

use super::{Console, ConsoleAction, ConsoleError, StaffActor};
use crate::account::{Account, AccountId, Role};
use crate::audit::{Activity, AuditKind};
use crate::groups::GroupName;
use crate::mail::MailLogEntry;
use crate::ports::{AccountFilter, AccountQuery, AccountState, Page, StoreError};

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
    /// Its second factors.
    pub factors: crate::second_factor::FactorStatus,
}

/// What the console's list of accounts is filtered on; empty parts select everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountFilters {
    /// Contained in the identifier, the address or the name.
    pub text: String,
    /// Only this role.
    pub role: Option<Role>,
    /// Only accounts in this state.
    pub state: Option<AccountState>,
    /// Only this group's members.
    pub group: Option<GroupName>,
    /// Only accounts whose address refuses guichet's mail now (the desk's rule).
    pub refused_mail: bool,
}

/// How many accounts a page of the console's list shows.
pub const ACCOUNTS_PER_PAGE: u32 = 50;

/// One page of the console's list of accounts.
#[derive(Debug, Clone)]
pub struct AccountList {
    /// The page's accounts, by identifier, each with its state.
    pub accounts: Vec<(Account, AccountState)>,
    /// How many the filters select in all.
    pub total: u64,
    /// This page's number, from 1.
    pub page: u64,
    /// How many pages there are (at least 1).
    pub pages: u64,
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
    /// One page (counted from 1) of the accounts the filters select, by identifier.
    /// Every staff member may list; what they may then do is decided per account.
    pub async fn browse(&self, filters: AccountFilters, page: u64) -> Result<AccountList, StoreError> {
        let now = self.clock.now();
        let query = AccountQuery {
            // Control characters match nothing (and PostgreSQL refuses NUL in text).
            text: filters.text.trim().chars().filter(|c| !c.is_control()).take(100).collect(),
            role: filters.role,
            state: filters.state,
            group: filters.group,
            refused_since: filters
                .refused_mail
                .then(|| now.saturating_sub(crate::desk::REFUSALS_COUNT_FOR).unwrap_or(now)),
        };
        let page = page.max(1);
        let limit = ACCOUNTS_PER_PAGE;
        let offset = (page - 1).saturating_mul(u64::from(limit));
        let (mut accounts, total) = self.accounts.browse_accounts(&query, now, Page { offset, limit }).await?;
        let pages = total.div_ceil(u64::from(limit)).max(1);
        // Past the last page (the list shrank since the link was made): the last one.
        let page = if page > pages {
            let offset = (pages - 1).saturating_mul(u64::from(limit));
            accounts = self.accounts.browse_accounts(&query, now, Page { offset, limit }).await?.0;
            pages
        } else {
            page
        };
        let accounts = accounts
            .into_iter()
            .map(|account| {
                let state = account.state_at(now);
                (account, state)
            })
            .collect();
        Ok(AccountList { accounts, total, page, pages })
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
            factors: self.accounts.second_factors(account.id).await?,
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
