//! What staff change on accounts: disabling, details, roles.

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::{AccountId, DisplayName, EmailAddress, Role};
use guichet_core::audit::NewAuditEvent;
use guichet_core::mail::{MailKind, MailSubject, NewMail};
use guichet_core::ports::{AccountAdminStore, Guarded, Reach, StoreError};

use crate::accounts::{conflict_or_backend, lock_target};
use crate::audit::insert_event;
use crate::outbox::insert_mail;
use crate::sessions::end_sessions;
use crate::work::SqlWork;
use crate::{SqlStore, backend, millis};

/// Voids what was handed out to the account's current address or holder: unused codes
/// used up, a pending temporary password revoked (with the sessions it opened), device
/// cookie marks no longer counted.
async fn revoke_handed_out(tx: &mut SqlWork, account: AccountId, now: Timestamp) -> Result<(), StoreError> {
    crate::recovery::use_up_codes(tx, account, now).await?;
    crate::sessions::end_forced_sessions(tx, account).await?;
    sqlx::query(
        "UPDATE accounts SET devices_trusted_after = $2, temporary_password_hash = NULL, password_expires_at = NULL \
         WHERE id = $1",
    )
    .bind(account.get())
    .bind(millis(now))
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(backend)
}

/// Whether taking `account` out of the active administrators would leave none. Takes
/// the row locks of every active administrator for the rest of the transaction (the
/// no-op `UPDATE`), so that two such changes cannot both see the other one still there.
async fn would_leave_no_administrator(tx: &mut SqlWork, account: AccountId) -> Result<bool, StoreError> {
    let admins: Vec<i64> = sqlx::query_scalar(
        "UPDATE accounts SET updated_at = updated_at WHERE role = 'admin' AND disabled_at IS NULL RETURNING id",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(admins.contains(&account.get()) && admins.len() <= 1)
}

#[async_trait]
impl AccountAdminStore for SqlStore {
    async fn set_disabled(
        &self,
        account: AccountId,
        disabled: bool,
        event: NewAuditEvent,
        reach: Reach,
    ) -> Result<Guarded, StoreError> {
        let mut tx = self.begin_work().await?;
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
        tx.commit().await?;
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
        let mut tx = self.begin_work().await?;
        // Takes the row's lock first, so that the old address read here is the one replaced.
        let old = lock_target(&mut tx, account, reach).await?;
        crate::accounts::refuse_a_secours_address(&mut tx, email, account).await?;
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
            revoke_handed_out(&mut tx, account, event.at).await?;
            let notice = NewMail {
                kind: MailKind::EmailChanged,
                account_id: Some(account),
                recipient: EmailAddress::from_stored(old),
                subject: MailSubject::None,
            };
            insert_mail(&mut tx, &notice, event.at).await?;
        }
        insert_event(&mut tx, &event).await?;
        tx.commit().await
    }

    async fn set_role(&self, account: AccountId, role: Role, event: NewAuditEvent) -> Result<Guarded, StoreError> {
        let mut tx = self.begin_work().await?;
        // The account first, as every write on one account holds it first (a code being
        // redeemed holds it before its code): no two orders, no deadlock.
        lock_target(&mut tx, account, Reach::Anyone).await?;
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
            revoke_handed_out(&mut tx, account, event.at).await?;
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
        tx.commit().await?;
        Ok(Guarded::Done)
    }
}
