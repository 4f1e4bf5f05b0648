//! Recovery and invitation codes, and the reset that uses one.

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::{AccountId, EmailAddress};
use guichet_core::audit::NewAuditEvent;
use guichet_core::codes::{CodeError, CodePurpose, StoredCode};
use guichet_core::mail::{MailKind, MailSubject, NewMail};
use guichet_core::ports::{RecoveryStore, StoreError};
use guichet_core::token::TokenHash;
use sqlx::Row as _;
use sqlx::any::AnyRow;
use subtle::ConstantTimeEq as _;

use crate::audit::insert_event;
use crate::outbox::{insert_mail, insert_mail_to_account};
use crate::work::SqlWork;
use crate::{SqlStore, backend, millis, optional_timestamp, timestamp};

/// Uses up every code of the account still unused, inside a transaction.
pub(crate) async fn use_up_codes(tx: &mut SqlWork, account: AccountId, now: Timestamp) -> Result<(), StoreError> {
    sqlx::query("UPDATE recovery_codes SET used_at = $2 WHERE account_id = $1 AND used_at IS NULL")
        .bind(account.get())
        .bind(millis(now))
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(backend)
}

/// The columns [`code_from_row`] reads.
pub(crate) const CODE_COLUMNS: &str = "account_id, purpose, created_at, expires_at, used_at";

pub(crate) fn code_from_row(row: &AnyRow) -> Result<StoredCode, StoreError> {
    let purpose: String = row.try_get("purpose").map_err(backend)?;
    Ok(StoredCode {
        account_id: AccountId::from_stored(row.try_get("account_id").map_err(backend)?),
        purpose: crate::column(&purpose, CodePurpose::parse, "recovery_codes.purpose")?,
        created_at: timestamp(row.try_get("created_at").map_err(backend)?)?,
        expires_at: timestamp(row.try_get("expires_at").map_err(backend)?)?,
        used_at: optional_timestamp(row.try_get("used_at").map_err(backend)?)?,
    })
}

#[async_trait]
impl RecoveryStore for SqlStore {
    async fn insert_code(
        &self,
        hash: &TokenHash,
        code: &StoredCode,
        sent_to: &EmailAddress,
    ) -> Result<bool, StoreError> {
        // One statement: the address is checked where the code is stored.
        sqlx::query(
            "INSERT INTO recovery_codes (code_hash, account_id, purpose, created_at, expires_at) \
             SELECT $1, id, $3, $4, $5 FROM accounts WHERE id = $2 AND (email = $6 OR recovery_email = $6)",
        )
        .bind(hash.as_str())
        .bind(code.account_id.get())
        .bind(code.purpose.as_str())
        .bind(millis(code.created_at))
        .bind(millis(code.expires_at))
        .bind(sent_to.as_str())
        .execute(&self.pool)
        .await
        .map(|done| done.rows_affected() == 1)
        .map_err(backend)
    }

    async fn delete_code(&self, hash: &TokenHash) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM recovery_codes WHERE code_hash = $1")
            .bind(hash.as_str())
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend)
    }

    async fn find_code(&self, hash: &TokenHash) -> Result<Option<StoredCode>, StoreError> {
        let row = sqlx::query(
            "SELECT account_id, purpose, created_at, expires_at, used_at FROM recovery_codes WHERE code_hash = $1",
        )
        .bind(hash.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(code_from_row).transpose()
    }

    async fn revoke_codes(&self, account: AccountId, now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.begin_work().await?;
        use_up_codes(&mut tx, account, now).await?;
        tx.commit().await
    }

    async fn pending_codes(&self, account: AccountId, now: Timestamp) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(account.get())
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn propose_recovery_email(
        &self,
        account: AccountId,
        email: &EmailAddress,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_work().await?;
        let taken: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE (email = $1 OR recovery_email = $1) AND id <> $2")
                .bind(email.as_str())
                .bind(account.get())
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
        // A taken address is not revealed to the member proposing it: the proposal is
        // stored and answered the same way, but no code leaves, so it cannot be confirmed.
        sqlx::query(
            "UPDATE accounts SET recovery_email_pending = $2, recovery_email_code_hash = NULL, \
             recovery_email_code_expires_at = NULL, updated_at = $3 WHERE id = $1",
        )
        .bind(account.get())
        .bind(email.as_str())
        .bind(millis(now))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let mail = NewMail {
            kind: MailKind::RecoveryEmailConfirmation,
            account_id: Some(account),
            recipient: email.clone(),
            subject: MailSubject::None,
        };
        if taken == 0 {
            insert_mail(&mut tx, &mail, now).await?;
        }
        tx.commit().await
    }

    async fn remove_recovery_email(&self, account: AccountId, event: NewAuditEvent) -> Result<bool, StoreError> {
        let mut tx = self.begin_work().await?;
        let had: Option<i64> = sqlx::query_scalar(
            "UPDATE accounts SET recovery_email = NULL, recovery_email_pending = NULL, recovery_email_code_hash = NULL, \
             recovery_email_code_expires_at = NULL, updated_at = $2 \
             WHERE id = $1 AND (recovery_email IS NOT NULL OR recovery_email_pending IS NOT NULL) \
             RETURNING id",
        )
        .bind(account.get())
        .bind(millis(event.at))
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(_) = had else { return Ok(false) };
        // Codes already mailed there must not outlive the address.
        use_up_codes(&mut tx, account, event.at).await?;
        insert_event(&mut tx, &event).await?;
        insert_mail_to_account(&mut tx, MailKind::RecoveryEmailChanged, account, event.at).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_recovery_email_code(
        &self,
        account: AccountId,
        hash: &TokenHash,
        expires_at: Timestamp,
        sent_to: &EmailAddress,
    ) -> Result<bool, StoreError> {
        sqlx::query(
            "UPDATE accounts SET recovery_email_code_hash = $2, recovery_email_code_expires_at = $3 \
             WHERE id = $1 AND recovery_email_pending = $4",
        )
        .bind(account.get())
        .bind(hash.as_str())
        .bind(millis(expires_at))
        .bind(sent_to.as_str())
        .execute(&self.pool)
        .await
        .map(|done| done.rows_affected() == 1)
        .map_err(backend)
    }

    async fn confirm_recovery_email(
        &self,
        account: AccountId,
        hash: &TokenHash,
        event: NewAuditEvent,
    ) -> Result<Result<EmailAddress, CodeError>, StoreError> {
        let mut tx = self.begin_work().await?;
        let row = sqlx::query(
            "SELECT recovery_email_pending, recovery_email_code_hash, recovery_email_code_expires_at \
             FROM accounts WHERE id = $1",
        )
        .bind(account.get())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(Err(CodeError::Invalid)) };
        let pending: Option<String> = row.try_get("recovery_email_pending").map_err(backend)?;
        let stored: Option<String> = row.try_get("recovery_email_code_hash").map_err(backend)?;
        let expires_at: Option<i64> = row.try_get("recovery_email_code_expires_at").map_err(backend)?;
        let (Some(pending), Some(stored)) = (pending, stored) else { return Ok(Err(CodeError::Invalid)) };
        if !bool::from(stored.as_bytes().ct_eq(hash.as_str().as_bytes())) {
            return Ok(Err(CodeError::Invalid));
        }
        if expires_at.is_none_or(|at| at <= millis(event.at)) {
            return Ok(Err(CodeError::Expired));
        }
        let confirmed = sqlx::query(
            "UPDATE accounts SET recovery_email = recovery_email_pending, recovery_email_pending = NULL, \
             recovery_email_code_hash = NULL, recovery_email_code_expires_at = NULL, updated_at = $3 \
             WHERE id = $1 AND recovery_email_code_hash = $2",
        )
        .bind(account.get())
        .bind(hash.as_str())
        .bind(millis(event.at))
        .execute(&mut *tx)
        .await
        .map_err(crate::accounts::conflict_or_backend)?
        .rows_affected()
            == 1;
        if !confirmed {
            return Ok(Err(CodeError::Used));
        }
        // Codes mailed to the secours address this one replaces must not outlive it.
        use_up_codes(&mut tx, account, event.at).await?;
        insert_event(&mut tx, &event).await?;
        insert_mail_to_account(&mut tx, MailKind::RecoveryEmailChanged, account, event.at).await?;
        tx.commit().await?;
        Ok(Ok(EmailAddress::from_stored(pending)))
    }
}
