//! `member import`: a batch of rows in one transaction (one commit per batch, not per
//! row, is what makes a hundred thousand rows take seconds).

use guichet_core::Timestamp;
use guichet_core::account::{AccountId, EmailAddress};
use guichet_core::audit::{Actor, AuditDetail, AuditKind, ImportChanges, NewAuditEvent, Origin, RequestContext};
use guichet_core::groups::GroupName;
use guichet_core::import::{ImportOptions, ImportOutcome, ImportRow};
use guichet_core::mail::MailKind;
use guichet_core::ports::StoreError;
use sqlx::{AssertSqlSafe, Row as _};

use crate::audit::insert_event;
use crate::outbox::insert_mail_to_account;
use crate::work::SqlWork;
use crate::{SqlStore, backend, millis};

impl SqlStore {
    /// See [`guichet_core::ports::AccountStore::import_accounts`]. What the batch needs to
    /// know is read in a few queries (its groups, the identifiers and addresses it names
    /// that exist); new accounts are then one `INSERT` each, and their audit lines and
    /// memberships one multi-row `INSERT` for the whole batch.
    pub(crate) async fn import_batch(
        &self,
        rows: &[ImportRow],
        options: ImportOptions,
        now: Timestamp,
    ) -> Result<Vec<ImportOutcome>, StoreError> {
        let mut tx = self.begin_work().await?;
        // A write first: SQLite takes its write lock now rather than upgrading a read
        // transaction later (which another writer could make fail at once).
        sqlx::query("UPDATE gate_epoch SET value = value WHERE id = 1").execute(&mut *tx).await.map_err(backend)?;
        let mut groups = GroupIds::default();
        let existing = existing_accounts(&mut tx, rows).await?;
        let taken = taken_addresses(&mut tx, rows).await?;
        let mut outcomes = Vec::with_capacity(rows.len());
        let mut to_create: Vec<(&ImportRow, Vec<i64>)> = Vec::new();
        // Identifiers and addresses already given in this batch (by the new accounts).
        let mut seen = std::collections::HashSet::new();
        for row in rows {
            let ids = match &row.groups {
                Some(names) => match groups.ids(&mut tx, names, options.create_groups, now).await? {
                    Ok(ids) => Some(ids),
                    Err(missing) => {
                        outcomes.push(ImportOutcome::Rejected(format!(
                            "no group is named {missing:?} (--create-groups creates the missing ones)"
                        )));
                        continue;
                    }
                },
                None => None,
            };
            if existing.contains_key(row.identifier.as_str()) {
                outcomes.push(update_one(&mut tx, row, ids.as_deref(), options, now).await?);
                continue;
            }
            if taken.contains(row.email.as_str()) || !seen.insert(row.email.as_str()) {
                outcomes.push(ImportOutcome::Rejected("the email address is already another account's".into()));
                continue;
            }
            if !seen.insert(row.identifier.as_str()) {
                outcomes.push(ImportOutcome::Rejected("the identifier appears twice in the batch".into()));
                continue;
            }
            to_create.push((row, ids.unwrap_or_default()));
            outcomes.push(ImportOutcome::Created);
        }
        let created = insert_accounts(&mut tx, &to_create, now).await?;
        for (id, row, _) in &created {
            if options.invite && row.password_hash.is_none() {
                insert_mail_to_account(&mut tx, MailKind::Invitation, AccountId::from_stored(*id), now).await?;
            }
        }
        record_created(&mut tx, &created, now).await?;
        tx.commit().await?;
        Ok(outcomes)
    }
}

/// Creates the accounts, a hundred per statement; returns each one's id with its row and
/// groups.
async fn insert_accounts<'r>(
    tx: &mut SqlWork,
    rows: &[(&'r ImportRow, Vec<i64>)],
    now: Timestamp,
) -> Result<Vec<(i64, &'r ImportRow, Vec<i64>)>, StoreError> {
    let mut created = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(100) {
        let values: Vec<String> =
            (0..chunk.len()).map(|i| format!("({}, $1, $1)", placeholders(2 + 5 * i, 5))).collect();
        let sql = format!(
            "INSERT INTO accounts (identifier, email, display_name, role, password_hash, created_at, updated_at) \
             VALUES {} RETURNING id, identifier",
            values.join(", ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(millis(now));
        for (row, _) in chunk {
            query = query
                .bind(row.identifier.as_str())
                .bind(row.email.as_str())
                .bind(row.name.as_str())
                .bind(row.role.as_str())
                .bind(row.password_hash.as_ref().map(|h| h.as_phc().to_owned()));
        }
        let ids: std::collections::HashMap<String, i64> = query
            .fetch_all(&mut **tx)
            .await
            .map_err(backend)?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>("identifier").map_err(backend)?,
                    r.try_get::<i64, _>("id").map_err(backend)?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        for (row, groups) in chunk {
            let id = ids
                .get(row.identifier.as_str())
                .copied()
                .ok_or_else(|| backend_message("an imported account has no id"))?;
            created.push((id, *row, groups.clone()));
        }
    }
    Ok(created)
}

fn backend_message(message: &str) -> StoreError {
    StoreError::Backend(message.to_owned().into())
}

/// `$first, $first+1, …` for `count` values.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
}

/// The batch's identifiers that exist, with their ids.
async fn existing_accounts(
    tx: &mut SqlWork,
    rows: &[ImportRow],
) -> Result<std::collections::HashMap<String, i64>, StoreError> {
    if rows.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let sql = format!("SELECT id, identifier FROM accounts WHERE identifier IN ({})", placeholders(1, rows.len()));
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for row in rows {
        query = query.bind(row.identifier.as_str());
    }
    let found = query.fetch_all(&mut **tx).await.map_err(backend)?;
    found
        .iter()
        .map(|r| {
            Ok((r.try_get::<String, _>("identifier").map_err(backend)?, r.try_get::<i64, _>("id").map_err(backend)?))
        })
        .collect()
}

/// The batch's addresses that are already some account's, own or secours.
async fn taken_addresses(
    tx: &mut SqlWork,
    rows: &[ImportRow],
) -> Result<std::collections::HashSet<String>, StoreError> {
    if rows.is_empty() {
        return Ok(std::collections::HashSet::new());
    }
    let list = placeholders(1, rows.len());
    let sql =
        format!("SELECT email, recovery_email FROM accounts WHERE email IN ({list}) OR recovery_email IN ({list})");
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for row in rows {
        query = query.bind(row.email.as_str());
    }
    let found = query.fetch_all(&mut **tx).await.map_err(backend)?;
    let mut taken = std::collections::HashSet::new();
    for row in &found {
        taken.insert(row.try_get::<String, _>("email").map_err(backend)?);
        if let Some(secours) = row.try_get::<Option<String>, _>("recovery_email").map_err(backend)? {
            taken.insert(secours);
        }
    }
    Ok(taken)
}

/// The audit lines and memberships of the accounts a batch created, a few rows per
/// statement.
async fn record_created(
    tx: &mut SqlWork,
    created: &[(i64, &ImportRow, Vec<i64>)],
    now: Timestamp,
) -> Result<(), StoreError> {
    for chunk in created.chunks(200) {
        let values: Vec<String> =
            (0..chunk.len()).map(|i| format!("($1, ${}, $2, 'operator', ${})", 3 + 2 * i, 4 + 2 * i)).collect();
        let sql =
            format!("INSERT INTO audit_events (at, account_id, kind, actor_kind, detail) VALUES {}", values.join(", "));
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(millis(now)).bind(AuditKind::AccountCreated.as_str());
        for (id, row, _) in chunk {
            let origin = if row.password_hash.is_some() { Origin::ImportedWithPassword } else { Origin::Imported };
            query = query.bind(*id).bind(AuditDetail::Created(row.role, origin).to_stored());
        }
        query.execute(&mut **tx).await.map_err(backend)?;
    }
    let memberships: Vec<(i64, i64)> =
        created.iter().flat_map(|(id, _, groups)| groups.iter().map(move |g| (*g, *id))).collect();
    for chunk in memberships.chunks(400) {
        let values: Vec<String> = (0..chunk.len()).map(|i| format!("(${}, ${})", 1 + 2 * i, 2 + 2 * i)).collect();
        let sql = format!(
            "INSERT INTO group_members (group_id, account_id) VALUES {} ON CONFLICT (group_id, account_id) DO NOTHING",
            values.join(", ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (group, account) in chunk {
            query = query.bind(*group).bind(*account);
        }
        query.execute(&mut **tx).await.map_err(backend)?;
    }
    Ok(())
}

/// Group ids by name, read (or made) once per batch.
#[derive(Default)]
struct GroupIds(std::collections::HashMap<String, i64>);

impl GroupIds {
    async fn ids(
        &mut self,
        tx: &mut SqlWork,
        names: &[GroupName],
        create: bool,
        now: Timestamp,
    ) -> Result<Result<Vec<i64>, String>, StoreError> {
        let mut ids = Vec::with_capacity(names.len());
        for name in names {
            if let Some(id) = self.0.get(name.as_str()) {
                ids.push(*id);
                continue;
            }
            match group_ids(tx, std::slice::from_ref(name), create, now).await? {
                Ok(found) => {
                    let id = found.first().copied().unwrap_or_default();
                    self.0.insert(name.as_str().to_owned(), id);
                    ids.push(id);
                }
                Err(missing) => return Ok(Err(missing)),
            }
        }
        Ok(Ok(ids))
    }
}

fn event(account: AccountId, kind: AuditKind, detail: AuditDetail, at: Timestamp) -> NewAuditEvent {
    NewAuditEvent {
        at,
        account_id: Some(account),
        kind,
        actor: Actor::Operator,
        context: RequestContext::default(),
        detail: Some(detail),
    }
}

/// The ids of the row's groups, creating the missing ones when allowed; `Err(name)` for
/// the first one missing otherwise.
async fn group_ids(
    tx: &mut SqlWork,
    groups: &[GroupName],
    create: bool,
    now: Timestamp,
) -> Result<Result<Vec<i64>, String>, StoreError> {
    let mut ids = Vec::with_capacity(groups.len());
    for group in groups {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
            .bind(group.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(backend)?;
        let id = match found {
            Some(id) => id,
            None if create => sqlx::query_scalar(
                "INSERT INTO groups (name, description, created_at) VALUES ($1, '', $2) RETURNING id",
            )
            .bind(group.as_str())
            .bind(millis(now))
            .fetch_one(&mut **tx)
            .await
            .map_err(backend)?,
            None => return Ok(Err(group.to_string())),
        };
        ids.push(id);
    }
    Ok(Ok(ids))
}

/// Whether `email` is an address of an account other than `except`, own or secours.
async fn email_taken(tx: &mut SqlWork, email: &str, except: i64) -> Result<bool, StoreError> {
    let taken: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE (email = $1 OR recovery_email = $1) AND id <> $2")
            .bind(email)
            .bind(except)
            .fetch_one(&mut **tx)
            .await
            .map_err(backend)?;
    Ok(taken > 0)
}

/// An identifier that exists: rejected, or with `--update` given the row's details.
async fn update_one(
    tx: &mut SqlWork,
    row: &ImportRow,
    groups: Option<&[i64]>,
    options: ImportOptions,
    now: Timestamp,
) -> Result<ImportOutcome, StoreError> {
    let existing = sqlx::query("SELECT id, email, display_name, password_hash FROM accounts WHERE identifier = $1")
        .bind(row.identifier.as_str())
        .fetch_one(&mut **tx)
        .await
        .map_err(backend)?;
    let hash = row.password_hash.as_ref().map(|h| h.as_phc().to_owned());
    if !options.update {
        return Ok(ImportOutcome::Rejected(
            "the identifier is already taken (--update updates existing accounts)".into(),
        ));
    }
    let id: i64 = existing.try_get("id").map_err(backend)?;
    let account = AccountId::from_stored(id);
    let email: String = existing.try_get("email").map_err(backend)?;
    let name: String = existing.try_get("display_name").map_err(backend)?;
    let stored_hash: Option<String> = existing.try_get("password_hash").map_err(backend)?;
    let mut changed = ImportChanges::default();
    if email != row.email.as_str() {
        if email_taken(tx, row.email.as_str(), id).await? {
            return Ok(ImportOutcome::Rejected("the email address is already another account's".into()));
        }
        changed.email = Some((EmailAddress::from_stored(email.clone()), row.email.clone()));
    }
    if name != row.name.as_str() {
        changed.name = true;
    }
    if changed.email.is_some() || changed.name {
        sqlx::query("UPDATE accounts SET email = $2, display_name = $3, updated_at = $4 WHERE id = $1")
            .bind(id)
            .bind(row.email.as_str())
            .bind(row.name.as_str())
            .bind(millis(now))
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
        if email != row.email.as_str() {
            // What was mailed to the old address stops working, as with any address change.
            crate::recovery::use_up_codes(tx, account, now).await?;
            crate::sessions::end_forced_sessions(tx, account).await?;
            sqlx::query(
                "UPDATE accounts SET temporary_password_hash = NULL, password_expires_at = NULL, \
                 devices_trusted_after = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(millis(now))
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
        }
    }
    if options.update_passwords
        && let Some(hash) = &hash
        && stored_hash.as_deref() != Some(hash.as_str())
    {
        sqlx::query(
            "UPDATE accounts SET password_hash = $2, temporary_password_hash = NULL, password_expires_at = NULL, \
             devices_trusted_after = $3, updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(hash.as_str())
        .bind(millis(now))
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
        crate::sessions::end_sessions(tx, account, None).await?;
        changed.password = true;
    }
    if let Some(groups) = groups {
        let current: Vec<i64> = sqlx::query_scalar("SELECT group_id FROM group_members WHERE account_id = $1")
            .bind(id)
            .fetch_all(&mut **tx)
            .await
            .map_err(backend)?;
        let mut moved = false;
        for group in groups.iter().filter(|g| !current.contains(g)) {
            join(tx, *group, id).await?;
            moved = true;
        }
        for group in current.iter().filter(|g| !groups.contains(g)) {
            sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND account_id = $2")
                .bind(*group)
                .bind(id)
                .execute(&mut **tx)
                .await
                .map_err(backend)?;
            moved = true;
        }
        if moved {
            changed.groups = true;
        }
    }
    if !changed.any() {
        return Ok(ImportOutcome::Unchanged);
    }
    insert_event(tx, &event(account, AuditKind::DetailsChanged, AuditDetail::Import(changed), now)).await?;
    Ok(ImportOutcome::Updated)
}

async fn join(tx: &mut SqlWork, group: i64, account: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO group_members (group_id, account_id) VALUES ($1, $2) ON CONFLICT (group_id, account_id) DO NOTHING",
    )
    .bind(group)
    .bind(account)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(backend)
}
