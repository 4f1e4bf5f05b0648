//! Second factors: TOTP secrets (sealed by the core) and backup codes (by hash).

use guichet_core::Timestamp;
use guichet_core::account::AccountId;
use guichet_core::ports::{StoreError, StoredTotp};
use guichet_core::second_factor::{FactorStatus, TotpState};
use guichet_core::token::TokenHash;
use sqlx::Row as _;

use crate::work::SqlWork;
use crate::{SqlStore, backend, millis, optional_timestamp};

/// The account's TOTP secret, inside a unit.
pub(crate) async fn totp(tx: &mut SqlWork, account: AccountId) -> Result<Option<StoredTotp>, StoreError> {
    let row = sqlx::query("SELECT sealed, confirmed_at, last_step FROM totp_secrets WHERE account_id = $1")
        .bind(account.get())
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
    row.map(|row| {
        Ok(StoredTotp {
            sealed: row.try_get("sealed").map_err(backend)?,
            confirmed_at: optional_timestamp(row.try_get("confirmed_at").map_err(backend)?)?,
            last_step: row.try_get("last_step").map_err(backend)?,
        })
    })
    .transpose()
}

/// Writes an unconfirmed secret in place of any other, inside a unit.
pub(crate) async fn put_totp(
    tx: &mut SqlWork,
    account: AccountId,
    sealed: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO totp_secrets (account_id, sealed, created_at, confirmed_at, last_step) VALUES ($1, $2, $3, NULL, 0) \
         ON CONFLICT (account_id) DO UPDATE SET sealed = $2, created_at = $3, confirmed_at = NULL, last_step = 0",
    )
    .bind(account.get())
    .bind(sealed.to_owned())
    .bind(millis(at))
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(backend)
}

/// Sets the secret's confirmation (`Some`) and its last step, inside a unit.
pub(crate) async fn set_totp_step(
    tx: &mut SqlWork,
    account: AccountId,
    step: i64,
    confirmed_at: Option<Timestamp>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE totp_secrets SET last_step = $2, confirmed_at = COALESCE($3, confirmed_at) WHERE account_id = $1",
    )
    .bind(account.get())
    .bind(step)
    .bind(confirmed_at.map(millis))
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(backend)
}

/// Replaces the account's backup codes, inside a unit.
pub(crate) async fn replace_backup_codes(
    tx: &mut SqlWork,
    account: AccountId,
    hashes: &[TokenHash],
    at: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM second_factor_recovery_codes WHERE account_id = $1")
        .bind(account.get())
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    for hash in hashes {
        sqlx::query("INSERT INTO second_factor_recovery_codes (code_hash, account_id, created_at) VALUES ($1, $2, $3)")
            .bind(hash.as_str())
            .bind(account.get())
            .bind(millis(at))
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    Ok(())
}

/// Uses one unused backup code of the account, inside a unit.
pub(crate) async fn use_backup_code(
    tx: &mut SqlWork,
    account: AccountId,
    hash: &TokenHash,
    at: Timestamp,
) -> Result<bool, StoreError> {
    sqlx::query(
        "UPDATE second_factor_recovery_codes SET used_at = $3 \
         WHERE code_hash = $1 AND account_id = $2 AND used_at IS NULL",
    )
    .bind(hash.as_str())
    .bind(account.get())
    .bind(millis(at))
    .execute(&mut **tx)
    .await
    .map(|done| done.rows_affected() == 1)
    .map_err(backend)
}

/// Removes the account's secret and backup codes, inside a unit.
pub(crate) async fn remove(tx: &mut SqlWork, account: AccountId) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM totp_secrets WHERE account_id = $1",
        "DELETE FROM second_factor_recovery_codes WHERE account_id = $1",
    ] {
        sqlx::query(sql).bind(account.get()).execute(&mut **tx).await.map_err(backend)?;
    }
    Ok(())
}

impl SqlStore {
    /// The account's second factors, for pages.
    pub(crate) async fn factor_status(&self, account: AccountId) -> Result<FactorStatus, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT confirmed_at FROM totp_secrets WHERE account_id = $1) AS confirmed_at, \
             (SELECT COUNT(*) FROM totp_secrets WHERE account_id = $1) AS secrets, \
             (SELECT COUNT(*) FROM second_factor_recovery_codes WHERE account_id = $1 AND used_at IS NULL) AS left_, \
             (SELECT COUNT(*) FROM webauthn_credentials WHERE account_id = $1) AS keys_",
        )
        .bind(account.get())
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        let confirmed_at = optional_timestamp(row.try_get("confirmed_at").map_err(backend)?)?;
        let secrets: i64 = row.try_get("secrets").map_err(backend)?;
        let left: i64 = row.try_get("left_").map_err(backend)?;
        let keys: i64 = row.try_get("keys_").map_err(backend)?;
        let totp = match (confirmed_at, secrets) {
            (Some(at), _) => TotpState::Active(at),
            (None, 0) => TotpState::None,
            (None, _) => TotpState::Pending,
        };
        Ok(FactorStatus {
            totp,
            backup_codes_left: u32::try_from(left).unwrap_or_default(),
            keys: u32::try_from(keys).unwrap_or_default(),
        })
    }
}
