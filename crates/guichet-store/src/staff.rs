//! What staff change on accounts, and what members change on their own.

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::{Account, AccountId, DisplayName, EmailAddress, Role};
use guichet_core::audit::{Actor, AuditKind, NewAuditEvent, RequestContext};
use guichet_core::mail::{MailKind, NewMail};
use guichet_core::password::PasswordHash;
use guichet_core::ports::{Guarded, Reach, StaffStore, StoreError};
use guichet_core::token::TokenHash;
use sqlx::{Any, Row as _, Transaction};

use crate::accounts::{account_from_row, conflict_or_backend, lock_target, select_where};
use crate::audit::insert_event;
use crate::outbox::{insert_mail, insert_mail_to_account};
use crate::sessions::end_sessions;
use crate::{SqlStore, backend, millis};

const DAY_MS: i64 = 86_400_000;

/// Sets a password the member chose, inside a transaction: clears the must-change flag,
/// any temporary expiry, the lock and the failure count; voids the device cookie marks
/// issued so far; ends every session but `keep`; records `event` (`password_changed`)
/// and queues the notice.
pub(crate) async fn set_chosen_password(
    tx: &mut Transaction<'_, Any>,
    account: AccountId,
    hash: &PasswordHash,
    keep: Option<&TokenHash>,
    event: &NewAuditEvent,
) -> Result<(), StoreError> {
    let event_id = insert_event(tx, event).await?;
    sqlx::query(
        "UPDATE accounts SET password_hash = $2, password_expires_at = NULL, must_change_password = 0, \
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
    insert_mail_to_account(tx, MailKind::PasswordChanged, account, event.at).await?;
    Ok(())
}

/// Voids what was handed out to the account's current address or holder: unused codes
/// used up, a pending temporary password revoked (the account keeps no password until
/// its owner chooses one), device cookie marks no longer counted.
async fn revoke_handed_out(tx: &mut Transaction<'_, Any>, account: AccountId, now: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE recovery_codes SET used_at = $2 WHERE account_id = $1 AND used_at IS NULL")
        .bind(account.get())
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    sqlx::query(
        "UPDATE accounts SET devices_trusted_after = $2, \
         password_hash = CASE WHEN password_expires_at IS NULL THEN password_hash ELSE NULL END, \
         password_expires_at = NULL WHERE id = $1",
    )
    .bind(account.get())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(backend)
}

/// Whether taking `account` out of the active administrators would leave none. Takes
/// the row locks of every active administrator for the rest of the transaction (the
/// no-op `UPDATE`), so that two such changes cannot both see the other one still there.
async fn would_leave_no_administrator(tx: &mut Transaction<'_, Any>, account: AccountId) -> Result<bool, StoreError> {
    let admins: Vec<i64> = sqlx::query_scalar(
        "UPDATE accounts SET updated_at = updated_at WHERE role = 'admin' AND disabled_at IS NULL RETURNING id",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(admins.contains(&account.get()) && admins.len() <= 1)
}

#[async_trait]
impl StaffStore for SqlStore {
    async fn search_accounts(&self, query: &str, limit: u32) -> Result<Vec<Account>, StoreError> {
        // LIKE's wildcards in what was typed are matched literally ('!' escapes).
        let escaped = query.trim().to_lowercase().replace('!', "!!").replace('%', "!%").replace('_', "!_");
        let pattern = format!("%{escaped}%");
        let sql = select_where(
            "(identifier LIKE $1 ESCAPE '!' OR email LIKE $1 ESCAPE '!' OR LOWER(display_name) LIKE $1 ESCAPE '!') \
             ORDER BY identifier LIMIT $2",
        );
        let rows =
            sqlx::query(&sql).bind(pattern).bind(i64::from(limit)).fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(account_from_row).collect()
    }

    async fn set_disabled(
        &self,
        account: AccountId,
        disabled: bool,
        event: NewAuditEvent,
        reach: Reach,
    ) -> Result<Guarded, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        lock_target(&mut tx, account, reach).await?;
        if disabled && would_leave_no_administrator(&mut tx, account).await? {
            return Ok(Guarded::LastAdministrator);
        }
        sqlx::query("UPDATE accounts SET disabled_at = $2, updated_at = $3 WHERE id = $1")
            .bind(account.get())
            .bind(disabled.then(|| millis(event.at)))
            .bind(millis(event.at))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if disabled {
            end_sessions(&mut tx, account, None).await?;
        }
        insert_event(&mut tx, &event).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Guarded::Done)
    }

    async fn change_details(
        &self,
        account: AccountId,
        email: &EmailAddress,
        name: &DisplayName,
        event: NewAuditEvent,
        reach: Reach,
    ) -> Result<(), StoreError> {
        let now = millis(event.at);
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // Takes the row's lock first, so that the old address read here is the one replaced.
        let old = lock_target(&mut tx, account, reach).await?;
        sqlx::query("UPDATE accounts SET email = $2, display_name = $3, updated_at = $4 WHERE id = $1")
            .bind(account.get())
            .bind(email.as_str())
            .bind(name.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(conflict_or_backend)?;
        if old != email.as_str() {
            // What was mailed to the old address must not work any more.
            revoke_handed_out(&mut tx, account, now).await?;
            let notice = NewMail {
                kind: MailKind::EmailChanged,
                account_id: Some(account),
                recipient: EmailAddress::from_stored(old),
                subject: None,
            };
            insert_mail(&mut tx, &notice, event.at).await?;
        }
        insert_event(&mut tx, &event).await?;
        tx.commit().await.map_err(backend)
    }

    async fn set_role(&self, account: AccountId, role: Role, event: NewAuditEvent) -> Result<Guarded, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        if role != Role::Admin && would_leave_no_administrator(&mut tx, account).await? {
            return Ok(Guarded::LastAdministrator);
        }
        let was: String = sqlx::query_scalar("SELECT role FROM accounts WHERE id = $1")
            .bind(account.get())
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        if was == Role::Member.as_str() && role.is_staff() {
            // Nothing handed out to a member (by assistance staff, say) carries staff rights.
            revoke_handed_out(&mut tx, account, millis(event.at)).await?;
            end_sessions(&mut tx, account, None).await?;
        }
        sqlx::query("UPDATE accounts SET role = $2, updated_at = $3 WHERE id = $1")
            .bind(account.get())
            .bind(role.as_str())
            .bind(millis(event.at))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        insert_event(&mut tx, &event).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Guarded::Done)
    }

    async fn set_temporary_password(
        &self,
        account: AccountId,
        hash: &PasswordHash,
        expires_at: Timestamp,
        sent_to: &EmailAddress,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        if lock_target(&mut tx, account, Reach::Anyone).await? != sent_to.as_str() {
            // The address changed while the message was on its way: the password mailed to
            // the old one never becomes valid.
            return Ok(false);
        }
        let watermark: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM audit_events WHERE account_id = $1")
            .bind(account.get())
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "UPDATE accounts SET password_hash = $2, password_expires_at = $3, must_change_password = 1, \
             locked_until = NULL, failures_cleared_after = $4, updated_at = $5, devices_trusted_after = $5 WHERE id = $1",
        )
        .bind(account.get())
        .bind(hash.as_phc())
        .bind(millis(expires_at))
        .bind(watermark)
        .bind(millis(now))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        end_sessions(&mut tx, account, None).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn change_password(
        &self,
        account: AccountId,
        hash: &PasswordHash,
        keep: &TokenHash,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let event = NewAuditEvent {
            at: now,
            account_id: Some(account),
            kind: AuditKind::PasswordChanged,
            actor: Actor::Member,
            context: context.clone(),
            detail: Some("dans Mon espace".into()),
        };
        set_chosen_password(&mut tx, account, hash, Some(keep), &event).await?;
        tx.commit().await.map_err(backend)
    }

    async fn queue_staff_mail(&self, mail: &NewMail, event: NewAuditEvent, reach: Reach) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        if let Some(account) = mail.account_id {
            lock_target(&mut tx, account, reach).await?;
        }
        insert_mail(&mut tx, mail, event.at).await?;
        insert_event(&mut tx, &event).await?;
        tx.commit().await.map_err(backend)
    }

    async fn daily_counts(
        &self,
        kinds: &[AuditKind],
        since: Timestamp,
    ) -> Result<Vec<(i64, AuditKind, u64)>, StoreError> {
        let mut counts = Vec::new();
        for kind in kinds {
            // Integer division gives the Unix day on both databases.
            let rows = sqlx::query(
                "SELECT at / $3 AS day, COUNT(*) AS n FROM audit_events WHERE kind = $1 AND at >= $2 GROUP BY at / $3",
            )
            .bind(kind.as_str())
            .bind(millis(since))
            .bind(DAY_MS)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
            for row in rows {
                let day: i64 = row.try_get("day").map_err(backend)?;
                let n: i64 = row.try_get("n").map_err(backend)?;
                counts.push((day, *kind, u64::try_from(n).unwrap_or_default()));
            }
        }
        Ok(counts)
    }
}
