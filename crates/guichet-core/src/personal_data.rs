//! The RGPD's rights over the data guichet holds about a person: access and portability
//! (everything about the account, table by table), erasure (asked, cancellable until a
//! stated delay has passed, then done: identity removed from every table, sessions and
//! tokens ended and the applications told, audit lines kept under a pseudonym), and
//! what the housekeeping rounds erase by themselves (asked erasures that are due,
//! accounts never used).

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::account::{Account, AccountId, Role};
use crate::audit::{Actor, AuditKind, NewAuditEvent, RequestContext};
use crate::console::{ConsoleAction, Denied, StaffActor, decide};
use crate::mail::{MailKind, MailSubject, NewMail};
use crate::ports::{Ports, PrivacyStore, StoreError, Transactions, Work};
use crate::token::PlainToken;

/// One value of a row, as the export shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// Nothing stored.
    Empty,
    /// A number or a yes/no (0/1).
    Number(i64),
    /// Text.
    Text(String),
    /// An instant.
    Time(Timestamp),
}

/// One row: its columns' names and values, in the table's order.
pub type Row = Vec<(String, Field)>;

/// The rows of one table that are about the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The table's name (the JSON's key).
    pub table: &'static str,
    /// Its rows.
    pub rows: Vec<Row>,
}

/// Everything held about one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalData {
    /// When it was read.
    pub generated_at: Timestamp,
    /// Each table that refers to the account, in a stable order, empty ones included.
    pub sections: Vec<Section>,
}

impl PersonalData {
    /// The format's name, written in the JSON.
    pub const FORMAT: &'static str = "guichet-donnees-personnelles/1";

    /// One table's rows.
    pub fn section(&self, table: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.table == table)
    }

    /// The machine-readable form (the right to portability): the tables by name, each
    /// row an object, instants in RFC 3339.
    pub fn to_json(&self, site_name: &str) -> serde_json::Value {
        let value = |field: &Field| match field {
            Field::Empty => serde_json::Value::Null,
            Field::Number(n) => serde_json::Value::from(*n),
            Field::Text(text) => serde_json::Value::from(text.as_str()),
            Field::Time(at) => serde_json::Value::from(at.to_string()),
        };
        let tables: serde_json::Map<String, serde_json::Value> = self
            .sections
            .iter()
            .map(|section| {
                let rows = section
                    .rows
                    .iter()
                    .map(|row| {
                        serde_json::Value::Object(
                            row.iter().map(|(name, field)| (name.clone(), value(field))).collect(),
                        )
                    })
                    .collect();
                (section.table.to_owned(), serde_json::Value::Array(rows))
            })
            .collect();
        serde_json::json!({
            "format": Self::FORMAT,
            "site": site_name,
            "generated_at": self.generated_at.to_string(),
            "tables": tables,
        })
    }
}

/// Why an erasure cannot be asked for, or done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ErasureRefused {
    /// The last active administrator: another must be named first.
    #[error("{}", crate::catalogue::ERASURE_LAST_ADMINISTRATOR)]
    LastAdministrator,
    /// Staff may not erase this account.
    #[error(transparent)]
    Denied(#[from] Denied),
}

/// How an erasure ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Erased {
    /// Done.
    Done,
    /// No such account (erased already).
    NotFound,
    /// A round's erasure that no longer applies, as the account is now (cancelled, the
    /// account used meanwhile): nothing done.
    NotDue,
    /// Refused.
    Refused(ErasureRefused),
}

/// What a round erased.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErasureRound {
    /// Asked erasures whose delay had passed.
    pub asked: u64,
    /// Accounts never used.
    pub unused: u64,
}

/// The rights' use cases.
#[derive(Debug, Clone)]
pub struct Privacy {
    transactions: Arc<dyn Transactions>,
    store: Arc<dyn PrivacyStore>,
    delay: SignedDuration,
}

/// Why a round erases an account, checked again on the account once held.
#[derive(Debug, Clone, Copy)]
enum Due {
    /// Its erasure was asked for, and its date has come.
    Asked,
    /// A member's account never signed in to, unchanged since before this.
    Unused(Timestamp),
}

impl Due {
    fn still(self, account: &Account, now: Timestamp) -> bool {
        match self {
            Self::Asked => account.erase_at.is_some_and(|at| at <= now),
            Self::Unused(before) => {
                account.role == Role::Member
                    && account.last_login_at.is_none()
                    && account.erase_at.is_none()
                    && account.created_at < before
                    && account.updated_at < before
            }
        }
    }
}

/// A pseudonym for an erased account's lines: random, the same on each of its lines,
/// derived from nothing that identified it.
fn pseudonym() -> String {
    let token = PlainToken::generate();
    let short: String = token.expose().chars().filter(char::is_ascii_alphanumeric).take(10).collect();
    format!("efface-{short}")
}

fn event(account: AccountId, kind: AuditKind, actor: Actor, context: &RequestContext, at: Timestamp) -> NewAuditEvent {
    NewAuditEvent { at, account_id: Some(account), kind, actor, context: context.clone(), detail: None }
}

/// Whether `account` is the last active administrator (held in `work`).
async fn last_administrator(work: &mut dyn Work, account: &Account) -> Result<bool, StoreError> {
    if account.role != Role::Admin || account.disabled_at.is_some() {
        return Ok(false);
    }
    let active = work.hold_active_administrators().await?;
    Ok(active.iter().all(|id| *id == account.id))
}

impl Privacy {
    /// Over the store; an asked erasure is done `delay` after it was asked.
    pub fn new(ports: &Ports, delay: SignedDuration) -> Self {
        Self { transactions: Arc::clone(&ports.transactions), store: Arc::clone(&ports.privacy), delay }
    }

    /// The delay between asking and erasing.
    pub fn delay(&self) -> SignedDuration {
        self.delay
    }

    /// Everything held about the member, for themselves.
    pub async fn own_data(&self, account: AccountId, now: Timestamp) -> Result<Option<PersonalData>, StoreError> {
        self.store.personal_data(account, now).await
    }

    /// Everything held about `target`, with the account as held, for staff answering the
    /// member's request through the desk: decided here on that account, and audited on it
    /// before it is read. `Ok(None)` when there is no such account.
    pub async fn data_for_staff(
        &self,
        actor: &StaffActor,
        target: AccountId,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<Option<Result<(Account, PersonalData), Denied>>, StoreError> {
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(target).await? else { return Ok(None) };
        if let Err(denied) = decide(actor, ConsoleAction::ExportData, &held.account) {
            return Ok(Some(Err(denied)));
        }
        work.record(&event(target, AuditKind::DataExported, actor.audit_actor(), context, now)).await?;
        work.commit().await?;
        Ok(self.store.personal_data(target, now).await?.map(|data| Ok((held.account, data))))
    }

    /// The member asks for their own account's erasure, their password typed again.
    pub async fn request_own_erasure(
        &self,
        confirmed: &crate::me::PasswordConfirmed,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<Result<Timestamp, ErasureRefused>, StoreError> {
        self.request_erasure(confirmed.account(), None, context, now).await
    }

    /// The member calls off their own erasure.
    pub async fn cancel_own_erasure(
        &self,
        account: AccountId,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self.cancel_erasure(account, None, context, now).await?.unwrap_or(false))
    }

    /// Staff ask for `target`'s erasure for a member who wrote to the desk (decided
    /// here on the account as held: administrators, on accounts that are not
    /// administrators', not their own).
    pub async fn request_erasure_for(
        &self,
        actor: &StaffActor,
        target: AccountId,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<Result<Timestamp, ErasureRefused>, StoreError> {
        self.request_erasure(target, Some(actor), context, now).await
    }

    /// Staff call off `target`'s asked erasure (the same authority as asking for it).
    pub async fn cancel_erasure_for(
        &self,
        actor: &StaffActor,
        target: AccountId,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<Result<bool, Denied>, StoreError> {
        self.cancel_erasure(target, Some(actor), context, now).await
    }

    /// Asks for the account's erasure, done [`Privacy::delay`] from `now` unless called
    /// off: recorded, and the member told by mail (when, and how to call it off). Asking
    /// again keeps the first date. Returns when it will be done.
    async fn request_erasure(
        &self,
        account: AccountId,
        staff: Option<&StaffActor>,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<Result<Timestamp, ErasureRefused>, StoreError> {
        let mut work = self.transactions.begin().await?;
        let held = work.hold_account(account).await?.ok_or(StoreError::Changed)?;
        if let Some(staff) = staff
            && let Err(denied) = decide(staff, ConsoleAction::Erase, &held.account)
        {
            return Ok(Err(denied.into()));
        }
        if let Some(at) = held.account.erase_at {
            return Ok(Ok(at));
        }
        if last_administrator(work.as_mut(), &held.account).await? {
            return Ok(Err(ErasureRefused::LastAdministrator));
        }
        let at = now.saturating_add(self.delay).unwrap_or(now);
        let actor = staff.map_or(Actor::Member, StaffActor::audit_actor);
        work.set_erase_at(account, Some(at)).await?;
        work.record(&event(account, AuditKind::ErasureRequested, actor, context, now)).await?;
        let mail = NewMail {
            kind: MailKind::ErasureScheduled,
            account_id: Some(account),
            recipient: held.account.email.clone(),
            subject: MailSubject::None,
        };
        work.queue_mail(&mail, now).await?;
        work.commit().await?;
        Ok(Ok(at))
    }

    /// Calls off an asked erasure. `Ok(Ok(false))` when none was asked.
    async fn cancel_erasure(
        &self,
        account: AccountId,
        staff: Option<&StaffActor>,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<Result<bool, Denied>, StoreError> {
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(account).await? else { return Ok(Ok(false)) };
        if let Some(staff) = staff
            && let Err(denied) = decide(staff, ConsoleAction::Erase, &held.account)
        {
            return Ok(Err(denied));
        }
        if held.account.erase_at.is_none() {
            return Ok(Ok(false));
        }
        let actor = staff.map_or(Actor::Member, StaffActor::audit_actor);
        work.set_erase_at(account, None).await?;
        work.record(&event(account, AuditKind::ErasureCancelled, actor, context, now)).await?;
        work.commit().await?;
        Ok(Ok(true))
    }

    /// Erases the account now, in one unit of work: its sessions and offline tokens end
    /// (the applications' back-channel logouts are queued), its identity leaves every
    /// table (its assistance requests and their notes, the mail log to its addresses,
    /// its codes, keys, devices, groups), and its audit lines keep only what happened
    /// and when, under a pseudonym. The last active administrator is not erased.
    pub async fn erase(
        &self,
        account: AccountId,
        actor: Actor,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<Erased, StoreError> {
        self.erase_if(account, None, actor, context, now).await
    }

    /// [`Privacy::erase`], for a round: only if `due` still holds of the account as held.
    async fn erase_if(
        &self,
        account: AccountId,
        due: Option<Due>,
        actor: Actor,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<Erased, StoreError> {
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(account).await? else { return Ok(Erased::NotFound) };
        if due.is_some_and(|due| !due.still(&held.account, now)) {
            return Ok(Erased::NotDue);
        }
        if last_administrator(work.as_mut(), &held.account).await? {
            return Ok(Erased::Refused(ErasureRefused::LastAdministrator));
        }
        work.end_sessions(account, None, now).await?;
        work.record(&event(account, AuditKind::AccountErased, actor, context, now)).await?;
        work.erase_account(&held.account, &pseudonym()).await?;
        work.commit().await?;
        Ok(Erased::Done)
    }

    /// Erases what is due at `now`: asked erasures whose delay has passed, and members'
    /// accounts never used and unchanged since `unused_before`. Each goes on when
    /// another fails; the first failure is returned after all were tried.
    pub async fn erase_due(&self, now: Timestamp, unused_before: Timestamp) -> Result<ErasureRound, StoreError> {
        let mut round = ErasureRound::default();
        let mut first_error = None;
        let asked = self.store.erasures_due(now).await?;
        let unused = self.store.unused_accounts(unused_before).await?;
        let rounds = [(asked, Due::Asked, &mut round.asked), (unused, Due::Unused(unused_before), &mut round.unused)];
        for (ids, due, count) in rounds {
            for id in ids {
                match self.erase_if(id, Some(due), Actor::System, &RequestContext::default(), now).await {
                    Ok(Erased::Done) => *count += 1,
                    Ok(Erased::Refused(why)) => {
                        tracing::warn!(account = id.get(), %why, "an erasure that is due was not done");
                    }
                    Ok(Erased::NotFound | Erased::NotDue) => {}
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(round),
        }
    }
}
