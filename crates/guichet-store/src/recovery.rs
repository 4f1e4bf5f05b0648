//! Recovery and invitation codes, and the reset that uses one.

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::{AccountId, EmailAddress};
use guichet_core::audit::RequestContext;
use guichet_core::codes::{CodeError, CodePurpose, StoredCode};
use guichet_core::password::PasswordHash;
use guichet_core::ports::{RecoveryStore, StoreError};
use guichet_core::token::TokenHash;
use sqlx::{Any, Row as _, Transaction};

use crate::credentials::set_chosen_password;
use crate::{SqlStore, backend, millis, optional_timestamp, timestamp};

/// Uses up every code of the account still unused, inside a transaction.
pub(crate) async fn use_up_codes(
    tx: &mut Transaction<'_, Any>,
    account: AccountId,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE recovery_codes SET used_at = $2 WHERE account_id = $1 AND used_at IS NULL")
        .bind(account.get())
        .bind(millis(now))
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(backend)
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
             SELECT $1, id, $3, $4, $5 FROM accounts WHERE id = $2 AND email = $6",
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
        let Some(row) = row else { return Ok(None) };
        let purpose: String = row.try_get("purpose").map_err(backend)?;
        Ok(Some(StoredCode {
            account_id: AccountId::from_stored(row.try_get("account_id").map_err(backend)?),
            purpose: crate::column(&purpose, CodePurpose::parse, "recovery_codes.purpose")?,
            created_at: timestamp(row.try_get("created_at").map_err(backend)?)?,
            expires_at: timestamp(row.try_get("expires_at").map_err(backend)?)?,
            used_at: optional_timestamp(row.try_get("used_at").map_err(backend)?)?,
        }))
    }

    async fn redeem_code(
        &self,
        hash: &TokenHash,
        new_hash: &PasswordHash,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<Result<AccountId, CodeError>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // One statement claims the code: of concurrent redeemers, one alone sees a row.
        let claimed: Option<i64> = sqlx::query_scalar(
            "UPDATE recovery_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 \
             RETURNING account_id",
        )
        .bind(hash.as_str())
        .bind(millis(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(account) = claimed.map(AccountId::from_stored) else {
            drop(tx);
            let why = match self.find_code(hash).await? {
                None => CodeError::Invalid,
                Some(code) => code.usable_at(now).err().unwrap_or(CodeError::Used),
            };
            return Ok(Err(why));
        };
        use_up_codes(&mut tx, account, now).await?;
        set_chosen_password(&mut tx, account, new_hash, None, context, "avec un code reçu par courriel", now).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Ok(account))
    }

    async fn revoke_codes(&self, account: AccountId, now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        use_up_codes(&mut tx, account, now).await?;
        tx.commit().await.map_err(backend)
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
