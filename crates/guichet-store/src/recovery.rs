//! Recovery and invitation codes, and the reset that uses one.

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::{AccountId, EmailAddress};
use guichet_core::codes::{CodePurpose, StoredCode};
use guichet_core::ports::{RecoveryStore, StoreError};
use guichet_core::token::TokenHash;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::work::SqlWork;
use crate::{SqlStore, backend, millis, optional_timestamp, timestamp};

/// Uses up every code of the account still unused, inside a transaction.
pub(crate) async fn use_up_codes(tx: &mut SqlWork, account: AccountId, now: Timestamp) -> Result<(), StoreError> {
    sqlx::query("UPDATE recovery_codes SET used_at = $2, voided_at = $2 WHERE account_id = $1 AND used_at IS NULL")
        .bind(account.get())
        .bind(millis(now))
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(backend)
}

/// The columns [`code_from_row`] reads.
pub(crate) const CODE_COLUMNS: &str = "account_id, purpose, created_at, expires_at, used_at, voided_at";

pub(crate) fn code_from_row(row: &AnyRow) -> Result<StoredCode, StoreError> {
    let purpose: String = row.try_get("purpose").map_err(backend)?;
    Ok(StoredCode {
        account_id: AccountId::from_stored(row.try_get("account_id").map_err(backend)?),
        purpose: crate::column(&purpose, CodePurpose::parse, "recovery_codes.purpose")?,
        created_at: timestamp(row.try_get("created_at").map_err(backend)?)?,
        expires_at: timestamp(row.try_get("expires_at").map_err(backend)?)?,
        used_at: optional_timestamp(row.try_get("used_at").map_err(backend)?)?,
        voided_at: optional_timestamp(row.try_get("voided_at").map_err(backend)?)?,
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
            "SELECT account_id, purpose, created_at, expires_at, used_at, voided_at FROM recovery_codes WHERE code_hash = $1",
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
}
