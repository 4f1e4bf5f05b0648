//! Accounts and the lockout counter.
//!
//! Every write that must not race with a login on the same account begins with an
//! `UPDATE` of the account's row: PostgreSQL then holds that row's lock until commit,
//! and SQLite takes its single write lock, so the count-then-lock steps of two
//! concurrent failures cannot interleave — across instances too.

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::{Account, AccountId, DisplayName, EmailAddress, Identifier, NewAccount, Role};
use guichet_core::audit::{Actor, AuditKind, NewAuditEvent, RequestContext};
use guichet_core::lockout::{LockoutPolicy, ThrottleKey};
use guichet_core::mail::MailKind;
use guichet_core::password::PasswordHash;
use guichet_core::ports::{AccountFilter, AccountStore, Conflict, FailureOutcome, Reach, StoreError};
use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};

use crate::audit::insert_event;
use crate::outbox::insert_mail_to_account;
use crate::{SqlStore, backend, millis, optional_timestamp, timestamp};

const ACCOUNT_COLUMNS: &str = "id, identifier, email, display_name, role, password_hash, must_change_password, \
     locked_until, created_at, updated_at, last_login_at, disabled_at, password_expires_at, devices_trusted_after";

pub(crate) fn account_from_row(row: &AnyRow) -> Result<Account, StoreError> {
    let get_i64 = |column: &str| row.try_get::<i64, _>(column).map_err(backend);
    let get_text = |column: &str| row.try_get::<String, _>(column).map_err(backend);
    Ok(Account {
        id: AccountId::from_stored(get_i64("id")?),
        identifier: Identifier::from_stored(get_text("identifier")?),
        email: EmailAddress::from_stored(get_text("email")?),
        display_name: DisplayName::from_stored(get_text("display_name")?),
        role: Role::parse(&get_text("role")?).map_err(|e| StoreError::Backend(Box::new(e)))?,
        password_hash: row.try_get::<Option<String>, _>("password_hash").map_err(backend)?.map(PasswordHash::from_phc),
        must_change_password: get_i64("must_change_password")? != 0,
        locked_until: optional_timestamp(row.try_get("locked_until").map_err(backend)?)?,
        created_at: timestamp(get_i64("created_at")?)?,
        updated_at: timestamp(get_i64("updated_at")?)?,
        last_login_at: optional_timestamp(row.try_get("last_login_at").map_err(backend)?)?,
        disabled_at: optional_timestamp(row.try_get("disabled_at").map_err(backend)?)?,
        password_expires_at: optional_timestamp(row.try_get("password_expires_at").map_err(backend)?)?,
        devices_trusted_after: timestamp(get_i64("devices_trusted_after")?)?,
    })
}

/// `1` when a write may land on members only: bound into `($n = 0 OR role = 'member')`.
pub(crate) fn members_only(reach: Reach) -> i64 {
    i64::from(reach == Reach::MembersOnly)
}

/// Takes the row lock of an account still within `reach`, and returns its address:
/// `Err(Changed)` when it is gone or out of reach.
pub(crate) async fn lock_target(
    tx: &mut Transaction<'_, Any>,
    account: AccountId,
    reach: Reach,
) -> Result<String, StoreError> {
    sqlx::query_scalar(
        "UPDATE accounts SET updated_at = updated_at WHERE id = $1 AND ($2 = 0 OR role = 'member') RETURNING email",
    )
    .bind(account.get())
    .bind(members_only(reach))
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?
    .ok_or(StoreError::Changed)
}

/// Maps a unique violation to the value that clashed.
pub(crate) fn conflict_or_backend(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &error
        && db.is_unique_violation()
    {
        let said = format!("{} {}", db.message(), db.constraint().unwrap_or_default());
        return StoreError::Conflict(if said.contains("email") { Conflict::Email } else { Conflict::Identifier });
    }
    backend(error)
}

/// Takes the account's row lock for the rest of the transaction and returns its lock
/// state: `None` when the account does not exist (or is out of `reach`).
async fn lock_account_row(
    tx: &mut Transaction<'_, Any>,
    account: AccountId,
    reach: Reach,
) -> Result<Option<(Option<i64>, i64)>, StoreError> {
    let row = sqlx::query(
        "UPDATE accounts SET updated_at = updated_at WHERE id = $1 AND ($2 = 0 OR role = 'member') \
         RETURNING locked_until, failures_cleared_after",
    )
    .bind(account.get())
    .bind(members_only(reach))
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    row.map(|row| {
        Ok((
            row.try_get::<Option<i64>, _>("locked_until").map_err(backend)?,
            row.try_get::<i64, _>("failures_cleared_after").map_err(backend)?,
        ))
    })
    .transpose()
}

fn member_event(account: AccountId, kind: AuditKind, context: &RequestContext, at: Timestamp) -> NewAuditEvent {
    NewAuditEvent { at, account_id: Some(account), kind, actor: Actor::Member, context: context.clone(), detail: None }
}

pub(crate) fn select_where(clause: &str) -> String {
    format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {clause}")
}

fn optional_account(row: Option<AnyRow>) -> Result<Option<Account>, StoreError> {
    row.as_ref().map(account_from_row).transpose()
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn create_account(
        &self,
        new: &NewAccount,
        mut event: NewAuditEvent,
        then_mail: Option<MailKind>,
    ) -> Result<Account, StoreError> {
        let now = millis(event.at);
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let row = sqlx::query(&format!(
            "INSERT INTO accounts (identifier, email, display_name, role, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {ACCOUNT_COLUMNS}"
        ))
        .bind(new.identifier.as_str())
        .bind(new.email.as_str())
        .bind(new.display_name.as_str())
        .bind(new.role.as_str())
        .bind(new.password_hash.as_ref().map(|h| h.as_phc().to_owned()))
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_or_backend)?;
        let account = account_from_row(&row)?;
        event.account_id = Some(account.id);
        insert_event(&mut tx, &event).await?;
        if let Some(kind) = then_mail {
            insert_mail_to_account(&mut tx, kind, account.id, event.at).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(account)
    }

    async fn find_account_by_identifier(&self, identifier: &Identifier) -> Result<Option<Account>, StoreError> {
        let sql = select_where("identifier = $1");
        let row = sqlx::query(&sql).bind(identifier.as_str()).fetch_optional(&self.pool).await.map_err(backend)?;
        optional_account(row)
    }

    async fn find_account_by_email(&self, email: &EmailAddress) -> Result<Option<Account>, StoreError> {
        let sql = select_where("email = $1");
        let row = sqlx::query(&sql).bind(email.as_str()).fetch_optional(&self.pool).await.map_err(backend)?;
        optional_account(row)
    }

    async fn find_account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        let sql = select_where("id = $1");
        let row = sqlx::query(&sql).bind(id.get()).fetch_optional(&self.pool).await.map_err(backend)?;
        optional_account(row)
    }

    async fn list_accounts(&self, filter: AccountFilter) -> Result<Vec<Account>, StoreError> {
        let sql = select_where("($1 < 0 OR locked_until > $1) ORDER BY identifier");
        let rows =
            sqlx::query(&sql).bind(filter.locked_at.map_or(-1, millis)).fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(account_from_row).collect()
    }

    async fn count_accounts(&self) -> Result<u64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM accounts").fetch_one(&self.pool).await.map_err(backend)?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn record_login_failure(
        &self,
        account: AccountId,
        policy: &LockoutPolicy,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<FailureOutcome, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let Some((locked_until, cleared_after)) = lock_account_row(&mut tx, account, Reach::Anyone).await? else {
            return Ok(FailureOutcome::AlreadyLocked);
        };
        if locked_until.is_some_and(|until| until > millis(now)) {
            insert_event(&mut tx, &member_event(account, AuditKind::LoginRefusedLocked, context, now)).await?;
            tx.commit().await.map_err(backend)?;
            return Ok(FailureOutcome::AlreadyLocked);
        }
        insert_event(&mut tx, &member_event(account, AuditKind::LoginFailed, context, now)).await?;
        let since = now.saturating_sub(policy.window).unwrap_or(now);
        let failures: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_events WHERE account_id = $1 AND kind = $2 AND id > $3 AND at >= $4",
        )
        .bind(account.get())
        .bind(AuditKind::LoginFailed.as_str())
        .bind(cleared_after)
        .bind(millis(since))
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let failures = u32::try_from(failures).unwrap_or(u32::MAX);
        let outcome = if failures >= policy.threshold {
            let until = now.saturating_add(policy.duration).unwrap_or(now);
            let mut locked = member_event(account, AuditKind::AccountLocked, context, now);
            locked.actor = Actor::System;
            locked.detail = Some(format!("{failures} échecs"));
            let lock_event = insert_event(&mut tx, &locked).await?;
            // The failures that caused the lock are spent: once it ends, counting starts
            // afresh, so one more typo does not lock the account again at once.
            sqlx::query("UPDATE accounts SET locked_until = $2, failures_cleared_after = $3 WHERE id = $1")
                .bind(account.get())
                .bind(millis(until))
                .bind(lock_event)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            insert_mail_to_account(&mut tx, MailKind::AccountLocked, account, now).await?;
            FailureOutcome::Locked { until }
        } else {
            FailureOutcome::Counted { failures }
        };
        tx.commit().await.map_err(backend)?;
        Ok(outcome)
    }

    async fn record_login_success(
        &self,
        account: AccountId,
        verified: &PasswordHash,
        despite_lock: bool,
        counted: &[(ThrottleKey, Timestamp)],
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let updated: Option<Option<i64>> = sqlx::query_scalar(
            // A temporary password works once: the login that uses it consumes it (the
            // session it opens can only choose a new one).
            "UPDATE accounts SET last_login_at = $2, updated_at = $2, \
             password_hash = CASE WHEN password_expires_at IS NULL THEN password_hash ELSE NULL END, \
             password_expires_at = NULL \
             WHERE id = $1 AND ($4 = 1 OR locked_until IS NULL OR locked_until <= $2) AND disabled_at IS NULL \
             AND (password_expires_at IS NULL OR password_expires_at > $2) AND password_hash = $3 \
             RETURNING locked_until",
        )
        .bind(account.get())
        .bind(millis(now))
        .bind(verified.as_phc())
        .bind(i64::from(despite_lock))
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(locked_until) = updated else { return Ok(false) };
        for (key, at) in counted {
            crate::throttle::uncount_in(&mut tx, key, *at).await?;
        }
        let event_id = insert_event(&mut tx, &member_event(account, AuditKind::LoginSucceeded, context, now)).await?;
        // A lock still running (a login from the member's usual browser) stays, with the
        // failures behind it: the stranger who caused it is still locked out.
        if locked_until.is_none_or(|until| until <= millis(now)) {
            clear_failures(&mut tx, account, event_id).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn record_device_login_failure(
        &self,
        account: AccountId,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        insert_event(&mut tx, &member_event(account, AuditKind::LoginFailedOnDevice, context, now)).await?;
        tx.commit().await.map_err(backend)
    }

    async fn record_refused_login(
        &self,
        account: AccountId,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        insert_event(&mut tx, &member_event(account, AuditKind::LoginRefusedLocked, context, now)).await?;
        tx.commit().await.map_err(backend)
    }

    async fn unlock_account(&self, account: AccountId, event: NewAuditEvent, reach: Reach) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let Some((locked_until, _)) = lock_account_row(&mut tx, account, reach).await? else {
            return Err(StoreError::Changed);
        };
        let was_locked = locked_until.is_some_and(|until| until > millis(event.at));
        let watermark: i64 = if was_locked {
            insert_event(&mut tx, &event).await?
        } else {
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM audit_events WHERE account_id = $1")
                .bind(account.get())
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?
        };
        clear_failures(&mut tx, account, watermark).await?;
        tx.commit().await.map_err(backend)?;
        Ok(was_locked)
    }

    async fn replace_password_hash(
        &self,
        account: AccountId,
        old: &PasswordHash,
        new: &PasswordHash,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE accounts SET password_hash = $2, updated_at = $3 WHERE id = $1 AND password_hash = $4")
            .bind(account.get())
            .bind(new.as_phc())
            .bind(millis(now))
            .bind(old.as_phc())
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend)
    }
}

/// Lifts the lock and forgets failures up to audit event `watermark`.
async fn clear_failures(tx: &mut Transaction<'_, Any>, account: AccountId, watermark: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE accounts SET locked_until = NULL, failures_cleared_after = $2 WHERE id = $1")
        .bind(account.get())
        .bind(watermark)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(backend)
}
