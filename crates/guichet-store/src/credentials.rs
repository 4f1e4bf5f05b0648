//! Passwords and locks: every login's outcome and every change of password.
//!
//! Every write that must not race with a login on the same account begins with an
//! `UPDATE` of the account's row: PostgreSQL then holds that row's lock until commit,
//! and SQLite takes its single write lock, so the count-then-lock steps of two
//! concurrent failures cannot interleave — across instances too.

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::{AccountId, EmailAddress};
use guichet_core::audit::{Actor, AuditKind, NewAuditEvent, RequestContext};
use guichet_core::lockout::{LockoutPolicy, ThrottleKey};
use guichet_core::mail::MailKind;
use guichet_core::password::PasswordHash;
use guichet_core::ports::{AuditStore as _, CredentialStore, FailureOutcome, Proof, Reach, StoreError};
use guichet_core::token::TokenHash;
use sqlx::{AssertSqlSafe, Row as _};

use crate::accounts::members_only;
use crate::audit::insert_event;
use crate::outbox::insert_mail_to_account;
use crate::sessions::end_sessions;
use crate::work::SqlWork;
use crate::{SqlStore, backend, millis};

/// Takes the account's row lock for the rest of the transaction and returns its lock
/// state: `None` when the account does not exist (or is out of `reach`).
async fn lock_account_row(
    tx: &mut SqlWork,
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

/// Lifts the lock and forgets failures up to audit event `watermark`.
async fn clear_failures(tx: &mut SqlWork, account: AccountId, watermark: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE accounts SET locked_until = NULL, failures_cleared_after = $2 WHERE id = $1")
        .bind(account.get())
        .bind(watermark)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(backend)
}

/// Sets a password the member chose, inside a transaction: clears any temporary
/// password, the lock and the failure count, and `keep`'s forced change; voids the device
/// cookie marks issued so far; ends every session but `keep`; records `event`
/// (`password_changed`) and queues the notice.
pub(crate) async fn set_chosen_password(
    tx: &mut SqlWork,
    account: AccountId,
    hash: &PasswordHash,
    keep: Option<&TokenHash>,
    context: &RequestContext,
    how: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut event = member_event(account, AuditKind::PasswordChanged, context, now);
    event.detail = Some(how.to_owned());
    let event_id = insert_event(tx, &event).await?;
    sqlx::query(
        "UPDATE accounts SET password_hash = $2, password_expires_at = NULL, temporary_password_hash = NULL, \
         locked_until = NULL, failures_cleared_after = $3, updated_at = $4, devices_trusted_after = $4 WHERE id = $1",
    )
    .bind(account.get())
    .bind(hash.as_phc())
    .bind(event_id)
    .bind(millis(event.at))
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    end_sessions(tx, account, keep).await?;
    if let Some(keep) = keep {
        sqlx::query("UPDATE sessions SET must_change_password = 0 WHERE token_hash = $1 AND must_change_password <> 0")
            .bind(keep.as_str())
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    insert_mail_to_account(tx, MailKind::PasswordChanged, account, event.at).await?;
    Ok(())
}

#[async_trait]
impl CredentialStore for SqlStore {
    async fn record_login_failure(
        &self,
        account: AccountId,
        policy: &LockoutPolicy,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<FailureOutcome, StoreError> {
        let mut tx = self.begin_work().await?;
        let Some((locked_until, cleared_after)) = lock_account_row(&mut tx, account, Reach::Anyone).await? else {
            return Ok(FailureOutcome::AlreadyLocked);
        };
        if locked_until.is_some_and(|until| until > millis(now)) {
            insert_event(&mut tx, &member_event(account, AuditKind::LoginRefusedLocked, context, now)).await?;
            tx.commit().await?;
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
        tx.commit().await?;
        Ok(outcome)
    }

    async fn record_login_success(
        &self,
        account: AccountId,
        verified: &Proof,
        rehash: Option<&PasswordHash>,
        despite_lock: bool,
        counted: &[(ThrottleKey, Timestamp)],
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_work().await?;
        // What was checked must still hold: the password's hash, or the temporary
        // password's, unexpired (it stays: only choosing a new password uses it up).
        let (proof, hash) = match verified {
            Proof::Password(hash) => ("password_hash = $3", hash.as_phc()),
            Proof::Temporary(hash) => ("temporary_password_hash = $3 AND password_expires_at > $2", hash.as_str()),
        };
        let updated: Option<Option<i64>> = sqlx::query_scalar(AssertSqlSafe(format!(
            "UPDATE accounts SET last_login_at = $2, updated_at = $2, password_hash = COALESCE($5, password_hash) \
             WHERE id = $1 AND ($4 = 1 OR locked_until IS NULL OR locked_until <= $2) AND disabled_at IS NULL \
             AND {proof} RETURNING locked_until"
        )))
        .bind(account.get())
        .bind(millis(now))
        .bind(hash)
        .bind(i64::from(despite_lock))
        .bind(rehash.map(|h| h.as_phc().to_owned()))
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
        tx.commit().await?;
        Ok(true)
    }

    async fn record_device_login_failure(
        &self,
        account: AccountId,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.record_event(member_event(account, AuditKind::LoginFailedOnDevice, context, now)).await
    }

    async fn record_refused_login(
        &self,
        account: AccountId,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.record_event(member_event(account, AuditKind::LoginRefusedLocked, context, now)).await
    }

    async fn unlock_account(&self, account: AccountId, event: NewAuditEvent, reach: Reach) -> Result<bool, StoreError> {
        let mut tx = self.begin_work().await?;
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
        tx.commit().await?;
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

    async fn set_temporary_password(
        &self,
        account: AccountId,
        hash: &TokenHash,
        expires_at: Timestamp,
        sent_to: Option<&EmailAddress>,
        event: Option<NewAuditEvent>,
        reach: Reach,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_work().await?;
        let sent_to = sent_to.map_or("", EmailAddress::as_str);
        // With `sent_to`: only while it is still one of the account's addresses (the
        // address may have changed while the message was on its way).
        let set = sqlx::query(
            "UPDATE accounts SET temporary_password_hash = $2, password_expires_at = $3 \
             WHERE id = $1 AND ($4 = 0 OR role = 'member') \
             AND ($5 = '' OR email = $5 OR recovery_email = $5)",
        )
        .bind(account.get())
        .bind(hash.as_str())
        .bind(millis(expires_at))
        .bind(members_only(reach))
        .bind(sent_to)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1;
        if !set {
            return Ok(false);
        }
        // A session opened with the one it replaces must not choose the password with it.
        crate::sessions::end_forced_sessions(&mut tx, account).await?;
        if let Some(event) = &event {
            insert_event(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn change_password(
        &self,
        account: AccountId,
        hash: &PasswordHash,
        keep: &TokenHash,
        forced: bool,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_work().await?;
        let how = if forced {
            // The temporary password this session was opened with must still be pending.
            let pending: Option<i64> = sqlx::query_scalar(
                "UPDATE accounts SET updated_at = updated_at WHERE id = $1 AND temporary_password_hash IS NOT NULL \
                 AND password_expires_at > $2 RETURNING id",
            )
            .bind(account.get())
            .bind(millis(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            if pending.is_none() {
                return Ok(false);
            }
            "après un mot de passe temporaire"
        } else {
            "dans Mon espace"
        };
        set_chosen_password(&mut tx, account, hash, Some(keep), context, how, now).await?;
        tx.commit().await?;
        Ok(true)
    }
}
