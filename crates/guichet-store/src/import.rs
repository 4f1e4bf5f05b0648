//! `member import`: a batch of rows in one transaction (one commit per batch, not per
//! row, is what makes a hundred thousand rows take seconds).

use guichet_core::Timestamp;
use guichet_core::account::AccountId;
use guichet_core::audit::{Actor, AuditKind, NewAuditEvent, RequestContext};
use guichet_core::groups::GroupName;
use guichet_core::import::{ImportOptions, ImportOutcome, ImportRow};
use guichet_core::mail::MailKind;
use guichet_core::ports::StoreError;
use sqlx::{Any, Row as _, Transaction};

use crate::audit::insert_event;
use crate::outbox::insert_mail_to_account;
use crate::{SqlStore, backend, millis};

impl SqlStore {
    /// See [`guichet_core::ports::AccountStore::import_accounts`].
    pub(crate) async fn import_batch(
        &self,
        rows: &[ImportRow],
        options: ImportOptions,
        now: Timestamp,
    ) -> Result<Vec<ImportOutcome>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // A write first: SQLite takes its write lock now rather than upgrading a read
        // transaction later (which another writer could make fail at once).
        sqlx::query("UPDATE gate_epoch SET value = value WHERE id = 1").execute(&mut *tx).await.map_err(backend)?;
        let mut outcomes = Vec::with_capacity(rows.len());
        for row in rows {
            outcomes.push(import_one(&mut tx, row, options, now).await?);
        }
        tx.commit().await.map_err(backend)?;
        Ok(outcomes)
    }
}

fn event(account: AccountId, kind: AuditKind, detail: String, at: Timestamp) -> NewAuditEvent {
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
    tx: &mut Transaction<'_, Any>,
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
async fn email_taken(tx: &mut Transaction<'_, Any>, email: &str, except: i64) -> Result<bool, StoreError> {
    let taken: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE (email = $1 OR recovery_email = $1) AND id <> $2")
            .bind(email)
            .bind(except)
            .fetch_one(&mut **tx)
            .await
            .map_err(backend)?;
    Ok(taken > 0)
}

async fn import_one(
    tx: &mut Transaction<'_, Any>,
    row: &ImportRow,
    options: ImportOptions,
    now: Timestamp,
) -> Result<ImportOutcome, StoreError> {
    let groups = match &row.groups {
        Some(groups) => match group_ids(tx, groups, options.create_groups, now).await? {
            Ok(ids) => Some(ids),
            Err(missing) => {
                return Ok(ImportOutcome::Rejected(format!(
                    "no group is named {missing:?} (--create-groups creates the missing ones)"
                )));
            }
        },
        None => None,
    };
    let existing = sqlx::query("SELECT id, email, display_name, password_hash FROM accounts WHERE identifier = $1")
        .bind(row.identifier.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
    let hash = row.password_hash.as_ref().map(|h| h.as_phc().to_owned());
    let Some(existing) = existing else {
        if email_taken(tx, row.email.as_str(), 0).await? {
            return Ok(ImportOutcome::Rejected("the email address is already another account's".into()));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO accounts (identifier, email, display_name, role, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
        )
        .bind(row.identifier.as_str())
        .bind(row.email.as_str())
        .bind(row.name.as_str())
        .bind(row.role.as_str())
        .bind(hash.clone())
        .bind(millis(now))
        .fetch_one(&mut **tx)
        .await
        .map_err(backend)?;
        let account = AccountId::from_stored(id);
        let how = if hash.is_some() { "importé, avec son mot de passe" } else { "importé" };
        insert_event(tx, &event(account, AuditKind::AccountCreated, format!("rôle {}, {how}", row.role), now)).await?;
        for group in groups.iter().flatten() {
            join(tx, *group, id).await?;
        }
        if options.invite && hash.is_none() {
            insert_mail_to_account(tx, MailKind::Invitation, account, now).await?;
        }
        return Ok(ImportOutcome::Created);
    };
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
    let mut changed = Vec::new();
    if email != row.email.as_str() {
        if email_taken(tx, row.email.as_str(), id).await? {
            return Ok(ImportOutcome::Rejected("the email address is already another account's".into()));
        }
        changed.push(format!("adresse {email} → {}", row.email));
    }
    if name != row.name.as_str() {
        changed.push("nom".to_owned());
    }
    if !changed.is_empty() {
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
        changed.push("mot de passe".to_owned());
    }
    if let Some(groups) = &groups {
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
            changed.push("groupes".to_owned());
        }
    }
    if changed.is_empty() {
        return Ok(ImportOutcome::Unchanged);
    }
    let detail = format!("import : {}", changed.join(", "));
    insert_event(tx, &event(account, AuditKind::DetailsChanged, detail, now)).await?;
    Ok(ImportOutcome::Updated)
}

async fn join(tx: &mut Transaction<'_, Any>, group: i64, account: i64) -> Result<(), StoreError> {
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
