//! Bringing the old site's members over (`guichet member import`): each row is checked
//! here, then decided and stored a batch at a time, one unit of work per batch, its new
//! accounts written in bulk, so that a hundred thousand rows go in within seconds and
//! memory stays bounded.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use jiff::Timestamp;

use crate::account::{Account, AccountId, DisplayName, EmailAddress, Identifier, NameParts, NewAccount, Role, Rpps};
use crate::account_changes::revoke_handed_out;
use crate::audit::{Actor, AuditDetail, AuditKind, ImportChanges, NewAuditEvent, Origin, RequestContext};
use crate::clock::Clock;
use crate::groups::{GroupId, GroupName};
use crate::legacy::accept_imported;
use crate::mail::{MailKind, MailSubject, NewMail};
use crate::password::PasswordHash;
use crate::ports::{Ports, StoreError, Transactions, Work};

/// A row as the file says it, before any check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypedRow {
    /// Identifier.
    pub identifier: String,
    /// Email address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Given name (empty when the file has no such column).
    pub given_name: String,
    /// Family name (empty when the file has no such column).
    pub family_name: String,
    /// Role (empty: `member`).
    pub role: String,
    /// Group names separated by `|`; `None` when the file has no such column.
    pub groups: Option<String>,
    /// A password hash from the old site; empty or `None`: no password.
    pub password_hash: Option<String>,
    /// The RPPS number; empty or `None` (no such column): none said.
    pub rpps: Option<String>,
}

/// A checked row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// Identifier.
    pub identifier: Identifier,
    /// Email address.
    pub email: EmailAddress,
    /// Display name.
    pub name: DisplayName,
    /// Given and family names (empty when the file has no such columns).
    pub names: NameParts,
    /// Role of a new account (an update leaves the role alone).
    pub role: Role,
    /// Groups; `None` when the file says nothing of them (an update leaves them alone).
    pub groups: Option<Vec<GroupName>>,
    /// Argon2 or a legacy hash guichet can check; `None`: no password.
    pub password_hash: Option<PasswordHash>,
    /// The RPPS number; `None`: the row says none (an update leaves the account's).
    pub rpps: Option<Rpps>,
}

/// How the import treats what it finds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Mail new accounts without a password an invitation.
    pub invite: bool,
    /// Update the name, email and groups of identifiers that exist (otherwise: rejected).
    pub update: bool,
    /// With `update`, also replace their password by the row's hash, when it has one.
    pub update_passwords: bool,
    /// Create the groups a row names that do not exist (otherwise: the row is rejected).
    pub create_groups: bool,
}

/// What became of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// A new account.
    Created,
    /// An existing account, changed.
    Updated,
    /// An existing account, already as the row says.
    Unchanged,
    /// Refused, and why.
    Rejected(Rejection),
}

/// Why a checked row was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// It names a group that does not exist (and groups are not to be created).
    MissingGroup(GroupName),
    /// Its address is already another account's, own or secours.
    EmailTaken,
    /// Its identifier exists (and existing accounts are not to be updated).
    IdentifierTaken,
    /// Its identifier is a new account's earlier in the batch.
    IdentifierTwice,
    /// Its RPPS number is another account's, or a new account's earlier in the batch.
    RppsTaken,
}

/// Checks a typed row.
pub fn check_row(row: &TypedRow) -> Result<ImportRow, String> {
    let identifier = Identifier::parse(&row.identifier).map_err(|e| format!("identifier: {e}"))?;
    let email = EmailAddress::parse(&row.email).map_err(|e| format!("email: {e}"))?;
    let (name, names) =
        NameParts::with_display(&row.name, &row.given_name, &row.family_name).map_err(|e| format!("name: {e}"))?;
    let role =
        if row.role.trim().is_empty() { Role::Member } else { Role::parse(&row.role).map_err(|e| e.to_string())? };
    let groups = row
        .groups
        .as_deref()
        .map(|raw| {
            raw.split('|')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(|g| GroupName::parse(g).map_err(|_| format!("groups: {g:?} is not a group name")))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let password_hash = match row.password_hash.as_deref().map(str::trim) {
        Some(raw) if !raw.is_empty() => Some(accept_imported(raw).map_err(|e| format!("password_hash: {e}"))?),
        _ => None,
    };
    let rpps = match row.rpps.as_deref().map(str::trim) {
        Some(raw) if !raw.is_empty() => Some(Rpps::parse(raw).map_err(|e| format!("rpps: {e}"))?),
        _ => None,
    };
    Ok(ImportRow { identifier, email, name, names, role, groups, password_hash, rpps })
}

/// The import use case: each batch is one unit of work, its rows decided here on what
/// a few reads found (the accounts and addresses it names, its groups), its new accounts
/// then written in bulk.
#[derive(Debug, Clone)]
pub struct Importer {
    transactions: Arc<dyn Transactions>,
    clock: Arc<dyn Clock>,
}

/// Who an address belongs to, as the batch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// A stored account, as its own or its secours address.
    Stored(AccountId),
    /// A new account of this batch.
    New,
}

/// What the batch knows as it goes: the rows its identifiers name (held), whose each
/// address is, the groups by name and each held account's groups.
struct Batch {
    existing: HashMap<Identifier, Account>,
    owners: HashMap<EmailAddress, Owner>,
    /// Whose each RPPS number the rows name is.
    rpps_owners: HashMap<Rpps, Owner>,
    groups: HashMap<GroupName, GroupId>,
    memberships: HashMap<AccountId, Vec<GroupId>>,
    new_identifiers: HashSet<Identifier>,
}

impl Importer {
    /// Over the store's units of work.
    pub fn of(ports: &Ports, clock: Arc<dyn Clock>) -> Self {
        Self::new(Arc::clone(&ports.transactions), clock)
    }

    /// Over these units of work.
    pub fn new(transactions: Arc<dyn Transactions>, clock: Arc<dyn Clock>) -> Self {
        Self { transactions, clock }
    }

    /// Stores a batch of checked rows in one unit of work; one outcome per row, in order.
    ///
    /// A new identifier becomes an account (with the row's groups and password hash, or
    /// an invitation with `options.invite` when it has none) unless its address is
    /// another account's, own or secours, or a new account's earlier in the batch. An
    /// existing one is rejected, or with `options.update` gets the row's address, name
    /// and groups (and its password hash with `options.update_passwords`), audited, and
    /// is `Unchanged` when it already had them. A new address voids what was handed out
    /// to the old one, a new password ends the sessions. Missing groups reject the row,
    /// or are created with `options.create_groups`.
    pub async fn import(&self, rows: &[ImportRow], options: ImportOptions) -> Result<Vec<ImportOutcome>, StoreError> {
        let now = self.clock.now();
        let mut work = self.transactions.begin().await?;
        let mut batch = Batch::read(work.as_mut(), rows, options.update).await?;
        let mut outcomes = Vec::with_capacity(rows.len());
        let mut created: Vec<(&ImportRow, Vec<GroupId>)> = Vec::new();
        for row in rows {
            let groups = match &row.groups {
                Some(names) => match batch.group_ids(work.as_mut(), names, options.create_groups, now).await? {
                    Ok(ids) => Some(ids),
                    Err(missing) => {
                        outcomes.push(ImportOutcome::Rejected(Rejection::MissingGroup(missing)));
                        continue;
                    }
                },
                None => None,
            };
            let outcome = match batch.existing.get(&row.identifier).cloned() {
                Some(_) if !options.update => ImportOutcome::Rejected(Rejection::IdentifierTaken),
                Some(account) => batch.update(work.as_mut(), account, row, groups, options, now).await?,
                None => match batch.admit_new(row) {
                    Ok(()) => {
                        created.push((row, groups.unwrap_or_default()));
                        ImportOutcome::Created
                    }
                    Err(why) => ImportOutcome::Rejected(why),
                },
            };
            outcomes.push(outcome);
        }
        create(work.as_mut(), &created, options, now).await?;
        work.commit().await?;
        Ok(outcomes)
    }
}

impl Batch {
    /// Reads what the rows name; with `update`, holds the existing accounts (after the
    /// active administrators, as every unit that may change an administrator does, so
    /// that no two units take the same rows in opposite orders).
    async fn read(work: &mut dyn Work, rows: &[ImportRow], update: bool) -> Result<Self, StoreError> {
        let identifiers: HashSet<&Identifier> = rows.iter().map(|r| &r.identifier).collect();
        let identifiers: Vec<Identifier> = identifiers.into_iter().cloned().collect();
        if update {
            work.hold_active_administrators().await?;
        }
        let existing = work.accounts_named(&identifiers, update).await?;
        let addresses: HashSet<&EmailAddress> = rows.iter().map(|r| &r.email).collect();
        let addresses: Vec<EmailAddress> = addresses.into_iter().cloned().collect();
        let owners = work.address_owners(&addresses).await?.into_iter().map(|(a, id)| (a, Owner::Stored(id))).collect();
        let numbers: HashSet<&Rpps> = rows.iter().filter_map(|r| r.rpps.as_ref()).collect();
        let numbers: Vec<Rpps> = numbers.into_iter().cloned().collect();
        let rpps_owners = work.rpps_owners(&numbers).await?.into_iter().map(|(n, id)| (n, Owner::Stored(id))).collect();
        let mut names: Vec<GroupName> = rows.iter().flat_map(|r| r.groups.iter().flatten().cloned()).collect();
        names.sort();
        names.dedup();
        let groups = work.groups_named(&names).await?.into_iter().collect();
        let ids: Vec<AccountId> = existing.iter().map(|a| a.id).collect();
        let mut memberships: HashMap<AccountId, Vec<GroupId>> = HashMap::new();
        for (group, account) in work.memberships_of(&ids).await? {
            memberships.entry(account).or_default().push(group);
        }
        Ok(Self {
            existing: existing.into_iter().map(|a| (a.identifier.clone(), a)).collect(),
            owners,
            rpps_owners,
            groups,
            memberships,
            new_identifiers: HashSet::new(),
        })
    }

    /// The ids of the named groups, creating the missing ones when allowed; `Err(name)`
    /// for the first one missing otherwise.
    async fn group_ids(
        &mut self,
        work: &mut dyn Work,
        names: &[GroupName],
        create: bool,
        now: Timestamp,
    ) -> Result<Result<Vec<GroupId>, GroupName>, StoreError> {
        let mut ids = Vec::with_capacity(names.len());
        for name in names {
            let id = match self.groups.get(name) {
                Some(id) => *id,
                None if create => {
                    let id = work.insert_group(name, "", now).await?;
                    self.groups.insert(name.clone(), id);
                    id
                }
                None => return Ok(Err(name.clone())),
            };
            ids.push(id);
        }
        Ok(Ok(ids))
    }

    /// Whether a new account may have the row's identifier and address (it then has
    /// them, for the rows after it).
    fn admit_new(&mut self, row: &ImportRow) -> Result<(), Rejection> {
        if self.owners.contains_key(&row.email) {
            return Err(Rejection::EmailTaken);
        }
        if row.rpps.as_ref().is_some_and(|n| self.rpps_owners.contains_key(n)) {
            return Err(Rejection::RppsTaken);
        }
        if !self.new_identifiers.insert(row.identifier.clone()) {
            return Err(Rejection::IdentifierTwice);
        }
        self.owners.insert(row.email.clone(), Owner::New);
        if let Some(number) = &row.rpps {
            self.rpps_owners.insert(number.clone(), Owner::New);
        }
        Ok(())
    }

    /// Gives an existing account what the row says of it (and keeps what it now is, for
    /// a later row that names it again).
    async fn update(
        &mut self,
        work: &mut dyn Work,
        account: Account,
        row: &ImportRow,
        groups: Option<Vec<GroupId>>,
        options: ImportOptions,
        now: Timestamp,
    ) -> Result<ImportOutcome, StoreError> {
        let mut changed = ImportChanges::default();
        if account.email != row.email {
            if self.owners.get(&row.email).is_some_and(|owner| *owner != Owner::Stored(account.id)) {
                return Ok(ImportOutcome::Rejected(Rejection::EmailTaken));
            }
            changed.email = Some((account.email.clone(), row.email.clone()));
        }
        if let Some(number) = row.rpps.as_ref().filter(|n| account.rpps.as_ref() != Some(*n)) {
            if self.rpps_owners.get(number).is_some_and(|owner| *owner != Owner::Stored(account.id)) {
                return Ok(ImportOutcome::Rejected(Rejection::RppsTaken));
            }
            changed.rpps = true;
        }
        changed.name = account.display_name != row.name || account.names != row.names;
        if changed.email.is_some() || changed.name {
            work.set_details(account.id, &row.email, &row.name, &row.names, now).await?;
        }
        if changed.email.is_some() {
            // The old address is free for the rows after, unless it is also the account's
            // secours address.
            if account.recovery_email.as_ref() != Some(&account.email) {
                self.owners.remove(&account.email);
            }
            self.owners.insert(row.email.clone(), Owner::Stored(account.id));
            // What was mailed to the old address stops working, as with any address change.
            revoke_handed_out(work, account.id, now).await?;
        }
        if changed.rpps
            && let Some(number) = &row.rpps
        {
            work.set_rpps(account.id, Some(number)).await?;
            if let Some(old) = &account.rpps {
                self.rpps_owners.remove(old);
            }
            self.rpps_owners.insert(number.clone(), Owner::Stored(account.id));
        }
        if options.update_passwords
            && let Some(hash) = &row.password_hash
            && account.password_hash.as_ref() != Some(hash)
        {
            work.set_password(account.id, hash, now).await?;
            work.end_sessions(account.id, None, now).await?;
            changed.password = true;
        }
        if let Some(groups) = groups {
            let current = self.memberships.remove(&account.id).unwrap_or_default();
            for group in groups.iter().filter(|g| !current.contains(g)) {
                changed.groups |= work.set_member(*group, account.id, true).await?;
            }
            for group in current.iter().filter(|g| !groups.contains(g)) {
                changed.groups |= work.set_member(*group, account.id, false).await?;
            }
            self.memberships.insert(account.id, groups);
        }
        if !changed.any() {
            return Ok(ImportOutcome::Unchanged);
        }
        let new_password = changed.password;
        let changed_rpps = changed.rpps;
        work.record(&operator_event(account.id, AuditKind::DetailsChanged, AuditDetail::Import(changed), now)).await?;
        let now_is = Account {
            email: row.email.clone(),
            display_name: row.name.clone(),
            names: row.names.clone(),
            password_hash: if new_password { row.password_hash.clone() } else { account.password_hash },
            rpps: if changed_rpps { row.rpps.clone() } else { account.rpps },
            ..account
        };
        self.existing.insert(row.identifier.clone(), now_is);
        Ok(ImportOutcome::Updated)
    }
}

/// Creates the batch's new accounts in bulk: the rows, their audit lines, their groups,
/// and an invitation to those without a password when asked.
async fn create(
    work: &mut dyn Work,
    created: &[(&ImportRow, Vec<GroupId>)],
    options: ImportOptions,
    now: Timestamp,
) -> Result<(), StoreError> {
    if created.is_empty() {
        return Ok(());
    }
    let new: Vec<NewAccount> = created
        .iter()
        .map(|(row, _)| NewAccount {
            identifier: row.identifier.clone(),
            email: row.email.clone(),
            display_name: row.name.clone(),
            names: row.names.clone(),
            role: row.role,
            password_hash: row.password_hash.clone(),
            rpps: row.rpps.clone(),
        })
        .collect();
    let ids = work.insert_accounts(&new, now).await?;
    let events: Vec<NewAuditEvent> = created
        .iter()
        .zip(&ids)
        .map(|((row, _), id)| {
            let origin = if row.password_hash.is_some() { Origin::ImportedWithPassword } else { Origin::Imported };
            operator_event(*id, AuditKind::AccountCreated, AuditDetail::Created(row.role, origin), now)
        })
        .collect();
    work.record_all(&events).await?;
    let memberships: Vec<(GroupId, AccountId)> =
        created.iter().zip(&ids).flat_map(|((_, groups), id)| groups.iter().map(move |g| (*g, *id))).collect();
    work.join_all(&memberships).await?;
    if options.invite {
        for ((row, _), id) in created.iter().zip(&ids) {
            if row.password_hash.is_none() {
                let mail = NewMail {
                    kind: MailKind::Invitation,
                    account_id: Some(*id),
                    recipient: row.email.clone(),
                    subject: MailSubject::None,
                };
                work.queue_mail(&mail, now).await?;
            }
        }
    }
    Ok(())
}

fn operator_event(account: AccountId, kind: AuditKind, detail: AuditDetail, at: Timestamp) -> NewAuditEvent {
    NewAuditEvent {
        at,
        account_id: Some(account),
        kind,
        actor: Actor::Operator,
        context: RequestContext::default(),
        detail: Some(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::ports::HeldAccount;
    use crate::ports::memory::{Memory, Rows};

    fn typed(identifier: &str, email: &str) -> TypedRow {
        TypedRow { identifier: identifier.into(), email: email.into(), ..TypedRow::default() }
    }

    #[test]
    fn rows_are_checked_field_by_field() {
        assert!(check_row(&typed("marie", "marie@chu.example.fr")).is_ok());
        assert!(
            check_row(&typed("ma rie", "marie@chu.example.fr")).err().unwrap_or_default().starts_with("identifier")
        );
        assert!(check_row(&typed("marie", "pas une adresse")).err().unwrap_or_default().starts_with("email"));
        let with_groups =
            TypedRow { groups: Some("bureau | adherents||".into()), ..typed("marie", "m@chu.example.fr") };
        assert_eq!(check_row(&with_groups).ok().and_then(|r| r.groups).map(|g| g.len()), Some(2));
        let bad_hash = TypedRow {
            password_hash: Some("5f4dcc3b5aa765d61d8327deb882cf99".into()),
            ..typed("marie", "m@chu.example.fr")
        };
        assert!(check_row(&bad_hash).err().unwrap_or_default().starts_with("password_hash: unknown"));
        let phpass = TypedRow {
            password_hash: Some("$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0".into()),
            ..typed("marie", "m@chu.example.fr")
        };
        assert!(check_row(&phpass).ok().and_then(|r| r.password_hash).is_some());
    }

    fn row(identifier: &str, email: &str, groups: Option<&[&str]>) -> ImportRow {
        ImportRow {
            identifier: Identifier::from_stored(identifier.into()),
            email: EmailAddress::from_stored(email.into()),
            name: DisplayName::default(),
            names: NameParts::default(),
            role: Role::Member,
            groups: groups.map(|names| names.iter().map(|n| GroupName::parse(n).unwrap()).collect()),
            password_hash: None,
            rpps: None,
        }
    }

    /// An importer over rows in memory holding accounts `a1` and `a2` (`a2` with a
    /// secours address) and the group `bureau`.
    async fn importer() -> (Importer, Arc<tokio::sync::Mutex<Rows>>) {
        let memory = Memory::default();
        let rows = Arc::clone(&memory.0);
        {
            let mut rows = rows.lock().await;
            for id in [1, 2] {
                let mut account = Account::sample(id, Role::Member);
                if id == 2 {
                    account.recovery_email = Some(EmailAddress::from_stored("a2.perso@example.org".into()));
                }
                rows.accounts.insert(
                    account.id,
                    HeldAccount { account, failures_cleared_after: 0, secours_code: None, email_code: None },
                );
            }
            rows.groups.push(GroupName::parse("bureau").unwrap());
        }
        let clock = Arc::new(ManualClock::new("2026-03-02T09:00:00Z".parse().unwrap()));
        (Importer::new(Arc::new(memory), clock), rows)
    }

    const EVERYTHING: ImportOptions =
        ImportOptions { invite: true, update: true, update_passwords: true, create_groups: true };

    #[tokio::test]
    async fn a_batch_creates_what_is_new_and_rejects_what_is_taken() {
        let (importer, rows) = importer().await;
        let batch = [
            row("marie", "marie@chu.example.fr", Some(&["bureau", "adherents"])),
            row("zoe", "a2.perso@example.org", None),
            row("paul", "marie@chu.example.fr", None),
            row("marie", "marie.bis@chu.example.fr", None),
            row("a1", "a1@example.org", None),
        ];
        let options = ImportOptions { invite: true, ..ImportOptions::default() };
        let outcomes = importer.import(&batch, options).await.unwrap();
        let adherents = GroupName::parse("adherents").unwrap();
        assert_eq!(outcomes[0], ImportOutcome::Rejected(Rejection::MissingGroup(adherents)));
        assert_eq!(
            outcomes[1..],
            [
                ImportOutcome::Rejected(Rejection::EmailTaken),
                ImportOutcome::Created,
                ImportOutcome::Created,
                ImportOutcome::Rejected(Rejection::IdentifierTaken),
            ]
        );
        let outcomes = importer.import(&batch[..1], EVERYTHING).await.unwrap();
        assert_eq!(outcomes, [ImportOutcome::Rejected(Rejection::EmailTaken)], "paul has the address now");
        let rows = rows.lock().await;
        assert_eq!(rows.accounts.len(), 4);
        assert_eq!(rows.mail.len(), 2, "an invitation to each new account without a password");
        assert_eq!(rows.events.len(), 2, "each creation audited");
    }

    #[tokio::test]
    async fn an_address_is_given_once_in_a_batch_whichever_row_asks_first() {
        let (importer, rows) = importer().await;
        let batch = [row("marie", "new@chu.example.fr", None), row("a1", "new@chu.example.fr", None)];
        let outcomes = importer.import(&batch, EVERYTHING).await.unwrap();
        assert_eq!(outcomes, [ImportOutcome::Created, ImportOutcome::Rejected(Rejection::EmailTaken)]);
        let batch = [
            row("a1", "a1.new@example.org", None),
            row("sam", "a1@example.org", None),
            row("sam", "sam@example.org", None),
        ];
        let outcomes = importer.import(&batch, EVERYTHING).await.unwrap();
        assert_eq!(outcomes[..2], [ImportOutcome::Updated, ImportOutcome::Created], "a1's old address is free again");
        assert_eq!(outcomes[2], ImportOutcome::Rejected(Rejection::IdentifierTwice));
        assert_eq!(rows.lock().await.accounts.len(), 4);
    }

    #[tokio::test]
    async fn an_update_takes_away_what_the_old_address_and_password_opened() {
        let (importer, rows) = importer().await;
        rows.lock().await.sessions.extend([(ONE, "forced".into(), true), (ONE, "tab".into(), false)]);
        let moved = row("a1", "a1.new@example.org", Some(&["bureau"]));
        assert_eq!(importer.import(std::slice::from_ref(&moved), EVERYTHING).await.unwrap(), [ImportOutcome::Updated]);
        assert_eq!(rows.lock().await.sessions.len(), 1, "the session a temporary password opened ended");
        assert_eq!(
            importer.import(std::slice::from_ref(&moved), EVERYTHING).await.unwrap(),
            [ImportOutcome::Unchanged]
        );
        let hash = PasswordHash::from_phc("$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0".into());
        let with_password = ImportRow { password_hash: Some(hash.clone()), groups: Some(vec![]), ..moved };
        let outcomes = importer.import(std::slice::from_ref(&with_password), EVERYTHING).await.unwrap();
        assert_eq!(outcomes, [ImportOutcome::Updated]);
        let rows = rows.lock().await;
        assert!(rows.sessions.is_empty(), "a new password ends every session");
        assert_eq!(rows.accounts[&ONE].account.password_hash, Some(hash));
        assert!(rows.members.is_empty(), "no group left");
        let detail = rows.events.last().and_then(|(_, e)| e.detail.clone());
        assert_eq!(
            detail,
            Some(AuditDetail::Import(ImportChanges { password: true, groups: true, ..ImportChanges::default() }))
        );
    }

    #[tokio::test]
    async fn a_row_that_names_an_account_again_sees_what_the_earlier_row_made_of_it() {
        let (importer, rows) = importer().await;
        let there_and_back = [row("a1", "a1.new@example.org", None), row("a1", "a1@example.org", None)];
        let outcomes = importer.import(&there_and_back, EVERYTHING).await.unwrap();
        assert_eq!(outcomes, [ImportOutcome::Updated, ImportOutcome::Updated]);
        assert_eq!(rows.lock().await.accounts[&ONE].account.email.as_str(), "a1@example.org");
        let onward =
            [row("a1", "b@example.org", None), row("a1", "c@example.org", None), row("sam", "b@example.org", None)];
        let outcomes = importer.import(&onward, EVERYTHING).await.unwrap();
        assert_eq!(
            outcomes,
            [ImportOutcome::Updated, ImportOutcome::Updated, ImportOutcome::Created],
            "b is free again"
        );
        let rows = rows.lock().await;
        let (_, last_change) = rows.events.iter().rev().find(|(_, e)| e.kind == AuditKind::DetailsChanged).unwrap();
        let moved = |from: &str, to: &str| {
            Some(AuditDetail::Import(ImportChanges {
                email: Some((EmailAddress::from_stored(from.into()), EmailAddress::from_stored(to.into()))),
                ..ImportChanges::default()
            }))
        };
        assert_eq!(last_change.detail, moved("b@example.org", "c@example.org"));
    }

    #[tokio::test]
    async fn an_address_that_is_also_the_accounts_secours_stays_taken() {
        let (importer, rows) = importer().await;
        let own = EmailAddress::from_stored("a1@example.org".into());
        rows.lock().await.accounts.get_mut(&ONE).unwrap().account.recovery_email = Some(own);
        let batch = [row("a1", "a1.new@example.org", None), row("sam", "a1@example.org", None)];
        let outcomes = importer.import(&batch, EVERYTHING).await.unwrap();
        assert_eq!(outcomes, [ImportOutcome::Updated, ImportOutcome::Rejected(Rejection::EmailTaken)]);
    }

    const ONE: AccountId = AccountId::from_stored(1);
}
